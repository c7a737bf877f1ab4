"""Edges of what ``crosscheck explain`` prints and of the pictures and data around it: a value's layout (a column
of two and more as a row ^T, a 1x1 matrix kept a matrix, more than 40 values summarised, arrays above two axes not
printed, rows at most 78 characters wide, float32 values
printed as the numbers they are), the header's list of dropout layers, the digits' one-hot targets in the
run's dtype, and the diagnosis figure's colour bar label and its choice of slice where manual is NaN; every wrong
derivation of the slides walked to a mismatch, an update the manual side could not make shown as why."""

import re

import numpy as np
import pytest
import torch
from torch.nn import functional as TF

from crosscheck import cli, plots, render
from crosscheck.catalogue import seed as wrong_seed
from crosscheck.compare import ManualFailure, compare
from crosscheck.diagnose import Diagnosis
from crosscheck.subjects import NetworkSubject, SeedCase, SeedSubject, Step
from crosscheck.train import Slides
from netdesc.description import parse_spec
from reference import seed_network as reference_seed

PREFIX = " " * 14  # "    " and the value labels' 10 columns: where every array starts
NUMBER = re.compile(r"-?\d+\.\d*(?:e[+-]\d+)?")


def _explain(argv, capsys):
    code = cli.main(["explain", *argv])
    return code, capsys.readouterr().out.splitlines()


def _value(lines, heading, label):
    """The lines of the value `label` under the first line starting with `heading` (an equation, or "given"):
    its own line and the continuation lines, each without the 14 columns before the array."""
    start = next(k for k, line in enumerate(lines) if line.startswith(heading))
    first = next(k for k in range(start + 1, len(lines)) if lines[k].startswith(f"    {label:<10}"))
    rows = [lines[first][len(PREFIX):]]
    for line in lines[first + 1:]:
        if not line.startswith(PREFIX):
            break
        rows.append(line[len(PREFIX):])
    return rows


def _numbers(rows):
    return [float(x) for row in rows for x in NUMBER.findall(row)]


def _seed_inputs(shape, kernel, lr=0.5):
    """The X, Y and parameters `crosscheck explain --shape --k --lr` draws (one sample, n_out 1, seed 0)."""
    return SeedCase(input_shape=shape, kernel_shape=kernel, n_out=1, batch=1, seed=0, lr=lr, steps=1).inputs()


# --- a value's layout ------------------------------------------------------------------------------------------

def test_a_column_of_two_values_prints_as_a_row_transposed(capsys):
    """W of a 1x2 input under a 1x1 filter is (2, 1): a column of two is written as one row marked ^T."""
    code, lines = _explain(["--shape", "1x2", "--k", "1"], capsys)
    _, _, params = _seed_inputs((1, 2), (1, 1))
    (row,) = _value(lines, "given", "W")
    assert code == 0 and row.startswith("[") and row.endswith("] ^T")
    assert np.allclose(_numbers([row]), params["W"][:, 0], rtol=0, atol=5e-5)


def test_a_1x1_matrix_stays_a_matrix(capsys):
    """X of a 1x1 input is (1, 1, 1), one sample: without its batch axis a 1x1 matrix, not a column to transpose."""
    code, lines = _explain(["--shape", "1", "--k", "1"], capsys)
    X, _, _ = _seed_inputs((1, 1), (1, 1))
    (row,) = _value(lines, "given", "X")
    assert code == 0 and row.startswith("[[") and row.endswith("]]") and "^T" not in row
    assert np.allclose(_numbers([row]), X.reshape(-1), rtol=0, atol=5e-5)


def test_41_values_are_summarised_and_40_printed_whole(capsys):
    """Above 40 values an array shows its first and last three around "...": W (41, 1) of a 1x41 input under a 1x1
    filter; W (40, 1) of a 1x40 input shows every one of its 40."""
    _, lines = _explain(["--shape", "1x41", "--k", "1"], capsys)
    _, _, params = _seed_inputs((1, 41), (1, 1))
    rows = _value(lines, "given", "W")
    w = params["W"][:, 0]
    assert "..." in "".join(rows) and rows[-1].endswith("] ^T")
    assert np.allclose(_numbers(rows), np.concatenate([w[:3], w[-3:]]), rtol=0, atol=5e-5)
    _, lines = _explain(["--shape", "1x40", "--k", "1"], capsys)
    _, _, params = _seed_inputs((1, 40), (1, 1))
    rows = _value(lines, "given", "W")
    assert "..." not in "".join(rows) and len(rows) > 1
    assert np.allclose(_numbers(rows), params["W"][:, 0], rtol=0, atol=5e-5)


def test_an_array_above_two_axes_is_not_printed():
    """Two samples keep their batch axis: X (2, 3, 3) and Z1 (2, 2, 2) are named by shape and size, not printed."""
    case = SeedCase(input_shape=(3, 3), kernel_shape=(2, 2), batch=2, steps=1)
    text, agree = render.explain_text(SeedSubject(case))
    lines = text.splitlines()
    assert agree
    assert _value(lines, "given", "X") == ["shape (2, 3, 3): not printed, 18 values"]
    assert _value(lines, "  Z1 = conv(X, f)", "manual") == ["shape (2, 2, 2): not printed, 8 values"]


def _updated_w(shape, lr):
    """W after the one SGD step of `crosscheck explain --shape SHAPE --k 1 --lr LR`, by torch's autograd."""
    X, Y, params = _seed_inputs(shape, (1, 1), lr)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    H1 = torch.sigmoid(TF.conv2d(torch.tensor(X)[:, None], p["f"][None, None])).reshape(1, -1)
    O = torch.sigmoid(H1 @ p["W"] + p["b"])
    ((torch.tensor(Y) - O) ** 2 / 2).sum().backward()
    return (p["W"] - lr * p["W"].grad).detach().numpy()[:, 0]


def test_a_row_of_78_characters_stays_on_one_line(capsys):
    """Seven values of 1000 to 10000 with four decimals, each 10 characters with its sign column, with 6 spaces and
    2 brackets: 78 characters, the widest line an array is given, so one line."""
    w = _updated_w((1, 7), 1e5)
    assert np.all((np.abs(w) >= 1000) & (np.abs(w) < 10000))
    _, lines = _explain(["--shape", "1x7", "--k", "1", "--lr", "1e5"], capsys)
    for label in ("manual", "autograd"):
        (row,) = _value(lines, "  W <- W - alpha dE/dW", label)
        assert len(row.removesuffix(" ^T")) == 7 * 10 + 6 + 2
        assert np.allclose(_numbers([row]), w, rtol=0, atol=5e-5)


def test_a_row_of_79_characters_wraps_at_78(capsys):
    """Six values of 100000 to 1000000 with four decimals (12 characters each): one line would be 79 characters,
    one more than an array is given, so the row wraps, and no line of the walk holds more than 78."""
    w = _updated_w((1, 6), 5e7)
    assert np.all((np.abs(w) >= 1e5) & (np.abs(w) < 1e6))
    _, lines = _explain(["--shape", "1x6", "--k", "1", "--lr", "5e7"], capsys)
    for label in ("manual", "autograd"):
        rows = _value(lines, "  W <- W - alpha dE/dW", label)
        assert len(rows) == 2 and np.allclose(_numbers(rows), w, rtol=0, atol=5e-5)
    assert max(len(line.removesuffix(" ^T")) for line in lines if line.startswith(PREFIX)) <= len(PREFIX) + 78


# --- the header, the digits' targets ---------------------------------------------------------------------------

def test_the_header_lists_every_dropout_layer():
    """A network with two dropouts names both, comma-separated, in the dropout line of its header."""
    spec = parse_spec({
        "input_shape": [1, 3, 4], "batch_size": 6,
        "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}, {"type": "tanh"},
                   {"type": "dropout", "p": 0.4}, {"type": "linear", "out_features": 8}, {"type": "dropout"},
                   {"type": "linear", "out_features": 3}],
        "loss": {"type": "softmax_cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.01, "steps": 2},
    })
    header = render.network_header(NetworkSubject(spec, 3, "float64", 2), "two-dropouts.toml")
    assert "dropout: training mode, a mask per step drawn from (seed 3, step, layer index) and given to both sides " \
           "(layer 3 (dropout), layer 5 (dropout))" in header


def test_the_ten_digits_one_hot_targets_are_in_the_runs_dtype():
    """The slides' network on the ten digits in float32: Y one-hot as torch's one_hot, in float32 (float64
    targets would make the manual side's loss float64)."""
    labels = np.array([3, 0, 9, 3])
    X, Y = Slides(n_out=10, dtype="float32").arrays(np.zeros((4, 8, 8)), labels)
    expected = TF.one_hot(torch.from_numpy(labels), 10).to(torch.float32).numpy()
    assert X.dtype == Y.dtype == np.float32 and np.array_equal(Y, expected)


# --- the diagnosis figure ----------------------------------------------------------------------------------------

def _diagnosis(manual, autograd, quantity):
    step = Step("", quantity, manual, autograd)
    return Diagnosis("a test subject", "float64", (quantity,), compare(quantity, manual, autograd), step=step)


def _colour_bar_labels(figure):
    return [ax.get_ylabel() for ax in figure.axes if ax.get_label() == "<colorbar>"]


def test_autograds_panel_alone_has_the_quantity_on_its_colour_bar():
    """A manual side that failed: autograd's heat map alone, its colour bar labelled with the quantity."""
    figure = plots.diagnosis_figure(_diagnosis(ManualFailure("dO_dZ2 returned None"), np.ones((2, 3)), "dO/dZ2"))
    assert _colour_bar_labels(figure) == ["dO/dZ2"]


def test_a_nan_is_the_element_furthest_out_of_tolerance():
    """A 3-D quantity with a NaN by hand in slice 1 and a finite error of 1 in slice 0: the NaN's slice is shown."""
    a = np.zeros((2, 2, 3))
    m = a.copy()
    m[0, 1, 2] = 1.0
    m[1, 0, 0] = np.nan
    figure = plots.diagnosis_figure(_diagnosis(m, a, "q"))
    manual = np.ma.filled(figure.axes[0].images[0].get_array(), np.nan)  # slice 1 of m: NaN, then zeros
    assert np.isnan(manual[0, 0]) and np.nansum(np.abs(manual)) == 0
    assert figure.get_suptitle().split("\n")[-1] == "showing [1, :, :]: the slice holding the element furthest out " \
                                                    "of tolerance"


def test_float32_values_are_printed_as_their_exact_value_to_four_decimals(capsys):
    """A float32 value is printed as the number it is, to four decimals, not as float32's shortest repr: W after
    the step of a 1x4 input at lr 1e6 (values near 30000, 2^-9 apart) as autograd's own values rounded."""
    X, Y, params = SeedCase(input_shape=(1, 4), kernel_shape=(1, 1), n_out=1, batch=1, seed=0, dtype="float32",
                            lr=1e6, steps=1).inputs()
    _, updated = reference_seed.train(X, Y, params, 1e6, 1, "sum")
    w = np.asarray(updated["W"])[:, 0]
    assert w.dtype == np.float32
    _, lines = _explain(["--dtype", "float32", "--shape", "1x4", "--k", "1", "--lr", "1e6"], capsys)
    assert np.allclose(_numbers(_value(lines, "  W <- W - alpha dE/dW", "autograd")), np.round(w.astype(np.float64), 4),
                       rtol=0, atol=1e-6)


@pytest.mark.parametrize("entry", [e.name for e in wrong_seed.ENTRIES])
def test_explain_walks_every_wrong_derivation_of_the_slides_to_a_mismatch(entry, capsys):
    """Each of the slides' wrong derivations walked by `explain --inject` ends in exit 1 (a mismatch), never 4 (a
    crash in crosscheck): a value the manual side could not produce is printed as what went wrong."""
    code, lines = _explain(["--inject", entry], capsys)
    assert code == 1
    assert re.fullmatch(r"\d+ of \d+ equations differ, the first: .+", lines[-1])


def test_explain_walks_a_forgotten_mean_on_two_samples_where_the_mean_is_not_the_sum(capsys):
    """mean-forgotten-dE_dO needs a mean reduction over more than one sample (over one, the mean is the sum): explain
    walks two samples under the mean, and dE/dO differs by exactly N = 2, autograd's being (O - Y) / 2."""
    code, lines = _explain(["--inject", "mean-forgotten-dE_dO", "--shape", "4x4"], capsys)
    assert code == 1
    assert "  f 2x2, W 9x1, b 1; N = 2, seed 0, float64, alpha = 0.5; E is the mean over the N samples" in lines
    manual, autograd = (np.array(_numbers(_value(lines, "  dE/dO = O - Y", side))) for side in ("manual", "autograd"))
    assert manual.shape == (2,) and np.allclose(manual, 2 * autograd, rtol=0, atol=2e-4)
    # dE/dO, the six gradients after it and the three updates differ; the forward and the local factors agree
    assert lines[-1] == "10 of 20 equations differ, the first: dE/dO = O - Y"


def test_an_update_with_no_gradient_to_step_with_says_so_in_place_of_the_value(capsys):
    """transposed-dE_dW gives dE/dW of shape (1, 9) for W (9, 1): sgd_step refuses it, and each update is shown
    as not computed, with the reason, wrapped at 78 characters."""
    code, lines = _explain(["--inject", "transposed-dE_dW"], capsys)
    assert code == 1
    assert _value(lines, "  W <- W - alpha dE/dW", "manual") == [
        "not computed: no gradient to step with for dE_dW: got shape (1, 9), needs", "shape (9, 1)"]
