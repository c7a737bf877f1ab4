"""The layer registry: one line per (layer, input shapes, options) case.

``tests/test_functional.py`` runs every entry through the public ``crosscheck.check_layer``, the API users get:
the forward value and the gradient of every differentiable input against torch autograd, for several seeds and
both float dtypes. Adding a layer costs its manual code, one ``op(...)`` line below and its case lines. The slides'
operations are rows too: conv, sigmoid, the fully connected layer and the error, each a forward/backward pair
made of manual/seed_network.py's equations and manual/kernels.py's operations.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from manual import attention as A
from manual import functional as M
from manual import kernels
from manual import recurrent as R
from manual.seed_network import EQUATIONS, n_of

# --- how inputs are drawn: (rng, shape) -> float64 (or integer) array ------------------------------


def normal(rng, shape):
    return rng.standard_normal(shape)


def probabilities(rng, shape):
    return rng.uniform(0.02, 0.98, shape)


def huge(rng, shape):
    """Logits up to |z| = 1e4: exp(z) would overflow any float; the stable forms must not."""
    return rng.uniform(-1e4, 1e4, shape)


def with_zeros(rng, shape):
    """Normal values with about a third set to exactly 0, where ReLU and LeakyReLU have a kink."""
    return np.where(rng.random(shape) < 1 / 3, 0.0, rng.standard_normal(shape))


def ties(rng, shape):
    """Small integers, so most pooling windows hold several equal maxima."""
    return rng.integers(-2, 3, shape).astype(np.float64)


def variances(rng, shape):
    """Running variances of a batch norm: positive, well away from 0."""
    return rng.uniform(0.5, 2.0, shape)


def labels_below(n_classes):
    def labels(rng, shape):
        return rng.integers(0, n_classes, shape)

    return labels


def indices_with(size, *first):
    """Integers in [0, size), the first entries (in C order) set to `first`: a repeated index, a padding index
    or an ignored label is then surely there, whatever the seed (and, with a kept label among `first`, never every
    label ignored, where torch's mean is NaN: fresh seed bases 357203 and 614261 drew nll's six labels all 1)."""
    def indices(rng, shape):
        a = rng.integers(0, size, shape)
        a.flat[:len(first)] = first
        return a

    return indices


def keep_mask(p):
    """A dropout mask: True (kept) with probability 1 - p, as the harness draws it for both sides."""
    def mask(rng, shape):
        return rng.random(shape) >= p

    return mask


def log_probabilities(rng, shape):
    """Rows of log-probabilities, the output of a log_softmax along axis 1."""
    x = rng.standard_normal(shape)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


# --- the entry -------------------------------------------------------------------------------------

ABBREVIATIONS = {"stride": "s", "padding": "p", "dilation": "d", "kernel_size": "k", "negative_slope": "slope",
                 "normalized_shape": "shape", "num_groups": "groups", "approximate": "approx", "groups": "g",
                 "output_size": "o", "output_padding": "op"}


def _fmt(value):
    return "x".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


@dataclass(frozen=True)
class LayerCase:
    name: str
    forward: Callable
    backward: Callable
    torch_fn: Callable  # the same layer in torch, on tensors, with the same keyword options
    shapes: tuple  # one shape per positional input; optional inputs left out (a bias) get None
    kwargs: tuple = ()  # (option, value) pairs, so the entry stays frozen and hashable
    differentiable: tuple = ()  # per input, False for data without a gradient (targets, labels)
    draw: tuple = ()  # per input, (rng, shape) -> array; standard normal where not given
    tag: str = ""  # names an unusual input draw in the test id

    def __str__(self):
        parts = [self.name, "_".join("x".join(map(str, s)) for s in self.shapes)]
        for key, value in self.kwargs:
            if value is True:
                parts.append(key)
            elif key == "reduction":
                parts.append(value)
            else:
                parts.append(f"{ABBREVIATIONS.get(key, key)}{_fmt(value)}")
        return "-".join(parts + ([self.tag] if self.tag else []))

    @property
    def options(self):
        return dict(self.kwargs)

    @property
    def derivative_options(self):
        """The options under which the backward is the forward's true derivative: an embedding's padding_idx
        (which changes nothing in the forward) zeroes its row's gradient by torch's convention, so finite
        differences and gradcheck see the layer without it; test_functional.py holds the convention to torch's."""
        return {k: v for k, v in self.kwargs if k != "padding_idx"}

    @property
    def input_names(self):
        """The forward's parameter names, one per input; a *xs parameter gives xs[0], xs[1], ..."""
        names = []
        for p in inspect.signature(self.forward).parameters.values():
            if p.kind is p.VAR_POSITIONAL:
                names += [f"{p.name}[{k}]" for k in range(len(self.shapes) - len(names))]
            else:
                names.append(p.name)
        return names[: len(self.shapes)]

    def wants_grad(self, i):
        return self.differentiable[i] if self.differentiable else True

    def inputs(self, rng, dtype):
        """Draw every input; floating ones in `dtype`, integer labels as they come."""
        arrays = []
        for i, shape in enumerate(self.shapes):
            draw = self.draw[i] if i < len(self.draw) else normal
            a = draw(rng, shape)
            arrays.append(a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a)
        return arrays


def op(name, forward, backward, torch_fn, differentiable=(), draw=()):
    """A case factory for one layer: (*shapes, draw=..., tag=..., **options) -> LayerCase."""

    def case(*shapes, draw=draw, tag="", **options):
        # a case that leaves trailing optional inputs out (gamma and beta) drops their entries
        return LayerCase(name, forward, backward, torch_fn, shapes, tuple(options.items()),
                         differentiable[:len(shapes)], draw, tag)

    return case


# --- the layers in torch (forward only: the gradients come from autograd) -------------------------


def torch_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, flip=False, groups=1):
    return F.conv2d(x, torch.flip(w, (2, 3)) if flip else w, b, stride, padding, dilation, groups)


def torch_add(*xs):
    return functools.reduce(torch.add, xs)


def torch_concat(*xs, dim=0):
    return torch.cat(xs, dim + 1)


def torch_half_squared_error(pred, target, reduction="mean"):
    E = ((target - pred) ** 2).sum() / 2
    return E / pred.shape[0] if reduction == "mean" else E


def torch_layer_norm(x, gamma=None, beta=None, *, normalized_shape, eps=1e-5):
    return F.layer_norm(x, normalized_shape, gamma, beta, eps)


def torch_group_norm(x, gamma=None, beta=None, *, num_groups, eps=1e-5):
    return F.group_norm(x, num_groups, gamma, beta, eps)


def torch_batch_norm(x, running_mean=None, running_var=None, gamma=None, beta=None, training=True, momentum=0.1,
                     eps=1e-5):
    """F.batch_norm on copies of the running statistics: in training mode torch updates them in place, and the
    arrays they came from belong to the test."""
    copies = [None if t is None else t.clone() for t in (running_mean, running_var)]
    return F.batch_norm(x, *copies, gamma, beta, training, momentum, eps)


conv2d = op("conv2d", M.conv2d_forward, M.conv2d_backward, torch_conv2d)
conv_transpose2d = op("conv_transpose2d", M.conv_transpose2d_forward, M.conv_transpose2d_backward, F.conv_transpose2d)
max_pool2d = op("max_pool2d", M.max_pool2d_forward, M.max_pool2d_backward, F.max_pool2d)
avg_pool2d = op("avg_pool2d", M.avg_pool2d_forward, M.avg_pool2d_backward, F.avg_pool2d)
adaptive_avg_pool2d = op("adaptive_avg_pool2d", M.adaptive_avg_pool2d_forward, M.adaptive_avg_pool2d_backward,
                         F.adaptive_avg_pool2d)
tanh = op("tanh", M.tanh_forward, M.tanh_backward, torch.tanh)
relu = op("relu", M.relu_forward, M.relu_backward, torch.relu)
leaky_relu = op("leaky_relu", M.leaky_relu_forward, M.leaky_relu_backward, F.leaky_relu)
sigmoid = op("sigmoid", M.sigmoid_forward, M.sigmoid_backward, torch.sigmoid)
flatten = op("flatten", M.flatten_forward, M.flatten_backward, lambda x: torch.flatten(x, 1))
linear = op("linear", M.linear_forward, M.linear_backward, F.linear)
add = op("add", M.add_forward, M.add_backward, torch_add)
concat = op("concat", M.concat_forward, M.concat_backward, torch_concat)
layer_norm = op("layer_norm", M.layer_norm_forward, M.layer_norm_backward, torch_layer_norm)
group_norm = op("group_norm", M.group_norm_forward, M.group_norm_backward, torch_group_norm)
# x, running_mean, running_var[, gamma, beta]: torch's order; the running statistics get no gradient
batch_norm = op("batch_norm", M.batch_norm_forward, M.batch_norm_backward, torch_batch_norm,
                differentiable=(True, False, False, True, True), draw=(normal, normal, variances))
gelu = op("gelu", M.gelu_forward, M.gelu_backward, F.gelu)
silu = op("silu", M.silu_forward, M.silu_backward, F.silu)
softmax = op("softmax", M.softmax_forward, M.softmax_backward, lambda x, dim=0: torch.softmax(x, dim + 1))
log_softmax = op("log_softmax", M.log_softmax_forward, M.log_softmax_backward,
                 lambda x, dim=0: torch.log_softmax(x, dim + 1))
# indices, weight: the indices are data, no gradient
embedding = op("embedding", M.embedding_forward, M.embedding_backward,
               lambda indices, weight, padding_idx=None: F.embedding(indices, weight, padding_idx),
               differentiable=(False, True))
def torch_dropout(x, mask=None, p=0.5):
    """torch's dropout with the harness's mask: x * (mask / (1 - p)), zeros at p = 1; F.dropout is exactly this
    for the mask it draws (tests/test_dropout.py). No mask: eval mode, the identity."""
    if mask is None:
        return x
    return x * 0 if p == 1 else x * (mask.to(x.dtype) / (1 - p))


# x, mask: the mask is data, drawn by the harness
dropout = op("dropout", M.dropout_forward, M.dropout_backward, torch_dropout, differentiable=(True, False))
LOSS = dict(differentiable=(True, False))
nll = op("nll", M.nll_forward, M.nll_backward, F.nll_loss, **LOSS)
half_squared_error = op(
    "half_squared_error", M.half_squared_error_forward, M.half_squared_error_backward, torch_half_squared_error, **LOSS
)
mse = op("mse", M.mse_forward, M.mse_backward, F.mse_loss, **LOSS)
bce = op(
    "bce", M.binary_cross_entropy_forward, M.binary_cross_entropy_backward, F.binary_cross_entropy,
    draw=(probabilities, probabilities), **LOSS,
)
bce_with_logits = op(
    "bce_with_logits", M.binary_cross_entropy_with_logits_forward, M.binary_cross_entropy_with_logits_backward,
    F.binary_cross_entropy_with_logits, draw=(normal, probabilities), **LOSS,
)
cross_entropy = op(
    "softmax_cross_entropy", M.softmax_cross_entropy_forward, M.softmax_cross_entropy_backward, F.cross_entropy,
    **LOSS,
)

# --- the slides' network, operation by operation: its equations as forward/backward pairs ---------------------


def slides_conv_forward(X, f):
    """Z1 = conv(X, f)."""
    return kernels.conv(X, f), (X, f)


def slides_conv_backward(dZ1, cache):
    """X is data (no gradient); dE/df = conv(X, dE/dZ1)."""
    X, _ = cache
    return None, EQUATIONS["dE_df"](X, dZ1)


def slides_sigmoid_forward(Z):
    """H1 = sigmoid(Z1), or O = sigmoid(Z2)."""
    out = kernels.sigmoid(Z)
    return out, out


def slides_sigmoid_backward(dH, out):
    """dE/dZ = dE/dH * dH/dZ, dH/dZ = H (1 - H)."""
    return (EQUATIONS["dE_dZ1"](dH, EQUATIONS["dH1_dZ1"](out, out)),)


def slides_linear_forward(H1, W, b):
    """Z2 = W^T . H1 + b, one row per sample: H1 (N, n_hidden), W (n_hidden, n_out)."""
    return H1 @ W + b, (H1, W)


def slides_linear_backward(dZ2, cache):
    """dE/dH1 = dE/dZ2 . W^T, dE/dW = H1^T . dE/dZ2, dE/db = dE/dZ2 summed over samples."""
    H1, W = cache
    return (EQUATIONS["dE_dH1"](dZ2, EQUATIONS["dZ2_dH1"](W)), EQUATIONS["dE_dW"](dZ2, EQUATIONS["dZ2_dW"](H1)),
            EQUATIONS["dE_db"](dZ2))


def slides_error_forward(O, Y, reduction="sum"):
    """E = (Y - O)^2 / 2 summed over outputs, summed or averaged over the batch."""
    n = n_of(O, reduction)
    return np.asarray(((Y - O) ** 2).sum() / 2 / n, O.dtype), (O, Y, n)


def slides_error_backward(dE, cache):
    """dE/dO = O - Y (divided by N under the mean), times the upstream dE; Y is data."""
    O, Y, n = cache
    return EQUATIONS["dE_dO"](O, Y, n) * dE, None


def torch_slides_conv(X, f):
    return F.conv2d(X[:, None], f[None, None])[:, 0]


def torch_slides_error(O, Y, reduction="sum"):
    E = ((Y - O) ** 2).sum() / 2
    return E / O.shape[0] if reduction == "mean" else E


slides_conv = op("slides_conv", slides_conv_forward, slides_conv_backward, torch_slides_conv,
                 differentiable=(False, True))
slides_sigmoid = op("slides_sigmoid", slides_sigmoid_forward, slides_sigmoid_backward, torch.sigmoid)
slides_linear = op("slides_linear", slides_linear_forward, slides_linear_backward, lambda H1, W, b: H1 @ W + b)
slides_error = op("slides_error", slides_error_forward, slides_error_backward, torch_slides_error, **LOSS)

LAYER_CASES = [
    # conv2d: x, w[, b]; stride/padding/dilation as ints or (h, w) pairs
    conv2d((2, 3, 7, 5), (4, 3, 3, 2), (4,), stride=2, padding=1, dilation=1),  # non-square input and kernel
    conv2d((1, 1, 5, 5), (1, 1, 1, 1), (1,)),  # batch 1, one channel, 1x1 kernel
    conv2d((2, 2, 4, 6), (3, 2, 4, 6)),  # kernel as large as the input, no bias
    conv2d((1, 2, 3, 4), (2, 2, 5, 6), (2,), padding=1),  # kernel as large as the padded input
    conv2d((2, 1, 9, 8), (2, 1, 2, 2), (2,), stride=3),  # stride larger than the kernel
    conv2d((2, 3, 9, 10), (2, 3, 3, 2), (2,), padding=(2, 1), dilation=2),
    conv2d((2, 3, 11, 11), (4, 3, 3, 3), (4,), stride=2, padding=3, dilation=3),
    conv2d((1, 4, 6, 7), (3, 4, 2, 3), (3,), stride=(1, 2), padding=(0, 2), dilation=(2, 1)),
    # taps that read only padding at the start of a row (found by hypothesis: a slice stop of -1 wrapped around)
    conv2d((1, 1, 1, 2), (1, 1, 1, 3), stride=2, padding=2, dilation=2),
    conv2d((2, 2, 2, 3), (2, 2, 3, 3), (2,), stride=3, padding=2, dilation=2),
    conv2d((1, 3, 6, 6), (2, 3, 3, 3), (2,), padding=1, flip=True),  # true convolution
    conv2d((2, 2, 8, 7), (3, 2, 3, 2), (3,), stride=(2, 1), padding=(1, 0), dilation=(1, 2), flip=True),
    conv2d((3, 4, 6, 5), (5, 4, 2, 3), flip=True),
    conv2d((2, 2, 6, 5), (3, 2, 3, 3), (3,), padding=(0, 1)),  # padding on one axis only, either one
    conv2d((1, 3, 5, 6), (2, 3, 2, 3), (2,), stride=2, padding=(1, 0)),
    conv2d((2, 1, 3, 5), (2, 1, 5, 7), (2,), padding=1, flip=True),  # flipped kernel as large as the padded input
    # groups: weight (F, C/groups, KH, KW); filter block g reads channel block g only
    conv2d((2, 4, 6, 5), (6, 2, 3, 3), (6,), padding=1, groups=2),
    conv2d((2, 6, 9, 8), (3, 2, 3, 2), stride=2, padding=(1, 0), dilation=(2, 1), groups=3),  # no bias
    conv2d((2, 3, 7, 7), (3, 1, 3, 3), (3,), padding=1, groups=3),  # depthwise: a filter per channel
    conv2d((1, 4, 8, 6), (8, 1, 3, 3), (8,), stride=2, padding=2, dilation=2, groups=4),  # depthwise, multiplier 2
    conv2d((2, 2, 5, 5), (2, 1, 5, 5), (2,), groups=2),  # depthwise, kernel as large as the input
    conv2d((1, 4, 5, 4), (4, 2, 2, 3), (4,), stride=(2, 1), padding=1, groups=2, flip=True),
    # conv_transpose2d: x, w (C_in, C_out, KH, KW)[, b]; output_padding < stride or < dilation
    conv_transpose2d((2, 3, 4, 5), (3, 2, 3, 3), (2,)),
    conv_transpose2d((2, 2, 3, 4), (2, 3, 3, 2), (3,), stride=2, padding=1, output_padding=1),
    conv_transpose2d((1, 1, 3, 3), (1, 1, 1, 1), (1,)),  # batch 1, one channel, 1x1 kernel
    conv_transpose2d((2, 3, 4, 3), (3, 2, 3, 3), stride=(2, 3), padding=(1, 2), output_padding=(1, 2)),  # no bias
    conv_transpose2d((1, 2, 3, 3), (2, 2, 3, 3), (2,), stride=1, padding=1, output_padding=1, dilation=2),
    conv_transpose2d((2, 2, 5, 4), (2, 3, 2, 3), (3,), stride=3, dilation=(2, 1)),  # stride larger than the kernel
    conv_transpose2d((2, 1, 2, 2), (1, 2, 3, 3), (2,), stride=2, padding=2),  # padding crops most of the output
    # max_pool2d / avg_pool2d: x; kernel_size, stride (default kernel_size), padding <= kernel_size // 2
    max_pool2d((2, 3, 6, 6), kernel_size=2),
    max_pool2d((1, 1, 5, 7), kernel_size=(2, 3), stride=(1, 2), padding=1),
    max_pool2d((2, 2, 7, 7), kernel_size=3, stride=2, padding=1),
    max_pool2d((2, 1, 4, 6), kernel_size=(4, 6)),  # window as large as the input
    max_pool2d((1, 2, 9, 9), kernel_size=2, stride=3),  # stride larger than the kernel
    max_pool2d((2, 2, 6, 6), kernel_size=3, stride=1, padding=1, draw=(ties,), tag="ties"),
    max_pool2d((2, 1, 5, 6), kernel_size=(2, 3), stride=1, draw=(ties,), tag="ties"),
    max_pool2d((2, 2, 6, 7), kernel_size=3, stride=2, padding=(1, 0)),  # padding on one axis only, either one
    max_pool2d((1, 2, 7, 6), kernel_size=(2, 3), stride=1, padding=(0, 1)),
    avg_pool2d((2, 3, 6, 6), kernel_size=2),
    avg_pool2d((1, 1, 5, 7), kernel_size=(2, 3), stride=(1, 2), padding=1),
    avg_pool2d((2, 2, 7, 7), kernel_size=3, stride=2, padding=1),
    avg_pool2d((2, 1, 4, 6), kernel_size=(4, 6)),
    avg_pool2d((1, 2, 9, 9), kernel_size=2, stride=3),
    avg_pool2d((2, 2, 5, 5), kernel_size=3, stride=1, padding=1),
    avg_pool2d((2, 2, 6, 7), kernel_size=3, stride=2, padding=(1, 0)),
    avg_pool2d((1, 2, 7, 6), kernel_size=(2, 3), stride=1, padding=(0, 1)),
    # adaptive_avg_pool2d: x; output_size, torch's windows [floor(i*H/OH), ceil((i+1)*H/OH))
    adaptive_avg_pool2d((2, 3, 5, 6), output_size=1),  # global average pooling
    adaptive_avg_pool2d((2, 2, 6, 8), output_size=(3, 4)),  # sizes that divide: avg_pool2d's windows
    adaptive_avg_pool2d((2, 3, 7, 5), output_size=3),  # sizes that do not divide: windows of 3, 3, 3 rows overlap
    adaptive_avg_pool2d((1, 1, 10, 7), output_size=(4, 3)),  # unequal windows, batch 1, one channel
    adaptive_avg_pool2d((2, 2, 3, 2), output_size=(5, 4)),  # larger than the input: pixels repeated
    adaptive_avg_pool2d((1, 2, 4, 4), output_size=4),  # the identity
    # activations, any shape
    tanh((2, 3, 4, 5)),
    tanh((7,)),
    relu((2, 3, 4, 4)),
    relu((5, 6), draw=(with_zeros,), tag="zeros"),
    leaky_relu((2, 3, 4, 4)),
    leaky_relu((5, 6), draw=(with_zeros,), tag="zeros"),
    leaky_relu((3, 8), negative_slope=0.2, draw=(with_zeros,), tag="zeros"),
    leaky_relu((1, 1, 3, 3), negative_slope=-1.5),
    leaky_relu((2, 3, 4, 4), negative_slope=1.5),  # slopes above 1: max(x, slope * x) is no leaky ReLU there
    leaky_relu((4, 6), negative_slope=3.0, draw=(with_zeros,), tag="zeros"),
    sigmoid((2, 3, 4)),
    sigmoid((5,), draw=(huge,), tag="huge"),
    flatten((2, 3, 4, 5)),
    flatten((1, 1, 1, 1)),
    # linear: x (N, in), w (out, in)[, b (out,)]
    linear((4, 5), (3, 5), (3,)),
    linear((1, 1), (1, 1)),
    linear((6, 2), (7, 2), (7,)),
    # merges: two or more inputs (N, ...); add of one shape, concat along per-sample axis dim (torch's dim + 1)
    add((2, 3, 4, 5), (2, 3, 4, 5)),
    add((4, 3), (4, 3), (4, 3)),  # three inputs
    add((1, 1, 1, 1), (1, 1, 1, 1)),  # batch 1, one element
    add((3,), (3,), (3,), (3,), (3,)),
    concat((2, 3, 4, 5), (2, 1, 4, 5)),  # channels, the default
    concat((2, 1, 3, 3), (2, 2, 3, 3), (2, 1, 3, 3)),  # three inputs
    concat((2, 3, 4, 5), (2, 3, 2, 5), dim=1),  # along the height
    concat((1, 2, 2, 1), (1, 2, 2, 3), dim=2),  # along the width, a one-wide input
    concat((3, 4), (3, 1)),  # features
    concat((1, 1, 1, 1), (1, 1, 1, 1)),  # batch 1, one element each
    # normalization: gamma and beta drawn at random (never 1 and 0, which hide a gradient that forgets gamma)
    layer_norm((2, 3, 4, 5), (4, 5), (4, 5), normalized_shape=(4, 5)),
    layer_norm((4, 6), (6,), (6,), normalized_shape=(6,)),  # after a linear layer
    layer_norm((2, 3, 4, 4), (3, 4, 4), (3, 4, 4), normalized_shape=(3, 4, 4), eps=1e-3),  # the whole sample
    layer_norm((3, 2, 5), normalized_shape=(5,)),  # no elementwise affine
    layer_norm((1, 1, 1, 3), (1, 1, 3), (1, 1, 3), normalized_shape=(1, 1, 3)),  # batch 1, one channel
    group_norm((2, 6, 3, 4), (6,), (6,), num_groups=3),
    group_norm((1, 4, 5), (4,), (4,), num_groups=1),  # batch 1, one group: layer norm over the whole sample
    group_norm((2, 4, 3, 3), num_groups=4),  # a group per channel (instance norm), no affine
    group_norm((3, 1, 4, 4), (1,), (1,), num_groups=1, eps=1e-3),  # one channel
    group_norm((4, 6), (6,), (6,), num_groups=2),  # (N, C)
    batch_norm((4, 3, 5, 5), (3,), (3,), (3,), (3,)),  # BatchNorm2d, training: the batch's statistics
    batch_norm((4, 3, 5, 5), (3,), (3,), (3,), (3,), training=False),  # eval: the running statistics
    batch_norm((6, 5), (5,), (5,), (5,), (5,)),  # BatchNorm1d on (N, C), after a linear layer
    batch_norm((6, 5), (5,), (5,), (5,), (5,), training=False, eps=1e-3),
    batch_norm((3, 4, 7), (4,), (4,), (4,), (4,), momentum=0.3),  # BatchNorm1d on (N, C, L)
    batch_norm((1, 2, 3, 3), (2,), (2,), (2,), (2,)),  # batch 1: the positions give the statistics
    batch_norm((1, 1, 4), (1,), (1,), (1,), (1,)),  # batch 1, one channel
    batch_norm((1, 4), (4,), (4,), (4,), (4,), training=False),  # batch 1 on (N, C): eval only
    batch_norm((5, 2, 3, 3), (2,), (2,)),  # no affine
    batch_norm((2, 1, 2, 2), (1,), (1,), training=False),  # no affine, eval, one channel
    # smooth activations; softmax and log-softmax along per-sample axis dim (torch's dim + 1)
    gelu((2, 3, 4, 5)),
    gelu((2, 3, 4, 5), approximate="tanh"),
    gelu((1, 1), approximate="tanh"),
    silu((2, 3, 4, 4)),
    silu((5,), draw=(huge,), tag="huge"),
    softmax((4, 5)),
    softmax((2, 3, 4, 5), dim=1),
    softmax((2, 3, 4, 5), dim=2),
    softmax((1, 1)),  # one class: the output is 1, the gradient 0
    softmax((3, 6), draw=(huge,), tag="huge"),
    log_softmax((4, 5)),
    log_softmax((2, 3, 4, 5)),
    log_softmax((2, 3, 4, 5), dim=2),
    log_softmax((1, 1)),
    log_softmax((3, 6), draw=(huge,), tag="huge"),
    # embedding: indices (N, L), weight (V, D); repeated indices accumulate, the padding row gets no gradient
    embedding((3, 5), (4, 6), draw=(indices_with(4, 2, 2, 2),), tag="repeated"),
    embedding((2, 7), (6, 3), padding_idx=1, draw=(indices_with(6, 1, 4, 1, 4),), tag="repeated"),
    embedding((1, 1), (1, 1), draw=(indices_with(1),)),  # one index, a table of one row
    embedding((1, 4), (3, 2), padding_idx=0, draw=(indices_with(3, 0, 0, 0, 0),), tag="all-padding"),
    embedding((4,), (5, 3), padding_idx=4, draw=(indices_with(5, 4, 1),)),  # one index per sample
    embedding((2, 3, 2), (7, 2), draw=(indices_with(7, 6, 6),), tag="repeated"),  # indices of any shape
    # dropout: x, mask (True where kept, P = 1 - p); the kept elements scaled by 1 / (1 - p)
    dropout((4, 5), (4, 5), p=0.5, draw=(normal, keep_mask(0.5))),
    dropout((2, 3, 4, 4), (2, 3, 4, 4), p=0.1, draw=(normal, keep_mask(0.1))),
    dropout((3, 6), (3, 6), p=0.0, draw=(normal, keep_mask(0.0))),  # p = 0: every element kept, the identity
    dropout((10, 20), (10, 20), p=0.99, draw=(normal, keep_mask(0.99))),  # nearly all dropped, the rest x 100
    dropout((3, 4), (3, 4), p=1.0, draw=(normal, keep_mask(1.0))),  # all dropped: zeros, as torch gives
    dropout((1, 1), (1, 1), p=0.5, draw=(normal, keep_mask(0.5))),
    dropout((3, 4), p=0.3),  # no mask: eval mode, the identity
    # the slides' operations: conv of a batch of one-channel images with one filter (1x1, rectangular, as large as
    # the image), sigmoid (huge inputs too), the fully connected layer in the slides' layout, the error
    slides_conv((4, 8, 8), (3, 3)),
    slides_conv((1, 5, 3), (3, 2)),
    slides_conv((2, 6, 7), (1, 1)),
    slides_conv((3, 4, 5), (4, 5)),
    slides_sigmoid((4, 6, 6)),
    slides_sigmoid((3, 7), draw=(huge,), tag="huge"),
    slides_linear((4, 36), (36, 1), (1,)),
    slides_linear((1, 4), (4, 3), (3,)),
    slides_error((4, 1), (4, 1), reduction="sum", draw=(probabilities, probabilities)),
    slides_error((3, 2), (3, 2), reduction="mean", draw=(probabilities, probabilities)),
    # losses: pred, target, both reductions
    *[
        case
        for reduction in ("mean", "sum")
        for case in [
            half_squared_error((4, 3), (4, 3), reduction=reduction),
            half_squared_error((2, 3, 4), (2, 3, 4), reduction=reduction),
            half_squared_error((1, 1), (1, 1), reduction=reduction),
            mse((4, 3), (4, 3), reduction=reduction),
            mse((2, 3, 4), (2, 3, 4), reduction=reduction),
            mse((1,), (1,), reduction=reduction),
            bce((4, 3), (4, 3), reduction=reduction),
            bce((5,), (5,), reduction=reduction),
            bce_with_logits((4, 3), (4, 3), reduction=reduction),
            bce_with_logits((6, 5), (6, 5), reduction=reduction, draw=(huge, probabilities), tag="huge"),
            cross_entropy((4, 5), (4,), reduction=reduction, draw=(normal, labels_below(5))),
            cross_entropy((1, 1), (1,), reduction=reduction, draw=(normal, labels_below(1))),
            cross_entropy((8, 10), (8,), reduction=reduction, draw=(huge, labels_below(10)), tag="huge"),
            # nll on log-probabilities, the mean over the labels kept: ignored labels (torch's -100, or a class)
            nll((5, 4), (5,), reduction=reduction, draw=(log_probabilities, indices_with(4, -100, 3, -100))),
            nll((6, 3), (6,), reduction=reduction, ignore_index=1, draw=(log_probabilities, indices_with(3, 1, 0))),
            nll((1, 1), (1,), reduction=reduction, draw=(log_probabilities, labels_below(1))),
        ]
    ],
    nll((5, 4), (5,), reduction="none", draw=(log_probabilities, indices_with(4, -100, 3, -100))),  # per sample
    nll((3, 2), (3,), reduction="none", ignore_index=0, draw=(log_probabilities, indices_with(2, 0))),
]

# --- sequences (issue 10): linear on the last axis, sequence_pool, the classification losses over every step ------


def torch_over_steps(loss):
    """torch's cross_entropy or nll_loss on a sequence's (N, T, C), the classes moved to torch's axis 1: (N, C, T);
    (N, C) as it is."""
    return lambda pred, target, **options: loss(pred.movedim(-1, 1), target, **options)


def torch_sequence_pool(x, mode="last"):
    return x[:, -1] if mode == "last" else x.mean(1)


def log_probabilities_last(rng, shape):
    """Log-probabilities along the last axis: a log_softmax's output over a sequence's classes (N, T, C)."""
    x = rng.standard_normal(shape)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


sequence_pool = op("sequence_pool", M.sequence_pool_forward, M.sequence_pool_backward, torch_sequence_pool)
cross_entropy_steps = op("softmax_cross_entropy", M.softmax_cross_entropy_forward, M.softmax_cross_entropy_backward,
                         torch_over_steps(F.cross_entropy), **LOSS)
nll_steps = op("nll", M.nll_forward, M.nll_backward, torch_over_steps(F.nll_loss), **LOSS)

LAYER_CASES += [
    # linear on (N, T, in): every step through the same weights, torch's nn.Linear on the last axis
    linear((2, 5, 3), (4, 3), (4,)),
    linear((1, 1, 1), (1, 1)),  # T = 1, batch 1, no bias
    linear((3, 50, 2), (3, 2), (3,)),  # a long sequence
    linear((2, 3, 4, 5), (2, 5), (2,)),  # any rank: the last axis
    # sequence_pool: (N, T, F) -> (N, F), the last step or the mean over the steps
    sequence_pool((2, 5, 3)),
    sequence_pool((2, 5, 3), mode="mean"),
    sequence_pool((1, 1, 4), mode="last"),  # T = 1: the identity on its one step
    sequence_pool((1, 1, 4), mode="mean"),
    sequence_pool((3, 60, 2), mode="mean"),  # a long sequence
    *[
        case
        for reduction in ("mean", "sum")
        for case in [
            # a label per step (N, T), the mean over the labels kept: torch's -100 ignored by default, or a class
            cross_entropy_steps((3, 4, 5), (3, 4), reduction=reduction, draw=(normal, indices_with(5, -100, 2, -100)),
                                tag="ignored"),
            cross_entropy_steps((2, 3, 4), (2, 3), reduction=reduction, ignore_index=1,
                                draw=(normal, indices_with(4, 1, 0, 1))),
            cross_entropy_steps((1, 1, 1), (1, 1), reduction=reduction, draw=(normal, labels_below(1))),  # T = 1
            cross_entropy_steps((2, 50, 3), (2, 50), reduction=reduction, draw=(normal, indices_with(3, -100)),
                                tag="long"),
            cross_entropy_steps((2, 3, 6), (2, 3), reduction=reduction, draw=(huge, labels_below(6)), tag="huge"),
            cross_entropy((5, 4), (5,), reduction=reduction, draw=(normal, indices_with(4, -100, 3, -100)),
                          tag="ignored"),  # flat logits, ignored labels
            nll_steps((3, 4, 5), (3, 4), reduction=reduction,
                      draw=(log_probabilities_last, indices_with(5, -100, 2, -100)), tag="ignored"),
            nll_steps((2, 3, 4), (2, 3), reduction=reduction, ignore_index=3,
                      draw=(log_probabilities_last, indices_with(4, 3, 0))),
        ]
    ],
    nll_steps((2, 3, 4), (2, 3), reduction="none", draw=(log_probabilities_last, indices_with(4, -100, 1))),
]

# --- recurrent layers (issue 10): torch.nn.RNN / LSTM / GRU and their cells, weights loaded by functional_call ---


def torch_init(hidden_size):
    """torch's law for a recurrent layer's parameters, U(-1/sqrt(H), 1/sqrt(H)): a long sequence stays finite."""
    def draw(rng, shape):
        bound = 1 / np.sqrt(hidden_size)
        return rng.uniform(-bound, bound, shape)

    return draw


WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def torch_sequence(module, final=False):
    """torch.nn.RNN, LSTM or GRU on the harness's tensors: the module built for the weights' shapes, its
    parameters replaced by the inputs (torch.func.functional_call), so autograd reaches them -> the output, or with
    `final` the final states: h_n, or h_n and c_n stacked (2, L, N, H) for the LSTM."""
    states = 2 if module is torch.nn.LSTM else 1

    def forward(x, *tensors, bias=True, batch_first=False, **options):
        given, weights = tensors[:states], tensors[states:]
        per = 4 if bias else 2
        layers = len(weights) // per
        layer = module(weights[0].shape[1], weights[1].shape[1], layers, bias=bias, batch_first=batch_first,
                       **options).to(x.dtype)
        names = [f"{name}_l{l}" for l in range(layers) for name in WEIGHT_NAMES[:per]]
        out, last = torch.func.functional_call(layer, dict(zip(names, weights, strict=True)),
                                               (x, given if states == 2 else given[0]))
        if not final:
            return out
        return torch.stack(last) if states == 2 else last

    return forward


def torch_cell(module):
    """torch.nn.RNNCell, LSTMCell or GRUCell with the inputs as its parameters -> h', or (h', c') stacked."""
    states = 2 if module is torch.nn.LSTMCell else 1

    def forward(x, *tensors, **options):
        given, weights = tensors[:states], tensors[states:]
        cell = module(weights[0].shape[1], weights[1].shape[1], bias=len(weights) == 4, **options).to(x.dtype)
        out = torch.func.functional_call(cell, dict(zip(WEIGHT_NAMES, weights, strict=False)),
                                         (x, given if states == 2 else given[0]))
        return torch.stack(out) if states == 2 else out

    return forward


def final_states(forward, backward, cell_state=False):
    """A sequence layer seen through its final states: out h_n (L, N, H), or h_n and c_n stacked (2, L, N, H);
    the backward gets their gradients as dh_n (and dc_n) and a zero dout."""
    def final_forward(*inputs, **options):
        out, cache = forward(*inputs, **options)
        return (np.stack([cache.h_n, cache.c_n]) if cell_state else cache.h_n), (out, cache)

    def final_backward(dfinal, both):
        out, cache = both
        dstates = {"dh_n": dfinal[0], "dc_n": dfinal[1]} if cell_state else {"dh_n": dfinal}
        return backward(np.zeros_like(out), cache, **dstates)

    return final_forward, final_backward


def recurrent_shapes(gates, T, N, F, H, num_layers=1, bias=True, batch_first=False, cell_state=False):
    """The inputs of a sequence layer: x, h0 (and c0), then torch's flat weight list, layer after layer."""
    weights = []
    for l in range(num_layers):
        weights += [(gates * H, F if l == 0 else H), (gates * H, H)] + ([(gates * H,)] * 2 if bias else [])
    return ((N, T, F) if batch_first else (T, N, F), *[(num_layers, N, H)] * (1 + cell_state), *weights)


rnn = op("rnn", R.rnn_forward, R.rnn_backward, torch_sequence(torch.nn.RNN))
lstm = op("lstm", R.lstm_forward, R.lstm_backward, torch_sequence(torch.nn.LSTM))
gru = op("gru", R.gru_forward, R.gru_backward, torch_sequence(torch.nn.GRU))
rnn_final = op("rnn_final", *final_states(R.rnn_forward, R.rnn_backward), torch_sequence(torch.nn.RNN, final=True))
lstm_final = op("lstm_final", *final_states(R.lstm_forward, R.lstm_backward, cell_state=True),
                torch_sequence(torch.nn.LSTM, final=True))
gru_final = op("gru_final", *final_states(R.gru_forward, R.gru_backward), torch_sequence(torch.nn.GRU, final=True))
rnn_cell = op("rnn_cell", R.rnn_cell_forward, R.rnn_cell_backward, torch_cell(torch.nn.RNNCell))
lstm_cell = op("lstm_cell", R.lstm_cell_forward, R.lstm_cell_backward, torch_cell(torch.nn.LSTMCell))
gru_cell = op("gru_cell", R.gru_cell_forward, R.gru_cell_backward, torch_cell(torch.nn.GRUCell))
SEQUENCE_OPS = {"rnn": (rnn, rnn_final, 1, False), "lstm": (lstm, lstm_final, 4, True),
                "gru": (gru, gru_final, 3, False)}


def sequence_case(name, T, N, F, H, num_layers=1, final=False, init=False, **options):
    """One registry row of a sequence layer; init: its weights drawn by torch's law (a long sequence)."""
    layer, layer_final, gates, cell_state = SEQUENCE_OPS[name]
    shapes = recurrent_shapes(gates, T, N, F, H, num_layers, options.get("bias", True),
                              options.get("batch_first", False), cell_state)
    draw = (normal,) * (2 + cell_state) + (torch_init(H),) * (len(shapes) - 2 - cell_state) if init else ()
    return (layer_final if final else layer)(*shapes, draw=draw, tag="init" if init else "", **options)


RECURRENT_CASES = [
    # sequence layers: x (T, N, F) or (N, T, F), h0 (and c0) (L, N, H), then per layer w_ih, w_hh[, b_ih, b_hh]
    *[
        case
        for name in ("rnn", "lstm", "gru")
        for case in [
            sequence_case(name, 1, 1, 2, 3, bias=True, batch_first=False),  # one step, batch 1
            sequence_case(name, 1, 3, 3, 2, num_layers=2, bias=False, batch_first=True),
            sequence_case(name, 4, 3, 2, 3, num_layers=2, bias=True, batch_first=True),
            sequence_case(name, 5, 2, 3, 2, bias=False, batch_first=False),
            sequence_case(name, 50, 1, 2, 3, num_layers=2, bias=True, batch_first=False, init=True),  # long
            sequence_case(name, 60, 2, 2, 2, bias=False, batch_first=True, init=True),
            # the final states: h_n (and c_n), their gradients dh_n (and dc_n) through every step
            sequence_case(name, 4, 3, 2, 3, num_layers=2, final=True, bias=True, batch_first=False),
            sequence_case(name, 50, 1, 2, 2, final=True, bias=False, batch_first=True, init=True),
        ]
    ],
    sequence_case("rnn", 4, 3, 2, 3, num_layers=2, nonlinearity="relu", bias=True, batch_first=False),
    sequence_case("rnn", 1, 1, 2, 2, nonlinearity="relu", bias=False, batch_first=True),
    sequence_case("rnn", 50, 3, 1, 3, nonlinearity="relu", bias=True, batch_first=True, init=True),
    sequence_case("rnn", 50, 1, 2, 3, num_layers=2, final=True, nonlinearity="relu", bias=True, batch_first=False,
                  init=True),
    # cells: x (N, F), h (and c) (N, H), w_ih (G*H, F), w_hh (G*H, H)[, b_ih, b_hh (G*H,)]
    rnn_cell((3, 2), (3, 4), (4, 2), (4, 4), (4,), (4,)),
    rnn_cell((1, 3), (1, 2), (2, 3), (2, 2), nonlinearity="relu"),  # batch 1, no bias
    rnn_cell((4, 2), (4, 3), (3, 2), (3, 3), (3,), (3,), nonlinearity="relu"),
    lstm_cell((3, 2), (3, 4), (3, 4), (16, 2), (16, 4), (16,), (16,)),
    lstm_cell((1, 3), (1, 2), (1, 2), (8, 3), (8, 2)),  # batch 1, no bias
    gru_cell((3, 2), (3, 4), (12, 2), (12, 4), (12,), (12,)),
    gru_cell((1, 3), (1, 2), (6, 3), (6, 2)),  # batch 1, no bias
]
LAYER_CASES += RECURRENT_CASES

# --- attention (issue 10): manual/attention.py, torch's layouts, E = 4 or 6 features, 1 to 3 heads ---------------
# Masks are data (no gradient) in torch.nn.MultiheadAttention's convention, True = masked out;
# F.scaled_dot_product_attention reads a bool mask the other way round (True = takes part): torch_sdpa negates.


def key_padding(rng, shape):
    """(N, S) True at the padded tail of each sample: lengths drawn in [S/2, S], the first sample's 2 short
    (when S > 2), so padding is surely there; never a sample of padding alone."""
    N, S = shape
    lengths = rng.integers(max(1, S // 2), S + 1, N)
    lengths[0] = max(1, S - 2)
    return np.arange(S)[None, :] >= lengths[:, None]


def attention_pairs(rng, shape):
    """(T, S) True for about a third of the (query, key) pairs, key 0 always allowed (key_padding never pads it)."""
    mask = rng.random(shape) < 1 / 3
    mask[:, 0] = False
    return mask


def _merged_mask(q, S, key_padding_mask, attn_mask, causal):
    """True where query t of sample n may not attend to key s: (N, T, S), or (N, 1, T, S) for heads."""
    T = q.shape[-2]
    masked = torch.zeros((q.shape[0], T, S), dtype=torch.bool)
    if key_padding_mask is not None:
        masked = masked | key_padding_mask[:, None, :]
    if attn_mask is not None:
        masked = masked | attn_mask
    if causal:
        masked = masked | torch.ones((T, S), dtype=torch.bool).triu(1)
    return masked[:, None] if q.dim() == 4 else masked


def torch_sdpa(q, k, v, key_padding_mask=None, attn_mask=None, is_causal=False):
    """F.scaled_dot_product_attention: is_causal alone as torch's own flag, else the masks merged and negated into
    its bool attn_mask (True = takes part)."""
    if key_padding_mask is None and attn_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    allowed = ~_merged_mask(q, k.shape[-2], key_padding_mask, attn_mask, is_causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def torch_mha(x, in_proj_weight, out_proj_weight, in_proj_bias=None, out_proj_bias=None, key_padding_mask=None,
              num_heads=1, causal=False):
    """F.multi_head_attention_forward, the function nn.MultiheadAttention runs, on x (N, T, E) as (T, N, E):
    self-attention, torch's causal attn_mask (upper triangle True) with its is_causal hint."""
    T, E = x.shape[1:]
    seq = x.transpose(0, 1)
    mask = torch.ones((T, T), dtype=torch.bool).triu(1) if causal else None
    out, _ = F.multi_head_attention_forward(
        seq, seq, seq, E, num_heads, in_proj_weight, in_proj_bias, None, None, False, 0.0, out_proj_weight,
        out_proj_bias, training=True, key_padding_mask=key_padding_mask, need_weights=False, attn_mask=mask,
        is_causal=causal)
    return out.transpose(0, 1)


ENCODER_PARAMETERS = ("self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                      "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                      "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")


def torch_encoder_layer(x, *tensors, num_heads, activation="gelu", layer_norm_eps=1e-5, causal=False):
    """nn.TransformerEncoderLayer(E, num_heads, F, dropout=0, batch_first=True, norm_first=True) run on the given
    tensors as its state_dict (torch.func.functional_call), the key padding mask after them if given."""
    T, E = x.shape[1:]
    layer = torch.nn.TransformerEncoderLayer(E, num_heads, tensors[4].shape[0], dropout=0.0, activation=activation,
                                             layer_norm_eps=layer_norm_eps, batch_first=True, norm_first=True,
                                             dtype=x.dtype)
    padding = tensors[12] if len(tensors) > 12 else None
    mask = torch.ones((T, T), dtype=torch.bool).triu(1) if causal else None
    return torch.func.functional_call(layer, dict(zip(ENCODER_PARAMETERS, tensors[:12], strict=True)), (x,),
                                      {"src_mask": mask, "src_key_padding_mask": padding, "is_causal": causal})


# q, k, v[, key_padding_mask[, attn_mask]]
sdpa = op("sdpa", A.scaled_dot_product_attention_forward, A.scaled_dot_product_attention_backward, torch_sdpa,
          differentiable=(True, True, True, False, False), draw=(normal, normal, normal, key_padding, attention_pairs))
# x, in_proj_weight, out_proj_weight[, in_proj_bias, out_proj_bias[, key_padding_mask]]
mha = op("multihead_attention", A.multihead_attention_forward, A.multihead_attention_backward, torch_mha,
         differentiable=(True,) * 5 + (False,), draw=(normal,) * 5 + (key_padding,))
# x, the 12 parameters in TransformerEncoderLayer's state_dict order[, key_padding_mask]
encoder_layer = op("transformer_encoder_layer", A.transformer_encoder_layer_forward,
                   A.transformer_encoder_layer_backward, torch_encoder_layer, differentiable=(True,) * 13 + (False,),
                   draw=(normal,) * 13 + (key_padding,))


def encoder_shapes(N, T, E=4, F=8):
    """x and the 12 parameters of an encoder layer of E features and dim_feedforward F."""
    return ((N, T, E), (3 * E, E), (3 * E,), (E, E), (E,), (F, E), (F,), (E, F), (E,), (E,), (E,), (E,), (E,))


LAYER_CASES += [
    sdpa((2, 2, 5, 3), (2, 2, 7, 3), (2, 2, 7, 4)),  # S != T, dv != d, no mask
    sdpa((1, 1, 1, 2), (1, 1, 1, 2), (1, 1, 1, 2)),  # one query, one key: P = 1
    sdpa((3, 4, 3), (3, 4, 3), (3, 4, 3), is_causal=True),  # no head axis
    sdpa((2, 2, 6, 3), (2, 2, 6, 3), (2, 2, 6, 3), is_causal=True),
    sdpa((2, 2, 5, 3), (2, 2, 7, 3), (2, 2, 7, 3), (2, 7)),  # key padding
    sdpa((3, 2, 6, 2), (3, 2, 6, 2), (3, 2, 6, 2), (3, 6), is_causal=True),  # key padding and causal
    sdpa((2, 5, 3), (2, 6, 3), (2, 6, 3), (2, 6), (5, 6)),  # key padding and an attn_mask of pairs
    sdpa((1, 2, 50, 2), (1, 2, 50, 2), (1, 2, 50, 2), (1, 50), is_causal=True),  # long: T = 50
    mha((2, 5, 4), (12, 4), (4, 4), (12,), (4,), num_heads=1),
    mha((2, 5, 4), (12, 4), (4, 4), (12,), (4,), num_heads=2),
    mha((3, 4, 6), (18, 6), (6, 6), num_heads=3),  # no bias
    mha((1, 1, 4), (12, 4), (4, 4), (12,), (4,), num_heads=2),  # batch 1, one step
    mha((2, 6, 4), (12, 4), (4, 4), (12,), (4,), num_heads=2, causal=True),
    mha((3, 5, 4), (12, 4), (4, 4), (12,), (4,), (3, 5), num_heads=2),  # key padding
    mha((2, 6, 4), (12, 4), (4, 4), (12,), (4,), (2, 6), num_heads=2, causal=True),
    mha((3, 50, 4), (12, 4), (4, 4), (12,), (4,), (3, 50), num_heads=2, causal=True),  # long: T = 50
    encoder_layer(*encoder_shapes(2, 5), num_heads=2),
    encoder_layer(*encoder_shapes(2, 5), num_heads=1, activation="relu", layer_norm_eps=1e-3),
    encoder_layer(*encoder_shapes(1, 1), num_heads=2),  # batch 1, one step
    encoder_layer(*encoder_shapes(3, 6, F=5), (3, 6), num_heads=2, causal=True),  # key padding and causal
    encoder_layer(*encoder_shapes(3, 50), (3, 50), num_heads=2, causal=True),  # long: T = 50
]
