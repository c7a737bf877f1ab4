"""The pictures (crosscheck.plots, crosscheck plot, crosscheck diagnose --plot): runs built here with known values
(tests/run_files.py), each figure read back through its Figure object (panels, titles, labels, the log axis and the
tolerance line, the lines' data, the heat maps' arrays, colour bars), the files written checked as PNG and SVG, and
the diagnosis' heat maps compared with the quantity walked again."""

import io
import json
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.image import imread
from run_files import diagnosis_of, same_bits, synthetic_run

from crosscheck import cli, plots, runfile
from crosscheck.catalogue import find
from crosscheck.check import entry_subject
from crosscheck.compare import ManualFailure
from crosscheck.diagnose import Diagnosis, diagnose
from netdesc import InputError

# --- the run's figures ----------------------------------------------------------------------------------------

def _lines(ax):
    return [(line.get_label(), line.get_linestyle(), line.get_xdata(), line.get_ydata()) for line in ax.get_lines()]


def _images(figure):
    return [ax.images[0] for ax in figure.axes if ax.images]


def _colour_bars(figure):
    return [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]


def test_the_training_figure_overlays_both_sides_per_step_and_per_epoch():
    run = synthetic_run(steps=30, epochs=3, title="digits")
    figure = plots.training_figure(run)
    loss, accuracy = figure.axes
    assert figure.get_suptitle() == "digits, float64, 30 steps"
    assert (loss.get_title(), loss.get_xlabel(), loss.get_ylabel()) == ("loss", "step",
                                                                        "mini-batch loss before the step")
    (m_label, m_style, m_x, m_y), (a_label, a_style, a_x, a_y) = _lines(loss)
    assert (m_label, m_style, a_label, a_style) == ("manual", "-", "autograd", "--")
    assert list(m_x) == list(a_x) == list(range(1, 31))
    assert same_bits(m_y, run["loss_manual"]) and same_bits(a_y, run["loss_autograd"])
    assert (accuracy.get_title(), accuracy.get_xlabel(), accuracy.get_ylabel()) == ("accuracy after each epoch",
                                                                                    "epoch", "accuracy")
    lines = _lines(accuracy)
    assert [(label, style) for label, style, _, _ in lines] == [
        ("training: manual", "-"), ("training: autograd", "--"), ("held-out: manual", "-"),
        ("held-out: autograd", "--")]
    for (_, _, x, y), key in zip(lines, ["train_accuracy_manual", "train_accuracy_autograd", "test_accuracy_manual",
                                         "test_accuracy_autograd"], strict=True):
        assert list(x) == [1, 2, 3] and same_bits(y, run[key])
    assert accuracy.get_ylim() == (0, 1.02)
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["manual", "autograd"]
    assert len(accuracy.get_legend().get_texts()) == 4


def test_a_stopped_run_marks_the_step_where_it_stopped():
    figure = plots.training_figure(synthetic_run(steps=12, stopped_at=9, title="digits"))
    assert figure.get_suptitle() == "digits, float64, 12 steps, stopped at step 9: the first divergence"
    label, style, x, _ = _lines(figure.axes[0])[2]
    assert (label, style, list(x)) == ("stopped at step 9", ":", [9, 9])
    divergence = plots.divergence_figure(synthetic_run(steps=12, stopped_at=9))
    assert ("stopped at step 9", [9, 9]) in [(label, list(x)) for label, _, x, _ in _lines(divergence.axes[0])]


def test_the_divergence_axis_is_logarithmic_with_the_tolerance_across():
    run = synthetic_run(steps=4)
    run["max_rel_diff"] = np.array([2e-16, 3e-12, 1e-9, 4e-16])
    run["rtol"] = np.array(1e-10)
    figure = plots.divergence_figure(run)
    (ax,) = figure.axes
    assert ax.get_yscale() == "log"
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("divergence per step", "step",
                                                                  "largest |manual − autograd| / |autograd|")
    curve, tolerance = _lines(ax)
    assert list(curve[2]) == [1, 2, 3, 4] and list(curve[3]) == [2e-16, 3e-12, 1e-9, 4e-16]
    assert tolerance[0] == "tolerance: rtol 1e-10" and tolerance[1] == "--" and list(tolerance[3]) == [1e-10, 1e-10]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [curve[0], "tolerance: rtol 1e-10"]


def test_zeros_are_drawn_at_the_floor_and_the_legend_says_so():
    below = np.nextafter(1e-17, 0)
    run = synthetic_run(steps=5)
    run["max_rel_diff"] = np.array([0.0, 1e-17, below, -0.0, 3e-16])
    (ax,) = plots.divergence_figure(run).axes
    curve, floored, _ = _lines(ax)
    assert plots.LOG_FLOOR == 1e-17  # below 2**-53, the smallest relative difference of two unequal float64
    assert list(curve[3]) == [1e-17, 1e-17, 1e-17, 1e-17, 3e-16]
    assert floored[0] == "3 below 1e-17 (0: equal bit for bit), drawn at 1e-17"
    assert list(floored[2]) == [1, 3, 4] and list(floored[3]) == [1e-17] * 3
    bottom, _ = ax.get_ylim()
    assert 0 < bottom <= 1e-17


def test_infinite_and_nan_differences_are_crosses_at_the_top():
    run = synthetic_run(steps=4)
    run["max_rel_diff"] = np.array([1e-16, np.inf, 1e-3, np.nan])
    run["rtol"] = np.array(1e-4)
    curve, tolerance, crosses = _lines(plots.divergence_figure(run).axes[0])
    assert np.isnan(curve[3][[1, 3]]).all() and list(curve[3][[0, 2]]) == [1e-16, 1e-3]
    assert crosses[0] == "inf or NaN, drawn at 1e-01" and list(crosses[2]) == [2, 4]
    assert list(crosses[3]) == [pytest.approx(0.1)] * 2  # 100 times the largest finite value or rtol


def test_a_run_without_steps_or_epochs_still_draws_every_figure():
    run = synthetic_run(steps=0, epochs=0)
    figures = {name: draw(run) for name, draw in plots.FIGURES.items()}
    for figure in figures.values():
        figure.savefig(io.BytesIO(), format="png")  # drawn: a warning (a singular axis, say) fails the test
    loss, accuracy = figures["training"].axes
    assert [t.get_text() for t in loss.texts] == ["no step done"]
    assert [t.get_text() for t in accuracy.texts] == ["no epoch finished"]
    assert [t.get_text() for t in figures["divergence"].axes[0].texts] == ["no step done"]
    (ax,) = figures["divergence"].axes
    assert ax.get_yscale() == "log" and ax.get_ylim() == (pytest.approx(1e-10 / 3), pytest.approx(3e-10))


def test_one_step_at_the_tolerance_still_has_a_range():
    run = synthetic_run(steps=1, epochs=1)
    run["max_rel_diff"] = np.array([1e-10])
    figure = plots.divergence_figure(run)
    figure.savefig(io.BytesIO(), format="png")
    assert figure.axes[0].get_ylim() == (pytest.approx(1e-10 / 3), pytest.approx(3e-10))


def test_the_filter_gradient_is_three_heat_maps_with_colour_bars():
    run = synthetic_run(bank=(3, 4))
    run["filter_grad_autograd"] = np.random.default_rng(1).integers(-8, 8, (3, 4)) / 4  # + 0.5 exact
    run["filter_grad_manual"] = run["filter_grad_autograd"] + np.eye(3, 4) * 0.5
    figure = plots.filter_gradient_figure(run)
    manual, autograd, difference = _images(figure)
    assert same_bits(manual.get_array().data, run["filter_grad_manual"])
    assert same_bits(autograd.get_array().data, run["filter_grad_autograd"])
    assert np.array_equal(difference.get_array().data, np.eye(3, 4) * 0.5)
    assert manual.get_clim() == autograd.get_clim() and manual.get_clim()[0] == -manual.get_clim()[1]
    assert manual.get_clim()[1] == np.abs(np.concatenate([run["filter_grad_manual"],
                                                          run["filter_grad_autograd"]])).max()
    assert difference.get_clim() == (-0.5, 0.5)
    assert [ax.get_title() for ax in figure.axes if ax.images] == ["manual", "autograd", "manual − autograd"]
    assert [cb.get_ylabel() for cb in _colour_bars(figure)] == ["dE/df", "manual − autograd"]
    assert figure.get_suptitle() == "dE/df at the last step, (3, 4) (KH, KW)"


def test_a_gradient_equal_bit_for_bit_says_so_and_has_no_difference_scale():
    run = synthetic_run(bank=(3, 3))
    run["filter_grad_manual"] = run["filter_grad_autograd"].copy()
    figure = plots.filter_gradient_figure(run)
    assert figure.axes[2].get_title() == "manual − autograd\n0 everywhere: equal bit for bit"
    assert len(_colour_bars(figure)) == 1 and not _images(figure)[2].get_array().any()


def test_a_4d_bank_is_tiled_block_by_block():
    rng = np.random.default_rng(3)
    bank = rng.normal(size=(2, 3, 2, 2))
    run = synthetic_run(bank=(2, 3, 2, 2)) | {"filter_grad_manual": bank, "filter_grad_autograd": -bank}
    figure = plots.filter_gradient_figure(run)
    image = _images(figure)[0].get_array()
    assert image.shape == (2 * 3 - 1, 3 * 3 - 1)
    for o in range(2):
        for i in range(3):
            assert np.array_equal(image[3 * o: 3 * o + 2, 3 * i: 3 * i + 2], bank[o, i])
    assert image.mask[2].all() and image.mask[:, [2, 5]].all() and image.mask.sum() == 5 * 2 + 8 - 2
    assert np.array_equal(_images(figure)[2].get_array()[:2, :2], 2 * bank[0, 0])
    ax = figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("input channel", "output channel")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"] and list(ax.get_yticks()) == [0.5, 3.5]
    assert figure.get_suptitle() == "dE/dweight of the first conv2d at the last step, (2, 3, 2, 2), tiled"


def test_a_bank_of_one_input_channel_wraps_its_filters_row_by_row():
    bank = np.arange(6 * 25, dtype=float).reshape(6, 1, 5, 5)
    image = plots.tile(bank)
    assert plots.tile_grid(bank.shape) == (2, 3) and image.shape == (11, 17)
    for o in range(6):
        r, c = divmod(o, 3)
        assert np.array_equal(image[6 * r: 6 * r + 5, 6 * c: 6 * c + 5], bank[o, 0])
    assert plots.tile_grid((1, 1, 3, 3)) == (1, 1) and plots.tile_grid((5, 1, 3, 3)) == (2, 3)
    assert np.array_equal(plots.tile(bank[0, 0]), bank[0, 0])
    figure = plots.filters_figure(synthetic_run(bank=(6, 1, 5, 5)))
    assert [(ax.get_xlabel(), list(ax.get_xticks())) for ax in figure.axes[:2]] == [
        ("output channels 0 to 5, row by row", [])] * 2


def test_a_gradient_of_another_shape_draws_autograds_alone():
    run = synthetic_run(bank=(3, 3)) | {"filter_grad_manual": np.zeros((3, 2))}
    figure = plots.filter_gradient_figure(run)
    (image,) = _images(figure)
    assert same_bits(image.get_array().data, run["filter_grad_autograd"])
    assert figure.axes[0].get_title() == "autograd" and len(_colour_bars(figure)) == 1
    assert figure.get_suptitle() == "dE/df at the last step: shape mismatch: manual (3, 2), autograd (3, 3)"


def test_the_filters_are_side_by_side_on_one_scale():
    run = synthetic_run(bank=(4, 2, 3, 3))
    run["filters_autograd"] = run["filters_manual"] + 0.25
    figure = plots.filters_figure(run)
    manual, autograd = _images(figure)
    assert np.array_equal(manual.get_array()[:3, :3], run["filters_manual"][0, 0])
    assert np.array_equal(autograd.get_array()[4:7, 4:7], run["filters_autograd"][1, 1])
    assert manual.get_clim() == autograd.get_clim() and len(_colour_bars(figure)) == 1
    assert figure.get_suptitle() == ("the first convolution's weights at the end: (4, 2, 3, 3), tiled; largest "
                                     "|manual − autograd| 0.25")
    other = plots.filters_figure(run | {"filters_manual": np.zeros((3, 3))})
    assert other.get_suptitle().endswith("shape mismatch: manual (3, 3), autograd (4, 2, 3, 3)")
    assert [ax.get_xlabel() for ax in other.axes[:2]] == ["KW", "input channel"]


def test_zero_size_filters_say_there_is_nothing_to_draw():
    run = synthetic_run() | {k: np.zeros((0, 3)) for k in ("filters_manual", "filters_autograd", "filter_grad_manual",
                                                            "filter_grad_autograd")}
    for figure in (plots.filters_figure(run), plots.filter_gradient_figure(run)):
        assert not _images(figure)
        assert "no elements: shape (0, 3)" in [t.get_text() for ax in figure.axes for t in ax.texts]


def test_the_confusion_matrices_have_their_counts_in_the_cells():
    counts = np.array([[3, 1], [0, 4]])
    run = synthetic_run(classes=2) | {"confusion_manual": counts, "confusion_autograd": counts[::-1].copy()}
    figure = plots.confusion_figure(run)
    manual, autograd = figure.axes[:2]
    assert np.array_equal(manual.images[0].get_array(), counts)
    assert np.array_equal(autograd.images[0].get_array(), counts[::-1])
    assert (manual.get_xlabel(), manual.get_ylabel()) == ("predicted class", "true class")
    assert manual.get_title() == "manual: held-out accuracy 87.5%"  # (3 + 4) / 8
    assert autograd.get_title() == "autograd: held-out accuracy 12.5%"  # (0 + 1) / 8
    cells = {(t.get_position(), t.get_text()) for t in manual.texts}
    assert cells == {((0, 0), "3"), ((1, 0), "1"), ((0, 1), "0"), ((1, 1), "4")}  # (x: predicted, y: true)
    assert figure.get_suptitle() == "confusion on the held-out split: the two sides differ on 4 counts"
    assert len(_colour_bars(figure)) == 1


def test_many_classes_are_drawn_without_counts_and_none_or_no_samples_say_so():
    run = synthetic_run(classes=30)
    figure = plots.confusion_figure(run)
    assert not figure.axes[0].texts and len(figure.axes[0].get_xticks()) == 15
    assert figure.get_suptitle() == "confusion on the held-out split: the two sides agree on every count"
    empty = plots.confusion_figure(synthetic_run() | {k: np.zeros((0, 0), np.int64) for k in
                                                      ("confusion_manual", "confusion_autograd")})
    assert [ax.get_title() for ax in empty.axes] == ["manual: held-out accuracy no samples",
                                                     "autograd: held-out accuracy no samples"]
    assert [t.get_text() for t in empty.axes[0].texts] == ["no classes"]


def test_save_plots_writes_every_figure_in_every_format(tmp_path):
    folder = tmp_path / "new" / "plots"
    written = plots.save_plots(synthetic_run(), folder)
    assert written == [folder / f"{name}.{fmt}" for name in ("training", "divergence", "filter-gradient", "filters",
                                                             "confusion") for fmt in ("png", "svg")]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in written)
    for path in written[::2]:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
        height, width, _ = imread(path).shape
        figure = plots.FIGURES[path.stem](synthetic_run())
        assert (width, height) == tuple(round(s * plots.DPI) for s in figure.get_size_inches())
    for path in written[1::2]:
        assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize(("formats", "names"), [("svg", ["training.svg"]), (["png"], ["training.png"])])
def test_save_plots_in_one_format(formats, names, tmp_path):
    written = plots.save_plots(synthetic_run(steps=3, epochs=1, classes=2), tmp_path, formats)
    assert [p.name for p in written[:1]] == names and len(written) == 5


@pytest.mark.parametrize("formats", [(), ("pdf",), ("png", "png"), "both"])
def test_save_plots_refuses_other_formats(formats, tmp_path):
    with pytest.raises(InputError) as info:
        plots.save_plots(synthetic_run(), tmp_path, formats)
    assert str(info.value) == f"formats: got {formats!r}, needs one or both of 'png', 'svg'"


def test_save_plots_refuses_a_file_for_a_folder(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}/f: got a file, needs a folder for the plots")):
        plots.save_plots(synthetic_run(), tmp_path / "f")


@pytest.mark.parametrize(("name", "message"), [
    ("x.pdf", "path: got '{tmp}/x.pdf', needs a file name ending in .png or .svg"),
    ("x", "path: got '{tmp}/x', needs a file name ending in .png or .svg"),
    ("folder.png", "path: got '{tmp}/folder.png', a folder, needs a file name ending in .png or .svg"),
])
def test_a_figure_file_needs_a_picture_suffix(name, message, tmp_path):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(InputError) as info:
        plots.save_figure(plots.confusion_figure(synthetic_run()), tmp_path / name)
    assert str(info.value) == message.replace("{tmp}", str(tmp_path))


def test_an_upper_case_suffix_picks_the_format(tmp_path):
    path = plots.save_figure(plots.confusion_figure(synthetic_run(classes=2)), tmp_path / "c.SVG")
    assert ET.parse(path).getroot().tag.endswith("svg")


# --- arrays as images ------------------------------------------------------------------------------------------

def test_arrays_of_any_rank_map_to_two_dimensions():
    a5 = np.arange(2 * 3 * 4 * 5 * 6, dtype=float).reshape(2, 3, 4, 5, 6)
    image, index = plots.as_image(np.float64(7.0))
    assert image.tolist() == [[7.0]] and index == ""
    image, index = plots.as_image(np.array([1, 2, 3]))
    assert image.tolist() == [[1.0, 2.0, 3.0]] and image.dtype == np.float64 and index == ""
    assert plots.as_image(a5[0, 0, 0])[0] is not None and plots.as_image(a5[0, 0, 0])[1] == ""
    image, index = plots.as_image(a5, (1, 2, 3))
    assert np.array_equal(image, a5[1, 2, 3]) and index == "[1, 2, 3, :, :]"
    image, index = plots.as_image(a5, (1,))
    assert np.array_equal(image, a5[1, 0, 0]) and index == "[1, 0, 0, :, :]"
    image, index = plots.as_image(a5)
    assert np.array_equal(image, a5[0, 0, 0]) and index == "[0, 0, 0, :, :]"
    assert plots.as_image(np.zeros((0, 4)))[0].shape == (0, 4) and plots.as_image(np.zeros(0))[0].shape == (1, 0)
    image, index = plots.as_image(np.zeros((3, 0, 4)), (2,))
    assert image.shape == (0, 0) and index == ""
    assert plots.tile(np.zeros((0, 1, 3, 3))).shape == plots.tile(np.zeros((2, 0, 3, 3))).shape == (0, 0)
    assert plots.tile_grid((0, 1, 3, 3)) == (0, 1)


# --- a diagnosis ---------------------------------------------------------------------------------------------

def _walked(entry):
    """The entry's diagnosis and its first wrong quantity's arrays, walked again."""
    d = diagnose(entry_subject(find(entry, "--wrong")))
    step = next(s for s in entry_subject(find(entry, "--wrong")).walk() if s.name == d.quantity)
    return d, np.asarray(step.manual, np.float64), np.asarray(step.autograd, np.float64)


@pytest.mark.parametrize("entry", ["conv2d-stride-ignored-dx", "max-pool-every-element", "conv2d-dw-flipped",
                                   "flipped-kernel-dE_df"])
def test_the_difference_is_nonzero_exactly_where_the_quantity_differs(entry):
    d, m, a = _walked(entry)
    figure = plots.diagnosis_figure(d)
    manual, autograd, difference = (image.get_array().data for image in _images(figure))
    lead = d.worst[0].index[:-2]  # the diagnosis' own worst element: its slice is the one drawn
    assert np.array_equal(manual, m[lead]) and np.array_equal(autograd, a[lead])
    assert np.array_equal(difference != 0, m[lead] != a[lead]) and np.array_equal(difference, m[lead] - a[lead])
    lines = figure.get_suptitle().split("\n")
    assert lines[0] == f"first wrong quantity: {d.quantity}, shape {a.shape}"
    assert lines[1].startswith(f"{d.subject}, float64; injected: {entry} (")
    if lead:
        index = "[" + ", ".join([*map(str, lead), ":", ":"]) + "]"
        assert lines[-1] == f"showing {index}: the slice holding the element furthest out of tolerance"
        assert [ax.get_title() for ax in figure.axes if ax.images][:2] == [f"manual {index}", f"autograd {index}"]
    assert len(_colour_bars(figure)) == 2


def test_a_flipped_kernel_draws_a_mirror():
    d, _, _ = _walked("conv2d-dw-flipped")
    manual, autograd, _ = (image.get_array().data for image in _images(plots.diagnosis_figure(d)))
    assert np.allclose(manual, autograd[::-1, ::-1], rtol=1e-10, atol=1e-12)
    assert not np.allclose(manual, autograd, rtol=1e-3)


def test_a_stride_left_out_draws_the_gradient_squeezed_into_the_top_left():
    d, _, _ = _walked("conv2d-stride-ignored-dx")
    manual, autograd, _ = (image.get_array().data for image in _images(plots.diagnosis_figure(d)))
    # 2x2 windows of 3x3 at stride 2 over 6x6 reach rows and columns 0 to 4; scattered as if adjacent (stride 1),
    # they reach 0 to 3 only
    assert d.quantity == "2 conv2d: dE/dinput" and manual.shape == (6, 6)
    assert not manual[4:].any() and not manual[:, 4:].any() and manual[:4, :4].any()
    assert autograd[4:].any() and autograd[:, 4:].any()


def test_the_difference_title_counts_the_elements_out_of_tolerance():
    a = np.zeros((2, 3))
    m = a.copy()
    m[0, 1], m[1, 2], m[1, 0] = 1.0, -2.0, 1e-13  # the last within atol 1e-12
    figure = plots.diagnosis_figure(diagnosis_of(m, a))
    assert figure.axes[2].get_title() == "manual − autograd\n2 of 6 out of tolerance"
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in figure.axes[:3:2]] == [("axis 1", "axis 0")] * 2


def test_a_5d_quantity_shows_the_slice_of_its_worst_element():
    a = np.random.default_rng(0).normal(size=(2, 3, 2, 4, 5))
    m = a.copy()
    m[1, 2, 0, 3, 4] += 1.0
    m[0, 0, 0, 0, 0] += 1e-3  # out of tolerance too, but less
    figure = plots.diagnosis_figure(diagnosis_of(m, a))
    difference = _images(figure)[2].get_array().data
    assert np.flatnonzero(difference).tolist() == [3 * 5 + 4]
    assert figure.get_suptitle().split("\n")[-1].startswith("showing [1, 2, 0, :, :]")


@pytest.mark.parametrize(("manual", "autograd", "shape", "xlabel"), [
    (np.float64(2.0), np.float64(1.0), (1, 1), ""), (np.array([1.0, 5.0]), np.array([1.0, 2.0]), (1, 2), "index")])
def test_0d_and_1d_quantities_are_a_cell_and_a_row(manual, autograd, shape, xlabel):
    figure = plots.diagnosis_figure(diagnosis_of(manual, autograd))
    images = [image.get_array().data for image in _images(figure)]
    assert [i.shape for i in images] == [shape] * 3
    assert np.array_equal(images[2], np.reshape(np.asarray(manual) - autograd, shape))
    assert figure.axes[0].get_xlabel() == xlabel and len(figure.get_suptitle().split("\n")) == 2


def test_a_manual_side_that_failed_draws_autograd_alone_under_the_problem():
    a = np.arange(6.0).reshape(2, 3)
    figure = plots.diagnosis_figure(diagnosis_of(ManualFailure("dO_dZ2 returned None"), a, "dO/dZ2"))
    (image,) = _images(figure)
    assert np.array_equal(image.get_array().data, a) and figure.axes[0].get_title() == "autograd"
    assert figure.get_suptitle().split("\n")[-1] == "manual side failed: dO_dZ2 returned None"
    assert len(_colour_bars(figure)) == 1


def test_a_transposed_quantity_draws_autograd_alone_under_the_problem():
    d, _, a = _walked("transposed-dE_dW")
    figure = plots.diagnosis_figure(d)
    (image,) = _images(figure)
    assert np.array_equal(image.get_array().data, a)
    assert "shape mismatch: manual (1, 36), autograd (36, 1); manual equals autograd" in figure.get_suptitle()


def test_another_dtype_and_no_elements_still_draw():
    figure = plots.diagnosis_figure(diagnosis_of(np.ones(3, np.float32), np.ones(3)))
    assert len(_images(figure)) == 3
    assert figure.get_suptitle().split("\n")[-1] == "dtype mismatch: manual float32, autograd float64, expected " \
                                                    "float64"
    empty = plots.diagnosis_figure(diagnosis_of(np.zeros((0, 3)), np.zeros((0, 3))))
    assert not _images(empty) and empty.axes[2].get_title() == "manual − autograd\n0 of 0 out of tolerance"
    assert "nothing to compare: 0 elements" in empty.get_suptitle()


def test_nothing_wrong_draws_one_panel_saying_so():
    figure = plots.diagnosis_figure(Diagnosis("a test subject", "float64", ("a", "b")))
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.texts] == ["nothing to draw: all 2 quantities agree with autograd\n(forward, "
                                                "backward from the loss, updates)"]
    assert figure.get_suptitle() == "a test subject, float64"


def test_the_diagnosis_keeps_the_step_out_of_its_json():
    d, _, _ = _walked("flipped-kernel-dE_df")
    assert d.step.name == d.quantity and "step" not in d.as_dict()


# --- every odd case drawn ----------------------------------------------------------------------------------

def _zero_size_filters():
    return synthetic_run() | {k: np.zeros((0, 3)) for k in ("filters_manual", "filters_autograd", "filter_grad_manual",
                                                             "filter_grad_autograd")}


ODD_FIGURES = {
    "zero-size-filters": lambda: plots.filters_figure(_zero_size_filters()),
    "zero-size-gradient": lambda: plots.filter_gradient_figure(_zero_size_filters()),
    "gradient-shapes-differ": lambda: plots.filter_gradient_figure(synthetic_run() | {
        "filter_grad_manual": np.zeros((2, 2))}),
    "filters-shapes-differ": lambda: plots.filters_figure(synthetic_run(bank=(6, 1, 5, 5)) | {
        "filters_manual": np.zeros((2, 2))}),
    "no-output-channels": lambda: plots.filter_gradient_figure(synthetic_run(bank=(0, 1, 3, 3))),
    "no-input-channels": lambda: plots.filters_figure(synthetic_run(bank=(2, 0, 3, 3))),
    "diagnosis-empty-3d": lambda: plots.diagnosis_figure(diagnosis_of(np.zeros((2, 0, 3)), np.zeros((2, 0, 3)))),
    "one-class": lambda: plots.confusion_figure(synthetic_run(classes=1)),
    "no-classes": lambda: plots.confusion_figure(synthetic_run() | {k: np.zeros((0, 0), np.int64) for k in
                                                                   ("confusion_manual", "confusion_autograd")}),
    "many-classes": lambda: plots.confusion_figure(synthetic_run(classes=30)),
    "nan-filters": lambda: plots.filters_figure(synthetic_run() | {"filters_manual": np.full((3, 3), np.nan)}),
    "diagnosis-0d": lambda: plots.diagnosis_figure(diagnosis_of(np.float64(2.0), np.float64(1.0))),
    "diagnosis-1d": lambda: plots.diagnosis_figure(diagnosis_of(np.arange(40.0), np.zeros(40))),
    "diagnosis-long-column": lambda: plots.diagnosis_figure(diagnosis_of(np.ones((300, 1)), np.zeros((300, 1)))),
    "diagnosis-empty": lambda: plots.diagnosis_figure(diagnosis_of(np.zeros((0, 3)), np.zeros((0, 3)))),
    "diagnosis-failed": lambda: plots.diagnosis_figure(diagnosis_of(ManualFailure("x"), np.zeros(()))),
    "diagnosis-nan": lambda: plots.diagnosis_figure(diagnosis_of(np.full((2, 2), np.nan), np.ones((2, 2)))),
    "nothing-wrong": lambda: plots.diagnosis_figure(Diagnosis("s", "float64", ("a",))),
}


@pytest.mark.parametrize("build", ODD_FIGURES.values(), ids=ODD_FIGURES.keys())
def test_odd_cases_draw_without_a_warning(build):
    build().savefig(io.BytesIO(), format="png")  # warnings are errors in this suite


# --- the command line ------------------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    return str(runfile.save_run(tmp_path / "run.npz", synthetic_run(steps=6, epochs=2, classes=3))[0])


def test_crosscheck_plot_prints_the_paths_it_wrote(saved, tmp_path, capsys):
    assert cli.main(["plot", saved, "--out", str(tmp_path / "p"), "--format", "png"]) == 0
    out = capsys.readouterr().out
    names = ("training", "divergence", "filter-gradient", "filters", "confusion")
    assert out == "".join(f"{tmp_path}/p/{name}.png\n" for name in names)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted(f"{n}.png" for n in names)


def test_crosscheck_plot_json_is_pure_json(saved, tmp_path, capsys):
    assert cli.main(["plot", saved, "--out", str(tmp_path / "p"), "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert captured.err == "" and document["run"] == saved and len(document["written"]) == 10
    assert all(pathlib.Path(p).parent == tmp_path / "p" and pathlib.Path(p).exists() for p in document["written"])


def test_diagnose_plot_writes_the_file_and_names_it(tmp_path, capsys):
    path = tmp_path / "d.png"
    assert cli.main(["diagnose", "--wrong", "conv2d-dw-flipped", "--plot", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("diagnosis: network conv2d-dw-flipped") and out.endswith(f"\n\nplot: {path}\n")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_diagnose_plot_with_json_puts_the_path_in_the_json(tmp_path, capsys):
    path = tmp_path / "d.svg"
    assert cli.main(["diagnose", "--wrong", "flipped-kernel-dE_df", "--plot", str(path), "--json"]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert captured.err == "" and document["plot"] == str(path) and document["quantity"] == "dE/df"
    assert ET.parse(path).getroot().tag.endswith("svg")


def test_diagnose_plot_when_nothing_is_wrong_still_writes_the_file(tmp_path, capsys):
    module = tmp_path / "right.py"
    module.write_text("from manual.seed_network import dO_dZ2\nLAYER_BACKWARD = {'dO_dZ2': dO_dZ2}\n")
    path = tmp_path / "old.png"
    path.write_bytes(b"a stale picture of an earlier mistake")
    assert cli.main(["diagnose", "--module", str(module), "--plot", str(path)]) == 0
    assert "no diagnosis: all" in capsys.readouterr().out
    assert path.read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_the_plots_say_how_to_install_it(saved, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    line = "crosscheck: error: plots need matplotlib: pip install -c constraints.txt 'backprop-crosscheck[train]'\n"
    assert cli.main(["plot", saved, "--out", str(tmp_path / "p")]) == 2
    assert capsys.readouterr() == ("", line)
    assert cli.main(["diagnose", "--wrong", "sgd-wrong-sign", "--plot", str(tmp_path / "d.png")]) == 2
    assert capsys.readouterr() == ("", line)
    assert cli.main(["plot", saved, "--out", str(tmp_path / "p"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out) == {"error": line[len("crosscheck: error: "):-1], "exit": 2}
    assert not (tmp_path / "p").exists() and not (tmp_path / "d.png").exists()


def test_crosscheck_starts_without_matplotlib_and_draws_without_pyplot(tmp_path):
    code = ("import sys\n"
            "from crosscheck import cli, plots, runfile\n"
            "cli.build_parser()\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib loaded at start-up'\n"
            "sys.path.insert(0, 'tests')\n"
            "from run_files import npy_bytes, npz_bytes, synthetic_run\n"
            f"plots.save_plots(synthetic_run(), {str(tmp_path)!r}, 'png')\n"
            "assert 'matplotlib' in sys.modules and 'matplotlib.pyplot' not in sys.modules, 'pyplot loaded'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.iterdir())) == 5
