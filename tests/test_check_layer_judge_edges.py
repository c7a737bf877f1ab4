"""Edges of check_layer's judging (crosscheck.api) that other tests leave open: a given tolerance equal to the table
is not looser (no why= needed), one a rounding past it is; each dtype's own table decides what is looser; a float32
case whose two sides both compute in float64 fails (the case's dtype is the one expected, not autograd's); under
dtype_policy="values" only numbers are compared by value (a bool gradient is no number); a note row has the
quantity's shape and unmeasured (NaN) errors; gradcheck draws the seed's own inputs; the layer's arguments are
checked first, a factory refuses a backward as it refuses a forward, and a factory without __name__ that raises is
labelled "factory". Beyond check_layer: `crosscheck plot --json` is indented two spaces, as every --json of
crosscheck, and training the slides' network with reduction="sum" sums on autograd's side too."""

import functools
import json
import math

import numpy as np
import pytest
import torch
from run_files import synthetic_run

from crosscheck import check_layer, cli, plots, runfile
from crosscheck import train as T
from crosscheck.tolerances import Tolerance
from manual import functional as M
from netdesc import InputError

TANH = {"forward": M.tanh_forward, "backward": M.tanh_backward, "torch_fn": torch.tanh, "shapes": [(2, 3)]}
ONE64 = {"seeds": [0], "dtypes": ["float64"]}


# --- a given tolerance against the table ---------------------------------------------------------------------------

def test_a_tolerance_equal_to_the_table_needs_no_reason():
    """rtol 1e-10 and atol 1e-12, float64's table exactly: not looser, so no why=; the check runs under it."""
    check = check_layer(**TANH, tolerance=Tolerance(1e-10, 1e-12, ""), **ONE64)
    assert check.passed, check.report()
    assert {(r.tolerance, r.given) for r in check.rows} == {(Tolerance(1e-10, 1e-12, ""), True)}


@pytest.mark.parametrize(("rtol", "atol"), [(np.nextafter(1e-10, 1), 1e-12), (1e-10, np.nextafter(1e-12, 1))],
                         ids=["rtol", "atol"])
def test_a_tolerance_one_rounding_past_the_table_needs_a_reason(rtol, atol):
    with pytest.raises(InputError) as raised_error:
        check_layer(**TANH, tolerance=Tolerance(rtol, atol, ""), **ONE64)
    assert str(raised_error.value) == (f"tolerance: rtol {rtol:g}, atol {atol:g} is looser than the float64 table "
                                       "(rtol 1e-10, atol 1e-12), needs why=, the reason it may be")


def test_each_dtype_is_judged_looser_against_its_own_table():
    """rtol 1e-5, atol 1e-7: tighter than float32's table (1e-4, 1e-6), looser than float64's (1e-10, 1e-12). Alone
    in float32 it needs no reason; with float64 among the dtypes it does, and the message names float64's table."""
    tight = Tolerance(1e-5, 1e-7, "")
    check = check_layer(**TANH, tolerance=tight, seeds=[0], dtypes=["float32"])
    assert check.passed, check.report()
    assert {(r.tolerance, r.given) for r in check.rows} == {(tight, True)}
    with pytest.raises(InputError) as raised_error:
        check_layer(**TANH, tolerance=tight, seeds=[0], dtypes=["float32", "float64"])
    assert str(raised_error.value) == ("tolerance: rtol 1e-05, atol 1e-07 is looser than the float64 table (rtol "
                                       "1e-10, atol 1e-12), needs why=, the reason it may be")
    loose = Tolerance(2e-4, 0.0, "")
    with pytest.raises(InputError) as raised_error:
        check_layer(**TANH, tolerance=loose, seeds=[0], dtypes=["float32"])
    assert str(raised_error.value) == ("tolerance: rtol 0.0002, atol 0 is looser than the float32 table (rtol "
                                       "0.0001, atol 1e-06), needs why=, the reason it may be")


# --- the dtype each row is judged in -------------------------------------------------------------------------------

def _tanh_in_float64(x):
    out = np.tanh(x.astype(np.float64))
    return out, out


def _tanh_in_float64_backward(dout, out):
    return (dout * (1 - out * out),)


def test_a_float32_case_computed_in_float64_on_both_sides_fails():
    """Manual and torch both promote to float64: the float32 case's output is of another dtype on both sides. The
    case's dtype is the one expected, so the out row fails (compared in autograd's own dtype it would agree)."""
    check = check_layer(_tanh_in_float64, _tanh_in_float64_backward, lambda x: torch.tanh(x.double()), [(3,)],
                        seeds=[0], dtypes=["float32"])
    assert [r.line() for r in check.failures] == [
        "FAIL seed0-float32  out: dtype mismatch: manual float64, autograd float64, expected float32",
        "FAIL seed0-float32  dx: dtype mismatch: manual float64, autograd float32, expected float32"]


def _identity(x):
    return x.copy(), None


def _sign_mask_backward(dout, cache):
    return (dout > 0,)


def test_dtype_policy_values_compares_numbers_only():
    """A bool gradient is no number: "values" adds no note and casts nothing; the row fails as a dtype mismatch."""
    check = check_layer(_identity, _sign_mask_backward, lambda x: 1 * x, [(2, 3)], dtype_policy="values", **ONE64)
    assert not any(r.is_note for r in check.rows)
    assert [r.line() for r in check.failures] == [
        "FAIL seed0-float64  dx: dtype mismatch: manual bool, autograd float64, expected float64"]


def test_a_note_row_has_the_quantitys_shape_and_no_measured_error():
    """A note (dtype_policy="values") measures nothing: NaN errors (null in JSON), and the shape of the quantity it
    notes, in Python and in as_dict."""
    check = check_layer(_tanh_in_float64, _tanh_in_float64_backward, torch.tanh, [(2, 3)], seeds=[0],
                        dtypes=["float32"], dtype_policy="values")
    assert check.passed, check.report()
    notes = [r for r in check.rows if r.is_note]
    assert [r.quantity for r in notes] == ["out", "dx"]
    for row in notes:
        c = row.result
        assert c.shape == (2, 3) and c.passed and c.compared == 0
        assert all(isinstance(v, float) and math.isnan(v) for v in (c.max_abs_error, c.max_rel_error))
        d = row.as_dict()
        assert (d["shape"], d["max_abs_error"], d["max_rel_error"], d["tolerance"]) == ([2, 3], None, None, None)
    assert [row["shape"] for row in check.as_dict()["rows"]] == [[2, 3]] * 4


# --- gradcheck's inputs ----------------------------------------------------------------------------------------------

def test_gradcheck_draws_the_seeds_own_inputs():
    """gradcheck runs per seed on that seed's draw: the same standard normal values default_rng(seed) gives, as the
    seed's cases get them, so a gradcheck failure is reproducible from its seed."""
    drawn = []

    def recorded(rng, shape):
        drawn.append(rng.standard_normal(shape))
        return drawn[-1]

    check = check_layer(**TANH, seeds=[3, 4], dtypes=["float32"], input_factory=recorded, gradcheck=True)
    assert check.passed, check.report()
    assert [(r.case, r.quantity) for r in check.rows if r.quantity == "gradcheck"] == [
        ("seed3-float64", "gradcheck"), ("seed4-float64", "gradcheck")]
    expected = [np.random.default_rng(seed).standard_normal((2, 3)) for seed in (3, 3, 4, 4)]  # the case, gradcheck
    assert len(drawn) == 4 and all(np.array_equal(a, b) for a, b in zip(drawn, expected, strict=True))


# --- the layer's arguments -------------------------------------------------------------------------------------------

def test_the_layers_arguments_are_checked_before_the_others():
    """forward and torch_fn both wrong: the forward is named, the arguments being checked in the signature's order."""
    with pytest.raises(InputError) as raised_error:
        check_layer(3, M.tanh_backward, None, None)
    assert str(raised_error.value) == (
        "forward: got int 3, needs the manual forward, a callable forward(*inputs) -> (out, cache), or a layer object "
        "with .forward and .backward methods")


class _Tanh:
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out ** 2)


def test_a_factory_given_with_a_backward_is_refused():
    """A backward beside a factory is refused as a forward is: the factory makes the layer, both must be None."""
    with pytest.raises(InputError) as raised_error:
        check_layer(backward=M.tanh_backward, factory=_Tanh, torch_fn=torch.tanh, shapes=[(2, 3)], **ONE64)
    assert str(raised_error.value) == ("factory: given with forward or backward, needs them None (the factory makes "
                                       "the layer)")


def _no_weights(path):
    raise RuntimeError(f"no weights file {path}")


def test_a_raising_factory_without_a_name_is_labelled_factory():
    """functools.partial has no __name__: the one row of a factory that raised is under the label "factory"."""
    check = check_layer(factory=functools.partial(_no_weights, "w.npz"), torch_fn=torch.tanh, shapes=[(2,)],
                        **ONE64)
    assert check.layer == "factory(2)"
    assert [(r.case, r.quantity, r.passed) for r in check.rows] == [("seed0-float64", "factory", False)]
    assert check.rows[0].result.problem.startswith("raised RuntimeError: no weights file w.npz (in _no_weights, ")


# --- beyond check_layer --------------------------------------------------------------------------------------------

def test_plot_json_is_indented_two_spaces(tmp_path, capsys, monkeypatch):
    """`crosscheck plot --json`: the paths written, as JSON indented two spaces like every --json of crosscheck. The
    drawing is test_plots' (here save_plots stands in, writing nothing: the layout of the JSON is what is pinned)."""
    saved = str(runfile.save_run(tmp_path / "run.npz", synthetic_run(steps=6, epochs=2, classes=3))[0])
    written = [tmp_path / "p" / "training.svg", tmp_path / "p" / "confusion.svg"]
    monkeypatch.setattr(plots, "save_plots", lambda run, out, formats: written)
    assert cli.main(["plot", saved, "--out", str(tmp_path / "p"), "--format", "svg", "--json"]) == 0
    out = capsys.readouterr().out
    assert out == json.dumps({"run": saved, "written": [str(p) for p in written]}, indent=2) + "\n"
    assert out.splitlines()[:3] == ["{", f'  "run": "{saved}",', '  "written": [']


def test_training_the_slides_network_with_a_summed_error_agrees():
    """reduction="sum": both sides sum the error over the batch, so step 1's loss and parameters agree as they are
    (autograd averaging would be off by the batch size, 4). The run passing is not enough: a step that differs where
    the diagnosis finds no wrong quantity passes too, counted as unconfirmed."""
    run = T.train(T.Slides(reduction="sum", lr=0.1), epochs=1, batch=4, steps=1)
    assert run.passed and run.summary["unconfirmed"] == 0
    assert [(c.name, c.passed) for c in run.judged] == [
        ("E at step 1", True), ("f after step 1", True), ("W after step 1", True), ("b after step 1", True)]
    assert run.arrays["loss_autograd"][0] == pytest.approx(run.arrays["loss_manual"][0], rel=1e-10)
