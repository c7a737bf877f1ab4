"""A described network's inputs: parameters and a batch drawn from a seed, and user-supplied ones checked against
the description (NumPy only). Both sides of a comparison get the same arrays from here."""

import math

import numpy as np

from netdesc.checks import InputError, check_float_array, check_labels, check_same_dtype, check_shape
from netdesc.description import ATTENTIONS, DROPOUTS, INDEXED, NORMALIZATIONS, RECURRENT


def init_params(spec, dtype=np.float64, seed=0):
    """conv and linear: torch's default initialization in law, weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in the weight's inputs per output (C*KH*KW or in). A normalization's gamma ~ U(0.5, 1.5) and beta ~
    U(-0.5, 0.5), never torch's 1 and 0: with gamma = 1 a backward that forgets gamma is right by accident.
    An embedding's table ~ N(0, 1), its padding_idx row zero, as torch's nn.Embedding starts it. A recurrent
    layer's every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), torch's law for nn.RNN, LSTM and GRU. Attention:
    attention_param's laws.
    -> {"<i>.weight": array, "<i>.bias": array} (a recurrent layer's "<i>.weight_ih_l0", ..., attention's under
    torch's names, "<i>.in_proj_weight", ...)."""
    rng = np.random.default_rng([seed, 0])
    params = {}
    for layer in spec.layers:
        shapes = layer.param_shapes()
        for kind, shape in shapes.items():
            if layer.type in ATTENTIONS:
                params[f"{layer.index}.{kind}"] = attention_param(kind, shapes, rng).astype(dtype)
                continue
            if layer.type in INDEXED:
                table = rng.normal(size=shape).astype(dtype)
                if layer.options["padding_idx"] is not None:
                    table[layer.options["padding_idx"]] = 0
                params[f"{layer.index}.{kind}"] = table
                continue
            if layer.type in NORMALIZATIONS:
                low = 0.5 if kind == "weight" else -0.5
                params[f"{layer.index}.{kind}"] = rng.uniform(low, low + 1, shape).astype(dtype)
                continue
            fan_in = layer.options["hidden_size"] if layer.type in RECURRENT else np.prod(shapes["weight"][1:])
            bound = 1 / np.sqrt(fan_in)
            params[f"{layer.index}.{kind}"] = rng.uniform(-bound, bound, shape).astype(dtype)
    return params


ATTENTION_BIAS = 0.1


def attention_param(kind, shapes, rng):
    """Parameter `kind` of a multihead_attention or transformer_encoder layer (shapes: the layer's param_shapes,
    torch's names) by torch's law, but the attention's biases: in_proj_weight xavier_uniform, U(-a, a) with
    a = sqrt(6 / (E + 3E)); a linear's weight and bias (out_proj, linear1, linear2) U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in its weight's inputs; the norms' gamma U(0.5, 1.5) and beta U(-0.5, 0.5), as the normalizations'. torch
    starts in_proj_bias and out_proj.bias at 0; here they are U(-0.1, 0.1): at 0 a backward that forgets a bias's
    share, or a forward that drops it, would pass by accident."""
    module, name = kind.rsplit(".", 1) if "." in kind else ("", kind)
    shape = shapes[kind]
    if name == "in_proj_weight":
        bound = np.sqrt(6 / (shape[0] + shape[1]))
    elif name == "in_proj_bias" or module.endswith("out_proj") and name == "bias":
        bound = ATTENTION_BIAS
    elif module.startswith("norm"):
        low = 0.5 if name == "weight" else -0.5
        return rng.uniform(low, low + 1, shape)
    else:  # out_proj.weight, linear1 and linear2
        bound = 1 / np.sqrt(shapes[f"{module}.weight"][1])
    return rng.uniform(-bound, bound, shape)


def random_batch(spec, dtype=np.float64, seed=0):
    """x ~ N(0, 1) of shape (N, C, H, W) (or a sequence's (N, T, F)), or for an embedding's indices (N, *input_shape)
    int64 in [0, V), the first index repeated (its gradient rows must add up) and the last the padding_idx if there
    is one; and a target: the description's labels or labels drawn in [0, classes) for softmax_cross_entropy and
    nll (int64, (N,), or (N, T) on a sequence's output (T, classes); with an ignore_index (nll's always,
    softmax_cross_entropy's when given) a quarter of them, at least one, set to it when there are two labels or
    more, the others drawn from the other classes: never every label ignored, where torch's mean is NaN), else
    values in [0, 1] shaped like the output."""
    rng = np.random.default_rng([seed, 1])
    N = spec.batch_size
    if spec.indexed:
        x = rng.integers(0, spec.vocabulary, size=(N, *spec.input_shape))
        x.flat[:2] = x.flat[0]
        padding = spec.layers[0].options["padding_idx"]
        if padding is not None and padding < spec.vocabulary:
            x.flat[-1] = padding
    else:
        x = rng.normal(size=(N, *spec.input_shape)).astype(dtype)
    if not spec.loss.classes:
        return x, rng.uniform(size=(N, *spec.output_shape)).astype(dtype)
    if spec.loss.labels is not None:
        return x, np.array(spec.loss.labels, dtype=np.int64)
    classes, ignore = spec.output_shape[-1], spec.loss.ignore_index
    ignoring = ignore is not None and N * math.prod(spec.label_shape) > 1
    if ignoring and 0 <= ignore < classes and classes > 1:  # the counted labels are drawn from the other classes
        labels = rng.integers(0, classes - 1, size=(N, *spec.label_shape))
        labels += labels >= ignore
    else:
        labels = rng.integers(0, classes, size=(N, *spec.label_shape))
    if ignoring:
        labels.flat[rng.permutation(labels.size)[:max(1, labels.size // 4)]] = ignore
    return x, labels


def dropout_masks(spec, N, seed, step):
    """The masks of the description's dropout layers at optimizer step `step` (from 0) of a run from `seed`, for a
    batch of N: True where an element is kept, with probability 1 - p, each layer's drawn from (seed, step, layer
    index) alone, so both sides and every rerun of a step get the same -> {layer index: bool (N, *in_shape)}."""
    return {layer.index: np.random.default_rng([seed, 2, step, layer.index]).random((N, *layer.in_shape))
            >= layer.options["p"] for layer in spec.layers if layer.type in DROPOUTS}


def seeded_masks(spec, seed=0):
    """(step, N) -> dropout_masks(spec, N, seed, step): the masks of every step of a run from `seed`."""
    return lambda step, N: dropout_masks(spec, N, seed, step)


def check_inputs(spec, params, x, target):
    """Check user-supplied parameters, input and target against the description, before any arithmetic."""
    expected = spec.param_shapes()
    if not isinstance(params, dict) or sorted(params) != sorted(expected):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise InputError(f"params: got {got}, needs exactly the parameters {sorted(expected)}")
    arrays = {name: check_float_array(name, params[name]) for name in expected}
    if spec.indexed:
        check_indices(spec, x)
    else:
        arrays["x"] = check_float_array("x", x)
    for name, shape in expected.items():
        check_shape(name, arrays[name], shape, "the description's layout")
    check_shape("x", x, (spec.batch_size, *spec.input_shape), "(batch_size, *input_shape)")
    if spec.loss.classes:
        per = "step of each sample" if spec.label_shape else "sample"
        check_labels(target, spec.output_shape[-1], (spec.batch_size, *spec.label_shape), f"one class label per {per}",
                     spec.loss.ignore_index)
    else:
        arrays["target"] = check_float_array("target", target)
        check_shape("target", target, (spec.batch_size, *spec.output_shape), "(batch_size, *the output shape)")
        if spec.loss.type.startswith("binary_cross_entropy") and np.any((target < 0) | (target > 1)):
            raise InputError(f"target: got values outside [0, 1] (min {target.min()}, max {target.max()}), "
                             "needs probabilities")
    check_same_dtype(**arrays)


def check_indices(spec, x):
    """An indexed description's input: an integer array of indices in [0, V), V its embeddings' vocabulary."""
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.integer):
        got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise InputError(f"x: got {got}, needs a NumPy array of integer indices (layer 0 is an embedding)")
    bad = np.argwhere((x < 0) | (x >= spec.vocabulary))
    if bad.size:
        at = tuple(int(i) for i in bad[0])
        raise InputError(f"x{list(at)}: got {x[at]}, needs an index in [0, {spec.vocabulary - 1}] (num_embeddings "
                         f"{spec.vocabulary})")
