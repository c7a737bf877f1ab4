"""check_layer (crosscheck.api) where other tests leave it open: float64's nudged run keeps integer labels as they
are where they scale the quantity it excuses (a label nudged to 0 would be a jump, and the row would fail); a float32
scalar has no nudged run, so a tiny scalar off by a factor fails; the kink probe's upstream gradient is the fixed
draw of default_rng(0), so its verdict on a forward is the same every time."""

import numpy as np
import torch
from runs import row

from crosscheck import check_layer

ONE64 = {"seeds": [0], "dtypes": ["float64"]}


# --- float64's nudged run keeps labels that scale the output -------------------------------------------------------

# x + y - z with x and z near 1e6 (tests/test_check_layer_run_edges.py): the output is float64 rounding noise that
# the table fails and the nudged run excuses. Here integer labels k multiply it: nudged with the floats, a label 1
# would round down to 0 and the nudged output would jump there.
def _near_1e6(rng, shape):
    return 1e6 + rng.standard_normal(shape)


def _labels(rng, shape):
    return rng.integers(1, 4, shape)


def _labelled_difference(x, y, z, k):
    return ((x - z) + y) * k, k


def _labelled_difference_backward(dout, k):
    return dout * k, dout * k, -dout * k, None


def test_float64s_nudged_run_keeps_the_labels_that_scale_the_output_it_excuses():
    result = check_layer(_labelled_difference, _labelled_difference_backward, lambda x, y, z, k: ((x + y) - z) * k,
                         [(64,), (64,), (64,), (64,)], input_factory=[_near_1e6, None, _near_1e6, _labels], **ONE64)
    assert result.passed, result.report()
    out = row(result, "out").result
    assert "autograd on the inputs and parameters nudged by one rounding" in out.witnessed


# --- a float32 scalar has no nudged run -----------------------------------------------------------------------------

def test_a_tiny_float32_scalar_off_by_a_factor_fails_with_no_second_judge():
    """torch's 1e-7 * sum(x) at x = ones(4) is 4e-7; manual's -2e-6 is off by 2.4e-6, past the table's
    1e-6 + 1e-4 * 4e-7 and past the float64 witness: the row fails, excused by nothing."""
    def forward(x):
        return np.float32(-5e-7) * x.sum(), x.shape

    def backward(dout, shape):
        return (np.full(shape, np.float32(1e-7) * dout, np.float32),)

    result = check_layer(forward, backward, lambda x: 1e-7 * x.sum(), [(4,)], seeds=[0], dtypes=["float32"],
                         input_factory=lambda rng, shape: np.ones(shape))
    out = row(result, "out")
    assert [r.quantity for r in result.failures] == ["out"]
    assert out.result.witnessed == ""
    assert out.line() == ("FAIL seed0-float32  out differs; worst element at index (): manual -1.9999999949504854e-06, "
                          "autograd 4.0000000467443897e-07, abs error 2.400e-06, rel error 6.000e+00 (allowed 1e-06 + "
                          "0.0001 * |autograd|, the float32 table)")


# --- the kink probe's upstream gradient is default_rng(0)'s --------------------------------------------------------

_D = np.random.default_rng(0).standard_normal(2)
_K = -_D[0] / _D[1]  # <[relu(x), k relu(x)], _D> = 0 for every x: the kink at 0 cancels in the probe's sum


def _cancelling_forward(x):
    r = np.maximum(x, 0.0)
    return np.concatenate([r, _K * r]), x


def _cancelling_backward(dout, x):
    return ((dout[0] + _K * dout[1]) * (x > 0),)


def _cancelling_torch(x):
    r = torch.relu(x)
    return torch.cat([r, _K * r])


def test_the_kink_probe_uses_default_rng_0s_upstream_gradient():
    """At x = 0 gradcheck fails (central differences see half of relu's slope); the probe sums the outputs with
    default_rng(0)'s standard normal, where this forward's kink cancels: no kink hint, the same every time."""
    result = check_layer(_cancelling_forward, _cancelling_backward, _cancelling_torch, [(1,)], gradcheck=True,
                         input_factory=lambda rng, shape: np.zeros(shape), **ONE64)
    assert [r.line() for r in result.failures] == [
        "FAIL seed0-float64  gradcheck: torch.autograd.gradcheck failed: Jacobian mismatch for output 0 with respect "
        "to input 0 (x)"]
