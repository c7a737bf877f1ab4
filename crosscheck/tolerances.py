"""How close manual and autograd must be, by dtype: the one table, with the reason beside each number.

An element passes when |manual - autograd| <= atol + rtol * |autograd| (numpy.isclose's rule,
autograd taken as the desired value).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    why: str


TOLERANCES = {
    np.dtype(np.float64): Tolerance(
        rtol=1e-10,
        atol=1e-12,
        why=(
            "eps is 2.2e-16; the two sides sum the same terms in another order (BLAS vs mkldnn). Measured: "
            "the worst element of the seed grid and its training runs uses 0.06 % of this allowance, the "
            "layer registry 0.07 %, so 1e-10 keeps a margin of >1000x and still catches a gradient scaled "
            "by 1 + 1e-6. atol 1e-12 covers entries that cancel to ~0, where a relative error means nothing"
        ),
    ),
    np.dtype(np.float32): Tolerance(
        rtol=1e-4,
        atol=1e-6,
        why=(
            "eps is 1.2e-7; sums of up to ~1000 terms and chained SGD steps grow reordering differences. "
            "Measured: the worst element of the seed grid uses 23 % of this allowance (Z1 of a 5x5 filter "
            "cancelling near 0), the layer registry 31 %, 50-step training 1 %: a margin of >3x. atol 1e-6 "
            "covers entries that cancel to ~0"
        ),
    ),
}


def tolerance_for(dtype):
    """The Tolerance for a float32 or float64 dtype."""
    return TOLERANCES[np.dtype(dtype)]
