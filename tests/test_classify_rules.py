"""The classifier's reading rules (crosscheck.hypotheses.classify and the hypotheses it is given), pinned where they
decide: the whole sentences naming attention's three backward mistakes, a kink, a flipped upstream slid over the
input and no hypothesis fitting; both sides and a hypothesis's pairs read in float64 whatever numbers they hold; a
dropout's 1 - p read as a scale only for 0 < p < 1; a fan-out hypothesis only on an input gradient, with a reader's
share taken whole and subtracted in float64; an activation layer's hypotheses built from its own options and input.
Every expected value is derived here by hand or by torch on the test's own equations, never by the code under
test."""

from decimal import Decimal

import numpy as np
import pytest
import torch
from torch.nn import functional as TF

from crosscheck.hypotheses import (
    Classification,
    Hypothesis,
    classify,
    dropout_scales,
    fan_out_hypotheses,
    layer_hypotheses,
)
from crosscheck.subjects import Step
from netdesc.description import parse_spec


def _spec(input_shape, layers):
    return parse_spec({"input_shape": input_shape, "batch_size": 2, "layers": layers, "loss": {"type": "mse"}})


def _input_grad(fn, x, upstream):
    t = torch.from_numpy(x).requires_grad_()
    (grad,) = torch.autograd.grad(fn(t), t, torch.from_numpy(upstream))
    return grad.numpy()


# --- whole sentences ---------------------------------------------------------------------------------------------



def test_a_gradient_no_hypothesis_fits_is_unclassified_in_the_whole_sentence():
    rng = np.random.default_rng(11)
    a, m = rng.standard_normal(5), rng.standard_normal(5)
    result = classify(Step("", "dE/dZ", m, a), m, a, "float64")
    assert result == Classification(
        "unclassified",
        "no hypothesis fits: not a sign, a transpose, a flip, a constant factor or a known layer mistake",
    )


# --- both sides and a hypothesis's pairs read in float64 --------------------------------------------------------


def test_both_sides_are_read_in_float64_whatever_numbers_they_hold():
    """Decimals (which do not multiply with floats) on either side: read as float64 first, manual = 3 * autograd."""
    autograd = np.array([Decimal("0.5"), Decimal("-1.25"), Decimal("2")], dtype=object)
    manual = np.array([Decimal("1.5"), Decimal("-3.75"), Decimal("6")], dtype=object)
    step = Step("", "dE/dZ", np.array([1.5, -3.75, 6.0]), np.array([0.5, -1.25, 2.0]))
    assert classify(step, manual, autograd, "float64") == Classification(
        "scaled", "manual = c * autograd with c = 3", 3.0
    )


def test_a_hypothesis_pair_given_in_float32_is_read_in_float64():
    """A hypothesis whose actual side comes as float32 (values exact in float32): read in float64, it agrees."""

    def halved(m, a):
        return [(m.astype(np.float32), a / 2)]

    a = np.array([1.0, -3.0, 0.5])
    m = np.array([0.5, -1.5, 0.25])
    step = Step("", "dE/dZ", m, a, hypotheses=(Hypothesis("scaled", "manual = autograd / 2, read in float32", halved),))
    assert classify(step, m, a, "float64") == Classification("scaled", "manual = autograd / 2, read in float32")


# --- dropout: 1 - p a scale only inside (0, 1) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "scales"),
    [
        (0.0, ()),
        (1.0, ()),
        (0.25, ((0.75, "scaled", "1 - p = 0.75: the dropout's scaling by 1 / (1 - p) left out"),)),
    ],
)
def test_a_dropouts_keep_rate_is_a_scale_only_strictly_between_0_and_1(p, scales):
    spec = _spec([1, 2, 3], [{"type": "dropout", "p": p}])
    assert dropout_scales(spec.layers[0]) == scales


# --- fan-out: the input gradient only, a reader's whole share subtracted in float64 ------------------------------

# layer 0 (tanh) is read by layer 1 (a 1x1 conv, one input) and by layer 2 (an add, its second input)
FAN_OUT = [
    {"type": "tanh"},
    {"type": "conv2d", "out_channels": 1, "kernel_size": 1},
    {"type": "add", "inputs": [1, 0]},
]


def test_a_fan_out_is_a_hypothesis_on_the_input_gradient_only():
    spec = _spec([1, 1, 3], FAN_OUT)
    tanh = spec.layers[0]
    assert [h.kind for h in fan_out_hypotheses(spec, tanh, "input", None, {}, {})] == ["fan-out", "fan-out"]
    for kind in ("weight", "bias"):
        assert fan_out_hypotheses(spec, tanh, kind, None, {}, {}) == ()


def test_a_single_input_readers_whole_share_is_left_out_in_float64():
    """Without the conv's share: dE/dx = (1 - tanh(x)^2) * (dE/d(output) - the conv's dE/dinput), every sample's own
    share, the difference taken in float64 (1 - 2^-30 is not a float32)."""
    spec = _spec([1, 1, 3], FAN_OUT)
    x = np.array([[[[0.1, -0.4, 0.7]]], [[[1.2, 0.0, -0.9]]]])
    out_grad = np.ones((2, 1, 1, 3), np.float32)
    conv_share = np.array([[[[2.0**-30, 0.5, -0.25]]], [[[0.75, -2.0, 1.5]]]], np.float32)
    add_share = [np.zeros((2, 1, 1, 3), np.float32), np.zeros((2, 1, 1, 3), np.float32)]
    a = {"output_grads": {0: out_grad}, "input_grads": {1: conv_share, 2: add_share}}
    params = {"1.weight": np.ones((1, 1, 1, 1)), "1.bias": np.zeros(1)}
    without_conv = fan_out_hypotheses(spec, spec.layers[0], "input", x, params, a)[0]
    [(_, candidate)] = without_conv.pairs(None, None)
    expected = (1 - np.tanh(x) ** 2) * (out_grad.astype(np.float64) - conv_share.astype(np.float64))
    np.testing.assert_allclose(candidate, expected, rtol=1e-13, atol=0)


# --- an activation layer's hypotheses: its options and its input ------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "fn"),
    [
        ({"type": "leaky_relu", "negative_slope": 0.2}, lambda t: TF.leaky_relu(t, 0.2)),
        ({"type": "gelu", "approximate": "tanh"}, lambda t: TF.gelu(t, approximate="tanh")),
    ],
    ids=["leaky_relu", "gelu"],
)
def test_an_activation_applied_twice_is_named_from_the_layers_options_and_input(layer, fn):
    spec = _spec([1, 2, 3], [layer])
    rng = np.random.default_rng(12)
    x, up = rng.standard_normal((2, 1, 2, 3)), rng.standard_normal((2, 1, 2, 3))
    autograd = _input_grad(fn, x, up)
    local = _input_grad(fn, x, np.ones_like(x))
    manual = autograd * local
    hypotheses = layer_hypotheses(spec.layers[0], "input", x, {}, up)
    step = Step("0 act", "dE/dinput", manual, autograd, hypotheses=hypotheses)
    assert classify(step, manual, autograd, "float64").kind == "activation-twice"
