"""The heat map and confusion panels of the pictures (crosscheck.plots), where other tests leave them open: a
picture comes with matplotlib's Agg canvas, so a program can draw it to pixels without pyplot, and is laid out so
that its title stands clear of every panel; a panel with nothing to draw says so in its centre; a heat map is drawn
cell by cell (no smoothing) in red-white-blue with grey where a value is NaN, keeps square cells unless the array is
more than 8 times longer than wide, and is ticked at whole indices only, also for a single cell; manual and autograd
share a scale that holds both sides' values whichever is larger, and their colour bar stands between autograd's panel
and the difference's; a difference of one element that is 0 says "equal bit for bit". A confusion panel is drawn in
blues, both sides on one scale from 0 to the largest count of either (at least 1), its colour bar labelled
"samples"; each count is written centred in its cell, white on cells above 0.6 of the largest count and black
elsewhere, at size 9 up to 10 classes and 6 up to 20, whatever the program's font size; more than 20 classes get no
counts and a tick at every ceil(C / 20)-th class from 0."""

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from run_files import centred, diagnosis_of, synthetic_run, visible_ticks

from crosscheck import plots
from crosscheck.diagnose import Diagnosis


def _panels(figure):
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def _confusion(manual, autograd):
    run = synthetic_run(classes=max(len(manual), 1))
    return plots.confusion_figure(run | {"confusion_manual": np.array(manual, np.int64),
                                         "confusion_autograd": np.array(autograd, np.int64)})


def _gradient(manual, autograd):
    return plots.filter_gradient_figure(synthetic_run(bank=np.shape(autograd)) | {
        "filter_grad_manual": np.asarray(manual, np.float64), "filter_grad_autograd": np.asarray(autograd, np.float64)})


# --- the figure -----------------------------------------------------------------------------------------------------

def test_a_picture_draws_to_pixels_on_its_own_agg_canvas():
    """No pyplot needed: the figure's own canvas renders it, and its pixels can be read as an RGBA array."""
    figure = _confusion([[3, 1], [0, 4]], [[3, 1], [0, 4]])
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())
    assert pixels.shape == (round(figure.bbox.height), round(figure.bbox.width), 4)
    assert (pixels != pixels[0, 0]).any()  # something is drawn on the background


def test_the_title_stands_clear_above_every_panel():
    """Laid out, every panel of a tiled gradient equal bit for bit (the difference's title in two lines), its title
    and tick labels included, ends below the figure's title."""
    figure = _gradient(np.ones((4, 2, 3, 3)), np.ones((4, 2, 3, 3)))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    title = figure.get_suptitle()
    bottom = next(t for t in figure.texts if t.get_text() == title).get_window_extent(renderer).y0
    assert title == "dE/dweight of the first conv2d at the last step, (4, 2, 3, 3), tiled"
    assert [ax.get_tightbbox(renderer).y1 < bottom for ax in figure.axes] == [True] * 4


# --- a panel with nothing to draw -----------------------------------------------------------------------------------

def test_a_panel_with_nothing_to_draw_says_so_in_its_centre():
    """Filters without input channels (their channel ticks stretch the panel's range), confusion matrices without
    classes and a diagnosis with nothing wrong: each panel's message is centred in it, within a pixel."""
    filters = plots.filters_figure(synthetic_run(bank=(2, 0, 3, 3)))
    confusion = _confusion(np.zeros((0, 0)), np.zeros((0, 0)))
    nothing = plots.diagnosis_figure(Diagnosis("a test subject", "float64", ("a",)))
    for figure in (filters, confusion, nothing):
        figure.canvas.draw()
    for ax in _panels(filters):
        centred(ax, "no elements: shape (0, 0)")
    for ax in _panels(confusion):
        centred(ax, "no classes")
    centred(nothing.axes[0], "nothing to draw: all 1 quantities agree with autograd\n(forward, backward from the "
                              "loss, updates)")


# --- heat maps ------------------------------------------------------------------------------------------------------

def test_a_heat_map_is_red_white_blue_cell_by_cell_with_grey_for_nan():
    """Every heat map uses RdBu_r (0 white, positive red, negative blue), draws its cells as they are (nearest, no
    smoothing), and the blank lines between tiled blocks (NaN) are grey, BLANK."""
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(2, 2, 3, 3))
    figure = _gradient(bank * 2, bank)
    images = [ax.images[0] for ax in _panels(figure)]
    assert len(images) == 3
    for image in images:
        assert image.get_cmap().name == "RdBu_r" and image.get_interpolation() == "nearest"
        assert to_rgba(image.get_cmap().get_bad()) == to_rgba(plots.BLANK) == to_rgba("0.8")
        colours = image.to_rgba(image.get_array())
        assert tuple(colours[3, 0]) == to_rgba("0.8")  # the line between block rows 0 and 1
        limit = image.norm.vmax
        assert image.to_rgba(0.0) == pytest.approx(image.get_cmap()(0.5))
        assert image.to_rgba(limit)[0] > image.to_rgba(limit)[2] and image.to_rgba(-limit)[2] > image.to_rgba(
            -limit)[0]


@pytest.mark.parametrize("shape, aspect", [((3, 4), 1.0), ((8, 1), 1.0), ((1, 8), 1.0), ((9, 1), "auto"),
                                           ((1, 9), "auto"), ((2, 17), "auto"), ((2, 16), 1.0)],
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v))
def test_a_heat_map_keeps_square_cells_unless_over_8_times_longer_than_wide(shape, aspect):
    """Cells are square ("equal") up to a side 8 times the other; longer, the panel is filled ("auto")."""
    rng = np.random.default_rng(1)
    autograd = rng.normal(size=shape)
    figure = _gradient(autograd + 1.0, autograd)
    assert [ax.get_aspect() for ax in _panels(figure)] == [aspect] * 3


def test_a_heat_map_is_ticked_at_whole_indices_even_for_one_cell():
    """A 0-d quantity is one cell: on each panel its one tick on either axis is at index 0, no fraction of a
    cell; a row of 3 has ticks 0, 1, 2."""
    figure = plots.diagnosis_figure(diagnosis_of(np.float64(2.0), np.float64(1.0)))
    for ax in _panels(figure):
        assert (visible_ticks(ax, "x"), visible_ticks(ax, "y")) == ([0.0], [0.0])
    figure = plots.diagnosis_figure(diagnosis_of(np.arange(3.0), np.zeros(3)))
    for ax in _panels(figure):
        assert visible_ticks(ax, "x") == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("larger", ["manual", "autograd"])
def test_manual_and_autograd_share_a_scale_holding_the_larger_side(larger):
    """The shared scale is symmetric about 0 and reaches the largest |value| of either side, whichever it is."""
    small = np.array([[0.5, -1.0, 0.25], [1.0, 0.0, -0.5]])
    big = small * 4
    manual, autograd = (big, small) if larger == "manual" else (small, big)
    figure = _gradient(manual, autograd)
    scales = [ax.images[0].get_clim() for ax in _panels(figure)]
    assert scales[:2] == [(-4.0, 4.0)] * 2
    assert scales[2] == (-3.0, 3.0)


def test_the_shared_colour_bar_stands_between_autograd_and_the_difference():
    """Laid out: manual, autograd, their colour bar, then the difference with its own colour bar, left to right."""
    rng = np.random.default_rng(2)
    autograd = rng.normal(size=(4, 4))
    figure = _gradient(autograd + np.eye(4), autograd)
    figure.canvas.draw()
    manual, autograd_ax, difference = _panels(figure)
    shared, own = autograd_ax.images[0].colorbar.ax, difference.images[0].colorbar.ax
    boxes = [ax.get_position() for ax in (manual, autograd_ax, shared, difference, own)]
    assert all(left.x1 <= right.x0 for left, right in zip(boxes, boxes[1:], strict=False))


def test_one_element_equal_bit_for_bit_says_so_and_has_no_difference_scale():
    """A 1 x 1 gradient equal on both sides is 0 everywhere as much as a larger one."""
    figure = _gradient([[0.75]], [[0.75]])
    assert _panels(figure)[2].get_title() == "manual − autograd\n0 everywhere: equal bit for bit"
    assert len(figure.axes) == 4  # three panels and the shared colour bar


# --- confusion matrices ---------------------------------------------------------------------------------------------

def test_both_confusion_panels_are_blues_on_one_scale_from_0_to_the_largest_count():
    """Both sides on 0 .. the largest count of either side (5, manual's, also on autograd's panel, whose counts
    lie in 1 .. 4), drawn cell by cell in blues; one colour bar, labelled "samples"."""
    figure = _confusion([[5, 1], [3, 2]], [[4, 1], [2, 3]])
    images = [ax.images[0] for ax in _panels(figure)]
    assert [image.get_clim() for image in images] == [(0, 5)] * 2
    assert [(image.get_cmap().name, image.get_interpolation()) for image in images] == [("Blues", "nearest")] * 2
    assert [ax.get_ylabel() for ax in figure.axes if ax.get_label() == "<colorbar>"] == ["samples"]


def test_a_confusion_scale_reaches_at_least_1():
    """With one sample the largest count is 1, and the scale is 0 .. 1."""
    figure = _confusion([[1, 0], [0, 0]], [[1, 0], [0, 0]])
    assert [ax.images[0].get_clim() for ax in _panels(figure)] == [(0, 1)] * 2


def _cells(ax):
    return sorted((tuple(t.get_position()), t.get_text(), to_rgba(t.get_color()), t.get_fontsize(), t.get_ha(),
                   t.get_va()) for t in ax.texts)


def test_each_count_is_centred_in_its_cell_white_above_six_tenths_of_the_largest():
    """The largest count is 5: a count above 3 (0.6 x 5) is written white, 3 and below black, each at size 9 and
    centred on its cell (x: predicted, y: true)."""
    figure = _confusion([[5, 1], [3, 2]], [[4, 1], [2, 3]])
    manual, autograd = _panels(figure)
    white, black = to_rgba("white"), to_rgba("black")

    def cell(x, y, n, colour):
        return (x, y), str(n), colour, 9.0, "center", "center"

    assert _cells(manual) == sorted([cell(0, 0, 5, white), cell(1, 0, 1, black), cell(0, 1, 3, black),
                                     cell(1, 1, 2, black)])
    assert _cells(autograd) == sorted([cell(0, 0, 4, white), cell(1, 0, 1, black), cell(0, 1, 2, black),
                                       cell(1, 1, 3, black)])


@pytest.mark.parametrize("classes, size", [(10, 9.0), (11, 6.0), (20, 6.0)])
def test_counts_and_panel_titles_keep_their_sizes_whatever_the_programs_font_size(classes, size):
    """Up to 10 classes the counts are at size 9, up to 20 at size 6, every cell written on both panels; the panel
    titles at 10 (docs/plots.md), under a program's font.size of 13."""
    with matplotlib.rc_context({"font.size": 13.0}):
        figure = plots.confusion_figure(synthetic_run(classes=classes))
    for ax in _panels(figure):
        assert len(ax.texts) == classes * classes and {t.get_fontsize() for t in ax.texts} == {size}
        assert ax.title.get_fontsize() == 10.0
        assert list(ax.get_xticks()) == list(ax.get_yticks()) == list(range(classes))


def test_heat_map_titles_keep_their_size_whatever_the_programs_font_size():
    """Each heat map panel is titled at 10 (docs/plots.md), under a program's font.size of 13."""
    with matplotlib.rc_context({"font.size": 13.0}):
        figure = _gradient(np.eye(3), np.zeros((3, 3)))
    assert [ax.title.get_fontsize() for ax in _panels(figure)] == [10.0] * 3


@pytest.mark.parametrize("classes, ticks", [(21, list(range(0, 21, 2))), (30, list(range(0, 30, 2))),
                                            (45, list(range(0, 45, 3)))], ids=["21", "30", "45"])
def test_over_20_classes_have_no_counts_and_every_nth_class_ticked_from_0(classes, ticks):
    """More than MAX_ANNOTATED classes: no count written, a tick at every ceil(C / 20)-th class starting at 0."""
    figure = plots.confusion_figure(synthetic_run(classes=classes))
    for ax in _panels(figure):
        assert not ax.texts
        assert list(ax.get_xticks()) == list(ax.get_yticks()) == ticks
