"""Edges of the diagnosis picture (crosscheck.plots) and of float32's witness (crosscheck.api) that other tests leave
open: the count of elements out of tolerance (an element exactly at the tolerance is in, one 1.5 times past it is
out, a NaN is out, a float32 quantity is judged by float32's tolerance), the slice of the worst element where the
errors are near float64's overflow, a full element index picking its slice, a row without y ticks, the colour bars'
labels, a subject line with no injected mistake, the "nothing to draw" message centred in its panel, a long problem
wrapped inside the figure, the figure sizes (the docs' diagnosis picture, and never the caller's rcParams), and integer
labels reaching the float64 witness as integers."""

import pathlib

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.image import imread
from run_files import diagnosis_of

from crosscheck import check_layer, plots
from crosscheck.catalogue import find
from crosscheck.check import entry_subject
from crosscheck.compare import ManualFailure, compare
from crosscheck.diagnose import Diagnosis, diagnose

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def _difference_title(figure):
    return figure.axes[2].get_title()


# --- the count of elements out of tolerance ----------------------------------------------------------------------

def test_an_element_exactly_at_the_tolerance_is_in_and_one_past_it_is_out():
    """float64's tolerance at autograd 0 is atol 1e-12: manual 1e-12 is exactly at it (compare passes it alone),
    1.5e-12 is 1.5 times past it; with an error of 1 beside them, 2 of 6 are out."""
    assert compare("q", np.array([1e-12]), np.zeros(1)).passed
    assert not compare("q", np.array([1.5e-12]), np.zeros(1)).passed
    a = np.zeros((2, 3))
    m = a.copy()
    m[0, 0], m[0, 1], m[0, 2] = 1.0, 1e-12, 1.5e-12
    assert _difference_title(plots.diagnosis_figure(diagnosis_of(m, a))) == "manual − autograd\n2 of 6 out of tolerance"


def test_a_nan_on_the_manual_side_counts_as_out_of_tolerance():
    """A NaN is never within tolerance (compare fails it): the one NaN of four elements is counted."""
    a = np.ones((2, 2))
    m = a.copy()
    m[1, 0] = np.nan
    assert not compare("q", m, a).passed
    assert _difference_title(plots.diagnosis_figure(diagnosis_of(m, a))) == "manual − autograd\n1 of 4 out of tolerance"


def test_a_float32_quantity_is_counted_against_float32s_tolerance():
    """An error of 1e-5 at 1 is inside float32's rtol 1e-4 (but 1e5 times past float64's): of two wrong elements
    only the error of 1 counts."""
    a = np.ones((2, 2), np.float32)
    m = a.copy()
    m[0, 0], m[1, 1] = 2.0, np.float32(1 + 1e-5)
    assert compare("q", m[1:, 1:], a[1:, 1:], "float32").passed
    figure = plots.diagnosis_figure(diagnosis_of(m, a, dtype="float32"))
    assert _difference_title(figure) == "manual − autograd\n1 of 4 out of tolerance"


def test_the_worst_slice_is_found_with_errors_near_float64s_overflow():
    """A float32 quantity whose manual side (float64) is 1e300 off in slice 0 and 1.5e302 off in slice 1: by
    float32's tolerance (atol 1e-6 at autograd 0) the second is 1.5e308 tolerances out, still finite and the
    furthest, so slice 1 is shown."""
    a = np.zeros((2, 2, 2), np.float32)
    m = np.zeros((2, 2, 2))
    m[0, 0, 0], m[1, 1, 1] = 1e300, 1.5e302
    figure = plots.diagnosis_figure(diagnosis_of(m, a, dtype="float32"))
    assert figure.get_suptitle().split("\n")[-1] == "showing [1, :, :]: the slice holding the element furthest out " \
                                                    "of tolerance"
    assert figure.axes[0].images[0].get_array().data.tolist() == [[0.0, 0.0], [0.0, 1.5e302]]


# --- slices, labels, titles ---------------------------------------------------------------------------------------

def test_a_full_element_index_picks_the_slice_holding_that_element():
    """as_image takes the leading part of a longer index: (1, 2, 3) of a (2, 3, 4) array is the element in slice 1."""
    a = np.arange(24.0).reshape(2, 3, 4)
    image, index = plots.as_image(a, (1, 2, 3))
    assert np.array_equal(image, a[1]) and index == "[1, :, :]"


def test_a_row_has_no_y_ticks():
    """A 1-D quantity is one row: its three panels carry the index along x and nothing along y."""
    figure = plots.diagnosis_figure(diagnosis_of(np.array([1.0, 5.0, 2.0]), np.array([1.0, 2.0, 2.0])))
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == 3
    assert [(ax.get_xlabel(), list(ax.get_yticks())) for ax in panels] == [("index", [])] * 3


def test_the_three_panels_colour_bars_are_labelled_with_the_quantity_and_the_difference():
    figure = plots.diagnosis_figure(diagnosis_of(np.array([[1.0, 2.0]]), np.array([[1.0, 3.0]]), "dE/dW"))
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_label() == "<colorbar>"]
    assert labels == ["dE/dW", "manual − autograd"]


def test_without_an_injected_mistake_the_subject_line_is_the_subject_and_dtype():
    figure = plots.diagnosis_figure(diagnosis_of(np.array([[1.0, 2.0]]), np.array([[1.0, 3.0]])))
    assert figure.get_suptitle() == "first wrong quantity: q, shape (1, 2)\na test subject, float64"


def test_nothing_to_draw_is_centred_in_its_panel():
    """The message's box, drawn, has the panel's centre as its own (within a pixel)."""
    figure = plots.diagnosis_figure(Diagnosis("a test subject", "float64", ("a", "b")))
    figure.canvas.draw()
    (ax,) = figure.axes
    (text,) = ax.texts
    box, panel = text.get_window_extent(), ax.get_window_extent()
    assert abs((box.x0 + box.x1) / 2 - (panel.x0 + panel.x1) / 2) < 1
    assert abs((box.y0 + box.y1) / 2 - (panel.y0 + panel.y1) / 2) < 1
    assert box.width > 100 and box.height > 10  # the text itself, not a point


def test_a_long_problem_is_wrapped_inside_the_figure():
    """A manual failure of 108 characters under autograd's panel alone: the title, drawn, stays inside the figure."""
    problem = " ".join(["abcdefghi"] * 12)[:-11] + " the end"
    figure = plots.diagnosis_figure(diagnosis_of(ManualFailure(problem), np.ones((2, 3))))
    assert problem.split()[-1] in figure.get_suptitle()
    figure.canvas.draw()
    (title,) = figure.texts
    assert title.get_text() == figure.get_suptitle()
    box = title.get_window_extent()
    assert 0 <= box.x0 and box.x1 <= figure.bbox.width


# --- figure sizes -------------------------------------------------------------------------------------------------

def test_the_docs_stride_picture_has_the_size_diagnose_draws(tmp_path):
    """docs/plots.md shows what `crosscheck diagnose --wrong conv2d-stride-ignored-dx --plot stride.png` writes:
    drawn again, the PNG has that picture's size."""
    d = diagnose(entry_subject(find("conv2d-stride-ignored-dx", "--wrong")))
    path = plots.save_figure(plots.diagnosis_figure(d), tmp_path / "stride.png")
    assert imread(path).shape[:2] == imread(DOCS / "diagnose-stride.png").shape[:2]


@pytest.mark.parametrize("build", [
    lambda: plots.diagnosis_figure(Diagnosis("s", "float64", ("a",))),
    lambda: plots.diagnosis_figure(diagnosis_of(ManualFailure("x"), np.ones((2, 3)))),
    lambda: plots.diagnosis_figure(diagnosis_of(np.ones((2, 3)), np.zeros((2, 3)))),
], ids=["nothing-wrong", "failed", "three-panels"])
def test_a_diagnosis_picture_keeps_its_size_whatever_the_callers_rcparams(build):
    """A program with its own figure.figsize still gets crosscheck's picture, at least 800 pixels wide."""
    size = tuple(build().get_size_inches())
    with matplotlib.rc_context({"figure.figsize": (2.0, 1.0)}):
        assert tuple(build().get_size_inches()) == size
    assert size[0] * plots.DPI >= 800


# --- float32's witness and integer labels -------------------------------------------------------------------------

SCALES = np.array([0.5, 1.0, 2.0, 3.0])


def _indexed_layer_check(seed):
    """A layer norm over the last axis after a bias, each row scaled by SCALES at its integer label: db is 0 in
    exact arithmetic, float32 noise on both sides; torch indexes SCALES with the labels, as only integers can."""
    def forward(x, b, k):
        c = x + b - (x + b).mean(-1, keepdims=True)
        inv = 1 / np.sqrt((c * c).mean(-1, keepdims=True) + 1e-5)
        s = SCALES[k][:, None].astype(x.dtype)
        return c * inv * s, (c * inv, inv, s)

    def backward(dout, cache):
        x_hat, inv, s = cache
        dout = dout * s
        dx = inv * (dout - dout.mean(-1, keepdims=True) - x_hat * (dout * x_hat).mean(-1, keepdims=True))
        return dx, dx.sum().reshape(1), None

    def torch_fn(x, b, k):
        return F.layer_norm(x + b, x.shape[-1:]) * torch.as_tensor(SCALES, dtype=x.dtype)[k][:, None]

    return check_layer(forward, backward, torch_fn, [(16, 64), (1,), (16,)], seeds=(seed,), dtypes=("float32",),
                       input_factory=[lambda rng, shape: 0.1 * rng.standard_normal(shape), None,
                                      lambda rng, shape: rng.integers(0, 4, shape)])


def test_the_float64_witness_keeps_integer_labels_as_integers():
    """Every seed passes; at the first whose db the float32 table fails, the float64 witness (torch_fn run again
    with the labels still integers) excuses it."""
    for seed in range(20):
        result = _indexed_layer_check(seed)
        assert result.passed, result.report()
        db = next(r for r in result.rows if r.quantity == "db").result
        if db.witnessed:
            break
    else:
        pytest.fail("no seed needed the float64 witness: the test compares nothing of it")
    assert db.witnessed.startswith("float32 rounding: manual is within 1e-06 + 0.0001 * |w|")
