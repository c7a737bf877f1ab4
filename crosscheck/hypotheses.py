"""Hypotheses about a wrong quantity and the classification that tests them: a flipped sign, a transpose, a flipped
kernel, padding, a missing or misplaced activation derivative, a stride or dilation left out, a pool or loss
mistake, a kink convention, a constant factor (the batch size N: a wrong batch reduction), an update of the wrong
sign, a momentum mistake, an adaptive optimizer's (bias correction, eps, decoupled decay) or a scheduler's. Each is
a pair of arrays that agree if it holds, built from autograd's values (torch).
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch.nn import functional as TF

from crosscheck.compare import ManualFailure, compare
from crosscheck.tolerances import tolerance_for
from manual import optim
from manual.network import settings_at
from netdesc.description import DROPOUTS, NLL_IGNORE_INDEX, NORMALIZATIONS, RECURRENT
from reference import network as reference_net
from reference.recurrent import unrolled
from reference.seed_network import vjp

CLASSES = {
    "sign": "sign flipped",
    "transposed": "transposed",
    "kernel-flipped": "kernel flipped",
    "padding": "padding mishandled",
    "activation-missing": "activation derivative missing",
    "activation-wrong-point": "activation derivative taken at the wrong point",
    "activation-twice": "activation derivative applied twice",
    "stride": "stride ignored in the backward",
    "dilation": "dilation ignored",
    "window": "pool gradient sent to the whole window",
    "one-hot": "one-hot term left out",
    "kink": "a convention at a kink",
    "batch-reduction": "wrong batch reduction",
    "scaled": "scaled by a constant",
    "update-sign": "update applied with the wrong sign",
    "momentum": "momentum buffer mistake",
    "weight-decay": "weight decay mishandled",
    "bias-correction": "moments not bias-corrected",
    "epsilon": "epsilon misplaced",
    "schedule": "learning-rate schedule misaligned",
    "fan-out": "fan-out gradient not summed over its readers",
    "normalization-paths": "the paths through the mean and variance left out",
    "normalization-gamma": "gamma left out of the input gradient",
    "normalization-mean-path": "the path through the mean left out",
    "normalization-axes": "normalized over the wrong axes",
    "softmax-diagonal": "only the diagonal of softmax's Jacobian",
    "approximation": "the derivative of the other approximation",
    "biased-variance": "running variance updated with the biased batch variance",
    "overlap-assign": "overlapping windows' gradients assigned, not accumulated",
    "adaptive-windows": "adaptive pooling windows taken as if the size divided evenly",
    "groups-summed": "grouped conv's weight gradient summed over the groups",
    "assigned": "gradient assigned where repeated reads must accumulate",
    "padding-index": "the padding index's row given a gradient",
    "bptt-cell-future": "the cell state's gradient from the future left out",
    "bptt-truncated": "backpropagation through time cut after one step",
    "bptt-layers": "the gradient not carried down between stacked recurrent layers",
    "gate-order": "two gates' gradients swapped: the gate order mistaken in the backward",
    "mask-after-softmax": "attention's mask applied after the softmax",
    "attention-scale": "attention's 1/sqrt(d) scale left out of the backward",
    "heads-order": "attention's heads merged in the wrong order",
    "unclassified": "no hypothesis fits",
}


@dataclass(frozen=True)
class Hypothesis:
    """A class and the pairs (actual, expected) that agree if it holds: pairs(m, a) -> iterable, float64 arrays."""

    kind: str
    detail: str
    pairs: Callable


@dataclass(frozen=True)
class Classification:
    kind: str  # a key of CLASSES
    detail: str
    constant: float | None = None  # c of manual = c * autograd



# --- hypotheses ----------------------------------------------------------------------------------------

def as_tensor(array):
    return torch.from_numpy(np.array(array, dtype=np.float64))


def _vjp(fn, primal, upstream):
    """Autograd's vector-Jacobian product of fn at primal with upstream (reference.seed_network.vjp) -> float64."""
    return vjp(fn, as_tensor(primal), as_tensor(upstream)).numpy()


def _single(candidate):
    """pairs for 'manual equals this candidate' (candidate: a -> array, or None where it does not apply)."""
    def pairs(m, a):
        c = candidate(a)
        return [] if c is None else [(m, c)]
    return pairs


def _transposes(m, a):
    if a.ndim < 2:
        return []
    candidates = [a.T, np.ascontiguousarray(a.T).reshape(a.shape)]
    if a.ndim > 2:  # the last two axes, or the first two (batch and channels): swapped, or their values laid out so
        for swapped in (a.swapaxes(-1, -2), a.swapaxes(0, 1)):
            candidates += [swapped, np.ascontiguousarray(swapped).reshape(a.shape)]
    return [(m, c) for c in candidates if c.shape == m.shape]


def _not_cropped(m, a):
    if m.ndim != a.ndim or m.ndim < 3 or m.shape[:-2] != a.shape[:-2]:
        return []
    (dh, dw), (H, W) = np.subtract(m.shape[-2:], a.shape[-2:]), a.shape[-2:]
    if min(dh, dw) < 0 or dh % 2 or dw % 2 or dh + dw == 0:
        return []
    return [(m[..., dh // 2:dh // 2 + H, dw // 2:dw // 2 + W], a)]


def _shifted(m, a):
    """m[..., i + dy, j + dx] = a[..., i, j] on the overlap, for shifts up to 2 that keep most of a's mass (none when
    a has no mass to keep: an all-zero a is explained by no shift)."""
    if m.shape != a.shape or a.ndim < 3:
        return []
    H, W = a.shape[-2:]
    total = np.abs(a).sum()
    pairs = []
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            if (dy, dx) == (0, 0) or abs(dy) >= H or abs(dx) >= W:
                continue
            ms = m[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)]
            As = a[..., max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
            if total > 0 and np.abs(As).sum() >= 0.5 * total:
                pairs.append((ms, As))
    return pairs


GENERIC = (
    Hypothesis("sign", "manual = -autograd", _single(lambda a: -a)),
    Hypothesis("transposed", "manual = autograd transposed (or its values laid out transposed)", _transposes),
    Hypothesis("kernel-flipped", "manual = autograd with both kernel axes reversed, a[..., ::-1, ::-1]",
               _single(lambda a: a[..., ::-1, ::-1] if a.ndim >= 2 else None)),
    Hypothesis("padding", "padding not cropped: the centre of manual's padded grid equals autograd", _not_cropped),
    Hypothesis("padding", "manual = autograd shifted: the padding cropped at the wrong side", _shifted),
)


def activation(fn, z, upstream):
    """Hypotheses on dE/dz for out = fn(z) elementwise, upstream = autograd's dE/d(out) in z's shape."""
    def local(at):
        return _vjp(fn, at, np.ones(np.shape(at)))
    return (
        Hypothesis("activation-missing", "manual = dE/d(output): the local derivative left out",
                   _single(lambda a: upstream)),
        Hypothesis("activation-twice", "manual = autograd * the local derivative: applied twice",
                   _single(lambda a: a * local(z))),
        Hypothesis("activation-wrong-point", "manual = dE/d(output) * the derivative taken at the output instead "
                   "of at the input", _single(lambda a: upstream * local(fn(as_tensor(z)).numpy()))),
    )


def local_derivative(fn, z):
    """Hypotheses on the local derivative d fn(z)/dz itself (elementwise), autograd's value a."""
    return (
        Hypothesis("activation-missing", "manual = 1: the local derivative left out", _single(np.ones_like)),
        Hypothesis("activation-twice", "manual = autograd^2: the local derivative applied twice",
                   _single(lambda a: a * a)),
        Hypothesis("activation-wrong-point", "manual = the derivative taken at the output instead of at the input",
                   _single(lambda a: _vjp(fn, fn(as_tensor(z)).numpy(), np.ones(np.shape(z))))),
    )


def flipped_upstream(conv, w, upstream):
    """dE/dw with dE/d(output) slid flipped: conv(w) the layer's output as a function of its weight."""
    return Hypothesis("kernel-flipped", "manual slides dE/d(output) flipped over the input: a true convolution "
                      "instead of the cross-correlation", _single(lambda a: _vjp(conv, w, upstream[..., ::-1, ::-1])))


ACTIVATIONS = {
    "sigmoid": lambda o: torch.sigmoid,
    "tanh": lambda o: torch.tanh,
    "relu": lambda o: torch.relu,
    "leaky_relu": lambda o: lambda t: TF.leaky_relu(t, o["negative_slope"]),
    "gelu": lambda o: lambda t: TF.gelu(t, approximate=o["approximate"]),
    "silu": lambda o: TF.silu,
}


def _conv_hypotheses(layer, x, params, upstream, kind):
    """Hypotheses on a conv2d layer's dE/dinput (the stride left out) or dE/dweight (the dilation left out,
    dE/d(output) slid flipped); x its input, upstream autograd's dE/d(output)."""
    o, w = layer.options, params[f"{layer.index}.weight"]
    (sh, sw), (ph, pw), (dh, dw) = o["stride"], o["padding"], o["dilation"]
    (N, C, H, W), (KH, KW), (OH, OW) = x.shape, w.shape[2:], upstream.shape[2:]

    def stride_ignored(a):
        small = (N, C, OH + dh * (KH - 1), OW + dw * (KW - 1))  # the input a stride-1 conv maps to OH x OW
        dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
        unstrided = lambda s: TF.conv2d(s, as_tensor(w), None, 1, 0, (dh, dw))  # noqa: E731
        dxp[:, :, :small[2], :small[3]] = _vjp(unstrided, np.zeros(small), upstream)
        return dxp[:, :, ph:ph + H, pw:pw + W]

    def dilation_ignored(a):
        crop = TF.pad(as_tensor(x), (pw, pw, ph, ph))[:, :, :(OH - 1) * sh + KH, :(OW - 1) * sw + KW]
        return _vjp(lambda weight: TF.conv2d(crop, weight, None, (sh, sw)), w, upstream)

    def conv(weight):
        return TF.conv2d(as_tensor(x), weight, None, (sh, sw), (ph, pw), (dh, dw), o["groups"])
    hypotheses = []
    if kind == "input" and (sh, sw) != (1, 1):
        hypotheses.append(Hypothesis("stride", f"manual = the input gradient of a stride-1 conv: the stride {(sh, sw)} "
                                     "left out where dE/d(output) is scattered back", _single(stride_ignored)))
    if kind == "weight" and (dh, dw) != (1, 1):
        hypotheses.append(Hypothesis("dilation", f"manual = dE/dweight of the undilated conv: the dilation {(dh, dw)} "
                                     "left out", _single(dilation_ignored)))
    if kind == "weight":
        hypotheses.append(flipped_upstream(conv, w, upstream))
    if kind == "weight" and o["groups"] > 1:
        hypotheses.append(Hypothesis("groups-summed", f"manual = autograd's dE/dweight summed over the {o['groups']} "
                                     "groups, every group given the sum: the batch and the groups summed where only "
                                     "the batch was meant", _single(lambda a: _summed_over_groups(a, o["groups"]))))
    return tuple(hypotheses)


def _summed_over_groups(a, G):
    """(F, C/G, KH, KW) as G blocks of F/G filters, each block replaced by the sum of all G."""
    blocks = a.reshape(G, -1, *a.shape[1:])
    return np.broadcast_to(blocks.sum(axis=0), blocks.shape).reshape(a.shape)


def _pool_hypotheses(layer, x, upstream):
    o = layer.options

    def window_sum(t):
        return TF.avg_pool2d(t, o["kernel_size"], o["stride"], o["padding"]) * window(layer)
    hypotheses = (Hypothesis("window", "manual = the gradient of the window's sum: dE/d(output) sent to every element "
                             "of the window, not only to its maximum",
                             _single(lambda a: _vjp(window_sum, x, upstream))),)
    if any(s < k for s, k in zip(o["stride"], o["kernel_size"], strict=True)):
        hypotheses += (Hypothesis("overlap-assign", "manual = each window's one-hot gradient assigned (=) over its "
                                  "window in turn, where overlapping windows must accumulate (+=): a pixel keeps "
                                  "the last window's share only", _single(lambda a: _window_assigned(o, x, upstream))),)
    return hypotheses


def _window_assigned(o, x, upstream):
    """Max pool's input gradient with each window, in row-major order, overwriting its whole window with its
    one-hot share (torch's argmax indices), so where windows overlap the last one wins."""
    (KH, KW), (sh, sw), (ph, pw) = o["kernel_size"], o["stride"], o["padding"]
    _, indices = TF.max_pool2d(as_tensor(x), (KH, KW), (sh, sw), (ph, pw), return_indices=True)
    (N, C, H, W), indices = x.shape, indices.numpy()
    dx = np.zeros((N, C, H * W))
    for oh, ow in np.ndindex(*upstream.shape[2:]):
        rows = np.arange(max(oh * sh - ph, 0), min(oh * sh - ph + KH, H))
        cols = np.arange(max(ow * sw - pw, 0), min(ow * sw - pw + KW, W))
        dx[:, :, (rows[:, None] * W + cols).ravel()] = 0
        np.put_along_axis(dx, indices[:, :, oh, ow, None], upstream[:, :, oh, ow, None], axis=2)
    return dx.reshape(x.shape)


def _transposed_hypotheses(layer, x, params, upstream):
    """A transposed conv's dE/dinput with output_padding ignored: dE/d(output) cropped to the size without it."""
    o, w = layer.options, as_tensor(params[f"{layer.index}.weight"])
    (oph, opw), (OH, OW) = o["output_padding"], upstream.shape[2:]

    def unpadded(t):
        return TF.conv_transpose2d(t, w, None, o["stride"], o["padding"], 0, 1, o["dilation"])
    return (Hypothesis("padding", f"manual = the input gradient without output_padding {(oph, opw)}: dE/d(output) "
                       "read as if the output ended before its last rows and columns",
                       _single(lambda a: _vjp(unpadded, x, upstream[:, :, :OH - oph, :OW - opw]))),)


def _adaptive_hypotheses(layer, x, upstream):
    (H, W), (OH, OW) = x.shape[2:], layer.options["output_size"]
    if not (H % OH or W % OW) or H < OH or W < OW:
        return ()
    even = lambda t: TF.avg_pool2d(t, (H // OH, W // OW))[:, :, :OH, :OW]  # noqa: E731
    return (Hypothesis("adaptive-windows", f"manual = the input gradient of windows of {H // OH}x{W // OW} from "
                       f"i*{H // OH}: the windows taken as if {OH}x{OW} divided {H}x{W} evenly, not torch's "
                       "[floor(i*H/OH), ceil((i+1)*H/OH))", _single(lambda a: _vjp(even, x, upstream))),)


def _normalized(layer):
    """The layer's normalization without gamma and beta, in torch: t -> x_hat."""
    o = layer.options
    if layer.type == "layer_norm":
        return lambda t: TF.layer_norm(t, o["normalized_shape"], None, None, o["eps"])
    if layer.type == "group_norm":
        return lambda t: TF.group_norm(t, o["num_groups"], None, None, o["eps"])
    return lambda t: TF.batch_norm(t, None, None, None, None, True, 0.0, o["eps"])


def _per_group(layer, x, statistic):
    """statistic(values, axes) (keepdims) over each group the layer normalizes together, broadcast to x's shape."""
    if layer.type == "layer_norm":
        axes = tuple(range(x.ndim - len(layer.options["normalized_shape"]), x.ndim))
        return np.broadcast_to(statistic(x, axes), x.shape)
    if layer.type == "group_norm":
        grouped = x.reshape(x.shape[0], layer.options["num_groups"], -1)
        return np.broadcast_to(statistic(grouped, 2), grouped.shape).reshape(x.shape)
    return np.broadcast_to(statistic(x, (0, *range(2, x.ndim))), x.shape)


def _inv_std(layer, x):
    """1 / sqrt(var + eps) of the layer's statistics of x (biased variance), broadcast to x's shape."""
    eps = layer.options["eps"]
    return _per_group(layer, x, lambda v, axes: 1 / np.sqrt(v.var(axis=axes, keepdims=True) + eps))


def _normalization_hypotheses(layer, x, params, upstream):
    """Hypotheses on a normalization layer's dE/dinput: only the direct path (the mean and variance held constant),
    the path through the mean alone left out, or gamma left out (dE/d(output) used where gamma * dE/d(output),
    dE/dx_hat, was meant)."""
    gamma = params.get(f"{layer.index}.weight")
    if gamma is None:
        scaled = upstream
    else:
        shape = gamma.shape if layer.type == "layer_norm" else (1, -1) + (1,) * (x.ndim - 2)
        scaled = upstream * np.asarray(gamma, np.float64).reshape(shape)
    hypotheses = [Hypothesis("normalization-paths", "manual = gamma * dE/d(output) / std: only the direct path, the "
                             "paths through the mean and the variance left out", _single(lambda a: scaled *
                                                                                         _inv_std(layer, x)))]
    # through the mean: every x moves the mean by 1/M, every x_hat by -inv_std: -mean(dE/dx_hat) * inv_std
    through_mean = lambda: -_per_group(layer, scaled, lambda v, axes: v.mean(axis=axes, keepdims=True)) \
        * _inv_std(layer, x)  # noqa: E731
    hypotheses.append(Hypothesis("normalization-mean-path", "manual = autograd less the path through the mean, "
                                 "-mean(gamma * dE/d(output)) / std: the mean held constant in the backward",
                                 _single(lambda a: a - through_mean())))
    if gamma is not None:
        hypotheses.append(Hypothesis("normalization-gamma", "manual = the input gradient of the normalization without "
                                     "gamma: dE/d(output) used where gamma * dE/d(output) was meant",
                                     _single(lambda a: _vjp(_normalized(layer), x, upstream))))
    return tuple(hypotheses)


def _interleaved_group_norm(layer, x, params):
    """Group norm with group g holding channels g, g + G, g + 2G, ... instead of a consecutive block."""
    o, (C, G) = layer.options, (x.shape[1], layer.options["num_groups"])
    order = np.arange(C).reshape(C // G, G).T.reshape(-1)  # interleaved group g laid out as block g
    back = np.argsort(order)
    gamma, beta = (params.get(f"{layer.index}.{k}") for k in ("weight", "bias"))
    affine = [None if p is None else as_tensor(p)[order] for p in (gamma, beta)]  # each channel keeps its own
    return TF.group_norm(as_tensor(x)[:, order], G, *affine, o["eps"])[:, back].numpy()


def _batch_axis_layer_norm(layer, x, params):
    """Layer norm with the mean and variance over the batch axis (per element of a sample), not over each sample."""
    t = as_tensor(x)
    x_hat = (t - t.mean(0)) / torch.sqrt(t.var(0, unbiased=False) + layer.options["eps"])
    gamma, beta = (params.get(f"{layer.index}.{k}") for k in ("weight", "bias"))
    out = x_hat if gamma is None else x_hat * as_tensor(gamma)
    return (out if beta is None else out + as_tensor(beta)).numpy()


def _attention(layer, params, normalizer_constant=False, unscaled_backward=False, heads_transposed=False,
               mask_after_softmax=False):
    """A multihead_attention layer as torch ops (reference/attention.py's), x (N, T, E) -> out, with one mistake made
    so that its output (mask_after_softmax: the probabilities of every key zeroed where masked, rows no longer summing
    to 1) or autograd's gradient is what that mistake gives, the forward value unchanged by a detach: the softmax's
    normalizer held constant (its Jacobian's diagonal alone, the row-sum term gone), the scores' 1/sqrt(d) kept out
    of the gradient, or dq, dk, dv merged as (d, H) instead of (H, d) (the input projection's rows read in that
    order)."""
    o, i = layer.options, layer.index
    p = {k: None if f"{i}.{k}" not in params else as_tensor(params[f"{i}.{k}"])
         for k in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")}

    def forward(x):
        N, T, E = x.shape
        H = o["num_heads"]
        d = E // H
        qkv = TF.linear(x, p["in_proj_weight"], p["in_proj_bias"])
        if heads_transposed:  # row f of each block read where row perm[f] was meant: f = j H + h, perm[f] = h d + j
            perm = np.arange(E).reshape(H, d).T.reshape(-1)
            inverse = np.concatenate([np.argsort(perm) + block * E for block in range(3)])
            shadow = TF.linear(x, p["in_proj_weight"][inverse])
            qkv = shadow + (qkv - shadow).detach()
        q, k, v = (part.reshape(N, T, H, d).transpose(1, 2) for part in qkv.chunk(3, dim=-1))
        raw = q @ k.transpose(-1, -2)
        scores = raw / np.sqrt(d)
        if unscaled_backward:
            scores = raw + (scores - raw).detach()
        masked = torch.ones((T, T), dtype=torch.bool).triu(1) if o["causal"] else torch.zeros((T, T), dtype=torch.bool)
        if mask_after_softmax:
            P = torch.softmax(scores, dim=-1).masked_fill(masked, 0)
        else:
            logits = scores.masked_fill(masked, -torch.inf)
            e = torch.exp(logits - logits.amax(dim=-1, keepdim=True).detach())
            norm = e.sum(dim=-1, keepdim=True)
            P = e / (norm.detach() if normalizer_constant else norm)
        merged = (P @ v).transpose(1, 2).reshape(N, T, E)
        return TF.linear(merged, p["out_proj.weight"], p["out_proj.bias"])
    return forward


def _attention_hypotheses(layer, kind, x, params, upstream):
    """On a multihead_attention layer's dE/dinput: autograd through _attention with one mistake each."""
    if layer.type != "multihead_attention" or kind != "input":
        return ()

    def mistaken(**mistake):
        return _single(lambda a: _vjp(_attention(layer, params, **mistake), x, upstream))
    return (Hypothesis("softmax-diagonal", "manual = autograd with attention's softmax normalizer held constant: "
                       "dscores = P * dP, the softmax's backward without its row-sum term (only the diagonal of its "
                       "Jacobian diag(P) - P P^T)", mistaken(normalizer_constant=True)),
            Hypothesis("attention-scale", "manual = autograd with the scores' 1/sqrt(d) held out of the gradient: dq "
                       "and dk not scaled by 1/sqrt(d) in the backward", mistaken(unscaled_backward=True)),
            Hypothesis("heads-order", "manual = autograd with each head's dq, dk, dv merged as (d, H) instead of "
                       "(H, d): feature h*d + j of head h put at j*H + h", mistaken(heads_transposed=True)))


def output_hypotheses(layer, x, params):
    """Hypotheses on a layer's output (x its input): a group norm's groups read from the wrong axis, a layer norm's
    statistics taken over the batch axis, attention's mask applied after its softmax."""
    if layer.type == "multihead_attention" and layer.options["causal"]:
        return (Hypothesis("mask-after-softmax", "manual = attention with the softmax over every key and the masked "
                           "probabilities then set to 0 (rows no longer summing to 1), where the masked scores must be "
                           "-inf before it", _single(lambda a: _attention(layer, params, mask_after_softmax=True)(
                               as_tensor(x)).detach().numpy())),)
    if layer.type == "layer_norm":
        return (Hypothesis("normalization-axes", "manual = layer norm with the mean and variance over the batch axis "
                           "(each element across the samples) instead of over each sample's normalized_shape",
                           _single(lambda a: _batch_axis_layer_norm(layer, x, params))),)
    if layer.type != "group_norm":
        return ()
    return (Hypothesis("normalization-axes", "manual = group norm over interleaved channels (group g holding "
                       "channels g, g + G, ...): the channel axis split as (C/G, G) instead of (G, C/G)",
                       _single(lambda a: _interleaved_group_norm(layer, x, params))),)


def _softmax_hypotheses(layer, x, upstream):
    s = torch.softmax(as_tensor(x), layer.options["dim"] + 1).numpy()
    return (Hypothesis("softmax-diagonal", "manual = dE/d(output) * s (1 - s): only the diagonal of softmax's "
                       "Jacobian diag(s) - s s^T, the terms -s_i s_j between outputs left out",
                       _single(lambda a: upstream * s * (1 - s))),)


def _gelu_hypotheses(layer, x, upstream):
    other = "tanh" if layer.options["approximate"] == "none" else "none"
    names = {"none": "the exact gelu", "tanh": "gelu's tanh approximation"}
    return (Hypothesis("approximation", f"manual = dE/d(output) * the derivative of {names[other]}, where the layer "
                       f"is {names[layer.options['approximate']]}",
                       _single(lambda a: _vjp(lambda t: TF.gelu(t, approximate=other), x, upstream))),)


def layer_hypotheses(layer, kind, x, params, upstream):
    """Hypotheses on one gradient of a described network's layer (kind "input", "weight" or "bias")."""
    if layer.type == "gelu":
        return activation(ACTIVATIONS["gelu"](layer.options), x, upstream) + _gelu_hypotheses(layer, x, upstream)
    if layer.type in ACTIVATIONS:
        return activation(ACTIVATIONS[layer.type](layer.options), x, upstream)
    if layer.type in NORMALIZATIONS and kind == "input":
        return _normalization_hypotheses(layer, x, params, upstream)
    if layer.type == "softmax":
        return _softmax_hypotheses(layer, x, upstream)
    if layer.type == "conv2d":
        return _conv_hypotheses(layer, x, params, upstream, kind)
    if layer.type == "max_pool2d":
        return _pool_hypotheses(layer, x, upstream)
    if layer.type == "adaptive_avg_pool2d":
        return _adaptive_hypotheses(layer, x, upstream)
    if layer.type == "conv_transpose2d" and kind == "input":
        return _transposed_hypotheses(layer, x, params, upstream)
    if layer.type == "embedding":
        return _embedding_hypotheses(layer, x, params, upstream)
    if layer.type in RECURRENT:
        return _recurrent_hypotheses(layer, kind, x, params, upstream)
    return _attention_hypotheses(layer, kind, x, params, upstream)


def _recurrent_hypotheses(layer, kind, x, params, upstream):
    """Hypotheses on a recurrent layer's gradients (x (N, T, F) its input, upstream autograd's dE/d(output)):
    autograd's own through the layer unrolled in torch with a path that backpropagation through time by hand
    often drops detached (reference.recurrent.unrolled)."""
    o, names, cell = layer.options, list(layer.param_shapes()), layer.type == "lstm"

    def truncated(detach=(), blocks=None):
        def candidate(a):
            x_t = as_tensor(x).requires_grad_()
            weights = [as_tensor(params[f"{layer.index}.{name}"]).requires_grad_() for name in names]
            zeros = [torch.zeros(o["num_layers"], x.shape[0], o["hidden_size"], dtype=torch.float64)] * (1 + cell)
            out = unrolled(layer.type, x_t, zeros, weights, nonlinearity=o.get("nonlinearity", "tanh"),
                           bias=o["bias"], batch_first=True, detach=detach, **({"blocks": blocks} if blocks else {}))[0]
            grads = torch.autograd.grad(out, [x_t, *weights], as_tensor(upstream), allow_unused=True,
                                        materialize_grads=True)
            return grads[0 if kind == "input" else 1 + names.index(kind)].numpy()
        return _single(candidate)

    hypotheses = [Hypothesis("bptt-truncated", "manual = autograd with each step reading the previous step's "
                             f"state{'s (h and c)' if cell else ' h'} detached: no gradient carried back in time",
                             truncated(("h", "c")))]
    if cell:
        hypotheses.insert(0, Hypothesis("bptt-cell-future", "manual = autograd with each step reading c_{t-1} "
                                        "detached: the cell state's gradient from c_{t+1} = f c_t + i g left out",
                                        truncated(("c",))))
    if o["num_layers"] > 1:
        hypotheses.append(Hypothesis("bptt-layers", "manual = autograd with each layer above the first reading "
                                     "the output sequence below it detached: no gradient carried down the stack",
                                     truncated(("layers",))))
    gates = GATES.get(layer.type, "")
    for p, q in itertools.combinations(range(len(gates)), 2):
        hypotheses.append(Hypothesis("gate-order", f"manual = autograd with the gradients of gates {gates[p]} and "
                                     f"{gates[q]} swapped in every step's backward (torch's order is "
                                     f"{', '.join(gates)})", truncated(blocks=_swapped(p, q, len(gates)))))
    return tuple(hypotheses)


GATES = {"lstm": "ifgo", "gru": "rzn"}  # torch's gate order


def _swapped(p, q, G):
    """Stacked gate pre-activations (N, G*H) -> the same values, whose gradient comes back with blocks p and q
    swapped: swap(a) + (a - swap(a)) held constant, so autograd carries swap(da) to the projections."""
    def blocks(a):
        parts = list(a.chunk(G, dim=1))
        parts[p], parts[q] = parts[q], parts[p]
        swapped = torch.cat(parts, dim=1)
        return swapped + (a - swapped).detach()
    return blocks


def _embedding_hypotheses(layer, indices, params, upstream):
    """On an embedding's dE/dweight (indices: its integer input, upstream: autograd's dE/d(output)): the rows
    assigned, so a repeated index keeps one position's gradient; the padding row given its gradient."""
    pad = layer.options["padding_idx"]
    shape = params[f"{layer.index}.weight"].shape

    def assigned(a):
        dweight = np.zeros(shape)
        dweight[indices] = upstream  # a repeated index: the last position's row wins
        if pad is not None:
            dweight[pad] = 0
        return dweight

    def with_padding(a):
        if pad is None:
            return None
        dweight = np.zeros(shape)
        np.add.at(dweight, indices, upstream)
        return dweight
    return (Hypothesis("assigned", "manual = dE/d(output) assigned row by row (dweight[indices] = dout): a repeated "
                       "index keeps one position's gradient instead of their sum", _single(assigned)),
            Hypothesis("padding-index", f"manual = autograd with the padding_idx row {pad} given the sum of its "
                       "positions' gradients: torch holds that row at zero", _single(with_padding)))


def fan_out_hypotheses(spec, layer, kind, x, params, a):
    """Where layer's output is read by several layers: manual's dE/dinput = autograd's with one reader's share of
    dE/d(output) left out (the gradients of a fan-out overwritten, not summed); x its input, a autograd's run.
    (Its input gradient comes before its parameters' in the walk: the first that such a mistake breaks.)"""
    readers = [(r, k) for r in spec.layers for k, j in enumerate(r.inputs) if j == layer.index]
    if len(readers) < 2 or layer.merge or kind != "input":
        return ()
    @cache
    def module():  # built only when a diagnosis tests the hypothesis, not for every walk
        return reference_net.build(spec, {n: np.asarray(v, np.float64) for n, v in params.items()})[layer.index]

    def without(r, k):
        share = a["input_grads"][r.index][k] if r.merge else a["input_grads"][r.index]
        return _vjp(module(), x, np.asarray(a["output_grads"][layer.index], np.float64) - share)
    return tuple(Hypothesis("fan-out", f"manual = autograd without {r}'s share of dE/d(output of {layer}), read by "
                            f"{len(readers)} layers: their gradients overwritten, not summed",
                            _single(lambda _, r=r, k=k: without(r, k))) for r, k in readers)


def loss_hypotheses(spec, pred, target):
    if spec.loss.type != "softmax_cross_entropy":
        return ()
    ignored = NLL_IGNORE_INDEX if spec.loss.ignore_index is None else spec.loss.ignore_index
    kept = torch.from_numpy(np.asarray(target != ignored, np.float64))  # the labels counted, per sample (or step)
    scale = float(kept.sum()) if spec.loss.reduction == "mean" else 1.0
    return (Hypothesis("one-hot", "manual = softmax / N: the one-hot term of softmax - onehot(labels) left out",
                       _single(lambda a: _vjp(lambda z: (torch.logsumexp(z, -1) * kept).sum() / scale, pred, 1.0))),)


def loss_scales(spec, target):
    """A classification under the mean whose labels are not the batch's N samples (a label per step, or some
    ignored): the K labels counted, a sum where torch's mean over them was meant; and with labels ignored, K / L, the
    mean over all L labels (every sample, or every step of every sample) where torch divides by the K kept."""
    if not spec.loss.classes or spec.loss.reduction != "mean":
        return ()
    ignored = NLL_IGNORE_INDEX if spec.loss.ignore_index is None else spec.loss.ignore_index
    L, K = np.size(target), int((target != ignored).sum())
    scales = () if K in (0, 1, spec.batch_size) else (
        (K, "batch-reduction", f"the {K} labels counted: a sum where the mean over them was meant"),)
    if K in (0, L):
        return scales
    return scales + ((K / L, "batch-reduction", f"{K}/{L}: the mean over all N = {L} labels, the {L - K} ignored "
                      f"included, where torch divides by the {K} kept"),)


def dropout_scales(layer):
    """A dropout's input gradient read against 1 - p: the kept elements not scaled by 1 / (1 - p)."""
    if layer.type not in DROPOUTS or not 0 < layer.options["p"] < 1:
        return ()
    p = layer.options["p"]
    return ((1 - p, "scaled", f"1 - p = {1 - p:g}: the dropout's scaling by 1 / (1 - p) left out"),)


def batch_scales(N):
    if N == 1:
        return ()
    return ((N, "batch-reduction", "the batch size N: a sum where the mean was meant"),
            (1 / N, "batch-reduction", f"1/N for the batch size N = {N}: a mean where the sum was meant"))


def _agree(actual, expected, tol):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return actual.shape == expected.shape and compare("", actual, expected, np.float64, tol).passed


def _scaled(m, a, tol, scales, what="manual"):
    """manual = c * autograd for one constant c, read against the step's known scales -> Classification or None."""
    aa = float(np.vdot(a, a))
    if m.shape != a.shape or aa == 0:
        return None
    c = float(np.vdot(m, a)) / aa
    if not _agree(m, c * a, tol):
        return None
    for value, kind, meaning in scales:
        if abs(c - value) <= 10 * tol.rtol * abs(value):
            return Classification(kind, f"{what} = c * autograd with c = {c:.7g}, {meaning}", c)
    return Classification("scaled", f"{what} = c * autograd with c = {c:.7g}", c)


def classify(step, m, a, dtype, kinked=False):
    """Test the hypotheses in turn -> the first Classification that fits. kinked: finite differences found a
    kink at every element that differs."""
    tol = tolerance_for(dtype)
    if isinstance(m, ManualFailure):
        return Classification("unclassified", f"the manual side failed: {m}")
    m, a = np.asarray(m, np.float64), np.asarray(a, np.float64)
    if step.before is not None:
        return _classify_update(step, m, a, tol)
    for h in GENERIC + tuple(step.hypotheses):
        if any(_agree(actual, expected, tol) for actual, expected in h.pairs(m, a)):
            return Classification(h.kind, h.detail)
    if kinked:
        return Classification("kink", "manual and autograd differ only where finite differences find a kink (ReLU "
                              "at 0, a max-pool tie): a different convention at a non-differentiable point")
    return _scaled(m, a, tol, step.scales) or Classification(
        "unclassified", "no hypothesis fits: not a sign, a transpose, a flip, a constant factor or a known "
        "layer mistake")


def _classify_update(step, m, a, tol):
    before = np.asarray(step.before, np.float64)
    dm, da = m - before, a - before
    if _agree(dm, -da, tol):
        return Classification("update-sign", "manual moved the parameter by +lr * g: its step = -autograd's step")
    for h in step.hypotheses:
        if any(_agree(actual, expected, tol) for actual, expected in h.pairs(m, a)):
            return Classification(h.kind, h.detail)
    return _scaled(dm, da, tol, (), "manual's step") or Classification(
        "unclassified", "no hypothesis fits: not the sign of the step, a known optimizer mistake or a scaled step")


def _adam_uncorrected(decoupled):
    """Adam's (AdamW's) step with the moments used as they are: p = p - lr * m / (sqrt(v) + eps), no 1 - beta^t."""
    def step(params, grads, state, lr, betas, eps, weight_decay, amsgrad):
        _, new_state = (optim.adamw_step if decoupled else optim.adam_step)(params, grads, state, lr, betas, eps,
                                                                           weight_decay, amsgrad)
        new_params = {}
        for key, p in params.items():
            s = new_state[key]
            v = s["max_exp_avg_sq"] if amsgrad else s["exp_avg_sq"]
            p = p * (1 - lr * weight_decay) if decoupled else p
            new_params[key] = p - lr * s["exp_avg"] / (np.sqrt(v) + eps)
        return new_params, new_state
    return step


def _rmsprop_eps_inside(params, grads, state, lr, alpha, eps, weight_decay, momentum, centered):
    """RMSprop's step dividing by sqrt(v + eps) instead of sqrt(v) + eps (v centered if so)."""
    _, new_state = optim.rmsprop_step(params, grads, state, lr, alpha, eps, weight_decay, momentum, centered)
    new_params = {}
    for key, p in params.items():
        s = new_state[key] = dict(new_state[key])
        v = s["square_avg"] - s["grad_avg"] ** 2 if centered else s["square_avg"]
        update = (grads[key] + weight_decay * p) / np.sqrt(v + eps)
        if momentum > 0:
            update = s["momentum_buffer"] = momentum * state.get(key, {}).get("momentum_buffer", 0.0) + update
        new_params[key] = p - lr * update
    return new_params, new_state


def running_hypotheses(layer, name, seen):
    """Hypotheses on a batch norm's running statistic `name` after len(seen) steps, `seen` its inputs at each step
    (autograd's): the running variance updated with the biased batch variance (divided by M, not M - 1)."""
    if name != "running_var":
        return ()
    m, axes = layer.options["momentum"], (0, *range(2, np.ndim(seen[0])))

    def biased(a):
        var = np.ones(layer.in_shape[0])
        for x in seen:
            var = (1 - m) * var + m * np.asarray(x, np.float64).var(axis=axes)
        return var
    return (Hypothesis("biased-variance", "the running variance updated with the batch's biased variance (divided by "
                       "M, the normalization's), where torch keeps the unbiased one (divided by M - 1)",
                       _single(biased)),)


def optimizer_hypotheses(spec, gradients, params, k, key):
    """Variants of the described optimizer (and its scheduler) replayed over autograd's gradients of steps 1..k
    (gradients: j -> grads at step j)."""
    o = spec.optimizer
    s = o.settings()

    def replay(step=optim.OPTIMIZER_STEPS[o.type], zero_start=False, fresh=False, early=False, **changes):
        def candidate(a):
            p, state = params, {n: np.zeros_like(v) for n, v in params.items()} if zero_start else {}
            for j in range(1, k + 1):  # step j at the rate after j - 1 scheduler steps (j steps: stepped early)
                settings = settings_at(o, j if early else j - 1) | changes
                p, state = step(p, gradients(j), {} if fresh else state, **settings)
            return p[key]
        return _single(candidate)
    variants = []
    if o.type == "adamw" and s["weight_decay"]:
        variants.append(Hypothesis("weight-decay", "the decay coupled like L2, added to the gradient (Adam's), not "
                                   "decoupled from it as AdamW's p = p * (1 - lr * weight_decay)",
                                   replay(optim.adam_step)))
    if o.type in ("adam", "adamw"):
        variants.append(Hypothesis("bias-correction", "the moments not bias-corrected: m / (sqrt(v) + eps), the "
                                   "divisions by 1 - beta1^t and sqrt(1 - beta2^t) left out",
                                   replay(_adam_uncorrected(o.type == "adamw"))))
    if o.type == "rmsprop":
        variants.append(Hypothesis("epsilon", "eps inside the square root: g / sqrt(v + eps), not g / (sqrt(v) + eps)",
                                   replay(_rmsprop_eps_inside)))
    if o.scheduler is not None:
        variants.append(Hypothesis("schedule", "the scheduler stepped before the optimizer: step t used the learning "
                                   "rate meant for step t + 1", replay(early=True)))
    if o.type == "sgd":
        variants += _sgd_hypotheses(s, replay)
    if s["weight_decay"]:
        variants.append(Hypothesis("weight-decay", "the weight decay term left out of the gradient",
                                   replay(weight_decay=0.0)))
    return tuple(variants)


def _sgd_hypotheses(s, replay):
    variants = []
    if s["momentum"] and s["dampening"]:
        variants.append(Hypothesis("momentum", "the buffer started at zero: step 1 moved by (1 - dampening) g "
                                   "instead of g (torch: buf = g on the first step)", replay(zero_start=True)))
    if s["nesterov"]:
        variants.append(Hypothesis("momentum", "Nesterov's look-ahead g + momentum * buf left out: the update used "
                                   "buf, plain momentum", replay(nesterov=False)))
    if s["momentum"]:
        variants.append(Hypothesis("momentum", "the momentum buffer not carried from one step to the next",
                                   replay(fresh=True)))
    return variants


def window(layer):
    """A pool layer's window size KH*KW: the factor of a pool gradient sent to every element undivided."""
    return layer.options["kernel_size"][0] * layer.options["kernel_size"][1]
