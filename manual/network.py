"""A network built from a description (netdesc.description) over manual.functional's layers (NumPy only).

Parameters are a dict named as torch.nn.Sequential names them, "<layer index>.weight" and "<layer index>.bias", in
torch's layouts (conv (F, C, KH, KW), linear (out, in)); a recurrent layer's as torch's nn.RNN, LSTM and GRU name
theirs, "<layer index>.weight_ih_l0", ... (manual.recurrent, on (N, T, F), initial states zero). ``run`` keeps every
layer's output and returns, by hand, the loss, every parameter gradient and every layer's input gradient; ``train``
takes steps of the description's optimizer (SGD, Adam, ...) with manual.optim, its learning rate from its scheduler
if it has one. Layer i reads the outputs of the layers in ``layer.inputs`` (-1: x, shape (N, C, H, W)); a sequential
description reads layer i - 1. The network runs in layer order; the backward runs in reverse, and where a tensor is
read by several layers (fan-out) its gradient is the sum of their contributions, added up by ``accumulate`` (which a
hook may replace, to model the mistake of overwriting instead).
"""

import itertools
from dataclasses import dataclass

import numpy as np

from manual import attention as A
from manual import functional as F
from manual import optim
from manual import recurrent as R
from netdesc.checks import ManualFailure, check_positive_int, unusable
from netdesc.description import BATCH_NORMS, ENCODER_PARAMETERS, INDEXED
from netdesc.inputs import check_inputs, seeded_masks

# type -> forward(x, params of the layer, options) -> (out, cache)
FORWARD = {
    "conv2d": lambda x, p, o: F.conv2d_forward(x, p["weight"], p.get("bias"), o["stride"], o["padding"], o["dilation"],
                                               groups=o["groups"]),
    "conv_transpose2d": lambda x, p, o: F.conv_transpose2d_forward(x, p["weight"], p.get("bias"), o["stride"],
                                                                   o["padding"], o["output_padding"], o["dilation"]),
    "max_pool2d": lambda x, p, o: F.max_pool2d_forward(x, o["kernel_size"], o["stride"], o["padding"]),
    "avg_pool2d": lambda x, p, o: F.avg_pool2d_forward(x, o["kernel_size"], o["stride"], o["padding"]),
    "adaptive_avg_pool2d": lambda x, p, o: F.adaptive_avg_pool2d_forward(x, o["output_size"]),
    "linear": lambda x, p, o: F.linear_forward(x, p["weight"], p.get("bias")),
    "flatten": lambda x, p, o: F.flatten_forward(x),
    "relu": lambda x, p, o: F.relu_forward(x),
    "tanh": lambda x, p, o: F.tanh_forward(x),
    "sigmoid": lambda x, p, o: F.sigmoid_forward(x),
    "leaky_relu": lambda x, p, o: F.leaky_relu_forward(x, o["negative_slope"]),
    "layer_norm": lambda x, p, o: F.layer_norm_forward(x, p.get("weight"), p.get("bias"),
                                                       normalized_shape=o["normalized_shape"], eps=o["eps"]),
    "group_norm": lambda x, p, o: F.group_norm_forward(x, p.get("weight"), p.get("bias"), num_groups=o["num_groups"],
                                                       eps=o["eps"]),
    # training mode: the batch's statistics; the running statistics are not kept here
    "batch_norm1d": lambda x, p, o: F.batch_norm_forward(x, None, None, p.get("weight"), p.get("bias"), True,
                                                         o["momentum"], o["eps"]),
    "batch_norm2d": lambda x, p, o: F.batch_norm_forward(x, None, None, p.get("weight"), p.get("bias"), True,
                                                         o["momentum"], o["eps"]),
    "gelu": lambda x, p, o: F.gelu_forward(x, o["approximate"]),
    "silu": lambda x, p, o: F.silu_forward(x),
    "softmax": lambda x, p, o: F.softmax_forward(x, o["dim"]),
    "log_softmax": lambda x, p, o: F.log_softmax_forward(x, o["dim"]),
    # x: integer indices (N, *input_shape), the network's input
    "embedding": lambda x, p, o: F.embedding_forward(x, p["weight"], o["padding_idx"]),
    # p["mask"]: the harness's mask of this step (training mode); none given: eval mode, the identity
    "dropout": lambda x, p, o: F.dropout_forward(x, p.get("mask"), o["p"]),
    "sequence_pool": lambda x, p, o: F.sequence_pool_forward(x, o["mode"]),
    # recurrent layers on (N, T, F), batch_first; p: torch's flat weight list in order; initial states zero
    "rnn": lambda x, p, o: R.rnn_forward(x, None, *p.values(), nonlinearity=o["nonlinearity"], bias=o["bias"],
                                         batch_first=True),
    "lstm": lambda x, p, o: R.lstm_forward(x, None, None, *p.values(), bias=o["bias"], batch_first=True),
    "gru": lambda x, p, o: R.gru_forward(x, None, *p.values(), bias=o["bias"], batch_first=True),
    # merge layers: xs is the tuple of their inputs, in the order of layer.inputs
    "add": lambda xs, p, o: F.add_forward(*xs),
    "concat": lambda xs, p, o: F.concat_forward(*xs, dim=o["dim"]),
    # x (N, T, E); parameters under torch's names, "in_proj_weight", "out_proj.weight", "self_attn.in_proj_weight", ...
    "multihead_attention": lambda x, p, o: A.multihead_attention_forward(
        x, p["in_proj_weight"], p["out_proj.weight"], p.get("in_proj_bias"), p.get("out_proj.bias"),
        num_heads=o["num_heads"], causal=o["causal"]),
    "transformer_encoder": lambda x, p, o: A.transformer_encoder_layer_forward(
        x, *(p[name] for name in ENCODER_PARAMETERS), num_heads=o["num_heads"], activation=o["activation"],
        layer_norm_eps=o["layer_norm_eps"], causal=o["causal"]),
}
def batch_norm_backward(dout, cache):
    """batch norm's (dx, dgamma, dbeta): the running statistics, data, get no gradient and no place in the tuple."""
    dx, _, _, dgamma, dbeta = F.batch_norm_backward(dout, cache)
    return dx, dgamma, dbeta


def without_states(backward, states):
    """A recurrent layer's backward without the initial states' gradients (None: they were zeros, not inputs)
    -> (dx, dweight_ih_l0, ...)."""
    def layer_backward(dout, cache):
        dx, *rest = backward(dout, cache)
        return (dx, *rest[states:])

    return layer_backward


def multihead_attention_backward(dout, cache):
    """(dx, then the parameters' gradients in torch's order: in_proj_weight, in_proj_bias, out_proj.weight,
    out_proj.bias), the biases' left out without bias."""
    dx, din_proj_weight, dout_proj_weight, din_proj_bias, dout_proj_bias, _ = A.multihead_attention_backward(
        dout, cache)
    grads = (dx, din_proj_weight, din_proj_bias, dout_proj_weight, dout_proj_bias)
    return tuple(g for g in grads if g is not None)


def transformer_encoder_backward(dout, cache):
    """(dx, then the 12 parameters' gradients in ENCODER_PARAMETERS' order): the mask's None left out."""
    return A.transformer_encoder_layer_backward(dout, cache)[:13]


# type -> backward(dout, cache) -> (dx, dweight, dbias) or (dx,); a merge layer's: (dx per input, in order)
BACKWARD = {
    "conv2d": F.conv2d_backward,
    "conv_transpose2d": F.conv_transpose2d_backward,
    "max_pool2d": F.max_pool2d_backward,
    "avg_pool2d": F.avg_pool2d_backward,
    "adaptive_avg_pool2d": F.adaptive_avg_pool2d_backward,
    "linear": F.linear_backward,
    "flatten": F.flatten_backward,
    "relu": F.relu_backward,
    "tanh": F.tanh_backward,
    "sigmoid": F.sigmoid_backward,
    "leaky_relu": F.leaky_relu_backward,
    "add": F.add_backward,
    "concat": F.concat_backward,
    "layer_norm": F.layer_norm_backward,
    "group_norm": F.group_norm_backward,
    "batch_norm1d": batch_norm_backward,
    "batch_norm2d": batch_norm_backward,
    "gelu": F.gelu_backward,
    "silu": F.silu_backward,
    "softmax": F.softmax_backward,
    "log_softmax": F.log_softmax_backward,
    "embedding": F.embedding_backward,  # (None, dweight): the indices get no gradient
    "dropout": F.dropout_backward,  # (dx, None): the mask is data
    "sequence_pool": F.sequence_pool_backward,
    "rnn": without_states(R.rnn_backward, 1),
    "lstm": without_states(R.lstm_backward, 2),
    "gru": without_states(R.gru_backward, 1),
    "multihead_attention": multihead_attention_backward,
    "transformer_encoder": transformer_encoder_backward,
}
LOSS = {
    "softmax_cross_entropy": (F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward),
    "mse": (F.mse_forward, F.mse_backward),
    "half_squared_error": (F.half_squared_error_forward, F.half_squared_error_backward),
    "binary_cross_entropy": (F.binary_cross_entropy_forward, F.binary_cross_entropy_backward),
    "binary_cross_entropy_with_logits": (
        F.binary_cross_entropy_with_logits_forward, F.binary_cross_entropy_with_logits_backward,
    ),
    "nll": (F.nll_forward, F.nll_backward),
}


def loss_options(spec):
    """The loss's options beside the reduction, as keyword arguments of its forward: nll's ignore_index."""
    return {} if spec.loss.ignore_index is None else {"ignore_index": spec.loss.ignore_index}


@dataclass(frozen=True)
class Backprop:
    """One forward and backward pass: outputs[i] and input_grads[i] belong to layer i."""

    outputs: list  # layer i's output, (N, *layer.out_shape)
    loss: np.ndarray  # E, 0-d
    loss_grad: np.ndarray  # dE/d(the last layer's output)
    input_grads: list  # dE/d(layer i's input), (N, *layer.in_shape); a merge layer's: a tuple, one per input;
    # None for an embedding's: integer indices have no gradient
    param_grads: dict  # "<i>.weight" / "<i>.bias" -> dE/dparameter


def accumulate(total, grad):
    """The gradient of a tensor read by several layers, one more reader's contribution added -> a fresh array
    (total and grad are left as they are: a backward may hand out one array twice)."""
    return total + grad


SUM = accumulate  # the default of every ``accumulate=None`` below


def _layer_params(params, layer):
    return {kind: params[f"{layer.index}.{kind}"] for kind in layer.param_shapes()}


def layer_inputs(layer, x, outputs):
    """What layer reads: the output of each of its layer.inputs (-1: x); a tuple for a merge layer."""
    sources = tuple(x if j < 0 else outputs[j] for j in layer.inputs)
    return sources if layer.merge else sources[0]


def forward(spec, params, x, layer_forward=None, given_outputs=None, masks=None):
    """-> (outputs, caches): outputs[i] is layer i's output (N, *out_shape), caches[i] its backward cache.

    ``layer_forward`` maps a layer index to a replacement forward(x, layer params, options) -> (out, cache): the
    forward half of a hand-written layer whose backward needs another cache (crosscheck.catalogue.layers).
    ``given_outputs`` maps a layer index to an array used as that layer's output instead of computing it (the loss
    as a function of one intermediate, for finite differences). ``masks`` maps a dropout layer's index to its mask
    of this step (netdesc.inputs.dropout_masks), handed to its forward as p["mask"]; without one it runs in eval
    mode.
    """
    replaced, fixed, masks = layer_forward or {}, given_outputs or {}, masks or {}
    outputs, caches = [], []
    for layer in spec.layers:
        if layer.index in fixed:
            out, cache = fixed[layer.index], None
        else:
            fn = replaced.get(layer.index, FORWARD[layer.type])
            p = _layer_params(params, layer) | ({"mask": masks[layer.index]} if layer.index in masks else {})
            out, cache = fn(layer_inputs(layer, x, outputs), p, layer.options)
        outputs.append(out)
        caches.append(cache)
    return outputs, caches


def _add(total, grad, accumulate):
    """One more contribution to a tensor's gradient: the first kept as it is, a broken one wins."""
    if total is None or isinstance(grad, ManualFailure):
        return grad
    return total if isinstance(total, ManualFailure) else accumulate(total, grad)


def backward(spec, caches, loss_cache, layer_backward=None, accumulate=None):
    """The chain rule from the loss back to the input -> (loss_grad, input_grads, param_grads).

    ``layer_backward`` maps a layer index to a replacement backward (a deliberately wrong derivation, to see
    that it is caught), and "loss" to a replacement of the loss's backward; a gradient of the wrong shape is
    reported as a ManualFailure for everything below it. ``accumulate(total, grad) -> total'`` adds up the
    contributions to a tensor read by several layers (None: ``accumulate`` of this module, their sum).
    """
    replaced, accumulate = layer_backward or {}, accumulate or SUM
    dout, _ = replaced.get("loss", LOSS[spec.loss.type][1])(1.0, loss_cache)
    loss_grad, input_grads, param_grads = dout, [None] * len(spec.layers), {}
    # grads[j]: dE/d(output of layer j) so far, summed over the layers that read it (grads[-1]: dE/dx)
    grads = {j: None for j in range(-1, len(spec.layers))}
    grads[len(spec.layers) - 1] = _wrong_shape("the loss", "dE/dinput", dout, (spec.batch_size, *spec.output_shape)) \
        or dout
    for layer in reversed(spec.layers):
        names = [f"{layer.index}.{kind}" for kind in layer.param_shapes()]
        dout = grads[layer.index]
        if isinstance(dout, ManualFailure):  # a backward above returned a wrong shape: nothing below can be computed
            dxs, dparams = (dout,) * len(layer.inputs), [dout] * len(names)
        else:
            result = _gradients(layer, replaced.get(layer.index, BACKWARD[layer.type])(dout, caches[layer.index]),
                                len(layer.inputs) + len(names))
            n, missing = len(layer.inputs), ManualFailure(f"{layer}'s backward returned no such gradient")
            result = (*result, *[missing] * (n + len(names) - len(result)))  # each gradient it owes and left out
            dxs, dparams = result[:n], result[n:]
        input_grads[layer.index] = dxs if layer.merge else dxs[0]
        for name, grad in zip(names, dparams, strict=False):
            param_grads[name] = grad
        if layer.type in INDEXED:  # it read integer indices: no gradient to check or pass on, whatever it returned
            input_grads[layer.index] = None
            continue
        for k, (j, dx, shape) in enumerate(zip(layer.inputs, dxs, layer.in_shapes, strict=True)):
            quantity = f"dE/dinput[{k}]" if layer.merge else "dE/dinput"
            dx = dx if isinstance(dx, ManualFailure) else \
                _wrong_shape(str(layer), quantity, dx, (spec.batch_size, *shape)) or dx
            grads[j] = _add(grads[j], dx, accumulate)
    return loss_grad, input_grads, {name: param_grads[name] for name in spec.param_shapes()}


def _gradients(layer, returned, count):
    """A backward's result as a tuple; anything but a tuple or list (None, a bare array) a ManualFailure for each of
    the `count` gradients it owes, so that the comparison reports it."""
    if isinstance(returned, (tuple, list)):
        return tuple(unusable(grad, f"{layer}'s backward") or grad for grad in returned)
    failure = ManualFailure(f"{layer}'s backward returned {type(returned).__name__}, needs a tuple of gradients")
    return (failure,) * count


def _wrong_shape(where, quantity, grad, shape):
    """A ManualFailure for every quantity below `where` when its gradient is not numbers of `shape`, else None."""
    broken = unusable(grad, f"{where}'s backward ({quantity})")
    if broken or np.shape(grad) == shape:
        return broken
    return ManualFailure(f"not computed: {where}'s backward returned {quantity} of shape {np.shape(grad)}, "
                         f"needs {shape}")


def run(spec, params, x, target, layer_backward=None, layer_forward=None, accumulate=None, masks=None):
    """Forward, loss and backward by hand -> Backprop; ``layer_forward`` and ``masks`` as in forward, its "loss"
    entry a replacement loss forward(pred, target, reduction) -> (E, cache); ``accumulate`` as in backward.

    The inputs are not checked here: netdesc.inputs.check_inputs checks them once, at the boundary (train, and
    crosscheck's subjects when they draw them)."""
    outputs, caches = forward(spec, params, x, layer_forward, masks=masks)
    loss_forward = (layer_forward or {}).get("loss", LOSS[spec.loss.type][0])
    E, loss_cache = loss_forward(outputs[-1], target, spec.loss.reduction, **loss_options(spec))
    loss_grad, input_grads, param_grads = backward(spec, caches, loss_cache, layer_backward, accumulate)
    return Backprop(outputs, E, loss_grad, input_grads, param_grads)


def train(spec, params, x, target, steps=None, layer_backward=None, layer_forward=None, optimizer_step=None,
          accumulate=None, scheduler=None, running_stats=None, masks=None):
    """`steps` (default: the description's) steps of its optimizer on one batch, through manual.optim
    -> (E before each step, shape (steps,), final params and the batch norms' running statistics, named as
    torch's buffers "<i>.running_mean", "<i>.running_var"). ``optimizer_step`` replaces the optimizer's step
    (manual.optim.sgd_step, adam_step, ...: same signature), ``scheduler`` its scheduler's function (step_lr,
    cosine_lr), ``running_stats`` manual.functional.batch_norm_running_stats, the hooks of run pass through;
    ``masks(step, N)`` gives the dropout masks of each step (default: netdesc.inputs.seeded_masks from seed 0).
    The inputs are checked here, once, not on every step."""
    check_inputs(spec, params, x, target)
    steps = spec.optimizer.steps if steps is None else check_positive_int("steps", steps)
    kept = {}
    done = list(training(spec, params, itertools.repeat((x, target), steps), layer_backward, layer_forward,
                         optimizer_step, accumulate, scheduler, running_stats, kept, masks))
    return np.stack([E for E, _, _ in done]), done[-1][2] | kept


def settings_at(optimizer, epoch, scheduler=None):
    """The settings of an optimizer's step after `epoch` steps of its scheduler (netdesc.description.Optimizer):
    its lr from the scheduler (manual.optim.SCHEDULERS, or `scheduler` in its place), the rest as described."""
    s = optimizer.scheduler
    if s is None:
        return optimizer.settings()
    lr = (scheduler or optim.SCHEDULERS[s.type])(optimizer.lr, epoch, **s.options)
    return optimizer.settings() | {"lr": lr}


def training(spec, params, batches, layer_backward=None, layer_forward=None, optimizer_step=None, accumulate=None,
             scheduler=None, running_stats=None, buffers=None, masks=None):
    """One step of the description's optimizer per (x, target) of `batches`, its state kept throughout, step t
    (from 0) at the learning rate after t steps of its scheduler -> yields (E before the step, the parameter
    gradients, the params after it). The hooks are train's; a dict `buffers` is kept holding the batch norms'
    running statistics after each step, which start from what it holds (empty: torch's 0 and 1); masks(step, N) ->
    the dropout masks of step t (train's default). Nothing is checked here, on every step (train checks its batch
    once, crosscheck.train its data set)."""
    step = optimizer_step or optim.OPTIMIZER_STEPS[spec.optimizer.type]
    masks = masks or seeded_masks(spec)
    state, buffers = {}, {} if buffers is None else buffers
    for epoch, (x, target) in enumerate(batches):
        result = run(spec, params, x, target, layer_backward, layer_forward, accumulate, masks(epoch, len(x)))
        dtype = params["0.weight"].dtype if spec.indexed else x.dtype  # indices: the embedding's dtype
        buffers.update(updated_buffers(spec, x, result.outputs, buffers or initial_buffers(spec, dtype),
                                       running_stats))
        params, state = step(params, result.param_grads, state, **settings_at(spec.optimizer, epoch, scheduler))
        yield result.loss, result.param_grads, params


def initial_buffers(spec, dtype):
    """Every batch norm's running statistics before the first step, as torch starts its buffers: mean 0, variance 1
    -> {"<i>.running_mean": (C,), "<i>.running_var": (C,)}."""
    buffers = {}
    for layer in spec.layers:
        if layer.type in BATCH_NORMS:
            buffers[f"{layer.index}.running_mean"] = np.zeros(layer.in_shape[0], dtype)
            buffers[f"{layer.index}.running_var"] = np.ones(layer.in_shape[0], dtype)
    return buffers


def updated_buffers(spec, x, outputs, buffers, running_stats=None):
    """The running statistics after one training-mode forward (outputs: every layer's), each batch norm's from its
    own input, by manual.functional.batch_norm_running_stats or its replacement `running_stats` -> a new dict."""
    update, new = running_stats or F.batch_norm_running_stats, dict(buffers)
    for layer in spec.layers:
        if layer.type in BATCH_NORMS:
            i, j = layer.index, layer.inputs[0]
            new[f"{i}.running_mean"], new[f"{i}.running_var"] = update(
                x if j < 0 else outputs[j], buffers[f"{i}.running_mean"], buffers[f"{i}.running_var"],
                layer.options["momentum"])
    return new
