"""Network descriptions: the schema, the shapes it infers, and every mistake named before any arithmetic."""

import copy
import json
import pathlib
import tomllib

import numpy as np
import pytest
import torch

from crosscheck import cli
from netdesc import InputError
from netdesc.description import LAYER_OPTIONS, LOSSES, load_spec, parse_spec, spec_from_json
from netdesc.inputs import check_inputs, init_params, random_batch

ROOT = pathlib.Path(__file__).resolve().parents[1]

BASE = {
    "input_shape": [1, 8, 8],
    "batch_size": 2,
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3},  # 8x8 -> 6x6
        {"type": "relu"},
        {"type": "max_pool2d", "kernel_size": 2},  # -> 3x3
        {"type": "flatten"},  # -> 18
        {"type": "linear", "out_features": 4},
    ],
    "loss": {"type": "softmax_cross_entropy"},
}


def test_lenet5_shapes_are_lenets():
    spec = load_spec(ROOT / "examples" / "lenet5.toml")
    assert [layer.out_shape for layer in spec.layers] == [
        (6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5), (400,),
        (120,), (120,), (84,), (84,), (10,),
    ]
    assert spec.param_shapes() == {
        "0.weight": (6, 1, 5, 5), "0.bias": (6,), "3.weight": (16, 6, 5, 5), "3.bias": (16,),
        "7.weight": (120, 400), "7.bias": (120,), "9.weight": (84, 120), "9.bias": (84,),
        "11.weight": (10, 84), "11.bias": (10,),
    }


def test_a_grouped_conv_has_torchs_weight_layout():
    """weight (F, C/groups, KH, KW); groups = the input's channels is depthwise."""
    layers = [{"type": "conv2d", "out_channels": 6, "kernel_size": 3, "groups": 2, "padding": 1},
              {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "groups": 6, "bias": False},
              {"type": "flatten"}, {"type": "linear", "out_features": 2}]
    spec = parse_spec({"input_shape": [4, 5, 5], "layers": layers, "loss": {"type": "mse"}})
    assert spec.param_shapes() == {"0.weight": (6, 2, 3, 3), "0.bias": (6,), "1.weight": (6, 1, 3, 3),
                                   "3.weight": (2, 54), "3.bias": (2,)}
    assert [layer.out_shape for layer in spec.layers[:2]] == [(6, 5, 5), (6, 3, 3)]


def test_a_transposed_conv_has_torchs_output_size_and_layout():
    """OH = (H - 1)*stride - 2*padding + dilation*(KH - 1) + output_padding + 1 (torch's, its module's own output
    below); weight (C_in, out_channels, KH, KW)."""
    layer = {"type": "conv_transpose2d", "out_channels": 3, "kernel_size": [3, 2], "stride": [2, 3],
             "padding": 1, "output_padding": [1, 2], "dilation": [1, 2]}
    spec = parse_spec({"input_shape": [2, 4, 5], "layers": [layer, {"type": "flatten"}], "loss": {"type": "mse"}})
    module = torch.nn.ConvTranspose2d(2, 3, (3, 2), (2, 3), 1, (1, 2), dilation=(1, 2))
    assert spec.layers[0].out_shape == tuple(module(torch.zeros(1, 2, 4, 5)).shape[1:]) == (3, 8, 15)
    assert spec.param_shapes() == {"0.weight": tuple(module.weight.shape), "0.bias": (3,)}


def test_defaults_are_filled_in():
    spec = parse_spec(BASE, "base")
    assert spec.name == "base" and spec.batch_size == 2
    assert spec.loss.reduction == "mean" and spec.loss.labels is None
    conv, pool = spec.layers[0].options, spec.layers[2].options
    assert conv == {"out_channels": 2, "kernel_size": (3, 3), "stride": (1, 1), "padding": (0, 0),
                    "dilation": (1, 1), "bias": True, "in_channels": None, "groups": 1}
    assert pool["stride"] == (2, 2)  # a pool's stride is its kernel size
    o = spec.optimizer
    assert (o.type, o.steps, o.scheduler) == ("sgd", 20, None)
    assert o.settings() == {"lr": 0.01, "momentum": 0, "dampening": 0, "nesterov": False, "weight_decay": 0}
    assert str(spec.layers[4]) == "layer 4 (linear)"


def test_normalization_layers_have_torchs_parameters_drawn_at_random():
    """gamma (weight) and beta (bias) per channel, layer norm's over its normalized_shape (default: the whole sample);
    drawn from the seed, never torch's 1 and 0, with conv and linear keeping torch's law."""
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "batch_norm2d"},
              {"type": "group_norm", "num_groups": 2, "affine": False}, {"type": "layer_norm"},
              {"type": "layer_norm", "normalized_shape": [8], "elementwise_affine": False}, {"type": "gelu"},
              {"type": "softmax", "dim": 2}, {"type": "flatten"}, {"type": "batch_norm1d"}, {"type": "silu"},
              {"type": "log_softmax"}]
    spec = parse_spec(_with(["layers"], layers) | {"input_shape": [1, 8, 8]})
    assert spec.layers[3].options["normalized_shape"] == (4, 8, 8)
    assert spec.param_shapes() == {"0.weight": (4, 1, 3, 3), "0.bias": (4,), "1.weight": (4,), "1.bias": (4,),
                                   "3.weight": (4, 8, 8), "3.bias": (4, 8, 8), "8.weight": (256,), "8.bias": (256,)}
    params = init_params(spec, seed=3)
    for index in (1, 3, 8):
        gamma, beta = params[f"{index}.weight"], params[f"{index}.bias"]
        assert 0.5 <= gamma.min() and gamma.max() <= 1.5 and np.unique(gamma).size == gamma.size, index
        assert -0.5 <= beta.min() and beta.max() <= 0.5 and np.unique(beta).size == beta.size, index
    assert np.abs(params["0.weight"]).max() <= 1 / 3 and np.abs(params["0.weight"]).max() > 0.25  # U(-1/3, 1/3)


def test_conv_output_size_follows_torchs_formula():
    # H = 9, kernel 3, dilation 2 (span 5), padding 1, stride 2: floor((9 + 2 - 5) / 2) + 1 = 4; W = 7 with
    # kernel 2 (span 3), padding 0, stride 3: floor((7 - 3) / 3) + 1 = 2.
    spec = parse_spec(BASE | {"input_shape": [2, 9, 7], "layers": [
        {"type": "conv2d", "out_channels": 5, "kernel_size": [3, 2], "dilation": 2, "padding": [1, 0],
         "stride": [2, 3], "bias": False},
        {"type": "flatten"},
    ]})
    assert spec.layers[0].out_shape == (5, 4, 2)
    assert spec.param_shapes() == {"0.weight": (5, 2, 3, 2)}


def test_toml_and_json_of_one_description_are_one_spec(tmp_path):
    toml_spec = load_spec(ROOT / "examples" / "small3conv.toml")
    data = tomllib.loads((ROOT / "examples" / "small3conv.toml").read_text())
    (tmp_path / "small3conv.json").write_text(json.dumps(data))
    assert load_spec(tmp_path / "small3conv.json") == toml_spec
    assert spec_from_json(json.dumps(data)) == toml_spec


def _changed(base, path, value):
    """A copy of the description `base` with the item at `path` (keys and indices) set to `value`, or deleted if
    value is DELETE."""
    data = copy.deepcopy(base)
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


def _with(path, value):
    """A copy of BASE changed at `path` (_changed)."""
    return _changed(BASE, path, value)


DELETE = object()
# integer indices in, log-probabilities out: the smallest text classifier
TEXT = {
    "input_shape": [4],
    "batch_size": 3,
    "layers": [{"type": "embedding", "num_embeddings": 5, "embedding_dim": 2}, {"type": "flatten"},
               {"type": "linear", "out_features": 3}, {"type": "log_softmax"}],
    "loss": {"type": "nll"},
}


# a sequence (T, F) = (3, 4): a linear on every step, a loss over every step's classes
SEQUENCE = {
    "input_shape": [3, 4],
    "batch_size": 2,
    "layers": [{"type": "linear", "out_features": 3}, {"type": "sequence_pool"}, {"type": "linear", "out_features": 2}],
    "loss": {"type": "mse"},
}
SEQUENCE_LABELS = {"input_shape": [3, 4], "batch_size": 2, "layers": [{"type": "linear", "out_features": 3}],
                   "loss": {"type": "softmax_cross_entropy", "ignore_index": -100}}


def _sequence(path, value):
    """A copy of SEQUENCE (a "mode" path) or SEQUENCE_LABELS (a "loss" path) changed at `path`."""
    return _changed(SEQUENCE_LABELS if path[0] == "loss" else SEQUENCE, path, value)


def _text(path, value):
    """A copy of TEXT changed at `path`."""
    return _changed(TEXT, path, value)


TYPES = ", ".join(LAYER_OPTIONS)

NORMALIZATION_CASES = {"group-norm-groups", "group-norm-without-groups", "layer-norm-shape", "layer-norm-shape-text",
                       "layer-norm-eps", "layer-norm-affine", "batch-norm-momentum", "batch-norm-affine",
                       "batch-norm1d-on-images", "batch-norm2d-on-features", "batch-norm-one-value-per-channel",
                       "gelu-approximate", "softmax-dim", "log-softmax-dim"}
BAD_DESCRIPTIONS = [
    # (id, description, the message it must give)
    ("unknown-layer-type", _with(["layers", 1, "type"], "swish"),
     f"layer 1: unknown type 'swish'; known types: {TYPES}"),
    ("layer-without-type", _with(["layers", 1], {"kind": "relu"}), "layer 1: unknown type None; known types: conv2d"),
    ("conv-groups-not-dividing", _with(["layers", 0, "groups"], 2),
     "layer 0 (conv2d): groups: got 2, needs a divisor of both the 1 channels of its input (1, 8, 8) and its "
     "out_channels 2"),
    ("conv-groups-zero", _with(["layers", 0, "groups"], 0), "layer 0 (conv2d): groups: got 0, needs an integer >= 1"),
    ("adaptive-pool-size", _with(["layers", 2], {"type": "adaptive_avg_pool2d", "output_size": [2, 0]}),
     "layer 2 (adaptive_avg_pool2d): output_size: got [2, 0], needs an integer >= 1 or a pair [h, w] of them"),
    ("adaptive-pool-without-size", _with(["layers", 2], {"type": "adaptive_avg_pool2d"}),
     "layer 2 (adaptive_avg_pool2d): missing required option 'output_size'"),
    ("adaptive-pool-after-flatten", _with(["layers", 4], {"type": "adaptive_avg_pool2d", "output_size": 1}),
     "layer 4 (adaptive_avg_pool2d): got an input of shape (18,) per sample, needs an image (C, H, W)"),
    ("transposed-output-padding", _with(["layers", 0], {"type": "conv_transpose2d", "out_channels": 2,
                                                         "kernel_size": 3, "stride": 2, "output_padding": [1, 2]}),
     "layer 0 (conv_transpose2d): output_padding: got [1, 2], needs each smaller than the stride [2, 2] or the "
     "dilation [1, 1] (torch's rule)"),
    ("transposed-empty", _with(["layers", 0], {"type": "conv_transpose2d", "out_channels": 2, "kernel_size": 1,
                                                "padding": 4}),
     "layer 0 (conv_transpose2d): output would be empty (0x0): padding [4, 4] crops more than the input (1, 8, 8) "
     "spreads to"),
    ("transposed-in-channels", _with(["layers", 0], {"type": "conv_transpose2d", "out_channels": 2,
                                                      "kernel_size": 3, "in_channels": 2}),
     "layer 0 (conv_transpose2d): in_channels: got 2, but its input (1, 8, 8) has 1 channels"),
    ("layer-not-a-table", _with(["layers", 1], "relu"), "layer 1: got str 'relu', needs a table"),
    ("unknown-option", _with(["layers", 0, "strides"], 2),
     "layer 0 (conv2d): unknown option 'strides'; known options: out_channels, kernel_size, stride, padding, "
     "dilation, bias, in_channels, groups"),
    ("option-of-an-optionless-layer", _with(["layers", 1, "inplace"], True),
     "layer 1 (relu): unknown option 'inplace'; known options: none"),
    ("missing-kernel-size", _with(["layers", 0, "kernel_size"], DELETE),
     "layer 0 (conv2d): missing required option 'kernel_size'"),
    ("missing-out-features", _with(["layers", 4, "out_features"], DELETE),
     "layer 4 (linear): missing required option 'out_features'"),
    ("empty-conv-output", _with(["layers", 0, "kernel_size"], 9),
     "layer 0 (conv2d): output would be empty (0x0): the input (1, 8, 8) padded to (8, 8) is smaller than the "
     "(dilated) kernel (9, 9)"),
    ("empty-conv-output-by-dilation", _with(["layers", 0, "dilation"], [1, 4]),
     "layer 0 (conv2d): output would be empty (6x0)"),
    ("empty-pool-output", _with(["layers", 2, "kernel_size"], 7),
     "layer 2 (max_pool2d): output would be empty (0x0): the input (2, 6, 6) padded to (6, 6)"),
    ("channels-do-not-match", _with(["layers", 0, "in_channels"], 3),
     "layer 0 (conv2d): in_channels: got 3, but its input (1, 8, 8) has 1 channels"),
    ("features-do-not-match", _with(["layers", 4, "in_features"], 16),
     "layer 4 (linear): in_features: got 16, but its input (18,) has 18 features (its last axis)"),
    ("logits-of-an-image", _with(["layers", 3], {"type": "tanh"}),  # a linear applies to the last axis: (2, 3, 4)
     "loss (softmax_cross_entropy): got layer 4 (linear)'s output of shape (2, 3, 4) per sample, needs flat logits "
     "(classes,) or a sequence's (T, classes)"),
    ("sequence-pool-on-an-image", _with(["layers", 3], {"type": "sequence_pool"}),
     "layer 3 (sequence_pool): got an input of shape (2, 3, 3) per sample, needs a sequence (T, F)"),
    ("sequence-pool-mode", _sequence(["layers", 1, "mode"], "first"),
     "layer 1 (sequence_pool): mode: got 'first', needs \"last\" or \"mean\""),
    ("sequence-labels-per-sample", _sequence(["loss", "labels"], [0, 1]),
     "loss (softmax_cross_entropy): labels: got [0, 1], needs a list of batch_size = 2 lists of T = 3 class labels "
     "(one per step)"),
    ("sequence-label-out-of-range", _sequence(["loss", "labels"], [[0, 1, 2], [3, -100, 0]]),
     "loss (softmax_cross_entropy): labels[1][0]: got 3, needs a class in [0, 2] or ignore_index -100"),
    ("sequence-ignore-index-text", _sequence(["loss", "ignore_index"], 1.5),
     "loss (softmax_cross_entropy): ignore_index: got 1.5, needs an integer (a class, or one outside them such as "
     "torch's -100)"),
    ("conv-after-flatten", _with(["layers", 4], {"type": "conv2d", "out_channels": 1, "kernel_size": 1}),
     "layer 4 (conv2d): got an input of shape (18,) per sample, needs an image (C, H, W)"),
    ("pool-after-flatten", _with(["layers", 4], {"type": "avg_pool2d", "kernel_size": 1}),
     "layer 4 (avg_pool2d): got an input of shape (18,) per sample, needs an image (C, H, W)"),
    ("zero-stride", _with(["layers", 0, "stride"], 0),
     "layer 0 (conv2d): stride: got 0, needs an integer >= 1 or a pair [h, w] of them"),
    ("negative-padding", _with(["layers", 0, "padding"], [1, -1]),
     "layer 0 (conv2d): padding: got [1, -1], needs an integer >= 0 or a pair [h, w] of them"),
    ("kernel-of-three-sizes", _with(["layers", 0, "kernel_size"], [3, 3, 3]),
     "layer 0 (conv2d): kernel_size: got [3, 3, 3], needs an integer >= 1"),
    ("kernel-as-text", _with(["layers", 0, "kernel_size"], "3"), "layer 0 (conv2d): kernel_size: got '3'"),
    ("kernel-as-bool", _with(["layers", 0, "kernel_size"], True), "layer 0 (conv2d): kernel_size: got True"),
    ("fractional-channels", _with(["layers", 0, "out_channels"], 2.5),
     "layer 0 (conv2d): out_channels: got 2.5, needs an integer >= 1"),
    ("zero-channels", _with(["layers", 0, "out_channels"], 0),
     "layer 0 (conv2d): out_channels: got 0, needs an integer >= 1"),
    ("bias-as-text", _with(["layers", 4, "bias"], "yes"), "layer 4 (linear): bias: got 'yes', needs true or false"),
    ("slope-as-text", _with(["layers", 1], {"type": "leaky_relu", "negative_slope": "small"}),
     "layer 1 (leaky_relu): negative_slope: got 'small', needs a finite number"),
    ("slope-nan", _with(["layers", 1], {"type": "leaky_relu", "negative_slope": float("nan")}),
     "layer 1 (leaky_relu): negative_slope: got nan, needs a finite number"),
    ("pool-padding-over-half-the-kernel", _with(["layers", 2, "padding"], 2),
     "layer 2 (max_pool2d): padding: got [2, 2], needs at most half of kernel_size [2, 2] (torch's rule)"),
    ("add-of-two-shapes", _with(["layers", 2], {"type": "add", "inputs": [1, "input"]}),
     "layer 2 (add): got inputs of shapes (2, 6, 6), (1, 8, 8) per sample, needs one shape to add"),
    ("concat-of-two-sizes", _with(["layers", 2], {"type": "concat", "inputs": [0, "input"]}),
     "layer 2 (concat): got inputs of shapes (2, 6, 6), (1, 8, 8) per sample, needs equal sizes on every axis but "
     "dim 0"),
    ("no-layers", _with(["layers"], []), "layers: got [], needs a non-empty list of layer tables"),
    ("layers-not-a-list", _with(["layers"], {"type": "relu"}), "layers: got {'type': 'relu'}, needs a non-empty list"),
    ("one-dimensional-input", _with(["input_shape"], [64]),
     "input_shape: got [64], needs [C, H, W] (an image) or [T, F] (a sequence), integers >= 1"),
    ("zero-sized-input", _with(["input_shape"], [1, 0, 8]), "input_shape: got [1, 0, 8], needs [C, H, W]"),
    ("input-as-text", _with(["input_shape"], "1x8x8"), "input_shape: got '1x8x8', needs [C, H, W]"),
    ("zero-batch", _with(["batch_size"], 0), "batch_size: got 0, needs an integer >= 1"),
    ("boolean-batch", _with(["batch_size"], True), "batch_size: got True, needs an integer >= 1"),
    ("name-not-text", _with(["name"], 5), "name: got 5, needs a string"),
    ("unknown-top-level-key", _with(["optimiser"], {}),
     "description: unknown option 'optimiser'; known options: name, input_shape, batch_size, layers, loss, optimizer"),
    ("no-loss", _with(["loss"], DELETE), "description: missing required option 'loss'"),
    ("not-a-table", [BASE], "description: got list"),
    ("loss-not-a-table", _with(["loss"], "mse"), "loss: got str 'mse', needs a table"),
    ("unknown-loss", _with(["loss", "type"], "cross_entropy"),
     f"loss: unknown type 'cross_entropy'; known types: {', '.join(LOSSES)}"),
    ("bad-reduction", _with(["loss", "reduction"], "avg"),
     "loss (softmax_cross_entropy): reduction: got 'avg', needs one of sum, mean"),
    ("unknown-loss-option", _with(["loss", "weight"], [1, 2]),
     "loss (softmax_cross_entropy): unknown option 'weight'; known options: type, reduction, labels"),
    ("cross-entropy-on-an-image", _with(["layers"], BASE["layers"][:3]),
     "loss (softmax_cross_entropy): got layer 2 (max_pool2d)'s output of shape (2, 3, 3) per sample, "
     "needs flat logits (classes,)"),
    ("bce-without-sigmoid", _with(["loss", "type"], "binary_cross_entropy"),
     "loss (binary_cross_entropy): needs probabilities: the last layer must be a sigmoid, got layer 4 (linear)"),
    ("label-out-of-range", _with(["loss", "labels"], [3, 4]),
     "loss (softmax_cross_entropy): labels[1]: got 4, needs a class in [0, 3]"),
    ("negative-label", _with(["loss", "labels"], [-1, 0]),
     "loss (softmax_cross_entropy): labels[0]: got -1, needs a class in [0, 3]"),
    ("fractional-label", _with(["loss", "labels"], [1, 1.5]),
     "loss (softmax_cross_entropy): labels[1]: got 1.5, needs a class in [0, 3]"),
    ("too-few-labels", _with(["loss", "labels"], [1]),
     "loss (softmax_cross_entropy): labels: got [1], needs a list of batch_size = 2 class labels"),
    ("labels-for-mse", _with(["loss"], {"type": "mse", "labels": [0, 1]}),
     "loss (mse): labels: only softmax_cross_entropy and nll take labels; other losses draw targets from the seed"),
    ("negative-lr", _with(["optimizer"], {"lr": -0.1}), "optimizer: lr: got -0.1, needs a finite number > 0"),
    ("negative-momentum", _with(["optimizer"], {"momentum": -0.5}), "optimizer: momentum: got -0.5"),
    ("negative-weight-decay", _with(["optimizer"], {"weight_decay": -1}), "optimizer: weight_decay: got -1"),
    ("nesterov-without-momentum", _with(["optimizer"], {"nesterov": True}),
     "optimizer: nesterov: got True with momentum=0.0 and dampening=0.0, needs momentum > 0 and dampening = 0"),
    ("nesterov-as-text", _with(["optimizer"], {"nesterov": "yes"}), "optimizer: nesterov: got 'yes'"),
    ("zero-steps", _with(["optimizer"], {"steps": 0}), "optimizer: steps: got 0, needs an integer >= 1"),
    ("unknown-optimizer-option", _with(["optimizer"], {"betas": [0.9, 0.99]}),
     "optimizer: unknown option 'betas'; known options: lr, momentum, dampening, nesterov, weight_decay, steps, "
     "scheduler"),
    ("unknown-optimizer-type", _with(["optimizer"], {"type": "nadam"}),
     "optimizer: type: got 'nadam', needs one of sgd, adam, adamw, rmsprop, adagrad"),
    ("adam-beta-of-1", _with(["optimizer"], {"type": "adam", "betas": [0.9, 1]}),
     "optimizer: betas: got [0.9, 1], needs two numbers [beta1, beta2], each in [0, 1)"),
    ("unknown-scheduler", _with(["optimizer"], {"scheduler": {"type": "exponential"}}),
     "optimizer: scheduler: type: got 'exponential', needs one of step, cosine"),
    ("scheduler-without-step-size", _with(["optimizer"], {"scheduler": {"type": "step"}}),
     "optimizer: scheduler: missing required option 'step_size'"),
    ("scheduler-not-a-table", _with(["optimizer"], {"scheduler": "cosine"}),
     "optimizer: scheduler: got str 'cosine', needs a table"),
    ("optimizer-not-a-table", _with(["optimizer"], 0.1), "optimizer: got float 0.1, needs a table"),
    ("group-norm-groups", _with(["layers", 1], {"type": "group_norm", "num_groups": 3}),
     "layer 1 (group_norm): num_groups: got 3, needs a divisor of the 2 channels of its input (2, 6, 6)"),
    ("group-norm-without-groups", _with(["layers", 1], {"type": "group_norm"}),
     "layer 1 (group_norm): missing required option 'num_groups'"),
    ("layer-norm-shape", _with(["layers", 1], {"type": "layer_norm", "normalized_shape": [5, 6]}),
     "layer 1 (layer_norm): normalized_shape: got [5, 6], needs the trailing dims of its input (2, 6, 6) per sample"),
    ("layer-norm-shape-text", _with(["layers", 1], {"type": "layer_norm", "normalized_shape": "x"}),
     "layer 1 (layer_norm): normalized_shape: got 'x', needs an integer >= 1 or a list of them (trailing dims)"),
    ("layer-norm-eps", _with(["layers", 1], {"type": "layer_norm", "eps": 0}),
     "layer 1 (layer_norm): eps: got 0, needs a finite number > 0"),
    ("layer-norm-affine", _with(["layers", 1], {"type": "layer_norm", "elementwise_affine": 1}),
     "layer 1 (layer_norm): elementwise_affine: got 1, needs true or false"),
    ("batch-norm-momentum", _with(["layers", 1], {"type": "batch_norm2d", "momentum": 2}),
     "layer 1 (batch_norm2d): momentum: got 2, needs a number in [0, 1]"),
    ("batch-norm-affine", _with(["layers", 1], {"type": "batch_norm2d", "affine": "yes"}),
     "layer 1 (batch_norm2d): affine: got 'yes', needs true or false"),
    ("batch-norm1d-on-images", _with(["layers", 1], {"type": "batch_norm1d"}),
     "layer 1 (batch_norm1d): got an input of shape (2, 6, 6) per sample, needs (C,) or (C, L): batch_norm2d takes "
     "images"),
    ("batch-norm2d-on-features", _with(["layers", 4], {"type": "batch_norm2d"}),
     "layer 4 (batch_norm2d): got an input of shape (18,) per sample, needs an image (C, H, W)"),
    ("batch-norm-one-value-per-channel",
     _with(["layers"], [*BASE["layers"], {"type": "batch_norm1d"}]) | {"batch_size": 1},
     "layer 5 (batch_norm1d): got batch_size 1 and an input of shape (4,) per sample, one value per channel; needs "
     "more than one for the batch's statistics"),
    ("gelu-approximate", _with(["layers", 1], {"type": "gelu", "approximate": "erf"}),
     'layer 1 (gelu): approximate: got \'erf\', needs "none" or "tanh"'),
    ("softmax-dim", _with(["layers", 1], {"type": "softmax", "dim": 3}),
     "layer 1 (softmax): dim: got 3, needs one of the 3 axes of its input (2, 6, 6) per sample"),
    ("log-softmax-dim", _with(["layers", 1], {"type": "log_softmax", "dim": -1}),
     "layer 1 (log_softmax): dim: got -1, needs an integer >= 0"),
    ("embedding-without-dim", _text(["layers", 0], {"type": "embedding", "num_embeddings": 5}),
     "layer 0 (embedding): missing required option 'embedding_dim'"),
    ("embedding-padding-beyond-the-table", _text(["layers", 0, "padding_idx"], 5),
     "layer 0 (embedding): padding_idx: got 5, needs a row in [0, 4] (num_embeddings 5)"),
    ("embedding-negative-padding", _text(["layers", 0, "padding_idx"], -1),
     "layer 0 (embedding): padding_idx: got -1, needs an integer >= 0"),
    ("embedding-not-first", _with(["layers"], [*BASE["layers"], TEXT["layers"][0]]),
     "layer 5 (embedding): got it reading [4], needs to be layer 0 reading the network's input ('input'): an "
     "embedding reads integer indices"),
    ("indices-read-by-a-linear", _text(["layers", 2, "inputs"], ["input"]),
     "layer 2 (linear): got it reading the network's input, integer indices (layer 0 is an embedding), needs an "
     "embedding to read them"),
    ("indices-without-a-shape", _text(["input_shape"], []),
     "input_shape: got [], needs [L] (or more sizes), integers >= 1: the shape of the indices the embedding of "
     "layer 0 reads"),
    ("ignore-index-for-mse", _with(["loss"], {"type": "mse", "ignore_index": 0}),
     "loss (mse): ignore_index: got 0, but only softmax_cross_entropy and nll ignore a label"),
    ("nll-ignore-index-text", _text(["loss", "ignore_index"], "x"),
     "loss (nll): ignore_index: got 'x', needs an integer (a class, or one outside them such as torch's -100)"),
    ("dropout-p", _with(["layers", 1], {"type": "dropout", "p": 1.5}),
     "layer 1 (dropout): p: got 1.5, needs a number in [0, 1]"),
    ("nll-label-out-of-range", _text(["loss", "labels"], [0, -100, 3]),
     "loss (nll): labels[2]: got 3, needs a class in [0, 2] or ignore_index -100"),
    # attention (more in tests/test_attention.py): on a sequence (T, E), here the embedding's (4, 2)
    ("attention-on-an-image", _with(["layers", 1], {"type": "multihead_attention", "num_heads": 2}),
     "layer 1 (multihead_attention): got an input of shape (2, 6, 6) per sample, needs a sequence (T, E)"),
    ("encoder-heads", _text(["layers", 1], {"type": "transformer_encoder", "num_heads": 4, "dim_feedforward": 3}),
     "layer 1 (transformer_encoder): num_heads: got 4, needs a divisor of the 2 features E of its input (4, 2)"),
]
EMBEDDING_CASES = {"embedding-without-dim", "embedding-padding-beyond-the-table", "embedding-negative-padding",
                   "embedding-not-first", "indices-read-by-a-linear", "indices-without-a-shape",
                   "ignore-index-for-mse", "nll-ignore-index-text", "nll-label-out-of-range", "labels-for-mse",
                   "dropout-p", "logits-of-an-image", "sequence-pool-on-an-image", "sequence-pool-mode",
                   "sequence-labels-per-sample", "sequence-label-out-of-range", "sequence-ignore-index-text"}

# recurrent layers (issue 10): a sequence [T, F] into rnn, lstm or gru
RECURRENT_SEQUENCE = {"input_shape": [5, 3], "layers": [{"type": "lstm", "hidden_size": 4}, {"type": "flatten"},
                                              {"type": "linear", "out_features": 2}], "loss": {"type": "mse"}}


def _recurrent(path, value):
    """A copy of RECURRENT_SEQUENCE changed at `path`."""
    return _changed(RECURRENT_SEQUENCE, path, value)


RECURRENT_CASES = {"rnn-nonlinearity", "lstm-without-hidden-size", "gru-on-flat-features", "sequence-input-shape",
                   "lstm-no-layers"}
BAD_DESCRIPTIONS += [
    ("rnn-nonlinearity", _recurrent(["layers", 0], {"type": "rnn", "hidden_size": 4, "nonlinearity": "gelu"}),
     'layer 0 (rnn): nonlinearity: got \'gelu\', needs "tanh" or "relu"'),
    ("lstm-without-hidden-size", _recurrent(["layers", 0], {"type": "lstm", "num_layers": 2}),
     "layer 0 (lstm): missing required option 'hidden_size'"),
    ("lstm-no-layers", _recurrent(["layers", 0, "num_layers"], 0),
     "layer 0 (lstm): num_layers: got 0, needs an integer >= 1"),
    ("gru-on-flat-features", _recurrent(["layers", 2], {"type": "gru", "hidden_size": 2}),
     "layer 2 (gru): got an input of shape (20,) per sample, needs a sequence (T, F)"),
    ("sequence-input-shape", _recurrent(["input_shape"], [5]),
     "input_shape: got [5], needs [T, F], two integers >= 1: the sequence a recurrent or attention layer 0 reads"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_DESCRIPTIONS, ids=[c[0] for c in BAD_DESCRIPTIONS])
def test_bad_description_is_named(case, data, message):
    with pytest.raises(InputError) as info:
        parse_spec(data)
    assert str(info.value).startswith(message)
    if case in NORMALIZATION_CASES | EMBEDDING_CASES | RECURRENT_CASES:  # the new layers' messages are asserted whole
        assert str(info.value) == message


@pytest.mark.parametrize(("case", "data", "message"), BAD_DESCRIPTIONS, ids=[c[0] for c in BAD_DESCRIPTIONS])
def test_verify_exits_2_with_one_line_on_a_bad_description(case, data, message, capsys):
    assert cli.main(["verify", "--spec-json", json.dumps(data)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"crosscheck: error: {message}")
    assert captured.err.count("\n") == 1


def test_every_layer_type_and_loss_has_a_bad_description():
    named = " ".join(message for _, _, message in BAD_DESCRIPTIONS)
    for kind in set(LAYER_OPTIONS) - {"sigmoid", "flatten", "tanh", "silu"}:  # the option-less ones share relu's case
        assert f"({kind})" in named, kind
    assert "loss (" in named and "optimizer: " in named


BAD_FILES = [
    ("missing.toml", None, "missing.toml: cannot read: No such file or directory"),
    ("net.yaml", "input_shape: [1, 8, 8]", "net.yaml: got a .yaml file, needs a .toml or .json description"),
    ("net", "{}", "net: got a suffix-less file, needs a .toml or .json description"),
    ("net.toml", "input_shape = [1, 8, 8", "net.toml: not valid TOML: "),
    ("net.json", '{"input_shape": [1, 8, 8],}', "net.json: not valid JSON: "),
    ("latin1.toml", b"name = '\xe9'", "latin1.toml: not valid TOML: 'utf-8' codec can't decode"),
    ("bad.toml", 'input_shape = [1, 8, 8]\nlayers = [{type = "relu"}]\n[loss]\ntype = "hinge"',
     "bad.toml: loss: unknown type 'hinge'"),
]


@pytest.mark.parametrize(("filename", "content", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_named(tmp_path, filename, content, message, capsys):
    path = tmp_path / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{tmp_path}/{message}")
    assert cli.main(["verify", "--spec", str(path)]) == 2
    assert capsys.readouterr().err == f"crosscheck: error: {info.value}\n"


def test_bad_json_text_is_named():
    with pytest.raises(InputError, match=r"^spec JSON: not valid JSON: Expecting value: line 1 column 1"):
        spec_from_json("input_shape = [1, 8, 8]")


def test_a_named_description_keeps_its_name(tmp_path):
    path = tmp_path / "file.json"
    path.write_text(json.dumps(BASE | {"name": "mine"}))
    assert load_spec(path).name == "mine"
    assert load_spec(ROOT / "examples" / "slides.toml").name == "slides"


def test_an_embedding_reads_indices_and_nll_ignores_labels():
    """The batch holds indices in [0, V) with the first repeated and the padding index last, int64; a quarter of
    the labels (at least one) is ignore_index; the embedding's table starts N(0, 1), its padding row zero."""
    spec = parse_spec(_text(["layers", 0, "padding_idx"], 4) | {"batch_size": 4})
    assert spec.indexed and spec.vocabulary == 5
    assert [layer.out_shape for layer in spec.layers] == [(4, 2), (8,), (3,), (3,)]
    assert spec.param_shapes()["0.weight"] == (5, 2) and spec.loss.ignore_index == -100
    x, labels = random_batch(spec, np.float32, seed=7)
    assert x.dtype == np.int64 and x.shape == (4, 4) and x.flat[0] == x.flat[1] and x.flat[-1] == 4
    assert x.min() >= 0 and x.max() < 5
    assert labels.shape == (4,) and (labels == -100).sum() == 1 and ((labels >= 0) & (labels < 3)).sum() == 3
    params = init_params(spec, np.float32, seed=7)
    assert params["0.weight"].dtype == np.float32 and not params["0.weight"][4].any() and params["0.weight"].any()
    check_inputs(spec, params, x, labels)
    assert not parse_spec(BASE).indexed


@pytest.mark.parametrize(("x", "labels", "message"), [
    (np.zeros((3, 4)), np.array([0, 1, 2]), "x: got dtype float64, needs a NumPy array of integer indices (layer 0 "
     "is an embedding)"),
    (np.array([[0, 1, 2, 5]] * 3), np.array([0, 1, 2]), "x[0, 3]: got 5, needs an index in [0, 4] (num_embeddings 5)"),
    (np.zeros((3, 3), np.int64), np.array([0, 1, 2]), "x: got shape (3, 3), needs (3, 4) ((batch_size, *input_shape))"),
    (np.zeros((3, 4), np.int64), np.array([0, -1, 2]), "labels[1]: got -1, needs a class in [0, 2] or ignore_index "
     "-100"),
])
def test_bad_indices_and_labels_are_named(x, labels, message):
    spec = parse_spec(TEXT)
    with pytest.raises(InputError) as info:
        check_inputs(spec, init_params(spec), x, labels)
    assert str(info.value) == message


@pytest.mark.parametrize("input_shape, layer, message", [
    ([1, 6, 6], {"type": "conv2d", "out_channels": None, "kernel_size": 3},
     "layer 0 (conv2d): out_channels: got None, needs an integer >= 1"),
    ([1, 6, 6], {"type": "max_pool2d", "kernel_size": None},
     "layer 0 (max_pool2d): kernel_size: got None, needs an integer >= 1 or a pair [h, w] of them"),
    ([1, 2, 3], {"type": "linear", "out_features": None},
     "layer 0 (linear): out_features: got None, needs an integer >= 1"),
    ([4, 6], {"type": "lstm", "hidden_size": None}, "layer 0 (lstm): hidden_size: got None, needs an integer >= 1"),
    ([4, 6], {"type": "transformer_encoder", "num_heads": 2, "dim_feedforward": None},
     "layer 0 (transformer_encoder): dim_feedforward: got None, needs an integer >= 1"),
], ids=["conv-out-channels", "pool-kernel", "linear-out-features", "lstm-hidden-size", "encoder-feedforward"])
def test_a_required_option_given_as_null_is_refused_like_any_other_wrong_value(input_shape, layer, message):
    """JSON's null for an option with a default means that default (a pool's stride, a linear's in_features); a
    required option has none, and null there is a wrong value, never an out_shape of (None,)."""
    with pytest.raises(InputError) as raised_error:
        parse_spec({"input_shape": input_shape, "layers": [layer], "loss": {"type": "mse"}}, "x")
    assert str(raised_error.value) == message


def test_null_for_an_option_with_a_default_takes_the_default():
    spec = parse_spec({"input_shape": [1, 6, 6], "layers": [{"type": "max_pool2d", "kernel_size": 2, "stride": None},
                                                            {"type": "flatten"},
                                                            {"type": "linear", "out_features": 2, "in_features": None}],
                       "loss": {"type": "mse"}}, "x")
    assert spec.layers[0].out_shape == (1, 3, 3) and spec.layers[2].out_shape == (2,)
