"""A network description (netdesc.description) as torch modules; every derivative comes from autograd.

``Graph`` is an nn.ModuleList of the layers' modules that runs them in layer order, each on the outputs of the
layers it reads (``layer.inputs``, -1 the network's input): add is torch.add, concat torch.cat. Its parameters
are named "<layer index>.weight" / "<layer index>.bias" (a recurrent layer's "<layer index>.weight_ih_l0", ...:
torch's nn.RNN, LSTM and GRU with batch_first, returning their output sequence alone) in torch's layouts, the names
and shapes of manual.network (and of an nn.Sequential), so the manual parameters are copied in with ``load_state_dict``.
Gradients come from ``torch.autograd.grad`` of the loss, updates from the functional form of the described
torch.optim optimizer (reference.optim), its learning rate set by torch's scheduler if one is described. Nothing
here is differentiated by hand.
"""

import functools
import itertools

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from netdesc.description import INDEXED
from netdesc.inputs import seeded_masks
from reference import optim

MODULES = {
    "conv2d": lambda layer, o: nn.Conv2d(
        layer.in_shape[0], o["out_channels"], o["kernel_size"], o["stride"], o["padding"], o["dilation"],
        groups=o["groups"], bias=o["bias"],
    ),
    "conv_transpose2d": lambda layer, o: nn.ConvTranspose2d(
        layer.in_shape[0], o["out_channels"], o["kernel_size"], o["stride"], o["padding"], o["output_padding"],
        bias=o["bias"], dilation=o["dilation"],
    ),
    "max_pool2d": lambda layer, o: nn.MaxPool2d(o["kernel_size"], o["stride"], o["padding"]),
    "avg_pool2d": lambda layer, o: nn.AvgPool2d(o["kernel_size"], o["stride"], o["padding"]),
    "adaptive_avg_pool2d": lambda layer, o: nn.AdaptiveAvgPool2d(o["output_size"]),
    "linear": lambda layer, o: nn.Linear(layer.in_shape[-1], o["out_features"], bias=o["bias"]),
    "flatten": lambda layer, o: nn.Flatten(),
    "relu": lambda layer, o: nn.ReLU(),
    "tanh": lambda layer, o: nn.Tanh(),
    "sigmoid": lambda layer, o: nn.Sigmoid(),
    "leaky_relu": lambda layer, o: nn.LeakyReLU(o["negative_slope"]),
    "layer_norm": lambda layer, o: nn.LayerNorm(o["normalized_shape"], o["eps"], o["elementwise_affine"]),
    "group_norm": lambda layer, o: nn.GroupNorm(o["num_groups"], layer.in_shape[0], o["eps"], o["affine"]),
    # training mode (a module's default): the batch's statistics, the running ones kept in its buffers
    "batch_norm1d": lambda layer, o: nn.BatchNorm1d(layer.in_shape[0], o["eps"], o["momentum"], o["affine"]),
    "batch_norm2d": lambda layer, o: nn.BatchNorm2d(layer.in_shape[0], o["eps"], o["momentum"], o["affine"]),
    "gelu": lambda layer, o: nn.GELU(o["approximate"]),
    "silu": lambda layer, o: nn.SiLU(),
    "softmax": lambda layer, o: nn.Softmax(o["dim"] + 1),
    "log_softmax": lambda layer, o: nn.LogSoftmax(o["dim"] + 1),
    "embedding": lambda layer, o: nn.Embedding(o["num_embeddings"], o["embedding_dim"], o["padding_idx"]),
    "dropout": lambda layer, o: Dropout(o["p"]),
    "sequence_pool": lambda layer, o: SequencePool(o["mode"]),
    "rnn": lambda layer, o: RNN(layer.in_shape[1], o["hidden_size"], o["num_layers"], o["nonlinearity"],
                                bias=o["bias"], batch_first=True),
    "lstm": lambda layer, o: LSTM(layer.in_shape[1], o["hidden_size"], o["num_layers"], bias=o["bias"],
                                  batch_first=True),
    "gru": lambda layer, o: GRU(layer.in_shape[1], o["hidden_size"], o["num_layers"], bias=o["bias"],
                                batch_first=True),
    "add": lambda layer, o: Add(),
    "concat": lambda layer, o: Concat(o["dim"]),
    "multihead_attention": lambda layer, o: SelfAttention(layer.in_shape[1], o["num_heads"], o["bias"], o["causal"]),
    "transformer_encoder": lambda layer, o: EncoderLayer(
        layer.in_shape[1], o["num_heads"], o["dim_feedforward"], o["activation"], o["layer_norm_eps"], o["causal"]),
}


def _causal_mask(x):
    """torch's causal attn_mask for x (N, T, E): True above the diagonal, where query t may not attend to key s > t."""
    T = x.shape[1]
    return torch.ones((T, T), dtype=torch.bool, device=x.device).triu(1)


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention(E, num_heads, bias=bias, batch_first=True) as self-attention returning its output alone:
    module(x, x, x, need_weights=False), with torch's causal mask and is_causal when causal. A subclass, so its
    parameters keep torch's names (in_proj_weight, out_proj.weight, ...)."""

    def __init__(self, E, num_heads, bias, causal):
        super().__init__(E, num_heads, bias=bias, batch_first=True)
        self.causal = causal

    def forward(self, x):
        mask = _causal_mask(x) if self.causal else None
        return super().forward(x, x, x, need_weights=False, attn_mask=mask, is_causal=self.causal)[0]


class EncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer(E, num_heads, dim_feedforward, dropout=0, activation, layer_norm_eps,
    batch_first=True, norm_first=True), with torch's causal mask and is_causal when causal; its parameters keep
    torch's state_dict names (self_attn.in_proj_weight, linear1.weight, norm1.weight, ...)."""

    def __init__(self, E, num_heads, dim_feedforward, activation, layer_norm_eps, causal):
        super().__init__(E, num_heads, dim_feedforward, dropout=0.0, activation=activation,
                         layer_norm_eps=layer_norm_eps, batch_first=True, norm_first=True)
        self.causal = causal

    def forward(self, x):
        mask = _causal_mask(x) if self.causal else None
        return super().forward(x, src_mask=mask, is_causal=self.causal)


class Add(nn.Module):
    """xs[0] + xs[1] + ..., left to right."""

    def forward(self, *xs):
        return functools.reduce(torch.add, xs)


class Concat(nn.Module):
    """torch.cat along per-sample axis `dim` (torch's dim + 1)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, self.dim + 1)


class RNN(nn.RNN):
    """torch.nn.RNN returning its output sequence alone (not h_n): its parameters keep torch's names."""

    def forward(self, x):
        return super().forward(x)[0]


class LSTM(nn.LSTM):
    """torch.nn.LSTM returning its output sequence alone (not (h_n, c_n))."""

    def forward(self, x):
        return super().forward(x)[0]


class GRU(nn.GRU):
    """torch.nn.GRU returning its output sequence alone (not h_n)."""

    def forward(self, x):
        return super().forward(x)[0]


class Dropout(nn.Module):
    """Training-mode dropout with the harness's mask, as torch defines it: x * (mask / (1 - p)), zeros at p = 1.
    torch's own draw cannot be shared with NumPy, so the mask is given; tests/test_dropout.py pins that
    F.dropout is exactly this for the mask it draws. No mask: eval mode, the identity."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x, mask=None):
        if mask is None:
            return x
        return x * 0 if self.p == 1 else x * (mask.to(x.dtype) / (1 - self.p))


class SequencePool(nn.Module):
    """A sequence (N, T, F) to (N, F): its last step x[:, -1] ("last") or the mean over the steps x.mean(1)."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        return x[:, -1] if self.mode == "last" else x.mean(1)


class Graph(nn.ModuleList):
    """The description's layers as modules (parameters "<index>.weight"), run as its graph."""

    def __init__(self, spec):
        super().__init__(MODULES[layer.type](layer, layer.options) for layer in spec.layers)
        self.spec = spec

    def forward(self, x, inputs=None, masks=None, values=None):
        """-> every layer's output, in order. Given a list `inputs`, each layer reads its own alias (a view) of
        each tensor it reads, appended there per layer: autograd's gradient for an alias is that layer's share
        alone, where the tensor itself gets the sum over all the layers that read it. ``masks``: {dropout layer
        index: its mask of this step} (netdesc.inputs.dropout_masks); a dropout without one is the identity.
        ``values``: per layer, the value its output takes instead of torch's own (another run's forward, equal but
        for rounding), its gradient passed through unchanged: autograd's derivatives are then taken at those values,
        every max and ReLU deciding as that run decided."""
        outputs, masks = [], masks or {}
        for layer, module in zip(self.spec.layers, self, strict=True):
            sources = [x if j < 0 else outputs[j] for j in layer.inputs]
            if inputs is not None:
                sources = [t.view_as(t) for t in sources]
                inputs.append(sources)
            mask = [torch.from_numpy(masks[layer.index])] if layer.index in masks else []
            out = module(*sources, *mask)
            if values is not None:
                out = out + (torch.from_numpy(np.asarray(values[layer.index])) - out).detach()
            outputs.append(out)
        return outputs


def _half_squared_error(pred, target, reduction):
    """The slides' E = sum (target - pred)^2 / 2 (torch has no such loss); "mean" divides by the batch size."""
    E = ((target - pred) ** 2).sum() / 2
    return E / pred.shape[0] if reduction == "mean" else E


def _classes_second(loss):
    """torch's cross_entropy or nll_loss on a sequence's output (N, T, C): the classes moved to axis 1, torch's
    (N, C, T), so that every step is a row; (N, C) stays as it is."""
    return lambda pred, target, **options: loss(pred.movedim(-1, 1), target, **options)


LOSSES = {
    "softmax_cross_entropy": _classes_second(functional.cross_entropy),
    "mse": functional.mse_loss,
    "half_squared_error": _half_squared_error,
    "binary_cross_entropy": functional.binary_cross_entropy,
    "binary_cross_entropy_with_logits": functional.binary_cross_entropy_with_logits,
    "nll": _classes_second(functional.nll_loss),
}


BUFFERS = ("running_mean", "running_var")  # a batch norm's running statistics, compared after every step


def build(spec, params, dtype=None):
    """The Graph of the description holding copies of the manual parameters, in their dtype (`dtype`, default the
    parameters' or float64, for the batch norms' own running statistics, which start at torch's 0 and 1)."""
    net = Graph(spec)
    dtype = getattr(torch, np.dtype(dtype or next((p.dtype for p in params.values()), np.float64)).name)
    own = {name: b.to(dtype) if name.endswith(BUFFERS) else b for name, b in net.named_buffers()}
    # assign=True keeps the copies' dtype (a plain load would cast them to the modules' float32).
    net.load_state_dict(own | {name: torch.from_numpy(np.array(p)) for name, p in params.items()}, strict=True,
                        assign=True)
    return net


def _buffers(net):
    return {name: b.detach().numpy().copy() for name, b in net.named_buffers() if name.endswith(BUFFERS)}


def initial_buffers(spec, params):
    """The batch norms' running statistics before the first step, as torch's modules start them."""
    return _buffers(build(spec, params))


def loss(spec, pred, target):
    """The description's loss of pred against target (torch tensors), as torch defines it."""
    options = {} if spec.loss.ignore_index is None else {"ignore_index": spec.loss.ignore_index}
    return LOSSES[spec.loss.type](pred, target, reduction=spec.loss.reduction, **options)


def _tensors(spec, params, x, target):
    dtype = None if spec.indexed else x.dtype  # integer indices: the parameters' dtype
    return build(spec, params, dtype), torch.from_numpy(x), torch.from_numpy(target)


def run(spec, params, x, target, masks=None, values=None):
    """Forward and backward by autograd -> manual.network.Backprop's fields as a dict of NumPy values, plus
    "output_grads": dE/d(output of layer i), summed over the layers that read it. input_grads[i] is layer i's
    share of dE/d(its input), a tuple of one per input for a merge layer, None for an embedding's integer indices
    (no gradient); ``masks`` and ``values`` as in Graph.forward. The inputs are not checked here:
    netdesc.inputs.check_inputs checks them once, where they enter (crosscheck's subjects, manual.network.train)."""
    net, x, target = _tensors(spec, params, x, target)
    inputs = []
    outputs = net(x if spec.indexed else x.requires_grad_(), inputs, masks, values)
    E = loss(spec, outputs[-1], target)
    names = [name for name, _ in net.named_parameters()]
    flat = [t for layer, sources in zip(spec.layers, inputs, strict=True) if layer.type not in INDEXED
            for t in sources]
    grads = torch.autograd.grad(E, [*flat, *outputs, *net.parameters()])
    numpy = lambda t: t.detach().numpy()  # noqa: E731
    input_grads, at = [], 0
    for layer in spec.layers:
        if layer.type in INDEXED:
            input_grads.append(None)
            continue
        mine = tuple(numpy(g) for g in grads[at:at + len(layer.inputs)])
        input_grads.append(mine if layer.merge else mine[0])
        at += len(layer.inputs)
    output_grads = [numpy(g) for g in grads[len(flat):len(flat) + len(outputs)]]
    return {
        "outputs": [numpy(t) for t in outputs],
        "loss": numpy(E),
        "loss_grad": output_grads[-1],
        "input_grads": input_grads,
        "output_grads": output_grads,
        "param_grads": {name: numpy(g) for name, g in zip(names, grads[len(flat) + len(outputs):], strict=True)},
    }


def train(spec, params, x, target, steps=None, masks=None):
    """`steps` (default: the description's) steps of its torch.optim optimizer on one batch -> (E before each step,
    final params and the batch norms' running statistics (torch's buffers "<i>.running_mean", "<i>.running_var")
    as NumPy arrays named as manual.network's); ``masks(step, N)`` the dropout masks of each step (default:
    netdesc.inputs.seeded_masks from seed 0, as manual.network.train's). The inputs are not checked here, as in
    run."""
    kept = {}
    batches = itertools.repeat((x, target), spec.optimizer.steps if steps is None else steps)
    done = list(training(spec, params, batches, kept, masks))
    return np.stack([E for E, _, _ in done]), done[-1][2] | kept


def training(spec, params, batches, buffers=None, masks=None):
    """One step of the described torch.optim optimizer per (x, target) of `batches`, one optimizer (its state)
    throughout, and after each its scheduler's step (torch's order) -> yields (E before the step, the parameter
    gradients, the params after it) as NumPy arrays named as manual.network's; a dict `buffers` is kept holding the
    modules' running statistics after each step, which start from what it holds (empty: torch's 0 and 1);
    masks(step, N) -> the dropout masks of step t (train's default)."""
    buffers = {} if buffers is None else buffers
    net = build(spec, params | {name: np.asarray(b) for name, b in buffers.items()})
    o = spec.optimizer
    optimizer = optim.OPTIMIZERS[o.type](net.parameters(), **o.settings())
    scheduler = None if o.scheduler is None else optim.scheduler(optimizer, o.scheduler.type, o.scheduler.options)
    names = [name for name, _ in net.named_parameters()]
    numpy = lambda ts: {name: t.detach().numpy().copy() for name, t in zip(names, ts, strict=True)}  # noqa: E731
    masks = masks or seeded_masks(spec)
    for step, (x, target) in enumerate(batches):
        E = loss(spec, net(torch.from_numpy(x), masks=masks(step, len(x)))[-1], torch.from_numpy(target))
        buffers.update(_buffers(net))
        grads = torch.autograd.grad(E, optimizer.params)
        optimizer.step(grads)
        if scheduler is not None:
            scheduler.step()
        yield E.detach().numpy(), numpy(grads), numpy(optimizer.params)


def lockstep(spec, run, x, target, masks):
    """Autograd beside another run of the description on one batch, step by step. `run` holds, per step, the
    params and running statistics before it and the gradients it stepped with; masks(step, N) its dropout masks
    -> yields per step (E, autograd's gradients at those params, the running statistics after their forward, the
    params of torch's optimizer after a step with the run's gradients: one optimizer and scheduler throughout,
    from the run's first params)."""
    net = build(spec, run[0][0])
    o = spec.optimizer
    optimizer = optim.OPTIMIZERS[o.type](net.parameters(), **o.settings())
    scheduler = None if o.scheduler is None else optim.scheduler(optimizer, o.scheduler.type, o.scheduler.options)
    names = [name for name, _ in net.named_parameters()]
    numpy = lambda ts: {name: t.detach().numpy().copy() for name, t in zip(names, ts, strict=True)}  # noqa: E731
    for step, (params, buffers, grads) in enumerate(run):
        probe = build(spec, params | buffers)
        E = loss(spec, probe(torch.from_numpy(x), masks=masks(step, len(x)))[-1], torch.from_numpy(target))
        gradients = torch.autograd.grad(E, list(probe.parameters()))
        optimizer.step([torch.from_numpy(grads[name]) for name in names])
        if scheduler is not None:
            scheduler.step()
        yield E.detach().numpy(), numpy(gradients), _buffers(probe), numpy(optimizer.params)


def batch_norm_paths(x, gamma, beta, dout, eps=1e-5):
    """Batch norm's training-mode derivation by autograd, its intermediates built as separate torch ops (x (N, C, ...),
    gamma and beta (C,), dout the upstream gradient dE/dy, E = sum(dout * y)) -> NumPy values by name: the forward
    "mean", "var" (biased, over N and the positions, per channel), "x_hat", "y" (torch's own batch_norm); the
    gradients "dE/dgamma", "dE/dbeta", "dE/dx_hat", "dE/dx" (through torch's batch_norm) and dE/dx along each path
    alone, every other use of x detached: "direct" (x_hat's numerator), "through_mean" (the mean in x_hat's numerator),
    "through_var" (the variance, with the mean inside it)."""
    x, gamma, beta, dout = (torch.from_numpy(np.asarray(a)) for a in (x, gamma, beta, dout))
    axes, channels = (0, *range(2, x.dim())), (1, -1, *[1] * (x.dim() - 2))
    x = x.clone().requires_grad_()
    gamma, beta = gamma.clone().requires_grad_(), beta.clone().requires_grad_()

    def forward(numerator_x, mean_x, var_x):
        """x_hat from three copies of x: its numerator's, the mean's, the variance's."""
        mean = mean_x.mean(dim=axes, keepdim=True)
        var = ((var_x - var_x.mean(dim=axes, keepdim=True)) ** 2).mean(dim=axes, keepdim=True)
        return mean, var, (numerator_x - mean) / torch.sqrt(var + eps)

    mean, var, x_hat = forward(x, x, x)
    x_hat.retain_grad()
    y = gamma.reshape(channels) * x_hat + beta.reshape(channels)
    (y * dout).sum().backward()
    y_torch = functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    dx, = torch.autograd.grad((y_torch * dout).sum(), x)
    fixed = x.detach()
    paths = {}
    for name, copies in (("direct", (x, fixed, fixed)), ("through_mean", (fixed, x, fixed)),
                         ("through_var", (fixed, fixed, x))):
        paths[name], = torch.autograd.grad((forward(*copies)[2] * gamma.detach().reshape(channels) * dout).sum(), x)
    numpy = lambda t: t.detach().numpy()  # noqa: E731
    return {"mean": numpy(mean.reshape(-1)), "var": numpy(var.reshape(-1)), "x_hat": numpy(x_hat),
            "y": numpy(y_torch), "dE/dgamma": numpy(gamma.grad), "dE/dbeta": numpy(beta.grad),
            "dE/dx_hat": numpy(x_hat.grad), "dE/dx": numpy(dx)} | {k: numpy(v) for k, v in paths.items()}
