"""check_layer takes users' code as it is and gives no vacuous or misleading verdict (crosscheck.api): nothing
compared is no pass; a factory gives every case a new layer object, and a layer whose forward gives two outputs
for the same inputs is its own finding; what the user's code raises is a row naming the exception, function, file
and line; gradcheck's hints appear only with evidence; per-call tolerance, names, dtype and shape policies; and
nothing returned is an array a caller could write through."""

import dataclasses
import inspect
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from layer_cases import with_zeros

from crosscheck import Tolerance, assert_close, check_layer, compare
from crosscheck.adapters import params_layer
from crosscheck.api import KINK_HINT, REENTRANT_HINT, LayerCheck, Row, _at_kink, raised
from crosscheck.compare import Comparison
from manual import functional as M
from netdesc import InputError

HERE = os.path.basename(__file__)
ONE = {"seeds": [0], "dtypes": ["float64"]}


def _line_of(fn, text):
    """The line of `fn`'s source that contains `text`, as file:line."""
    lines, first = inspect.getsourcelines(fn)
    return f"{HERE}:{first + next(i for i, line in enumerate(lines) if text in line)}"


def _lines(check):
    return check.report().splitlines()


# --- 1. no vacuous verdicts --------------------------------------------------------------------------------

def test_a_zero_size_shape_is_a_failing_row_not_a_pass():
    check = check_layer(M.tanh_forward, M.tanh_backward, torch.tanh, [(0, 3)], **ONE)
    assert check.passed is False
    assert _lines(check) == ["tanh_forward(0x3) against torch autograd: FAILED, 2 of 2 checks differ",
                             "FAIL seed0-float64  out: nothing to compare: 0 elements",
                             "FAIL seed0-float64  dx: nothing to compare: 0 elements"]
    assert [row["compared"] for row in check.as_dict()["rows"]] == [0, 0]


def test_compared_counts_the_elements_and_only_rows_that_compared_something_pass():
    check = check_layer(*LINEAR, **ONE)
    assert [(r.quantity, r.result.compared) for r in check.rows] == [("out", 12), ("dx", 20), ("dw", 15), ("db", 3)]
    note = Row(0, "float64", Comparison("out", (2,), True, float("nan"), float("nan"), note="a convention"))
    only_notes = LayerCheck("notes", (note,))
    assert only_notes.passed is False
    assert only_notes.report() == ("notes against torch autograd: FAILED, nothing was compared\n"
                                   "note seed0-float64  out: a convention")
    assert LayerCheck("nothing", ()).passed is False


# --- 2. a fresh layer per case; stateful or nondeterministic layers ---------------------------------------------

class Accumulating:
    """A layer object whose backward adds into its gradient instead of setting it: right once, wrong when reused."""

    def __init__(self):
        self.dw = 0.0

    def forward(self, x, w):
        self.x, self.w = x, w
        return x @ w

    def backward(self, dy):
        self.dw = self.dw + self.x.T @ dy
        return dy @ self.w.T, self.dw


def _torch_matmul(x, w):
    return x @ w


def test_a_factory_gives_every_case_a_new_object():
    made = []

    def factory():
        made.append(Accumulating())
        return made[-1]

    check = check_layer(factory=factory, torch_fn=_torch_matmul, shapes=[(4, 5), (5, 2)], seeds=[0, 1])
    assert check.passed and check.layer == "Accumulating(4x5, 5x2)"
    # one to inspect; per case one for the forward (run twice) and one for the backward, run forward again first
    assert len(made) == 1 + 4 * 2 and len({id(layer) for layer in made}) == 9
    reused = check_layer(Accumulating(), torch_fn=_torch_matmul, shapes=[(4, 5), (5, 2)], seeds=[0, 1])
    assert [(r.case, r.quantity) for r in reused.failures] == [
        ("seed0-float32", "dw"), ("seed1-float64", "dw"), ("seed1-float32", "dw")]


def test_a_factory_gives_every_backward_a_new_object_so_gradcheck_sees_one_use():
    """gradcheck calls backward once per output element after one forward: an object that adds into its gradient
    buffer would give a different dw each call ("not reentrant") if they shared it; the same object given without
    a factory does."""
    check = check_layer(factory=Accumulating, torch_fn=_torch_matmul, shapes=[(4, 5), (5, 2)], seeds=[0],
                        gradcheck=True)
    assert check.passed and [r.quantity for r in check.rows if r.dtype == "float64"] == ["out", "dx", "dw",
                                                                                         "gradcheck"]
    reused = check_layer(Accumulating(), torch_fn=_torch_matmul, shapes=[(4, 5), (5, 2)], seeds=[0], gradcheck=True)
    assert [(r.case, r.quantity) for r in reused.failures] == [("seed0-float32", "dw"), ("seed0-float64", "gradcheck")]
    assert "Backward is not reentrant" in reused.failures[1].line()


class Counted(Accumulating):
    """Accumulating, writing down the calls made on this object."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, w):
        self.calls.append("forward")
        return super().forward(x, w)

    def backward(self, dy):
        self.calls.append("backward")
        return super().backward(dy)


def test_each_backwards_object_runs_forward_once_then_backward():
    made = []

    def factory():
        made.append(Counted())
        return made[-1]

    check = check_layer(factory=factory, torch_fn=_torch_matmul, shapes=[(4, 5), (5, 2)], seeds=[0])
    assert check.passed
    assert [layer.calls for layer in made] == [[]] + [["forward", "forward"], ["forward", "backward"]] * 2


class InPlaceTanh:
    """A layer object that keeps its own cache and writes its output over its input: y = tanh(x), in place."""

    def forward(self, x):
        self.out = np.tanh(x, out=x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out ** 2)


class InPlaceAddTanh:
    """A layer object with its parameter on it that writes over its input: y = tanh(x + b), in place."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        self.out = np.tanh(np.add(x, self.params["b"], out=x), out=x)
        return self.out

    def backward(self, dout):
        dpre = dout * (1 - self.out ** 2)
        self.grads["b"] = dpre.sum(axis=0)
        return dpre


def _torch_add_tanh(x, b):
    return torch.tanh(x + b)


@pytest.mark.parametrize("gradcheck", [False, True])
@pytest.mark.parametrize("how", ["object", "factory", "params_layer"])
def test_a_layer_that_writes_its_output_over_its_input_passes(how, gradcheck):
    """The inputs a backward's forward runs on are copies taken before any forward ran: a layer that overwrites
    its input would otherwise run again on its own output (tanh(tanh(x))); gradcheck calls backward many times
    on one forward's cache, so each of those runs gets copies of its own."""
    if how == "params_layer":
        check = check_layer(params_layer(InPlaceAddTanh, ["b"]), torch_fn=_torch_add_tanh, shapes=[(3, 4), (4,)],
                            seeds=[0], gradcheck=gradcheck)
        quantities = ["out", "dx", "db"]
    else:
        layer = {"object": {"forward": InPlaceTanh()}, "factory": {"factory": InPlaceTanh}}[how]
        check = check_layer(**layer, torch_fn=torch.tanh, shapes=[(3, 4)], seeds=[0], gradcheck=gradcheck)
        quantities = ["out", "dx"]
    assert check.passed, check.report()
    assert [r.quantity for r in check.rows] == quantities * 2 + ["gradcheck"] * gradcheck


class KeptScaledTanh:
    """A layer object that keeps its own cache, backward(dout), with a keyword option: y = scale * tanh(x)."""

    def forward(self, x, scale=1.0):
        self.out, self.scale = np.tanh(x), scale
        return scale * self.out

    def backward(self, dout):
        return dout * self.scale * (1 - self.out ** 2)


@pytest.mark.parametrize("how", ["object", "factory"])
def test_a_layer_keeping_its_cache_gets_the_options_on_every_forward(how):
    """The options reach the forward of the case and each forward run again for a backward."""
    layer = {"object": {"forward": KeptScaledTanh()}, "factory": {"factory": KeptScaledTanh}}[how]
    check = check_layer(**layer, torch_fn=lambda x, scale: scale * torch.tanh(x), shapes=[(3, 4)],
                        kwargs={"scale": 2.5}, seeds=[0], gradcheck=True)
    assert check.passed, check.report()
    assert [r.quantity for r in check.rows] == ["out", "dx", "out", "dx", "gradcheck"]


class ScaledTanh:
    """A layer object of the pair contract, backward(dout, cache), with a keyword option: y = scale * tanh(x)."""

    def forward(self, x, scale=1.0):
        out = np.tanh(x)
        return scale * out, (out, scale, "its own cache")

    def backward(self, dout, cache):
        out, scale, _ = cache
        return (dout * scale * (1 - out ** 2),)


def test_a_factory_of_pair_objects_passes_the_options_and_each_backward_its_own_cache():
    """Each backward's object is run forward again with the same inputs and options, and its backward gets the
    cache that forward returned."""
    check = check_layer(factory=ScaledTanh, torch_fn=lambda x, scale: scale * torch.tanh(x), shapes=[(3, 4)],
                        kwargs={"scale": 2.5}, seeds=[0], gradcheck=True)
    assert check.passed and [r.quantity for r in check.rows] == ["out", "dx", "out", "dx", "gradcheck"]


def test_a_factory_that_raises_is_a_row():
    def no_layer():
        raise RuntimeError("no weights file")

    check = check_layer(factory=no_layer, torch_fn=torch.tanh, shapes=[(2,)])
    assert _lines(check) == [
        "no_layer(2) against torch autograd: FAILED, 1 of 1 checks differ",
        "FAIL seed0-float64  factory: raised RuntimeError: no weights file "
        f"(in no_layer, {_line_of(no_layer, 'raise')})"]
    calls = []

    def fails_later():
        calls.append(1)
        if len(calls) == 4:  # the inspected one, then seed0-float64's forward and backward objects
            raise RuntimeError("out of memory")
        return Accumulating()

    check = check_layer(factory=fails_later, torch_fn=_torch_matmul, shapes=[(2, 3), (3, 2)], seeds=[0])
    assert [(r.case, r.quantity, r.passed) for r in check.rows] == [
        ("seed0-float64", "out", True), ("seed0-float64", "dx", True), ("seed0-float64", "dw", True),
        ("seed0-float32", "factory", False)]
    calls.clear()

    def fails_in_backward():
        calls.append(1)
        if len(calls) == 3:  # seed0-float64's backward object: its out row stays, the factory is named
            raise RuntimeError("out of memory")
        return Accumulating()

    check = check_layer(factory=fails_in_backward, torch_fn=_torch_matmul, shapes=[(2, 3), (3, 2)], seeds=[0])
    assert [(r.case, r.quantity, r.passed) for r in check.rows] == [
        ("seed0-float64", "out", True), ("seed0-float64", "factory", False), ("seed0-float32", "out", True),
        ("seed0-float32", "dx", True), ("seed0-float32", "dw", True)]


class ForwardFailsOnBackwardsObject(Accumulating):
    """Right, but its forward raises on the object the harness makes for seed0-float64's backward."""

    made = []

    def __init__(self):
        super().__init__()
        ForwardFailsOnBackwardsObject.made.append(self)

    def forward(self, x, w):
        if len(self.made) == 3:  # the inspected one, seed0-float64's forward object, then its backward object
            raise FloatingPointError("overflow in the backward's forward")
        return super().forward(x, w)


def test_a_forward_raising_on_a_backwards_object_is_a_forward_row():
    ForwardFailsOnBackwardsObject.made.clear()
    check = check_layer(factory=ForwardFailsOnBackwardsObject, torch_fn=_torch_matmul, shapes=[(2, 3), (3, 2)],
                        seeds=[0])
    assert [(r.case, r.quantity, r.passed) for r in check.rows] == [
        ("seed0-float64", "out", True), ("seed0-float64", "forward", False), ("seed0-float32", "out", True),
        ("seed0-float32", "dx", True), ("seed0-float32", "dw", True)]
    assert check.rows[1].result.problem.startswith(
        "raised FloatingPointError: overflow in the backward's forward (in forward, test_user_api_findings.py:")


@pytest.mark.parametrize(("arguments", "match"), [
    ({"factory": 3}, "factory: got int 3, needs a callable () -> layer object"),
    ({"factory": lambda: 3}, "factory: returned int, needs a layer object with .forward and .backward"),
    ({"factory": Accumulating, "forward": M.tanh_forward},
     "factory: given with forward or backward, needs them None (the factory makes the layer)"),
], ids=["not-callable", "not-a-layer", "with-forward"])
def test_bad_factories_are_input_errors(arguments, match):
    with pytest.raises(InputError) as raised_error:
        check_layer(**{"torch_fn": _torch_matmul, "shapes": [(2, 3), (3, 2)], **arguments})
    assert str(raised_error.value) == match


class Counting:
    """Its output depends on how often it ran: a stateful layer."""

    def __init__(self, grow=False):
        self.calls, self.grow = 0, grow

    def forward(self, x):
        self.calls += 1
        if self.grow:
            return np.tanh(x) if self.calls == 1 else np.tanh(np.concatenate([x, x[:1]]))
        return np.tanh(x) + (self.calls - 1)

    def backward(self, dy):
        return dy


def test_a_forward_that_differs_on_the_same_inputs_is_its_own_finding():
    check = check_layer(Counting(), torch_fn=torch.tanh, shapes=[(3,)], **ONE)
    assert ("FAIL seed0-float64  repeat: stateful or nondeterministic layer: the same forward on the same inputs gave "
            "two different outputs (max abs difference 1.000e+00)") in _lines(check)
    check = check_layer(Counting(grow=True), torch_fn=torch.tanh, shapes=[(3,)], **ONE)
    assert ("FAIL seed0-float64  repeat: stateful or nondeterministic layer: the same forward on the same inputs gave "
            "two different outputs (shapes (3,) and (4,))") in _lines(check)
    right = check_layer(M.tanh_forward, M.tanh_backward, torch.tanh, [(3,)], **ONE)
    assert [r.quantity for r in right.rows] == ["out", "dx"]  # no repeat row where the outputs are the same


def test_nan_outputs_repeated_are_the_same_output():
    def nan_forward(x):
        return np.full_like(x, np.nan), None

    check = check_layer(nan_forward, lambda dout, cache: dout, torch.tanh, [(2,)], **ONE)
    assert [r.quantity for r in check.rows] == ["out", "dx"]


# --- 3. the user's exceptions are rows ------------------------------------------------------------------

def _raising_backward(dout, cache):
    raise ValueError("dout has the wrong layout")


def test_a_raising_backward_is_a_row_and_the_other_rows_stay():
    check = check_layer(M.tanh_forward, _raising_backward, torch.tanh, [(2, 3)], seeds=[0, 1], dtypes=["float64"])
    where = _line_of(_raising_backward, "raise")
    assert [(r.case, r.quantity, r.passed) for r in check.rows] == [
        ("seed0-float64", "out", True), ("seed0-float64", "backward", False),
        ("seed1-float64", "out", True), ("seed1-float64", "backward", False)]
    assert check.failures[0].line() == (f"FAIL seed0-float64  backward: raised ValueError: dout has the wrong layout "
                                        f"(in _raising_backward, {where})")


def test_a_forward_raising_in_one_case_leaves_the_others():
    def picky_tanh(x):
        if x.dtype == np.float32:
            raise TypeError("float32 is not supported")
        return M.tanh_forward(x)

    check = check_layer(picky_tanh, M.tanh_backward, torch.tanh, [(2,)], seeds=[0])
    assert [(r.case, r.quantity, r.passed) for r in check.rows] == [
        ("seed0-float64", "out", True), ("seed0-float64", "dx", True), ("seed0-float32", "forward", False)]
    assert check.rows[-1].result.problem == (f"raised TypeError: float32 is not supported (in picky_tanh, "
                                             f"{_line_of(picky_tanh, 'raise')})")


def test_a_raising_torch_fn_is_a_row():
    def torch_fn(x):
        raise NotImplementedError

    check = check_layer(M.tanh_forward, M.tanh_backward, torch_fn, [(2,)], **ONE)
    assert [r.line() for r in check.rows] == [
        f"FAIL seed0-float64  torch_fn: raised NotImplementedError (in torch_fn, {_line_of(torch_fn, 'raise')})"]


def _flat_tanh(x):
    return np.tanh(x).reshape(-1), x


def _flat_tanh_backward(dout, x):
    return dout * (1 - np.tanh(x) ** 2)


def test_gradcheck_with_a_wrong_shaped_forward_is_rows_not_an_exception():
    check = check_layer(_flat_tanh, _flat_tanh_backward, torch.tanh, [(2, 3)], gradcheck=True, **ONE)
    assert _lines(check) == [
        "_flat_tanh(2x3) against torch autograd: FAILED, 3 of 3 checks differ",
        "FAIL seed0-float64  out: shape mismatch: manual (6,), autograd (2, 3)",
        "FAIL seed0-float64  dx: manual side failed: not checked: the forward output has shape (6,), autograd's (2, 3)",
        "FAIL seed0-float64  gradcheck: raised ValueError: operands could not be broadcast together with shapes (6,) "
        f"(2,3) (in _flat_tanh_backward, {_line_of(_flat_tanh_backward, 'return')})"]


def test_a_factory_raising_in_gradcheck_is_a_row():
    calls = []

    def factory():
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("once only")
        return Accumulating()

    check = check_layer(factory=factory, torch_fn=_torch_matmul, shapes=[(2, 3), (3, 2)], gradcheck=True, **ONE)
    assert check.rows[-1].line() == (f"FAIL seed0-float64  gradcheck: raised RuntimeError: once only (in factory, "
                                     f"{_line_of(factory, 'raise')})")


def test_raised_names_the_last_frame_of_the_users_code():
    assert raised(ValueError("no traceback")) == "raised ValueError: no traceback"
    try:
        np.zeros(2) @ np.zeros(3)
    except ValueError as error:
        text = raised(error)
    assert text.startswith("raised ValueError: matmul: Input operand 1 has a mismatch in its core dimension 0")
    assert text.endswith(f"(in test_raised_names_the_last_frame_of_the_users_code, "
                         f"{_line_of(test_raised_names_the_last_frame_of_the_users_code, '@ np.zeros(3)')})")


# --- 4. hints only with evidence ------------------------------------------------------------------------

def _scaled_relu_backward(dout, cache):
    return (1.5 * M.relu_backward(dout, cache)[0],)


def test_the_kink_hint_comes_only_with_a_kink():
    at_zeros = check_layer(M.relu_forward, M.relu_backward, torch.relu, [(5, 6)], input_factory=with_zeros,
                           gradcheck=True, **ONE)
    assert [r.line() for r in at_zeros.failures] == [
        "FAIL seed0-float64  gradcheck: torch.autograd.gradcheck failed: Jacobian mismatch for output 0 with respect "
        f"to input 0 (x) ({KINK_HINT})"]
    wrong = check_layer(M.relu_forward, _scaled_relu_backward, torch.relu, [(5, 6)], gradcheck=True, **ONE)
    assert wrong.failures[-1].line() == ("FAIL seed0-float64  gradcheck: torch.autograd.gradcheck failed: Jacobian "
                                         "mismatch for output 0 with respect to input 0 (x)")


def test_a_forward_that_cannot_be_probed_is_no_evidence_of_a_kink():
    def fragile(x):
        if x[0] != 1.0:
            raise ValueError("moved")
        return x, None

    assert _at_kink(fragile, [np.ones(3)], [True], {}) is False


def test_the_reentrant_hint_comes_only_when_gradcheck_says_so():
    rng = np.random.default_rng(5)

    def noisy(dout, cache):  # 1e-14 of noise: within the table, but no two backward calls agree
        return (M.tanh_backward(dout, cache)[0] + 1e-14 * rng.standard_normal(dout.shape),)

    check = check_layer(M.tanh_forward, noisy, torch.tanh, [(2, 3)], gradcheck=True, **ONE)
    (failure,) = check.failures
    assert failure.line().startswith("FAIL seed0-float64  gradcheck: torch.autograd.gradcheck failed: Backward is not "
                                     "reentrant")
    assert failure.line().endswith(f" ({REENTRANT_HINT})") and KINK_HINT not in failure.line()


# --- 5. per-call tolerance and names ----------------------------------------------------------------------

def _scaled_dw(dout, cache):
    dx, dw, db = M.linear_backward(dout, cache)
    return dx, dw * 1.01, db


LINEAR = (M.linear_forward, M.linear_backward, F.linear, [(4, 5), (3, 5), (3,)])
LOOSE = Tolerance(rtol=0.02, atol=1e-6, why="dw is stored in bfloat16 by design")


def test_a_given_tolerance_judges_every_row_and_says_so():
    check = check_layer(M.linear_forward, _scaled_dw, F.linear, LINEAR[3], tolerance=LOOSE, **ONE)
    assert check.passed
    assert all(line.endswith("(allowed 1e-06 + 0.02 * |autograd|, given: dw is stored in bfloat16 by design)")
               for line in _lines(check)[1:])
    assert check.as_dict()["rows"][2]["tolerance"] == {"rtol": 0.02, "atol": 1e-6, "given": True,
                                                       "why": "dw is stored in bfloat16 by design"}
    table = check_layer(*LINEAR, **ONE).as_dict()["rows"][0]["tolerance"]
    assert table == {"rtol": 1e-10, "atol": 1e-12, "given": False, "why": "the float64 table"}
    tight = check_layer(M.linear_forward, _scaled_dw, F.linear, LINEAR[3], tolerance=Tolerance(1e-12, 0, ""), **ONE)
    assert [r.quantity for r in tight.failures] == ["dw"]
    assert tight.failures[0].line().endswith("(allowed 0 + 1e-12 * |autograd|, given: )")


@pytest.mark.parametrize(("tolerance", "message"), [
    (Tolerance(0.02, 1e-6, " "), "tolerance: rtol 0.02, atol 1e-06 is looser than the float64 table (rtol 1e-10, "
                                 "atol 1e-12), needs why=, the reason it may be"),
    (Tolerance(1e-10, 1e-5, ""), "tolerance: rtol 1e-10, atol 1e-05 is looser than the float64 table (rtol 1e-10, "
                                 "atol 1e-12), needs why=, the reason it may be"),
    ((1e-3, 1e-3), "tolerance: got (0.001, 0.001), needs None (the table) or Tolerance(rtol, atol, why) with finite "
                   "rtol, atol >= 0"),
    (Tolerance(-1.0, 0.0, "x"), "tolerance: got Tolerance(rtol=-1.0, atol=0.0, why='x'), needs None (the table) or "
                                "Tolerance(rtol, atol, why) with finite rtol, atol >= 0"),
    (Tolerance(True, 0.0, "x"), "tolerance: got Tolerance(rtol=True, atol=0.0, why='x'), needs None (the table) or "
                                "Tolerance(rtol, atol, why) with finite rtol, atol >= 0"),
    (Tolerance(1e-3, 0.0, None), "tolerance: got Tolerance(rtol=0.001, atol=0.0, why=None), needs None (the table) "
                                 "or Tolerance(rtol, atol, why) with finite rtol, atol >= 0"),
], ids=["rtol-without-why", "atol-without-why", "tuple", "negative", "bool", "why-none"])
def test_a_tolerance_looser_than_the_table_needs_its_reason(tolerance, message):
    with pytest.raises(InputError) as raised_error:
        check_layer(*LINEAR, tolerance=tolerance, **ONE)
    assert str(raised_error.value) == message


def test_names_and_name_label_the_inputs_and_the_layer():
    check = check_layer(*LINEAR, names=["inp", "weight", "bias"], name="Dense", **ONE)
    assert check.layer == "Dense(4x5, 3x5, 3)" and [r.quantity for r in check.rows] == ["out", "dinp", "dweight",
                                                                                        "dbias"]
    lam = check_layer(lambda *xs: (xs[0] + xs[1], None), lambda d, c: (d, d), torch.add, [(2,), (2,)],
                      names=("a", "b"), **ONE)
    assert lam.layer == "<lambda>(2, 2)" and [r.quantity for r in lam.rows] == ["out", "da", "db"]


@pytest.mark.parametrize(("options", "message"), [
    ({"names": ["x"]}, "names: got ['x'], needs None or 3 distinct non-empty strings, one per input"),
    ({"names": ["x", "x", "b"]}, "names: got ['x', 'x', 'b'], needs None or 3 distinct non-empty strings, one per "
                                 "input"),
    ({"names": "xwb"}, "names: got 'xwb', needs None or 3 distinct non-empty strings, one per input"),
    ({"name": ""}, "name: got '', needs None or a non-empty string naming the layer"),
    ({"dtype_policy": "loose"}, "dtype_policy: got 'loose', needs one of 'strict', 'values'"),
    ({"shape_policy": None}, "shape_policy: got None, needs one of 'strict', 'squeeze'"),
], ids=["names-count", "names-repeated", "names-string", "name-empty", "dtype_policy", "shape_policy"])
def test_bad_names_and_policies_are_input_errors(options, message):
    with pytest.raises(InputError) as raised_error:
        check_layer(*LINEAR, **options, **ONE)
    assert str(raised_error.value) == message


# --- 6. conventions of real code: dtype and shape policies ------------------------------------------------------

def _promoting_tanh(x):
    out = np.tanh(x.astype(np.float64))
    return out, out


def _promoting_tanh_backward(dout, out):
    return (dout * (1 - out * out),)


def test_dtype_policy_values_compares_by_value_with_a_note():
    args = (_promoting_tanh, _promoting_tanh_backward, torch.tanh, [(3,)])
    check = check_layer(*args, seeds=[0], dtypes=["float32"], dtype_policy="values")
    assert check.passed
    lines = _lines(check)
    assert lines[0] == "_promoting_tanh(3) against torch autograd: passed"
    assert lines[1] == ("note seed0-float32  out: dtype: manual float64, autograd float32; compared by value "
                        "(dtype_policy='values')")
    assert lines[2].startswith("ok   seed0-float32  out agrees;")
    assert [r.quantity for r in check.rows] == ["out", "out", "dx", "dx"] and sum(r.is_note for r in check.rows) == 2
    strict = check_layer(*args, seeds=[0], dtypes=["float32"])
    assert [r.result.problem for r in strict.failures] == [
        "dtype mismatch: manual float64, autograd float32, expected float32"] * 2
    wrong = check_layer(_promoting_tanh, lambda dout, out: (dout,), torch.tanh, [(3,)], seeds=[0], dtypes=["float32"],
                        dtype_policy="values")
    assert [r.quantity for r in wrong.failures] == ["dx"]  # the values are still judged


def _row_bias(dout, cache):
    dx, dw, db = M.linear_backward(dout, cache)
    return dx, dw, db[None, :]


def _transposed_dw(dout, cache):
    dx, dw, db = M.linear_backward(dout, cache)
    return dx, dw.T, db


def test_shape_policy_squeeze_compares_a_row_gradient_by_value_with_a_note():
    check = check_layer(M.linear_forward, _row_bias, F.linear, LINEAR[3], shape_policy="squeeze", **ONE)
    assert check.passed
    assert ("note seed0-float64  db: shape convention: manual (1, 3), autograd (3,); compared by value "
            "(shape_policy='squeeze')") in _lines(check)
    strict = check_layer(M.linear_forward, _row_bias, F.linear, LINEAR[3], **ONE)
    assert [r.result.problem for r in strict.failures] == ["shape mismatch: manual (1, 3), autograd (3,)"]
    scaled = check_layer(M.linear_forward, lambda d, c: _row_bias(d, c)[:2] + (2 * _row_bias(d, c)[2],), F.linear,
                         LINEAR[3], shape_policy="squeeze", **ONE)
    assert [r.quantity for r in scaled.failures] == ["db"]
    transposed = check_layer(M.linear_forward, _transposed_dw, F.linear, LINEAR[3], shape_policy="squeeze", **ONE)
    assert [r.result.problem for r in transposed.failures] == ["shape mismatch: manual (5, 3), autograd (3, 5); "
                                                               "manual equals autograd transposed"]


def test_shape_policy_squeeze_takes_a_batched_output_and_hands_back_dout_in_its_shape():
    seen = []

    def batched_tanh(x):
        out = np.tanh(x)[None]
        return out, out

    def backward(dout, out):
        seen.append(dout.shape)
        return (dout * (1 - out * out))[0]

    check = check_layer(batched_tanh, backward, torch.tanh, [(2, 3)], shape_policy="squeeze", **ONE)
    assert check.passed and seen == [(1, 2, 3)]
    assert ("note seed0-float64  out: shape convention: manual (1, 2, 3), autograd (2, 3); compared by value "
            "(shape_policy='squeeze')") in _lines(check)


def test_shape_policy_squeeze_does_not_reshape_across_axes():
    def transposed_tanh(x):
        return np.tanh(x).T, x

    check = check_layer(transposed_tanh, M.tanh_backward, torch.tanh, [(2, 3)], shape_policy="squeeze", **ONE)
    assert [r.line() for r in check.rows] == [
        "FAIL seed0-float64  out: shape mismatch: manual (3, 2), autograd (2, 3); manual equals autograd transposed",
        "FAIL seed0-float64  dx: manual side failed: not checked: the forward output has shape (3, 2), autograd's "
        "(2, 3)"]


# --- 8. nothing returned aliases an array ---------------------------------------------------------------------

def _arrays_in(value):
    if isinstance(value, np.ndarray):
        return [value]
    if dataclasses.is_dataclass(value):
        return [a for f in dataclasses.fields(value) for a in _arrays_in(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _arrays_in(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays_in(v)]
    return []


def test_nothing_returned_holds_an_array():
    manual, autograd = np.ones((2, 3)), np.ones((2, 3))
    results = [check_layer(*LINEAR, gradcheck=True, seeds=[0]), compare("x", manual, autograd),
               assert_close(manual, autograd, "x"), compare("x", manual, autograd[:1])]
    assert _arrays_in(results) == [] and _arrays_in([r.as_dict() for r in results]) == []
    assert _arrays_in(Row(0, "float64", compare("x", manual, autograd))) == []
    assert _arrays_in({"a": [np.ones(1)]}) != []  # the walk finds an array where there is one
    manual[...] = 2.0  # the results stay what they were
    assert results[1].worst_manual == 1.0 and results[1].passed


def test_the_public_compare_is_the_function_whatever_was_imported_first():
    import subprocess
    import sys

    code = ("import crosscheck.compare, sys; from crosscheck import compare; import crosscheck; "
            "assert compare is crosscheck.compare is sys.modules['crosscheck.compare'].compare, compare; "
            "assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
