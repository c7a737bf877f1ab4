"""The padding hypothesis' shift search (crosscheck.hypotheses._shifted) pinned at the edge of the grid: a shift one
short of the grid's height or width is searched and, where its one overlapping row or column keeps most of
autograd's mass, read as the padding cropped at the wrong side; a shift as long as the grid leaves nothing to
compare, so it explains nothing; and where autograd is zero there is no mass to keep, so no shift explains anything
(a manual gradient leaking through a dead region is not "padding").
Every expectation is worked out here from the documented rule, never read off the code under test."""

import numpy as np
import pytest

from crosscheck.hypotheses import Classification, classify
from crosscheck.subjects import Step

UNCLASSIFIED = Classification(
    "unclassified", "no hypothesis fits: not a sign, a transpose, a flip, a constant factor or a known layer mistake"
)
PADDING = Classification("padding", "manual = autograd shifted: the padding cropped at the wrong side")


def _classify(m, a):
    return classify(Step("", "dE/dZ", m, a), m, a, "float64")


@pytest.mark.parametrize(
    ("dy", "dx", "big"),
    [(1, 2, (0, 0)), (-1, -2, (1, 2)), (1, -2, (0, 2)), (-1, 2, (1, 0))],
    ids=["down-right", "up-left", "down-left", "up-right"],
)
def test_a_shift_one_short_of_the_grid_is_searched(dy, dx, big):
    """A 2 x 3 grid shifted by |dy| = H - 1 = 1 and |dx| = W - 1 = 2: one element overlaps, autograd's `big` one,
    10 of the grid's 15 (most of the mass); manual holds it at big + (dy, dx) and noise everywhere else. Every
    other shift up to 2 overlaps either noise against autograd or only elements of mass 1 (less than half)."""
    a = np.ones((1, 1, 2, 3))
    a[(0, 0, *big)] = 10.0
    m = np.random.default_rng(0).uniform(20.0, 30.0, a.shape)  # far from every value of a, of either sign
    m[0, 0, big[0] + dy, big[1] + dx] = 10.0
    assert _classify(m, a) == PADDING


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 2, 2), (1, 2, 3, 1), (1, 2, 1, 3)], ids=str)
def test_a_shift_as_long_as_the_grid_compares_nothing_and_explains_nothing(shape):
    """Autograd zero, manual one everywhere: every shift keeps all of autograd's (zero) mass, but one that overlaps
    compares ones against zeros, and one of the grid's own height or width (or more) leaves no element to compare,
    which is no agreement (crosscheck.compare: nothing compared is no pass). No sign, transpose or flip maps zeros
    to ones, and autograd zero leaves no constant factor: no hypothesis fits."""
    a, m = np.zeros(shape), np.ones(shape)
    assert _classify(m, a) == UNCLASSIFIED


@pytest.mark.parametrize("where", [(0, 0), (1, 1), (3, 3), (0, 3)], ids=str)
def test_an_all_zero_autograd_is_explained_by_no_shift(where):
    """Autograd zero on a 4 x 4 grid, manual zero but one element, at the corner or inside the border band a shift of
    up to 2 crops away: the shifted overlap of manual is zero like autograd's, but autograd has no mass, so "keeps
    most of autograd's mass" is no evidence and the shift rule does not apply. Nor does any other hypothesis (a sign,
    a transpose or a flip of zeros is zeros; no factor times zero gives manual's element): unclassified."""
    a = np.zeros((1, 1, 4, 4))
    m = a.copy()
    m[(0, 0, *where)] = 1.0
    assert _classify(m, a) == UNCLASSIFIED
