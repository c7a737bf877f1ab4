"""How close manual and autograd must be, by dtype: the one table, with the reason beside each number.

An element passes when |manual - autograd| <= atol + rtol * |autograd| (numpy.isclose's rule,
autograd taken as the desired value).

In float32 a fixed atol cannot follow a long sum that cancels: an element near 0 made of terms near 1 carries
their rounding. Where the table fails a float32 quantity, a witness of higher precision decides: autograd again in
float64 on the same float32 values (w). The quantity still passes when every element has
|manual - w| <= atol + rtol * |w| + rounding * e, where e = max |autograd - w| over the quantity is autograd's own
float32 rounding error there: manual is then as close to the exact value as autograd itself. crosscheck.compare
applies it; the Comparison says so in ``witnessed``. A described network's float64 gradients and check_layer's
float64 rows have the same rule with w autograd's value at inputs nudged by one rounding (`nudge`;
crosscheck.check.judge, crosscheck.api): a gradient that is 0 in exact arithmetic is noise that moves by its own size.
A sum that cancels can stay exactly 0 under one nudge: up to NUDGES runs are tried, each with its own draw.
Only noise: where the nudge moves autograd by more than float32's tolerance it crossed a jump of the function (a tie
in a max at integer inputs), and the nudged run excuses nothing (`crossed_a_jump`).
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    why: str
    # float32's table: how many times autograd's own rounding error its float64 witness allows (None: no witness)
    rounding: float | None = field(default=None, repr=False)


# float32's witness: how many times autograd's own float32 error on the quantity (e = max |autograd - w|) manual may be
# off its float64 witness w. e is one draw of autograd's rounding, and where it lands lucky manual's ordinary rounding
# is many e away. Measured (docs/tolerances.md): over 1,000 seeds of each of the layer registry's 253 cases, 10.4 e at
# the most, always in an attention layer; over 100,000 seeds of its T = 50 encoder layer, more than 5 e in 66 draws,
# more than 10 e in 5 (the key bias's gradient, 0 in exact arithmetic), 15.5 e at the most, the tail falling about
# 13-fold for each doubling. 10 failed one fresh-seed suite in 20 (base 547226: 11.6 e, tests/test_judges.py). 100
# leaves a margin of 6 over the worst draw seen; a plain loop over 1,000 terms that cancel needs 4.1 e, and a sum with
# one term dropped is 500,000 e away.
WITNESS_ROUNDING = 100.0
# float64's nudged run (crosscheck.api, crosscheck.check): how many times autograd's own change under a one-rounding
# nudge manual may be off the nudged value. Noise moves by its own size, a well-conditioned value by a few eps of it:
# 10 lets a gradient that is 0 in exact arithmetic through and still fails a bias off by 1e-9.
ROUNDING = 10.0
# float64's nudged runs: how many draws of the nudge the second judge tries before the table's verdict stands. A sum
# that cancels exactly in autograd's order can stay exactly 0 under a nudge, and that run shows no noise at all: an
# adaptive pool of one value up to 2x2 and two layer norms (variance 0) make dE/dinput a sum of four terms near 2e4
# that is 0 in exact arithmetic, manual 1 ulp of them (-1.8e-12) against autograd's -3.6e-12 or exact 0 (fresh seed
# base 92817, test_random_stacks' random graphs). Measured over seeds 0-11,999 of that network (tests/test_judges.py):
# of the 5,973 the table fails, the first run that excuses is run 1 for 4,886, run 2 for 726, run 3 for 203, runs
# 4-8 for 142, 9-16 for 13, run 20 for one and none of 40 for two: with 16 runs 3 in 5,973 stay false alarms (with 1,
# 1,087). Each run that excuses nothing costs a run of autograd; one that moved autograd by more than float32's
# tolerance excuses nothing (crossed_a_jump), and no run lets a gradient off by 1e-9 through.
NUDGES = 16

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
        rounding=WITNESS_ROUNDING,
    ),
}


def tolerance_for(dtype):
    """The Tolerance for a float32 or float64 dtype."""
    return TOLERANCES[np.dtype(dtype)]


def crossed_a_jump(autograd, nudged):
    """Whether a one-rounding nudge moved autograd's own float64 value by more than float32's tolerance anywhere:
    that is no rounding noise but a jump the nudge crossed (a tie in a max, a floor at a whole number, a step at 0),
    and the nudged run is then no evidence for any element of the quantity."""
    jump = TOLERANCES[np.dtype(np.float32)]
    d, w = np.asarray(autograd, np.float64), np.asarray(nudged, np.float64)
    return bool(np.any(np.abs(d - w) > jump.atol + jump.rtol * np.abs(w)))


def nudge(arrays, seed, dtype):
    """{name: array} with every array moved by one rounding error (a relative eps of `dtype`, random signs drawn
    from `seed`, an int or a tuple of ints): float64's nudged runs (crosscheck.compare.within_nudges) take autograd
    again on these."""
    rng = np.random.default_rng(seed)
    eps = np.finfo(dtype).eps
    return {k: v * (1 + eps * rng.choice([-1, 1], v.shape)).astype(v.dtype) for k, v in arrays.items()}
