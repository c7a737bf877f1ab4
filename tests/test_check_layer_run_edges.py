"""Edges of check_layer's run of one case (crosscheck.api) that other tests leave open: an input the output does not
use gets autograd's zeros, in the comparison and in float32's float64 witness (never None, nor a crash); a backward
that returns None for a differentiable input is a failing row that says so; float64's nudged run judges the output
too, not only the gradients, and float64 rows alone: a float32 scalar output twice too large fails (no second judge
has a value of 0 to offer it)."""

import numpy as np
import torch
from runs import row

from crosscheck import check_layer
from crosscheck.compare import compare

ONE64 = {"seeds": (0,), "dtypes": ("float64",)}


# --- an input the output does not use ------------------------------------------------------------------------------

def _doubled(x, w):
    """2 x; w, an input of the layer, is not used (a parameter these options switch off)."""
    return 2 * x, x.shape


def _doubled_backward(dout, shape):
    return 2 * dout, np.zeros(shape[-1:], dout.dtype)


def test_an_input_the_output_does_not_use_has_autograds_zero_gradient():
    """torch.autograd.grad gives no gradient to w, which the torch_fn does not use: it is compared as zeros, and the
    backward's zeros agree exactly, in both dtypes."""
    result = check_layer(_doubled, _doubled_backward, lambda x, w: 2 * x, [(3, 4), (4,)], seeds=(0,))
    assert result.passed, result.report()
    assert [(r.dtype, r.quantity) for r in result.rows] == [
        ("float64", "out"), ("float64", "dx"), ("float64", "dw"), ("float32", "out"), ("float32", "dx"),
        ("float32", "dw")]
    assert all(r.result.max_abs_error == 0 for r in result.rows if r.quantity == "dw")


def _row_sums(x, w):
    """Each row of x summed one term after another from the last (a plain loop's float32 rounding); w not used."""
    return np.flip(x, axis=1).cumsum(axis=1, dtype=x.dtype)[:, -1], (x.shape, w.shape)


def _row_sums_backward(dout, shapes):
    x_shape, w_shape = shapes
    return np.broadcast_to(dout[:, None], x_shape).copy(), np.zeros(w_shape, dout.dtype)


def _cancelling(rng, shape):
    """Rows of standard normal terms that sum to about 0: float32 rounding is large against the sum."""
    terms = rng.standard_normal(shape)
    terms[:, -1] -= terms.sum(axis=1)
    return terms


def test_float32s_witness_runs_with_an_input_the_output_does_not_use():
    """The loop's float32 rounding fails the table and passes by the float64 witness (torch_fn run again in
    float64), which also differentiates the unused w: its zeros there, not a crash of the check."""
    result = check_layer(_row_sums, _row_sums_backward, lambda x, w: x.sum(dim=1), [(4, 1000), (3,)], seeds=(3,),
                         dtypes=("float32",), input_factory=[_cancelling, None])
    assert result.passed, result.report()
    out = row(result, "out").result
    assert out.witnessed.startswith("float32 rounding: manual is within 1e-06 + 0.0001 * |w| + 100 * ")
    assert not compare("out", np.array([out.worst_manual]), np.array([out.worst_autograd]), "float64").passed
    assert row(result, "dw").result.max_abs_error == 0


# --- a backward that returns None ----------------------------------------------------------------------------------

def test_a_backward_returning_none_for_a_differentiable_input_is_a_failing_row_that_says_so():
    """The other gradient is still compared; the None one is a row of its own, not a crash."""
    def forward(x, w):
        return x * w, (x, w)

    def backward(dout, cache):
        x, w = cache
        return dout * w, None

    result = check_layer(forward, backward, torch.mul, [(2, 3), (2, 3)], **ONE64)
    assert [r.line() for r in result.failures] == [
        "FAIL seed0-float64  dw: manual side failed: backward returned None for a differentiable input"]
    assert row(result, "dx").passed


# --- float64's nudged run judges the output too ------------------------------------------------------------------

# x + y - z with x and z near 1e6, y near 1: torch rounds x + y to the grid of 1e6 (spacing 1.16e-10), manual takes
# x - z first (exact: the two are within a factor 2) and then adds y (rounding near 1e-16). The output, of order 1,
# then differs by up to 5.8e-11, past the table's 1e-12 + 1e-10 * |out| where |out| < 0.5; the nudge moves x and z by
# one rounding (2.2e-16 * 1e6), and autograd's output by up to 4 grid steps: the output is rounding noise that large.
def _near_1e6(rng, shape):
    return 1e6 + rng.standard_normal(shape)


def _sum_then_difference(x, y, z):
    return (x - z) + y, None


def _sum_then_difference_backward(dout, cache):
    return dout, dout, -dout


def test_float64s_nudged_run_judges_the_output_where_the_table_fails_it():
    result = check_layer(_sum_then_difference, _sum_then_difference_backward, lambda x, y, z: (x + y) - z,
                         [(64,), (64,), (64,)], input_factory=[_near_1e6, None, _near_1e6], **ONE64)
    assert result.passed, result.report()
    out = row(result, "out").result
    assert not compare("out", np.array([out.worst_manual]), np.array([out.worst_autograd]), "float64").passed
    assert out.witnessed.startswith("float64 rounding: manual is within 1e-12 + 1e-10 * |w| + 10 * ")
    assert "autograd on the inputs and parameters nudged by one rounding" in out.witnessed


def test_float64s_nudged_run_does_not_excuse_an_output_off_by_1e_8():
    """The same layer with its output off by 1e-8: more than 10 times the 4 grid steps (4.7e-10) the nudge moves."""
    def forward(x, y, z):
        return (x - z) + y + 1e-8, None

    result = check_layer(forward, _sum_then_difference_backward, lambda x, y, z: (x + y) - z, [(64,), (64,), (64,)],
                         input_factory=[_near_1e6, None, _near_1e6], **ONE64)
    out = row(result, "out").result
    assert not out.passed and out.witnessed == "" and out.max_abs_error > 9e-9


# --- a float32 scalar ---------------------------------------------------------------------------------------------

def test_a_float32_scalar_output_twice_too_large_fails():
    """A 0-d output (a loss) twice autograd's: no second judge lets a float32 scalar through."""
    def forward(x):
        return 2 * (x * x).sum(), x

    def backward(dout, x):
        return 2 * x * dout

    result = check_layer(forward, backward, lambda x: (x * x).sum(), [(3, 4)], seeds=(0,), dtypes=("float32",))
    out = row(result, "out").result
    assert [r.quantity for r in result.failures] == ["out"]
    assert out.shape == () and out.witnessed == "" and abs(out.max_rel_error - 1) < 1e-5

