"""Edges of a run's pictures (crosscheck.plots) and of training's one-step check (crosscheck.train) that other tests
leave open: the lines docs/plots.md calls red (the tolerance, the stop, the crosses of non-finite differences) are
red; a single non-finite step among finite ones is still a cross at the top, not a line of one point; the divergence
picture carries the run's title as the training picture does; a float32 filter gradient's difference panel is
manual - autograd taken in float64, so that two finite gradients never make an infinite (grey) difference; the
one-step check builds its subject within the memory budget it is given, and a manual side that breaks the chain says
why on every row of that check."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from run_files import synthetic_run

from crosscheck import plots, subjects
from crosscheck import train as T
from crosscheck.check import overrides
from netdesc.checks import InputError


def _red(colour):
    """Whether a colour reads as red: a strong red channel, weak green and blue (tab:red is about 0.84, 0.15,
    0.16; matplotlib's first cycle colour, blue, is about 0.12, 0.47, 0.71)."""
    r, g, b, _ = to_rgba(colour)
    return r > 0.6 and max(g, b) < 0.4


def _line(ax, label):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def _divergence(values, rtol=1e-10, stopped_at=None):
    run = synthetic_run(steps=len(values), stopped_at=stopped_at)
    run["max_rel_diff"], run["rtol"] = np.array(values, np.float64), np.array(rtol)
    (ax,) = plots.divergence_figure(run).axes
    return ax


# --- what docs/plots.md calls red -------------------------------------------------------------------------------

def test_the_step_where_training_stopped_is_a_dotted_red_line_in_both_run_pictures():
    """docs/plots.md: "A dotted red line marks the step where training stopped at the first divergence"; the
    divergence picture marks it the same way."""
    run = synthetic_run(steps=12, stopped_at=9)
    for ax in (plots.training_figure(run).axes[0], plots.divergence_figure(run).axes[0]):
        line = _line(ax, "stopped at step 9")
        assert list(line.get_xdata()) == [9, 9] and line.get_linestyle() == ":"
        assert _red(line.get_color())


def test_the_tolerance_is_a_dashed_red_line():
    """docs/plots.md: "the tolerance rtol drawn across as a dashed red line"."""
    line = _line(_divergence([1e-16, 3e-12, 1e-9]), "tolerance: rtol 1e-10")
    assert list(line.get_ydata()) == [1e-10, 1e-10] and line.get_linestyle() == "--"
    assert _red(line.get_color())


def test_a_single_non_finite_step_among_finite_ones_is_a_red_cross_at_the_top():
    """docs/plots.md: "An infinite or NaN difference is a red cross at the top". One inf between two finite steps:
    one cross, at step 2, at 100 times the largest of rtol and the finite values (1e-8), a marker with no line (a
    line through one point draws nothing)."""
    crosses = _line(_divergence([1e-12, np.inf, 1e-13]), "inf or NaN, drawn at 1e-08")
    assert list(crosses.get_xdata()) == [2] and list(crosses.get_ydata()) == [pytest.approx(1e-8)]
    assert crosses.get_marker() in ("x", "X")  # matplotlib's two crosses
    assert crosses.get_markersize() > 0 and crosses.get_linestyle() == "None"
    assert _red(crosses.get_color())


# --- the divergence picture's title -----------------------------------------------------------------------------

@pytest.mark.parametrize("stopped_at, title", [
    (None, "digits, float64, 12 steps"),
    (9, "digits, float64, 12 steps, stopped at step 9: the first divergence"),
])
def test_the_divergence_picture_is_titled_with_the_run(stopped_at, title):
    """The run's title, dtype and steps, and where it stopped, over the divergence picture too (as over the
    training picture: test_plots), so that a saved picture says which run it shows."""
    run = synthetic_run(steps=12, stopped_at=stopped_at, title="digits")
    assert plots.divergence_figure(run).get_suptitle() == title
    assert plots.training_figure(run).get_suptitle() == title


# --- a float32 filter gradient ----------------------------------------------------------------------------------

def test_a_float32_gradients_difference_panel_is_taken_in_float64():
    """A float32 run's (KH, KW) dE/df on both sides: the third panel is manual - autograd of the two as float64
    numbers. In float32, 3e38 - (-3e38) overflows to inf, which the picture would draw grey, the colour of an
    infinite or NaN value (docs/plots.md), though both sides are finite; and 1 - 1e-8 rounds to 1."""
    manual = np.array([[3e38, 1.0, 0.5], [2.0, -1.0, 0.0], [0.25, 4.0, -8.0]], np.float32)
    autograd = manual.copy()
    autograd[0, 0], autograd[0, 1] = -3e38, 1e-8
    run = synthetic_run(steps=4) | {"filter_grad_manual": manual, "filter_grad_autograd": autograd}
    figure = plots.filter_gradient_figure(run)
    difference = figure.axes[2].images[0].get_array()
    expected = manual.astype(np.float64) - autograd.astype(np.float64)
    assert np.isfinite(expected).all() and expected[0, 1] < 1.0
    assert not np.ma.is_masked(difference)  # imshow masks what is not finite: the grey cells
    assert np.array_equal(np.ma.getdata(difference), expected)


# --- the one-step check -----------------------------------------------------------------------------------------

def _batch(network, n=4, seed=0):
    rng = np.random.default_rng(seed)
    X, Y = network.arrays(rng.random((n, 8, 8)), rng.integers(0, 10, n))
    return X, Y, network.params


def test_the_one_step_check_builds_its_subject_within_the_budget_it_is_given(monkeypatch):
    """--max-memory sets the budget of every run training makes, the one-step check's too: on a machine whose
    default (half its memory) is smaller than the network needs, a larger budget given lets the check run."""
    monkeypatch.setattr(subjects, "memory_budget", lambda: 1000)  # a machine of 2 kB
    network = T.Slides()
    with pytest.raises(InputError, match=r"^memory: .* more than the budget of 1 kB "):
        network.subject(4, _batch(network))  # the default budget refuses it
    rows = T._one_step(network, 4, _batch(network), 3, 10**9, {})
    assert [(r.name, r.passed) for r in rows] == [
        ("E at step 3", True), ("f after step 3", True), ("W after step 3", True), ("b after step 3", True)]


def test_a_broken_chain_in_the_one_step_check_says_why_on_every_row():
    """A manual dE/df that is text breaks the chain before the update: the loss and every parameter of the check
    are findings, each saying why: compare's "manual side failed: " before the step's refusal (subjects._guarded:
    "no gradient to step with for dE_df: got <what>, needs shape (3, 3)"), <what> being what the equation gave
    instead of numbers (netdesc.checks.unusable: "dE_df returned 'not an array', needs an array of numbers")."""
    network = T.Slides(wrong=overrides(backward={"dE_df": lambda X, dE_dZ1: "not an array"}, name="text"))
    rows = T._one_step(network, 4, _batch(network), 3, None, {})
    why = "manual side failed: no gradient to step with for dE_df: got dE_df returned 'not an array', needs an " \
          "array of numbers, needs shape (3, 3)"
    assert [(r.name, r.passed, r.problem) for r in rows] == [
        ("E at step 3", False, why), ("f after step 3", False, why), ("W after step 3", False, why),
        ("b after step 3", False, why)]
