"""The jump rule of float64's nudged run (crosscheck.tolerances.crossed_a_jump) pinned at its exact boundary when the
nudged values come in float32: autograd's float64 value may move by float32's tolerance relative to the nudged value,
1e-6 + 1e-4 * |w|, and not one float64 further. The edge is found in exact rational arithmetic from the documented
numbers (docs/tolerances.md), never from the code under test; the rule must hold in float64 whatever dtype the nudged
array has, so the float32 rounding of the allowance (about 1e-7 relative) may not move the edge."""

from fractions import Fraction

import numpy as np
import pytest

from crosscheck.tolerances import crossed_a_jump

JUMP_RTOL, JUMP_ATOL = 1e-4, 1e-6  # float32's table entry: a nudge that moves autograd further crossed a jump


def _exact_edge(w):
    """The last float64 d above w with d - w <= atol + rtol * |w| in exact arithmetic, and the next float64."""
    allowed = Fraction(JUMP_ATOL) + Fraction(JUMP_RTOL) * abs(Fraction(float(w)))
    d = float(w) + float(allowed)
    while Fraction(d) - Fraction(float(w)) > allowed:
        d = float(np.nextafter(d, -np.inf))
    while Fraction(float(np.nextafter(d, np.inf))) - Fraction(float(w)) <= allowed:
        d = float(np.nextafter(d, np.inf))
    return d, float(np.nextafter(d, np.inf))


@pytest.mark.parametrize("w", [0.0, 3.0, -0.5], ids=["zero", "three", "minus-a-half"])
def test_a_float32_nudged_run_is_judged_in_float64_at_the_jump_edge(w):
    """The nudged value w is a float32 array (exact in float64), autograd's value d a float64 one: up to the exact
    allowance the move is rounding, one float64 further a jump. Evaluating 1e-6 + 1e-4 * |w| in float32 instead
    misplaces the edge by float32's rounding of it (at w = 0: float32(1e-6) = 9.99999997e-07 < 1e-6)."""
    inside, outside = _exact_edge(w)
    nudged = np.array([w, w], np.float32)
    assert crossed_a_jump(np.array([w, inside]), nudged) is False
    assert crossed_a_jump(np.array([w, outside]), nudged) is True
    # the edge lies on the nudged side: the same values judged against the float64 nudged array agree
    assert crossed_a_jump(np.array([w, inside]), nudged.astype(np.float64)) is False
    assert crossed_a_jump(np.array([w, outside]), nudged.astype(np.float64)) is True
