"""Edges of the comparison rule and of the finite-difference witness: `excess` and `within_rounding` measure in
float64 whatever the inputs' precision (an extended-precision manual, float32 arrays: the allowance is not rounded
to the inputs' precision); `_evaluate` stacks at most CHUNK_ELEMENTS elements per forward call, and as many points
as that allows (cost, else x.size, else 1); `element_differences` takes its flat indices as integers, a scalar
included; `differences` passes its step on to both modes; `against` without `keep` compares every probe, shaped as
the probes."""

from fractions import Fraction

import numpy as np
import pytest

from crosscheck import numerical as nm
from crosscheck.compare import excess, within_rounding
from crosscheck.tolerances import Tolerance


def test_excess_measures_an_extended_precision_manual_in_float64():
    """|m - a| / (atol + rtol |a|) with m first rounded to float64: m = 1 + 2^-60 is 1.0 there, so excess 0."""
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("no extended precision on this platform")
    m = np.longdouble(1) + np.longdouble(2) ** -60
    assert m != 1 and np.float64(m) == 1.0
    tol = Tolerance(rtol=1e-9, atol=1e-12, why="test")
    ratio = excess(np.array([m]), np.array([1.0]), tol)
    assert ratio.dtype == np.float64 and ratio.tolist() == [0.0]


def _allowance_sits_between_float32_neighbours():
    """manual = nextafter(1, 2) in float32, w = autograd = 1: |m - w| = 2^-23 exactly; rtol = 2^-23 (1 - 2^-40) makes
    the exact allowance rtol * |w| just short of it, though in float32 it rounds up onto 2^-23."""
    one = np.float32(1)
    m = np.nextafter(one, np.float32(2))
    rtol = float(Fraction(1, 2**23) * (1 - Fraction(1, 2**40)))
    assert Fraction(float(m)) - 1 == Fraction(1, 2**23) > Fraction(rtol) * 1
    assert np.float32(rtol) * one == Fraction(1, 2**23)  # float32 would round the allowance onto the error
    return np.array([m]), np.array([one]), Tolerance(rtol=rtol, atol=0.0, why="test", rounding=0.0)


def test_within_rounding_is_decided_in_float64_not_in_the_inputs_float32():
    """Just outside the allowance in exact arithmetic (and in float64): no witness reason, although float32
    arithmetic would round the allowance up onto the error."""
    m, a, tol = _allowance_sits_between_float32_neighbours()
    assert within_rounding(m, a, a.copy(), tol) == ""
    # one ulp of rtol more and the error sits inside: the same inputs then pass
    inside = Tolerance(rtol=2.0**-23, atol=0.0, why="test", rounding=0.0)
    assert within_rounding(m, a, a.copy(), inside).startswith("float32 rounding: manual is within 0 + ")


def _recorded(site):
    """site with its value recording the number of points of every call."""
    calls = []

    def value(xs):
        calls.append(len(xs))
        return xs.reshape(len(xs), -1).sum(axis=1)
    return nm.Site(site.name, site.x, value, site.cost), calls


def test_a_costly_site_stacks_one_point_per_forward_call():
    """cost = CHUNK_ELEMENTS elements per point: a forward call may hold one point only (1 * cost <= CHUNK)."""
    site, calls = _recorded(nm.Site("s", np.zeros(1), None, cost=nm.CHUNK_ELEMENTS))
    nm.element_differences(site)
    assert calls == [1, 1, 1]  # E(x + h), E(x - h), then E(x)


def test_without_a_cost_the_chunk_is_sized_by_x():
    """cost 0 means x.size: an x of CHUNK_ELEMENTS elements goes one point per call."""
    site, calls = _recorded(nm.Site("s", np.zeros(nm.CHUNK_ELEMENTS), None))
    nm.element_differences(site, indices=[0])
    assert calls == [1, 1, 1]


def test_a_one_element_site_stacks_chunk_elements_points_per_call():
    """x of one element, no cost: CHUNK_ELEMENTS points per call (1 element each), the rest in the next."""
    site, calls = _recorded(nm.Site("s", np.zeros(1), None))
    count = nm.CHUNK_ELEMENTS // 2 + 1  # 2 * count = CHUNK_ELEMENTS + 2 points
    nm.directional_differences(site, count=count)
    assert calls == [nm.CHUNK_ELEMENTS, 2, 1]


def test_directions_of_an_empty_site_read_zero():
    """E of an empty x is constant: every direction reads 0, as <g, v> does (the chunk's floor of 1 element)."""
    site, calls = _recorded(nm.Site("s", np.zeros((0, 3)), None))
    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = nm.directional_differences(site, count=2)
    assert calls == [4, 1] and diffs.central.tolist() == [0.0, 0.0]
    assert diffs.project(np.zeros((0, 3))).tolist() == [0.0, 0.0]


def _square():
    """E = sum x^2 at x = (0, 3, -1, 2, 0.5): dE/dx = 2x."""
    x = np.array([0.0, 3.0, -1.0, 2.0, 0.5])
    return nm.Site("sq", x, lambda xs: (xs.reshape(len(xs), -1) ** 2).sum(axis=1)), x


def test_indices_are_taken_as_integers_and_a_scalar_as_one_index():
    """Integral floats and a scalar index name the same elements as a list of ints does."""
    site, x = _square()
    ref = nm.element_differences(site, indices=[3, 1])
    floats = nm.element_differences(site, indices=np.array([3.0, 1.0]))
    assert floats.indices.tolist() == [3, 1] and floats.central.tolist() == ref.central.tolist()
    one = nm.element_differences(site, indices=3)
    assert one.indices.tolist() == [3] and one.central.tolist() == ref.central[:1].tolist()
    # central differences of a quadratic are exact up to rounding: 2 x_3 = 4
    assert one.central[0] == pytest.approx(4.0, rel=1e-8)


@pytest.mark.parametrize("size", [5, nm.FULL_LIMIT + 1])
def test_differences_take_the_given_step_in_both_modes(size):
    """At x = 0 the forward difference of E = sum x^2 is h |v|^2 = h (a unit v or an element), the step itself:
    eps = 2^-10 shows as 2^-10, not as the default EPS."""
    site = nm.Site("sq", np.zeros(size), lambda xs: (xs ** 2).sum(axis=1))
    diffs = nm.differences(site, eps=2.0**-10)
    assert diffs.mode == ("elements" if size <= nm.FULL_LIMIT else "directions")
    assert diffs.forward == pytest.approx(np.full(len(diffs.forward), 2.0**-10), rel=1e-12)


def test_against_without_keep_compares_every_probe_shaped_as_the_probes():
    """keep omitted: all 5 probes, a Comparison of shape (5,), the worst element named by one index."""
    site, x = _square()
    diffs = nm.element_differences(site)
    grad = 2 * x
    grad[2] += 1.0  # element 2 wrong by 1: far outside 1e-6 + 1e-6 * 2
    result = nm.against(diffs, "sq", grad, "float64")
    assert (result.shape, result.compared, result.passed, result.worst_index) == ((5,), 5, False, (2,))
    assert nm.against(diffs, "sq", 2 * x, "float64").passed
