"""Edges of a run's training and divergence pictures (crosscheck.plots) that other tests leave open: the training
picture has the size of the one the README shows (docs/train-digits.png), and neither picture takes its size from
the caller's rcParams; the loss panel stands left of the accuracy panel, as docs/plots.md says; an empty panel's
message ("no step done", "no epoch finished") is centred in its panel; the epoch axis is ticked at whole epochs
only, also for one epoch; on the divergence axis the crosses of non-finite differences lie inside the drawn range,
each step's value is a point (so that one finite value between NaNs still shows), the curve's legend entry says
what it is, and values below LOG_FLOOR are hollow circles."""

import pathlib

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.image import imread
from run_files import centred, synthetic_run

from crosscheck import plots

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
RUN_FIGURES = [plots.training_figure, plots.divergence_figure]


# --- sizes --------------------------------------------------------------------------------------------------------

def test_the_training_picture_has_the_size_of_the_readmes(tmp_path):
    """The README shows what `crosscheck train --n-out 10 --plots DIR` draws (docs/train-digits.png): a training
    picture saved now has that picture's size in pixels."""
    path = plots.save_figure(plots.training_figure(synthetic_run(steps=30, epochs=3)), tmp_path / "training.png")
    assert imread(path).shape[:2] == imread(DOCS / "train-digits.png").shape[:2]


@pytest.mark.parametrize("draw", RUN_FIGURES, ids=["training", "divergence"])
def test_a_run_picture_keeps_its_size_whatever_the_callers_rcparams(draw):
    """A program with its own figure.figsize still gets crosscheck's picture, at least 900 pixels wide (DPI)."""
    run = synthetic_run(steps=12, epochs=2)
    size = tuple(draw(run).get_size_inches())
    with matplotlib.rc_context({"figure.figsize": (2.0, 1.0)}):
        assert tuple(draw(run).get_size_inches()) == size
    assert size[0] * plots.DPI >= 900


# --- the training picture -------------------------------------------------------------------------------------------

def test_the_loss_is_the_left_panel_and_the_accuracy_the_right_one():
    """docs/plots.md: "left, the mini-batch loss before each step; right, the accuracy after each epoch": the two
    panels side by side in one row, the loss's wholly left of the accuracy's."""
    figure = plots.training_figure(synthetic_run(steps=30, epochs=3))
    figure.canvas.draw()
    loss, accuracy = figure.axes
    assert (loss.get_title(), accuracy.get_title()) == ("loss", "accuracy after each epoch")
    left, right = loss.get_window_extent(), accuracy.get_window_extent()
    assert left.x1 < right.x0
    assert left.y0 < right.y1 and right.y0 < left.y1  # one row: their heights overlap


def test_an_empty_panels_message_is_centred_in_it():
    """A run without steps or epochs: each panel's message, drawn, has the panel's centre as its own (within a
    pixel), in the training and the divergence picture."""
    run = synthetic_run(steps=0, epochs=0)
    training, divergence = plots.training_figure(run), plots.divergence_figure(run)
    training.canvas.draw()
    divergence.canvas.draw()
    loss, accuracy = training.axes
    centred(loss, "no step done")
    centred(accuracy, "no epoch finished")
    centred(divergence.axes[0], "no step done")


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_the_epoch_axis_is_ticked_at_each_whole_epoch_only(epochs):
    """An accuracy exists only after a whole epoch: the visible ticks are 1, 2, ... epochs, no fraction of an epoch,
    and one epoch still has its tick."""
    figure = plots.training_figure(synthetic_run(steps=3 * epochs, epochs=epochs))
    figure.canvas.draw()
    accuracy = figure.axes[1]
    low, high = accuracy.get_xlim()
    assert [float(t) for t in accuracy.get_xticks() if low <= t <= high] == list(range(1, epochs + 1))


# --- the divergence picture -----------------------------------------------------------------------------------------

def _divergence(values, rtol=1e-10):
    run = synthetic_run(steps=len(values))
    run["max_rel_diff"], run["rtol"] = np.array(values, np.float64), np.array(rtol)
    (ax,) = plots.divergence_figure(run).axes
    return ax


def test_the_crosses_of_non_finite_differences_lie_inside_the_axis():
    """The crosses are drawn at 100 times the largest finite value (1e-3 here) and the range reaches 3 times past
    them: every value drawn, from the floor to the crosses, is inside the axis."""
    ax = _divergence([1e-16, np.inf, 1e-3, np.nan], rtol=1e-4)
    curve, tolerance, crosses = ax.get_lines()
    assert list(crosses.get_ydata()) == [pytest.approx(0.1)] * 2
    bottom, top = ax.get_ylim()
    assert (bottom, top) == (pytest.approx(1e-16 / 3), pytest.approx(0.3))
    assert bottom < 1e-16 and 0.1 < top


def test_each_steps_value_is_a_point_so_that_one_between_nans_shows():
    """A NaN breaks the curve; the finite value of step 2 between two NaNs has no segment to either side, so the
    curve marks every step with a visible point."""
    ax = _divergence([np.nan, 1e-12, np.nan])
    curve = ax.get_lines()[0]
    assert list(curve.get_ydata()[[1]]) == [1e-12]
    assert curve.get_marker() not in (None, "None", "none", "", " ") and curve.get_markersize() > 0


def test_the_curves_legend_entry_says_what_it_is():
    """The curve is the largest relative difference over the loss and every parameter (docs/plots.md), and its
    legend entry says so, above the tolerance's."""
    ax = _divergence([1e-16, 3e-12, 1e-9])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "largest relative difference (the loss and every parameter)", "tolerance: rtol 1e-10"]


def test_values_below_the_floor_are_hollow_circles():
    """docs/plots.md: a 0 "is drawn as a hollow circle at 10⁻¹⁷": circles whose inside is the panel's background and
    whose ring is not."""
    ax = _divergence([0.0, 3e-16, 0.0])
    _, floored, _ = ax.get_lines()
    assert floored.get_label() == "2 below 1e-17 (0: equal bit for bit), drawn at 1e-17"
    assert floored.get_marker() == "o" and floored.get_linestyle() == "None"
    background = to_rgba(ax.get_facecolor())
    assert to_rgba(floored.get_markerfacecolor()) == background
    assert to_rgba(floored.get_markeredgecolor()) != background
