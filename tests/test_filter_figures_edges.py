"""Edges of a run's filter-gradient and filters pictures (crosscheck.plots) that other tests leave open: neither
picture takes its size from the caller's rcParams (also where the two shapes differ); the weights are two panels
side by side, manual left, titled, with one labelled colour bar, on a scale that holds both sides' values whichever
is larger; a 2-D bank's axes are named KH and KW; a bank with one input channel has no pixel ticks on either axis; a
tiled bank's channel ticks stand at the centres of its blocks and are named by channel; a 4-D gradient's colour
bar says dE/dweight, also where autograd's is drawn alone; a long shape mismatch title is wrapped inside the
figure; and a 2-D panel beside a tiled one keeps its own pixel ticks."""

import matplotlib
import numpy as np
import pytest
from run_files import synthetic_run, visible_ticks

from crosscheck import plots


def _heat_maps(figure):
    return [ax for ax in figure.axes if ax.images]


def _colour_bar_labels(figure):
    return [ax.get_ylabel() for ax in figure.axes if ax.get_label() == "<colorbar>"]


def _block_centres(finite):
    """The centre of each run of True in `finite` (one block of a tiled bank along one axis)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(int), [0]])))
    return [(start + stop - 1) / 2 for start, stop in zip(edges[::2], edges[1::2], strict=True)]


# --- sizes --------------------------------------------------------------------------------------------------------

FILTER_FIGURES = {
    "filters": lambda: plots.filters_figure(synthetic_run(bank=(4, 2, 3, 3))),
    "filters-shapes-differ": lambda: plots.filters_figure(synthetic_run(bank=(4, 2, 3, 3)) | {
        "filters_manual": np.zeros((3, 3))}),
    "filter-gradient": lambda: plots.filter_gradient_figure(synthetic_run(bank=(4, 2, 3, 3))),
    "filter-gradient-shapes-differ": lambda: plots.filter_gradient_figure(synthetic_run(bank=(4, 2, 3, 3)) | {
        "filter_grad_manual": np.zeros((3, 3))}),
}


@pytest.mark.parametrize("build", FILTER_FIGURES.values(), ids=FILTER_FIGURES.keys())
def test_a_filter_picture_keeps_its_size_whatever_the_callers_rcparams(build):
    """A program with its own figure.figsize (width and height unlike crosscheck's) still gets crosscheck's
    picture, at least 800 pixels wide."""
    size = tuple(build().get_size_inches())
    with matplotlib.rc_context({"figure.figsize": (2.0, 1.0)}):
        assert tuple(build().get_size_inches()) == size
    assert size[0] * plots.DPI >= 800 and size[1] > 1.0


# --- the filters picture ------------------------------------------------------------------------------------------

def test_the_weights_are_two_titled_panels_side_by_side_with_one_labelled_colour_bar():
    """docs/plots.md: "manual and autograd side by side on one colour scale": two heat maps titled manual and
    autograd in one row, manual's wholly left of autograd's, and one colour bar, labelled weight; nothing else."""
    figure = plots.filters_figure(synthetic_run(bank=(4, 2, 3, 3)))
    figure.canvas.draw()
    manual, autograd = _heat_maps(figure)
    assert (manual.get_title(), autograd.get_title()) == ("manual", "autograd")
    left, right = manual.get_window_extent(), autograd.get_window_extent()
    assert left.x1 < right.x0
    assert left.y0 < right.y1 and right.y0 < left.y1  # one row: their heights overlap
    assert _colour_bar_labels(figure) == ["weight"]
    assert len(figure.axes) == 3  # the two panels and the colour bar


@pytest.mark.parametrize("larger", ["filters_manual", "filters_autograd"])
def test_the_weights_scale_holds_both_sides_whichever_is_larger(larger):
    """One colour scale symmetric about 0 whose half-width is the largest |weight| of either side: here 7.5, on
    whichever side holds it, the other side's weights all below 1."""
    run = synthetic_run(bank=(2, 3, 2, 2))
    run["filters_manual"] = np.random.default_rng(5).uniform(-1, 1, (2, 3, 2, 2))
    run["filters_autograd"] = run["filters_manual"] * 0.5
    run[larger] = run[larger].copy()
    run[larger][1, 2, 0, 1] = -7.5
    manual, autograd = (ax.images[0] for ax in _heat_maps(plots.filters_figure(run)))
    assert manual.get_clim() == autograd.get_clim() == (-7.5, 7.5)


# --- axes and ticks -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("draw", [plots.filters_figure, plots.filter_gradient_figure], ids=["filters", "gradient"])
def test_a_2d_banks_axes_are_named_kh_and_kw(draw):
    """A (KH, KW) kernel (dE/df of the slides' network, say) is drawn as it is: its rows are KH, its columns KW, and
    every heat map's axes say so."""
    run = synthetic_run(bank=(3, 4))
    run["filter_grad_manual"] = run["filter_grad_autograd"] + 1.0  # a difference to draw
    panels = _heat_maps(draw(run))
    assert len(panels) == (2 if draw is plots.filters_figure else 3)
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in panels] == [("KW", "KH")] * len(panels)


def test_a_bank_of_one_input_channel_has_no_pixel_ticks_on_either_axis():
    """Output channels wrapped row by row: a pixel's row or column is no channel, so neither axis has ticks, and
    the x label says how to read the blocks."""
    figure = plots.filters_figure(synthetic_run(bank=(6, 1, 5, 5)))
    assert [(list(ax.get_xticks()), list(ax.get_yticks()), ax.get_xlabel()) for ax in _heat_maps(figure)] == [
        ([], [], "output channels 0 to 5, row by row")] * 2


def test_a_tiled_banks_channel_ticks_stand_at_the_centres_of_its_blocks():
    """A (2, 3, 2, 3) bank: 3 blocks of 3 columns across (input channels), 2 blocks of 2 rows down (output
    channels), grey between them; on each of the three panels, tick i stands at the centre of block i (found
    from where the image has values) and is named i."""
    figure = plots.filter_gradient_figure(synthetic_run(bank=(2, 3, 2, 3)))
    figure.canvas.draw()
    panels = _heat_maps(figure)
    assert len(panels) == 3
    for ax in panels:
        finite = np.isfinite(ax.images[0].get_array().filled(np.nan))
        columns, rows = _block_centres(finite.any(axis=0)), _block_centres(finite.any(axis=1))
        assert (columns, rows) == ([1.0, 5.0, 9.0], [0.5, 3.5])
        assert list(ax.get_xticks()) == columns and list(ax.get_yticks()) == rows
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("input channel", "output channel")


def test_a_2d_weights_panel_beside_a_tiled_one_keeps_its_pixel_ticks():
    """Shapes differ: manual a tiled (2, 3, 2, 2) bank, autograd a 3 x 3 kernel. Manual's panel is ticked by
    channel; autograd's by whole pixels 0 to 2, named KW and KH, none of manual's channel ticks on it."""
    run = synthetic_run(bank=(3, 3)) | {"filters_manual": np.ones((2, 3, 2, 2))}
    figure = plots.filters_figure(run)
    figure.canvas.draw()
    manual, autograd = _heat_maps(figure)
    assert list(manual.get_xticks()) == [0.5, 3.5, 6.5] and list(manual.get_yticks()) == [0.5, 3.5]
    assert (autograd.get_xlabel(), autograd.get_ylabel()) == ("KW", "KH")
    assert visible_ticks(autograd, "x") == [0.0, 1.0, 2.0]
    assert visible_ticks(autograd, "y") == [0.0, 1.0, 2.0]


# --- the filter-gradient picture's labels ---------------------------------------------------------------------------

def test_a_4d_gradients_colour_bar_says_dE_dweight():
    """docs/plots.md: the first conv2d's dE/dweight: the shared colour bar of a tiled gradient is labelled
    dE/dweight, the difference's its own."""
    run = synthetic_run(bank=(2, 3, 2, 2))
    run["filter_grad_manual"] = run["filter_grad_autograd"] + 0.5
    assert _colour_bar_labels(plots.filter_gradient_figure(run)) == ["dE/dweight", "manual − autograd"]


@pytest.mark.parametrize(("bank", "label"), [((2, 3, 2, 2), "dE/dweight"), ((3, 3), "dE/df")])
def test_autograds_gradient_drawn_alone_has_a_labelled_colour_bar(bank, label):
    """Where the two shapes differ autograd's gradient is drawn alone, its colour bar labelled with what it is."""
    run = synthetic_run(bank=bank) | {"filter_grad_manual": np.zeros((2, 2))}
    assert _colour_bar_labels(plots.filter_gradient_figure(run)) == [label]


def test_a_long_shape_mismatch_title_is_wrapped_inside_the_figure():
    """Two large 4-D shapes make the mismatch title longer than the figure is wide: drawn, it lies inside the
    figure, and read without its line breaks it is the whole message."""
    run = synthetic_run(bank=(64, 3, 11, 12)) | {"filter_grad_manual": np.zeros((64, 3, 11, 11))}
    figure = plots.filter_gradient_figure(run)
    figure.canvas.draw()
    title = figure.get_suptitle()
    assert title.replace("\n", " ") == ("dE/dweight of the first conv2d at the last step: shape mismatch: manual "
                                        "(64, 3, 11, 11), autograd (64, 3, 11, 12)")
    box = next(t for t in figure.texts if t.get_text() == title).get_window_extent()
    assert 0 <= box.x0 and box.x1 <= figure.bbox.width
