"""Edges of check_layer's arguments (crosscheck.api) and of the check's table (crosscheck.render.table) that other
tests leave open: every InputError about the layer, its forward's result, torch_fn's result, the input factory,
kwargs, names and integer-only inputs asserted whole (other tests match their first words); a dict of kwargs with a
key that is no string and kwargs that are no dict at all; names empty or not strings; a factory whose object has a
.forward but no .backward; the layer's label (a callable without __name__, a scalar input, two kwargs); an input
factory's float32 arrays cast to the case's dtype; a forward returning an object array or NaN in float32, repeated
without a false "stateful" finding; and in the table, a row that could not be compared shows n/a in both error
columns, and a chaotic run with one unstable row names that row's note."""

import functools
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crosscheck import check_layer, render
from crosscheck.check import Result, Row
from crosscheck.compare import Comparison
from manual import functional as M
from netdesc import InputError

ONE = {"seeds": [0], "dtypes": ["float64"]}
TANH = {"forward": M.tanh_forward, "backward": M.tanh_backward, "torch_fn": torch.tanh, "shapes": [(2, 3)]}
LINEAR = {"forward": M.linear_forward, "backward": M.linear_backward, "torch_fn": F.linear,
          "shapes": [(4, 5), (3, 5), (3,)]}


class OnlyForward:
    """A .forward and no .backward: no layer object."""

    def forward(self, x):
        return np.tanh(x)


def _detached_tanh(x):
    return torch.tanh(x).detach()


# --- the messages, whole -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"forward": 3}, "forward: got int 3, needs the manual forward, a callable forward(*inputs) -> (out, cache), or a "
                     "layer object with .forward and .backward methods"),
    ({"backward": 3}, "backward: got int 3, needs the manual backward, a callable backward(dout, cache) -> one "
                      "gradient per forward input"),
    ({"forward": types.SimpleNamespace(forward=M.tanh_forward, backward=M.tanh_backward)},
     "backward: got function, needs None when forward is a layer object (SimpleNamespace has its own .backward)"),
    ({"forward": lambda x: np.tanh(x)}, "forward: returned ndarray, needs (out, cache) (a layer object that keeps its "
                                        "own cache has a backward that takes dout alone)"),
    ({"forward": None, "backward": None, "factory": lambda: types.SimpleNamespace(
        forward=lambda x: np.tanh(x), backward=lambda dout, cache: (dout,))},
     "forward: returned ndarray, needs (out, cache) (a layer object that keeps its own cache has a backward that "
     "takes dout alone)"),
    ({"forward": None, "backward": None, "factory": lambda: types.SimpleNamespace(
        forward=lambda x: (np.tanh(x), x, x), backward=lambda dout, cache: (dout,))},
     "forward: returned tuple, needs (out, cache) (a layer object that keeps its own cache has a backward that "
     "takes dout alone)"),
    ({"torch_fn": _detached_tanh}, "torch_fn: returned a tensor that autograd cannot trace to the inputs (detached, or "
                                   "computed outside torch), needs the forward written in torch operations"),
    ({"input_factory": 3}, "input_factory: got 3, needs None, a callable (rng, shape) -> array, or 1 of them (None "
                           "for standard normal), one per input"),
    ({"input_factory": lambda rng, shape: np.zeros(shape, dtype=int)},
     "differentiable: no input is floating point, needs at least one differentiable input"),
    ({"kwargs": {1: 2}}, "kwargs: got {1: 2}, needs None or a dict of keyword options for both forwards"),
    ({"kwargs": 3}, "kwargs: got 3, needs None or a dict of keyword options for both forwards"),
], ids=["forward-int", "backward-int", "backward-with-a-layer-object", "forward-without-cache",
        "factory-forward-without-cache", "factory-forward-of-three", "torch_fn-detached",
        "input_factory-int", "integer-input-only", "kwargs-key-not-a-string", "kwargs-int"])
def test_bad_arguments_say_what_they_got_and_what_they_need_in_full(change, message):
    """Each InputError whole: the argument, what it got (the type of the argument itself, not of None) and the
    whole of what it needs."""
    with pytest.raises(InputError) as raised_error:
        check_layer(**{**TANH, **change, **ONE})
    assert str(raised_error.value) == message


@pytest.mark.parametrize("names", [["x", "", "b"], ["x", 1, "b"]], ids=["empty", "not-a-string"])
def test_names_must_be_non_empty_strings(names):
    """An empty name, or one that is no string, is refused as a wrong count or a repeated name is."""
    with pytest.raises(InputError) as raised_error:
        check_layer(**LINEAR, names=names, **ONE)
    assert str(raised_error.value) == (f"names: got {names!r}, needs None or 3 distinct non-empty strings, one per "
                                       "input")


def test_a_factory_whose_object_has_no_backward_makes_no_layer():
    """An object with a .forward alone is no layer object: the factory's InputError, not an AttributeError nor a
    layer without a backward."""
    with pytest.raises(InputError) as raised_error:
        check_layer(factory=OnlyForward, torch_fn=torch.tanh, shapes=[(2, 3)], **ONE)
    assert str(raised_error.value) == "factory: returned OnlyForward, needs a layer object with .forward and .backward"


# --- the layer's label ---------------------------------------------------------------------------------------------

def test_the_label_names_a_callable_without_a_name_by_its_type():
    """functools.partial has no __name__: the label takes its type's name."""
    check = check_layer(**{**TANH, "forward": functools.partial(M.tanh_forward)}, **ONE)
    assert check.passed, check.report()
    assert check.layer == "partial(2x3)"


def test_the_label_says_scalar_for_a_0d_input():
    check = check_layer(**{**TANH, "shapes": [()]}, **ONE)
    assert check.passed, check.report()
    assert check.layer == "tanh_forward(scalar)"


def _shifted_tanh(x, *, scale, shift):
    out = np.tanh(scale * x + shift)
    return out, (out, scale)


def _shifted_tanh_backward(dout, cache):
    out, scale = cache
    return (dout * (1 - out ** 2) * scale,)


def test_the_label_lists_every_kwarg_after_the_shapes():
    check = check_layer(_shifted_tanh, _shifted_tanh_backward, lambda x, scale, shift: torch.tanh(scale * x + shift),
                        [(2, 3)], kwargs={"scale": 2.0, "shift": 0.5}, **ONE)
    assert check.passed, check.report()
    assert check.layer == "_shifted_tanh(2x3, scale=2.0, shift=0.5)"


# --- the inputs and the repeated forward ----------------------------------------------------------------------------

def test_an_input_factorys_float32_arrays_are_cast_to_the_cases_dtype():
    """A factory drawing float32: the float64 case's forward gets float64, as the docs say floating inputs are cast
    to the case's dtype, and the check passes (uncast, manual and torch would run in float32 under the float64
    table)."""
    seen = []

    def forward(x):
        seen.append(x.dtype)
        return M.tanh_forward(x)

    check = check_layer(forward, M.tanh_backward, torch.tanh, [(2, 3)],
                        input_factory=lambda rng, shape: rng.standard_normal(shape).astype(np.float32), **ONE)
    assert check.passed, check.report()
    assert seen == [np.float64, np.float64]  # the forward, run twice


def test_a_forward_returning_an_object_array_is_a_failing_row_not_a_crash():
    """The repeat check on an object array compares without NaN handling (np.isnan has no object loop): the out row
    names the dtype, and there is no repeat row, the two outputs being the same."""
    def forward(x):
        out, cache = M.tanh_forward(x)
        return out.astype(object), cache

    check = check_layer(forward, M.tanh_backward, torch.tanh, [(2, 3)], **ONE)
    assert [r.quantity for r in check.rows] == ["out", "dx"]
    assert [r.line() for r in check.failures] == [
        "FAIL seed0-float64  out: manual side failed: the manual side returned an array of dtype object, needs an "
        "array of numbers"]


def test_nan_outputs_repeated_in_float32_are_the_same_output():
    """NaN in a float32 output, twice: the same output (NaN equal to NaN for every floating dtype), no repeat row."""
    def nan_forward(x):
        return np.full_like(x, np.nan), None

    check = check_layer(nan_forward, lambda dout, cache: (dout,), torch.tanh, [(2,)], seeds=[0], dtypes=["float32"])
    assert [r.quantity for r in check.rows] == ["out", "dx"]
    assert not check.rows[0].passed


# --- the table -----------------------------------------------------------------------------------------------------

def _comparison(name, passed=True, problem="", note=""):
    error = float("inf") if problem else 0.25
    return Comparison(name, (2, 3), passed, error, 2 * error, (), float("nan"), float("nan"), problem, note,
                      0 if problem else 6)


def test_a_row_that_could_not_be_compared_shows_n_a_for_both_errors():
    """A problem row (no element compared, errors inf) shows n/a in both error columns, not inf."""
    rows = (Row("", "dE/dW", _comparison("dE/dW", False, problem="shape mismatch: manual (3, 2), autograd (2, 3)")),
            Row("", "Z1", _comparison("Z1")))
    lines = render.table([], Result("seed network", "float64", rows)).splitlines()
    assert lines[1].split() == ["quantity", "shape", "max", "abs", "err", "max", "rel", "err", "result"]
    assert lines[2].split() == ["dE/dW", "(2,", "3)", "n/a", "n/a", "MISMATCH"]
    assert lines[3].split() == ["Z1", "(2,", "3)", "2.500e-01", "5.000e-01", "ok"]
    assert lines[-1] == "1 of 2 quantities differ; the first: dE/dW: shape mismatch: manual (3, 2), autograd (2, 3)"


def test_a_chaotic_run_with_one_unstable_row_names_its_note():
    """One training row without a verdict: the chaos line gives that row's note."""
    note = "a one-ulp nudge of the parameters moves autograd's own run by up to 1.000e-01 (E), more than the tolerance"
    rows = (Row("", "Z1", _comparison("Z1")), Row("", "E at steps 1..50", _comparison("E at steps 1..50", note=note)))
    lines = render.table([], Result("seed network", "float64", rows)).splitlines()
    assert lines[3].split()[-1] == "unstable"
    assert lines[-2:] == [
        "1 of 2 quantities agree; 1 give no verdict",
        f"training is chaotic: {note}, so the rows marked unstable give no verdict; the one-step rows, the same "
        "update step by step, do. A smaller learning rate gives a training verdict."]
