"""The nudge of float64's second judge (crosscheck.tolerances.nudge) pinned where rounding decides it.

Every value v becomes v * (1 + eps) or v * (1 - eps), rounded to nearest. At v = 1.5 both products fall
exactly halfway between two floats (1.5 * eps is one and a half spacings of the floats in [1, 2)), so
round-half-to-even takes 1.5 - 2 eps and 1.5 + 2 eps. Dividing by 1 + eps instead lands just above the lower
midpoint and rounds to 1.5 - eps: the same in exact arithmetic to first order, but another nudge.
"""

import numpy as np
import pytest

from crosscheck.tolerances import nudge


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_nudge_multiplies_by_one_plus_or_minus_eps_rounding_ties_to_even(dtype):
    eps = np.finfo(dtype).eps
    # 1.5 has an even last mantissa bit (3 * 2**51 in float64, 3 * 2**22 in float32): 1.5 +- 2 eps are the even
    # neighbours of the two midpoints 1.5 +- 1.5 eps, 1.5 +- eps the odd ones.
    below, above = dtype(1.5) - dtype(2) * eps, dtype(1.5) + dtype(2) * eps
    values = nudge({"v": np.full(200, 1.5, dtype)}, 3, dtype)["v"]
    assert values.dtype == dtype
    assert set(values.tolist()) == {float(below), float(above)}

