"""manual/functional.py against torch autograd: every registry case, seed and dtype; then the conventions
at non-differentiable points, the bad-input checks, and proof that a wrong gradient is reported."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from layer_cases import LAYER_CASES, conv2d
from runs import SEED_BASE

from crosscheck import check_layer
from crosscheck.compare import assert_close
from manual import functional as M
from netdesc import InputError

SEEDS = range(SEED_BASE, SEED_BASE + 3)
DTYPES = ["float64", "float32"]


@pytest.mark.parametrize(
    ("case", "seed", "dtype"),
    [pytest.param(c, s, d, id=f"{c}-seed{s}-{d}") for c in LAYER_CASES for s in SEEDS for d in DTYPES],
)
def test_layer_matches_torch(case, seed, dtype):
    """The forward value and the gradient of every differentiable input against torch.autograd.grad with a random
    dout, through the public check_layer: the API users get is the API the project trusts."""
    draws = [case.draw[i] if i < len(case.draw) else None for i in range(len(case.shapes))]
    result = check_layer(case.forward, case.backward, case.torch_fn, case.shapes, seeds=(seed,), dtypes=(dtype,),
                         kwargs=case.options, differentiable=case.differentiable or None, input_factory=draws)
    assert result.passed, result.report(failures_only=True)
    # compared: the output and each differentiable input's gradient, nothing skipped
    wanted = [i for i in range(len(case.shapes)) if case.wants_grad(i)]
    assert [row.quantity for row in result.rows][0] == "out" and len(result.rows) == 1 + len(wanted)


def test_registry_covers_the_degenerate_shapes():
    convs = [c for c in LAYER_CASES if c.name == "conv2d"]
    opts = [c.options for c in convs]
    assert any(c.shapes[0][0] == 1 and c.shapes[0][1] == 1 for c in convs)  # batch 1, one channel
    assert any(c.shapes[1][2:] == (1, 1) for c in convs)  # 1x1 kernel
    assert any(o.get("flip") for o in opts) and any(len(c.shapes) == 2 for c in convs)  # flip, no bias
    assert any(o.get("dilation", 1) not in (1, (1, 1)) for o in opts)
    assert any(o.get("stride", 1) == 3 and c.shapes[1][2:] == (2, 2) for c, o in zip(convs, opts, strict=True))
    # a kernel as large as the padded input: a 1x1 output
    assert any(
        c.shapes[0][2] + 2 * o.get("padding", 0) == c.shapes[1][2] and c.shapes[0][3] + 2 * o.get("padding", 0)
        == c.shapes[1][3] for c, o in zip(convs, opts, strict=True)
    )
    merges = [c for c in LAYER_CASES if c.name in ("add", "concat")]
    assert {c.name for c in merges if len(c.shapes) == 3} == {"add", "concat"}  # three inputs of each
    assert {c.name for c in merges if c.shapes[0] == (1, 1, 1, 1)} == {"add", "concat"}
    assert {c.options.get("dim", 0) for c in merges if c.name == "concat"} == {0, 1, 2}
    assert [c for c in merges if c.name == "add"][1].input_names == ["xs[0]", "xs[1]", "xs[2]"]
    names = {c.name for c in LAYER_CASES}
    assert names >= {"add", "concat", "conv2d", "max_pool2d", "avg_pool2d", "tanh", "relu", "leaky_relu", "sigmoid",
                     "flatten", "linear", "half_squared_error", "mse", "bce", "bce_with_logits",
                     "softmax_cross_entropy"}
    assert str(LAYER_CASES[0]) == "conv2d-2x3x7x5_4x3x3x2_4-s2-p1-d1"


# --- conventions at non-differentiable points, verified against torch ----------------------------

def _torch_grad(fn, x, dout, **kwargs):
    t = torch.from_numpy(x).requires_grad_()
    return torch.autograd.grad(fn(t, **kwargs), t, torch.from_numpy(dout))[0].numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_gradient_at_zero_is_zero_as_torch(dtype):
    x = np.array([-2.0, -0.0, 0.0, 3.0], dtype=dtype)
    dout = np.array([5.0, 7.0, 11.0, 13.0], dtype=dtype)
    (dx,) = M.relu_backward(dout, M.relu_forward(x)[1])
    np.testing.assert_array_equal(dx, np.array([0.0, 0.0, 0.0, 13.0], dtype=dtype))
    np.testing.assert_array_equal(dx, _torch_grad(torch.relu, x, dout))


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_gradient_at_zero_is_the_slope_as_torch(dtype):
    x = np.array([-2.0, -0.0, 0.0, 3.0], dtype=dtype)
    dout = np.array([5.0, 7.0, 11.0, 13.0], dtype=dtype)
    (dx,) = M.leaky_relu_backward(dout, M.leaky_relu_forward(x, 0.25)[1])
    np.testing.assert_array_equal(dx, np.array([1.25, 1.75, 2.75, 13.0], dtype=dtype))
    np.testing.assert_array_equal(dx, _torch_grad(F.leaky_relu, x, dout, negative_slope=0.25))


def _max_pool_grad(x, dout, **kwargs):
    return M.max_pool2d_backward(dout, M.max_pool2d_forward(x, **kwargs)[1])[0]


def test_max_pool_tie_goes_to_the_first_maximum_in_row_major_order():
    # Every element ties: each 2x2 window sends its gradient to its top-left element.
    x = np.zeros((1, 1, 2, 4))
    dout = np.array([[[[3.0, 5.0]]]])
    dx = _max_pool_grad(x, dout, kernel_size=2)
    np.testing.assert_array_equal(dx, [[[[3.0, 0.0, 5.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])
    np.testing.assert_array_equal(dx, _torch_grad(F.max_pool2d, x, dout, kernel_size=2))
    # A tie between the second and third element of the window (row-major): the second wins.
    x = np.array([[[[0.0, 9.0], [9.0, 1.0]]]])
    dx = _max_pool_grad(x, np.array([[[[4.0]]]]), kernel_size=2)
    np.testing.assert_array_equal(dx, [[[[0.0, 4.0], [0.0, 0.0]]]])
    np.testing.assert_array_equal(dx, _torch_grad(F.max_pool2d, x, np.array([[[[4.0]]]]), kernel_size=2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_accumulate_over_overlapping_windows_as_torch(dtype):
    # A constant 4x4 image, 2x2 windows at stride 1: window (i, j) picks pixel (i, j), each gets one dout.
    x = np.ones((1, 1, 4, 4), dtype=dtype)
    dout = np.arange(1.0, 10.0, dtype=dtype).reshape(1, 1, 3, 3)
    dx = _max_pool_grad(x, dout, kernel_size=2, stride=1)
    expected = np.zeros((1, 1, 4, 4), dtype=dtype)
    expected[0, 0, :3, :3] = dout[0, 0]
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dx, _torch_grad(F.max_pool2d, x, dout, kernel_size=2, stride=1))
    # With padding 1 the -inf border never wins; the corner pixel is the first maximum of 4 windows.
    x = np.ones((1, 1, 3, 3), dtype=dtype)
    dout = np.ones((1, 1, 4, 4), dtype=dtype)
    dx = _max_pool_grad(x, dout, kernel_size=2, stride=1, padding=1)
    np.testing.assert_array_equal(dx, [[[[4.0, 2.0, 2.0], [2.0, 1.0, 1.0], [2.0, 1.0, 1.0]]]])
    np.testing.assert_array_equal(dx, _torch_grad(F.max_pool2d, x, dout, kernel_size=2, stride=1, padding=1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_at_probability_zero_and_one_is_clamped_as_torch(dtype):
    pred = np.array([0.0, 1.0, 0.0, 1.0, 0.5], dtype=dtype)
    target = np.array([1.0, 0.0, 0.0, 1.0, 0.3], dtype=dtype)
    dout = np.asarray(0.75, dtype=dtype)
    loss, cache = M.binary_cross_entropy_forward(pred, target, reduction="sum")
    tp = torch.from_numpy(pred).requires_grad_()
    t_loss = F.binary_cross_entropy(tp, torch.from_numpy(target), reduction="sum")
    (t_dpred,) = torch.autograd.grad(t_loss, tp, torch.from_numpy(dout))
    assert_close(loss, t_loss.detach().numpy(), "loss", "bce-clamped", dtype)
    assert_close(M.binary_cross_entropy_backward(dout, cache)[0], t_dpred.numpy(), "dpred", "bce-clamped", dtype)
    assert loss > 200  # two log terms clamped at -100 each


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("forward", "backward", "torch_loss", "target"),
    [
        (M.binary_cross_entropy_with_logits_forward, M.binary_cross_entropy_with_logits_backward,
         F.binary_cross_entropy_with_logits, np.array([[0.0, 1.0, 0.3, 1.0]])),
        (M.softmax_cross_entropy_forward, M.softmax_cross_entropy_backward, F.cross_entropy, np.array([1])),
    ],
    ids=["bce_with_logits", "softmax_cross_entropy"],
)
def test_losses_on_logits_of_1e4_stay_finite_without_warnings(forward, backward, torch_loss, target, dtype):
    # Warnings are errors in this suite, so an overflow in exp would fail here.
    z = np.array([[1e4, -1e4, 0.0, 1e4 - 1]], dtype=dtype)
    target = target.astype(dtype) if target.dtype.kind == "f" else target
    loss, cache = forward(z, target)
    (dz, none) = backward(np.asarray(1.0, dtype=dtype), cache)
    assert none is None and np.isfinite(loss) and np.all(np.isfinite(dz))
    tz = torch.from_numpy(z).requires_grad_()
    t_loss = torch_loss(tz, torch.from_numpy(target))
    assert_close(loss, t_loss.detach().numpy(), "loss", "logits-1e4", dtype)
    assert_close(dz, torch.autograd.grad(t_loss, tz)[0].numpy(), "dz", "logits-1e4", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_half_squared_error_keeps_the_seed_networks_behaviour(dtype):
    # For (N, n_out) the functional loss gives the seed network's E and dE/dO.
    from manual import seed_network

    rng = np.random.default_rng(0)
    O, Y = rng.random((4, 3)).astype(dtype), rng.random((4, 3)).astype(dtype)
    for reduction in ("sum", "mean"):
        E, cache = M.half_squared_error_forward(O, Y, reduction)
        n = seed_network.n_of(O, reduction)
        assert_close(E, ((Y - O) ** 2).sum() / 2 / n, "E", reduction, dtype)
        assert E.dtype == dtype
        dO = M.half_squared_error_backward(np.asarray(1.0, dtype=dtype), cache)[0]
        assert_close(dO, seed_network.dE_dO(O, Y, n), "dE/dO", reduction, dtype)


def test_loss_backward_accepts_a_python_scalar_dout():
    pred, target = np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]])
    _, cache = M.mse_forward(pred, target)
    np.testing.assert_array_equal(M.mse_backward(1, cache)[0], M.mse_backward(np.asarray(1.0), cache)[0])


def test_conv_input_grad_false_skips_dx_only():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    out, cache = M.conv2d_forward(x, w, padding=1)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = M.conv2d_backward(dout, cache)
    skipped = M.conv2d_backward(dout, cache, input_grad=False)
    assert skipped[0] is None and db is None and skipped[2] is None
    np.testing.assert_array_equal(skipped[1], dw)


def test_importing_functional_and_optim_does_not_import_torch():
    code = "import sys, manual.functional, manual.optim; assert 'torch' not in sys.modules, 'torch was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --- bad input: InputError naming the argument, what it got and what it needs ---------------------

X = np.zeros((2, 3, 6, 5))
W = np.zeros((4, 3, 3, 3))
P = np.full((2, 3), 0.5)
NAN = np.array([[0.0, np.nan]])

BAD_INPUT = [
    ("conv-x-3d", lambda: M.conv2d_forward(X[0], W), r"x: got 3-D array of shape \(3, 6, 5\), needs 4-D"),
    ("conv-w-2d", lambda: M.conv2d_forward(X, W[0, 0]), r"w: got 2-D .* needs 4-D"),
    ("conv-x-list", lambda: M.conv2d_forward(X.tolist(), W), r"x: got list, needs a NumPy array"),
    ("conv-x-int", lambda: M.conv2d_forward(X.astype(int), W), r"x: got dtype int64, needs float32 or float64"),
    ("conv-x-nan", lambda: M.conv2d_forward(np.full(X.shape, np.nan), W), r"x: got non-finite value nan at index"),
    ("conv-w-inf", lambda: M.conv2d_forward(X, np.full(W.shape, np.inf)), r"w: got non-finite value inf"),
    ("conv-mixed", lambda: M.conv2d_forward(X, W.astype(np.float32)), r"mixed dtypes: got x float64, w float32"),
    ("conv-b-mixed", lambda: M.conv2d_forward(X, W, np.zeros(4, np.float32)), r"mixed dtypes: .* b float32"),
    ("conv-channels", lambda: M.conv2d_forward(X, W[:, :2]), r"w: got 2 input channels .* needs 3, the channels of x"),
    ("conv-b-shape", lambda: M.conv2d_forward(X, W, np.zeros(3)), r"b: got shape \(3,\), needs \(4,\)"),
    ("conv-b-2d", lambda: M.conv2d_forward(X, W, np.zeros((4, 1))), r"b: got 2-D .* needs 1-D"),
    ("conv-groups", lambda: M.conv2d_forward(X, W, groups=2),
     r"groups: got 2, needs a divisor of both the 3 channels of x and the 4 filters of w$"),
    ("conv-groups-0", lambda: M.conv2d_forward(X, W, groups=0), r"groups: got 0, needs an integer >= 1"),
    ("conv-group-channels", lambda: M.conv2d_forward(np.zeros((2, 4, 6, 5)), W, groups=2),
     r"w: got 3 input channels \(shape \(4, 3, 3, 3\)\), needs 2, the channels of x \(2, 4, 6, 5\) per group "
     r"\(2 groups\)$"),
    ("transposed-channels", lambda: M.conv_transpose2d_forward(X, np.zeros((4, 3, 3, 3))),
     r"w: got 4 input channels \(shape \(4, 3, 3, 3\), input channels first\), needs 3, the channels of x"),
    ("transposed-output-padding", lambda: M.conv_transpose2d_forward(X, W[:3], stride=2, output_padding=2),
     r"output_padding: got \(2, 2\), needs each smaller than the stride \(2, 2\) or the dilation \(1, 1\)"),
    ("transposed-empty", lambda: M.conv_transpose2d_forward(X, W[:3], padding=5),
     r"padding: got \(5, 5\), which gives an empty -2x-3 output"),
    ("transposed-b-shape", lambda: M.conv_transpose2d_forward(X, W[:3], np.zeros(4)),
     r"b: got shape \(4,\), needs \(3,\)"),
    ("conv-flip", lambda: M.conv2d_forward(X, W, flip="yes"), r"flip: got 'yes', needs True or False"),
    ("conv-stride-0", lambda: M.conv2d_forward(X, W, stride=0), r"stride: got 0, needs an integer >= 1"),
    ("conv-stride-float", lambda: M.conv2d_forward(X, W, stride=1.5), r"stride: got 1.5, needs an integer >= 1"),
    ("conv-stride-triple", lambda: M.conv2d_forward(X, W, stride=(1, 1, 1)),
     r"stride: got \(1, 1, 1\), needs an int or an \(h, w\) pair"),
    ("conv-padding-neg", lambda: M.conv2d_forward(X, W, padding=(0, -1)), r"padding: got -1, needs an integer >= 0"),
    ("conv-dilation-0", lambda: M.conv2d_forward(X, W, dilation=[1, 0]), r"dilation: got 0, needs an integer >= 1"),
    ("conv-empty-out", lambda: M.conv2d_forward(X, np.zeros((4, 3, 7, 3))),
     r"x: got spatial size \(6, 5\) \(padded \(6, 5\)\) and an effective kernel of \(7, 3\), which gives an empty "
     r"0x3 output; needs a padded input at least as large"),
    ("conv-empty-dilated", lambda: M.conv2d_forward(X, W, dilation=3), r"effective kernel of \(7, 7\)"),
    ("pool-x-2d", lambda: M.max_pool2d_forward(X[0, 0], 2), r"x: got 2-D .* needs 4-D"),
    ("pool-kernel-0", lambda: M.avg_pool2d_forward(X, 0), r"kernel_size: got 0, needs an integer >= 1"),
    ("pool-stride-0", lambda: M.max_pool2d_forward(X, 2, stride=0), r"stride: got 0, needs an integer >= 1"),
    ("pool-padding-half", lambda: M.max_pool2d_forward(X, 3, padding=2),
     r"padding: got \(2, 2\), needs at most half the kernel size \(3, 3\)"),
    ("avgpool-padding-half", lambda: M.avg_pool2d_forward(X, (2, 4), padding=(1, 3)), r"padding: got \(1, 3\)"),
    ("pool-empty-out", lambda: M.max_pool2d_forward(X, (7, 2)), r"which gives an empty 0x2 output"),
    ("pool-x-inf", lambda: M.max_pool2d_forward(np.full(X.shape, -np.inf), 2), r"x: got non-finite value -inf"),
    ("adaptive-size-0", lambda: M.adaptive_avg_pool2d_forward(X, (2, 0)), r"output_size: got 0, needs an integer >= 1"),
    ("adaptive-x-3d", lambda: M.adaptive_avg_pool2d_forward(X[0], 1), r"x: got 3-D array of shape \(3, 6, 5\)"),
    ("tanh-int", lambda: M.tanh_forward(np.arange(3)), r"x: got dtype int64"),
    ("relu-nan", lambda: M.relu_forward(NAN), r"x: got non-finite value nan at index \(0, 1\)"),
    ("leaky-list", lambda: M.leaky_relu_forward([1.0]), r"x: got list"),
    ("leaky-slope-str", lambda: M.leaky_relu_forward(P, "0.1"), r"negative_slope: got '0.1', needs a finite real"),
    ("leaky-slope-bool", lambda: M.leaky_relu_forward(P, True), r"negative_slope: got True"),
    ("leaky-slope-nan", lambda: M.leaky_relu_forward(P, float("nan")), r"negative_slope: got nan"),
    ("linear-x-1d", lambda: M.linear_forward(np.zeros(3), np.zeros((2, 3))), r"x: got 1-D .* needs 2-D or more"),
    ("linear-w-3d", lambda: M.linear_forward(np.zeros((2, 5, 3)), np.zeros((1, 2, 3))), r"w: got 3-D .* needs 2-D"),
    ("linear-steps-features", lambda: M.linear_forward(np.zeros((2, 5, 3)), np.zeros((4, 5))),
     r"w: got 5 input features \(shape \(4, 5\)\), needs 3, the features of x \(2, 5, 3\) \(its last axis\)"),
    ("linear-features", lambda: M.linear_forward(P, np.zeros((4, 2))),
     r"w: got 2 input features \(shape \(4, 2\)\), needs 3, the features of x"),
    ("linear-b-shape", lambda: M.linear_forward(P, np.zeros((4, 3)), np.zeros(3)),
     r"b: got shape \(3,\), needs \(4,\) \(one bias per output feature of w\)"),
    ("linear-mixed", lambda: M.linear_forward(P.astype(np.float32), np.zeros((4, 3))), r"mixed dtypes"),
    ("linear-b-nan", lambda: M.linear_forward(P, np.zeros((4, 3)), np.full(4, np.nan)), r"b: got non-finite"),
    ("loss-shape", lambda: M.mse_forward(P, P[:1]),
     r"target: got shape \(1, 3\), needs \(2, 3\) \(the shape of pred\)"),
    ("loss-mixed", lambda: M.mse_forward(P, P.astype(np.float32)), r"mixed dtypes: got pred float64, target float32"),
    ("loss-reduction", lambda: M.mse_forward(P, P, reduction="none"), r"reduction: got 'none', needs one of sum, mean"),
    ("loss-empty", lambda: M.mse_forward(np.zeros((0, 3)), np.zeros((0, 3))), r"pred: got an empty array"),
    ("loss-target-nan", lambda: M.mse_forward(np.ones((1, 2)), NAN), r"target: got non-finite value nan"),
    ("loss-target-int", lambda: M.half_squared_error_forward(P, np.ones((2, 3), int)), r"target: got dtype int64"),
    ("hse-0d", lambda: M.half_squared_error_forward(np.array(1.0), np.array(0.0)), r"pred: got a 0-d array"),
    ("bce-pred-range", lambda: M.binary_cross_entropy_forward(P + 0.6, P), r"pred: got 1.1 at index \(0, 0\), needs"),
    ("bce-target-range", lambda: M.binary_cross_entropy_forward(P, P - 0.75), r"target: got -0.25 .* in \[0, 1\]"),
    ("bcel-target-range", lambda: M.binary_cross_entropy_with_logits_forward(P, P * 3), r"target: got 1.5"),
    ("ce-logits-1d", lambda: M.softmax_cross_entropy_forward(np.zeros(3), np.zeros(3, int)), r"logits: got 1-D"),
    ("ce-no-classes", lambda: M.softmax_cross_entropy_forward(np.zeros((2, 0)), np.zeros(2, int)),
     r"logits: got shape \(2, 0\), needs at least one sample and one class"),
    ("ce-no-samples", lambda: M.softmax_cross_entropy_forward(np.zeros((0, 2)), np.zeros(0, int)),
     r"needs at least one sample"),
    ("ce-labels-float", lambda: M.softmax_cross_entropy_forward(P, np.zeros(2)),
     r"labels: got dtype float64, needs a NumPy array of integer class labels"),
    ("ce-labels-list", lambda: M.softmax_cross_entropy_forward(P, [0, 1]), r"labels: got list, needs a NumPy"),
    ("ce-labels-bool", lambda: M.softmax_cross_entropy_forward(P, np.zeros(2, bool)), r"labels: got dtype bool"),
    ("ce-labels-shape", lambda: M.softmax_cross_entropy_forward(P, np.zeros(3, int)),
     r"labels: got shape \(3,\), needs \(2,\) \(one class label per row of logits\)"),
    ("ce-label-high", lambda: M.softmax_cross_entropy_forward(P, np.array([0, 3])),
     r"labels\[1\]: got 3, needs a class in \[0, 2\]"),
    ("ce-label-negative", lambda: M.softmax_cross_entropy_forward(P, np.array([-1, 0])), r"labels\[0\]: got -1"),
    ("ce-reduction", lambda: M.softmax_cross_entropy_forward(P, np.array([0, 0]), "avg"), r"reduction: got 'avg'"),
    ("ce-logits-inf", lambda: M.softmax_cross_entropy_forward(P + np.inf, np.array([0, 0])), r"logits: got non-finite"),
]


@pytest.mark.parametrize(("call", "message"), [b[1:] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_named(call, message):
    with pytest.raises(InputError, match=message):
        call()


A = np.zeros((2, 3, 4))
BAD_MERGES = [
    ("add-one", lambda: M.add_forward(A), "xs: got 1 array, needs 2 or more to merge"),
    ("concat-none", lambda: M.concat_forward(), "xs: got 0 arrays, needs 2 or more to merge"),
    ("add-list", lambda: M.add_forward(A, [1.0]), "xs[1]: got list, needs a NumPy array"),
    ("add-mixed", lambda: M.add_forward(A, A, A.astype(np.float32)),
     "mixed dtypes: got xs[0] float64, xs[1] float64, xs[2] float32, needs one dtype (all float32 or all float64)"),
    ("add-shapes", lambda: M.add_forward(A, A, A[:, :2]),
     "xs[2]: got shape (2, 2, 4), needs (2, 3, 4) (the shape of xs[0]: add sums inputs of one shape)"),
    ("add-nan", lambda: M.add_forward(A, np.full(A.shape, np.nan)),
     "xs[1]: got non-finite value nan at index (0, 0, 0), needs finite values"),
    ("concat-dim-beyond", lambda: M.concat_forward(A, A, dim=2),
     "dim: got 2, needs one of the 2 per-sample axes of xs[0] (shape (2, 3, 4), the batch axis first)"),
    ("concat-dim-negative", lambda: M.concat_forward(A, A, dim=-1), "dim: got -1, needs an integer >= 0"),
    ("concat-sizes", lambda: M.concat_forward(A, A[:, :, :3]),
     "xs[1]: got shape (2, 3, 3), needs the shape of xs[0] (2, 3, 4) on every axis but axis 1"),
    ("concat-batch", lambda: M.concat_forward(A, A[:1], dim=1),
     "xs[1]: got shape (1, 3, 4), needs the shape of xs[0] (2, 3, 4) on every axis but axis 2"),
    ("concat-ranks", lambda: M.concat_forward(A, A[..., 0]),
     "xs[1]: got shape (2, 3), needs the shape of xs[0] (2, 3, 4) on every axis but axis 1"),
]


BAD_ARRAYS = [
    ("dropout-x-int", lambda: M.dropout_forward(np.zeros((2, 3), int), np.ones((2, 3), bool)),
     "x: got dtype int64, needs float32 or float64"),
    ("nll-log-probs-1d", lambda: M.nll_forward(np.zeros(3), np.array([0])),
     "log_probs: got 1-D array of shape (3,), needs 2-D or 3-D"),
]


@pytest.mark.parametrize(("call", "message"), [b[1:] for b in BAD_MERGES + BAD_ARRAYS],
                         ids=[b[0] for b in BAD_MERGES + BAD_ARRAYS])
def test_bad_input_is_named_whole(call, message):
    with pytest.raises(InputError) as info:
        call()
    assert str(info.value) == message


def _cache(forward, *inputs, **kwargs):
    return forward(*inputs, **kwargs)[1]


BAD_DOUT = [
    ("conv-shape", M.conv2d_backward, _cache(M.conv2d_forward, X, W), np.zeros((2, 4, 4, 4))),
    ("maxpool-dtype", M.max_pool2d_backward, _cache(M.max_pool2d_forward, X, 2), np.zeros((2, 3, 3, 2), np.float32)),
    ("avgpool-list", M.avg_pool2d_backward, _cache(M.avg_pool2d_forward, X, 2), [[0.0]]),
    ("adaptive-shape", M.adaptive_avg_pool2d_backward, _cache(M.adaptive_avg_pool2d_forward, X, 2), np.zeros((2, 3))),
    ("transposed-shape", M.conv_transpose2d_backward, _cache(M.conv_transpose2d_forward, X, W[:3]), np.zeros((2, 4))),
    ("tanh-shape", M.tanh_backward, _cache(M.tanh_forward, P), np.zeros(3)),
    ("relu-shape", M.relu_backward, _cache(M.relu_forward, P), np.zeros((3, 2))),
    ("leaky-shape", M.leaky_relu_backward, _cache(M.leaky_relu_forward, P), np.zeros((1, 3))),
    ("linear-shape", M.linear_backward, _cache(M.linear_forward, P, np.zeros((4, 3))), np.zeros((2, 3))),
    ("hse-not-scalar", M.half_squared_error_backward, _cache(M.half_squared_error_forward, P, P), np.zeros(1)),
    ("mse-bool", M.mse_backward, _cache(M.mse_forward, P, P), True),
    ("bce-dtype", M.binary_cross_entropy_backward, _cache(M.binary_cross_entropy_forward, P, P),
     np.asarray(1.0, np.float32)),
    ("bcel-shape", M.binary_cross_entropy_with_logits_backward,
     _cache(M.binary_cross_entropy_with_logits_forward, P, P), np.ones((2, 3))),
    ("add-shape", M.add_backward, _cache(M.add_forward, P, P, P), np.zeros((2, 4))),
    ("concat-dtype", M.concat_backward, _cache(M.concat_forward, P, P), np.zeros((2, 6), np.float32)),
    ("ce-str", M.softmax_cross_entropy_backward, _cache(M.softmax_cross_entropy_forward, P, np.array([0, 2])), "1"),
]


@pytest.mark.parametrize(("backward", "cache", "dout"), [b[1:] for b in BAD_DOUT], ids=[b[0] for b in BAD_DOUT])
def test_bad_dout_is_named(backward, cache, dout):
    with pytest.raises(InputError, match=r"dout: got .*, needs an array of shape .* \(the forward output's\)"):
        backward(dout, cache)


# --- proof that the comparison can fail -----------------------------------------------------------

FAIL_CASE = conv2d((2, 3, 7, 5), (4, 3, 3, 2), (4,), stride=2, padding=1, dilation=(1, 2), flip=True)


def _failing(case, backward, seed, dtype):
    """The quantities check_layer finds wrong when `backward` replaces the case's."""
    result = check_layer(case.forward, backward, case.torch_fn, case.shapes, seeds=(seed,), dtypes=(dtype,),
                         kwargs=case.options)
    return [row.quantity for row in result.failures]


def test_a_gradient_scaled_by_one_plus_1e_minus_6_is_reported():
    def scaled_dw(dout, cache):
        dx, dw, db = FAIL_CASE.backward(dout, cache)
        return dx, dw * (1 + 1e-6), db

    assert _failing(FAIL_CASE, FAIL_CASE.backward, 0, "float64") == []  # the real one passes
    assert _failing(FAIL_CASE, scaled_dw, 0, "float64") == ["dw"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_dw_left_unflipped_for_a_true_convolution_is_reported(dtype):
    # The textbook pitfall: with flip=True the gradient of the slid kernel must be flipped back onto w.
    def unflipped_dw(dout, cache):
        dx, dw, db = FAIL_CASE.backward(dout, cache)
        return dx, np.ascontiguousarray(dw[:, :, ::-1, ::-1]), db

    assert _failing(FAIL_CASE, unflipped_dw, 1, dtype) == ["dw"]


def test_relu_gradient_of_one_at_zero_is_reported():
    x = np.array([-1.0, 0.0, 2.0])
    dout = np.array([0.3, 0.7, 1.1])
    wrong = np.where(x >= 0, dout, 0.0)  # the other subgradient, which torch does not use
    with pytest.raises(AssertionError, match=r"dx differs; worst element at index \(1,\)"):
        assert_close(wrong, _torch_grad(torch.relu, x, dout), "dx", "relu-at-zero")
