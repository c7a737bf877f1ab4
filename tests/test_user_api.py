"""The public API for users' own layers (crosscheck.api): right layers pass, wrong ones are reported by case,
quantity and worst element, bad arguments are InputErrors that say what they got and what they need; and the
example in examples/user_layer runs, and fails once its backward is broken."""

import json
import pathlib
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from layer_cases import labels_below, torch_conv2d, with_zeros

from crosscheck import LayerCheck, assert_layer_matches, check_layer
from manual import functional as M
from netdesc import InputError

pytest_plugins = ["pytester"]

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "user_layer"


def _quantities(check):
    return {(row.seed, row.dtype, row.quantity) for row in check.rows}


# --- right layers pass, on the whole grid --------------------------------------------------------------

@pytest.mark.parametrize(
    ("forward", "backward", "torch_fn", "shapes", "options", "grads"),
    [
        (M.linear_forward, M.linear_backward, F.linear, [(4, 5), (3, 5), (3,)], {}, ["dx", "dw", "db"]),
        (M.conv2d_forward, M.conv2d_backward, torch_conv2d, [(2, 3, 6, 5), (4, 3, 3, 2)],
         {"kwargs": {"stride": 2, "padding": 1, "flip": True}}, ["dx", "dw"]),
        (M.leaky_relu_forward, M.leaky_relu_backward, F.leaky_relu, [(3, 4)], {"kwargs": {"negative_slope": 0.2}},
         ["dx"]),
        (M.softmax_cross_entropy_forward, M.softmax_cross_entropy_backward, F.cross_entropy, [(4, 5), (4,)],
         {"input_factory": [None, labels_below(5)]}, ["dlogits"]),
        (M.mse_forward, M.mse_backward, F.mse_loss, [(4, 3), (4, 3)], {"differentiable": [True, False]}, ["dpred"]),
    ],
    ids=["linear", "conv2d-kwargs", "leaky_relu-kwargs", "cross_entropy-labels", "mse-target-is-data"],
)
def test_a_right_layer_passes_on_every_seed_and_dtype(forward, backward, torch_fn, shapes, options, grads):
    check = check_layer(forward, backward, torch_fn, shapes, **options)
    assert check.passed and check.failures == ()
    assert _quantities(check) == {(s, d, q) for s in (0, 1, 2) for d in ("float64", "float32") for q in ["out", *grads]}
    assert assert_layer_matches(forward, backward, torch_fn, shapes, **options).passed


def test_seeds_and_dtypes_are_the_grid():
    check = check_layer(M.tanh_forward, M.tanh_backward, torch.tanh, [(3,)], seeds=range(5, 7), dtypes="float32")
    assert {(r.seed, r.dtype) for r in check.rows} == {(5, "float32"), (6, "float32")}
    check = check_layer(M.tanh_forward, M.tanh_backward, torch.tanh, [(3,)], seeds=[4], dtypes=[np.float64])
    assert [r.case for r in check.rows] == ["seed4-float64", "seed4-float64"]


def test_the_inputs_come_from_default_rng_of_the_seed():
    seen = []

    def recording_tanh(x):
        seen.append(x.copy())
        return M.tanh_forward(x)

    check_layer(recording_tanh, M.tanh_backward, torch.tanh, [(2, 3)], seeds=[7], dtypes=["float64"])
    np.testing.assert_array_equal(seen[0], np.random.default_rng(7).standard_normal((2, 3)))


# --- wrong layers are reported, not crashed on ---------------------------------------------------------

def _scaled_dw(dout, cache):
    dx, dw, db = M.linear_backward(dout, cache)
    return dx, dw * 1.01, db


LINEAR = (M.linear_forward, M.linear_backward, F.linear, [(4, 5), (3, 5), (3,)])


def test_a_scaled_gradient_is_reported_with_its_worst_element():
    check = check_layer(M.linear_forward, _scaled_dw, F.linear, LINEAR[3])
    assert not check.passed
    assert {(r.seed, r.dtype, r.quantity) for r in check.failures} == {
        (s, d, "dw") for s in (0, 1, 2) for d in ("float64", "float32")
    }
    for row in check.failures:
        c = row.result
        assert c.worst_manual == pytest.approx(1.01 * c.worst_autograd, rel=1e-5)
        assert c.max_rel_error == pytest.approx(0.01, rel=1e-3)
    report = check.report()
    assert report.startswith("linear_forward(4x5, 3x5, 3) against torch autograd: FAILED, 6 of 24 checks differ")
    assert "FAIL seed1-float32  dw differs; worst element at index (" in report
    assert "manual " in report and "autograd " in report and "abs error" in report and "rel error" in report
    assert "(allowed 1e-06 + 0.0001 * |autograd|, the float32 table)" in report
    assert "ok   seed0-float64  dx agrees; max abs error" in report


def test_assert_layer_matches_raises_with_every_failing_check_only():
    with pytest.raises(AssertionError) as raised:
        assert_layer_matches(M.linear_forward, _scaled_dw, F.linear, LINEAR[3], seeds=[0, 1])
    message = str(raised.value)
    assert message.count("FAIL ") == 4 and "ok   " not in message
    assert "seed1-float32  dw differs" in message


def test_a_backward_that_forgets_dout_fails_because_dout_is_random():
    def forgets_dout(dout, cache):
        return M.tanh_backward(np.ones_like(dout), cache)

    check = check_layer(M.tanh_forward, forgets_dout, torch.tanh, [(3, 4)])
    assert {r.quantity for r in check.failures} == {"dx"} and len(check.failures) == 6


def test_a_wrong_gradient_shape_is_a_reported_mismatch():
    def transposed(dout, cache):
        dx, dw, db = M.linear_backward(dout, cache)
        return dx, dw.T, db

    check = check_layer(M.linear_forward, transposed, F.linear, LINEAR[3], seeds=[0], gradcheck=True)
    failed = {r.quantity: r for r in check.failures}
    assert set(failed) == {"dw", "gradcheck"}
    assert "shape mismatch: manual (5, 3), autograd (3, 5); manual equals autograd transposed" in failed["dw"].line()
    assert "gradient 1 has shape (5, 3), its input (3, 5)" in failed["gradcheck"].line()


def test_a_wrong_forward_shape_leaves_the_gradients_unchecked():
    def flat_tanh(x):
        out, cache = M.tanh_forward(x)
        return out.reshape(-1), cache

    check = check_layer(flat_tanh, M.tanh_backward, torch.tanh, [(2, 3)], seeds=[0], dtypes=["float64"])
    out, dx = check.rows
    assert "shape mismatch: manual (6,), autograd (2, 3)" in out.line()
    assert "not checked: the forward output has shape (6,), autograd's (2, 3)" in dx.line()


def test_none_for_a_differentiable_input_is_reported():
    def no_db(dout, cache):
        return M.linear_backward(dout, cache)[:2] + (None,)

    check = check_layer(M.linear_forward, no_db, F.linear, LINEAR[3], seeds=[0])
    assert {r.quantity for r in check.failures} == {"db"}
    assert "backward returned None for a differentiable input" in check.failures[0].line()


def test_a_float64_result_for_float32_inputs_is_reported():
    def promoting_tanh(x):
        out = np.tanh(x.astype(np.float64))
        return out, out

    def tanh_backward(dout, out):
        return (dout * (1 - out * out),)

    check = check_layer(promoting_tanh, tanh_backward, torch.tanh, [(3,)], seeds=[0], dtypes=["float32"])
    assert all("dtype mismatch: manual float64, autograd float32" in r.line() for r in check.failures)
    assert len(check.failures) == 2


# --- the gradcheck witness -----------------------------------------------------------------------------

def test_gradcheck_runs_once_per_seed_in_float64():
    check = check_layer(*LINEAR, seeds=[0, 1], gradcheck=True)
    rows = [r for r in check.rows if r.quantity == "gradcheck"]
    assert [(r.seed, r.dtype, r.passed) for r in rows] == [(0, "float64", True), (1, "float64", True)]
    assert "ok   seed0-float64  torch.autograd.gradcheck passed" in check.report()


def test_gradcheck_names_the_input_and_the_kink_it_cannot_cross():
    # At exact zeros ReLU's gradient is 0 in both manual and torch, so the comparisons pass; finite
    # differences see slope 1/2 there, so gradcheck fails: the hint says why.
    check = check_layer(M.relu_forward, M.relu_backward, torch.relu, [(5, 6)], seeds=[0], input_factory=with_zeros,
                        gradcheck=True)
    assert [r.quantity for r in check.failures] == ["gradcheck"]
    line = check.failures[0].line()
    assert "Jacobian mismatch for output 0 with respect to input 0 (x)" in line and "input_factory" in line


# --- layer objects -------------------------------------------------------------------------------------

class Scale:
    """A layer object that keeps its own cache, as many hand-written layers do: y = k * x @ w."""

    def __init__(self, k, forget_k_in_dw=False):
        self.k, self.forget = k, forget_k_in_dw

    def forward(self, x, w):
        self.x, self.w = x, w
        return self.k * (x @ w)

    def backward(self, dy):
        return self.k * (dy @ self.w.T), (1 if self.forget else self.k) * (self.x.T @ dy)


def _torch_scale(x, w):
    return 3.0 * (x @ w)


def test_a_stateful_layer_object_is_accepted():
    check = check_layer(Scale(3.0), torch_fn=_torch_scale, shapes=[(4, 5), (5, 2)], gradcheck=True)
    assert check.passed and check.layer == "Scale(4x5, 5x2)"
    assert {r.quantity for r in check.rows} == {"out", "dx", "dw", "gradcheck"}


def test_a_wrong_stateful_layer_object_is_reported():
    check = check_layer(Scale(3.0, forget_k_in_dw=True), None, _torch_scale, [(4, 5), (5, 2)], gradcheck=True)
    assert {r.quantity for r in check.failures} == {"dw", "gradcheck"}


class Leaky:
    """A layer object whose forward takes a keyword option and keeps it for its backward."""

    def forward(self, x, negative_slope=0.01):
        self.x, self.slope = x, negative_slope
        return np.where(x > 0, x, negative_slope * x)

    def backward(self, dy):
        return np.where(self.x > 0, dy, self.slope * dy)


def test_a_stateful_layer_object_gets_the_keyword_options_in_both_passes():
    check = check_layer(Leaky(), torch_fn=F.leaky_relu, shapes=[(3, 4)], kwargs={"negative_slope": 0.5})
    assert check.layer == "Leaky(3x4, negative_slope=0.5)"
    assert check.passed and {r.quantity for r in check.rows} == {"out", "dx"}


def test_a_layer_object_with_the_pair_contract_is_accepted():
    layer = types.SimpleNamespace(forward=M.conv2d_forward, backward=M.conv2d_backward)
    check = check_layer(layer, torch_fn=torch_conv2d, shapes=[(1, 2, 5, 5), (3, 2, 2, 2), (3,)], kwargs={"padding": 1})
    assert check.passed and {r.quantity for r in check.rows} == {"out", "dx", "dw", "db"}


def test_a_variadic_forward_names_its_inputs_by_position():
    def add(*xs):
        return xs[0] + xs[1], None

    check = check_layer(add, lambda dout, cache: (dout, dout), torch.add, [(2,), (2,)], seeds=[0])
    assert {r.quantity for r in check.rows} == {"out", "dinput0", "dinput1"} and check.passed


# --- results as data -----------------------------------------------------------------------------------

def test_as_dict_is_json_with_every_row():
    check = check_layer(M.linear_forward, _scaled_dw, F.linear, LINEAR[3], seeds=[0], gradcheck=True)
    data = json.loads(json.dumps(check.as_dict()))
    assert data["layer"] == check.layer and data["passed"] is False
    assert [(r["case"], r["name"], r["passed"]) for r in data["rows"]] == [
        (r.case, r.quantity, r.passed) for r in check.rows
    ]
    gradcheck = data["rows"][-1]
    assert gradcheck["name"] == "gradcheck" and gradcheck["passed"] is False and gradcheck["max_abs_error"] is None
    dw = next(r for r in data["rows"] if r["name"] == "dw")
    assert dw["seed"] == 0 and dw["dtype"] == "float64" and len(dw["worst_index"]) == 2


def test_a_check_with_no_rows_does_not_pass_vacuously():
    assert LayerCheck("nothing", ()).passed is False
    assert len(check_layer(M.tanh_forward, M.tanh_backward, torch.tanh, [(2,)], seeds=[0], dtypes=["float64"]).rows)


# --- bad arguments -------------------------------------------------------------------------------------

def _bad_factory_shape(rng, shape):
    return rng.standard_normal((1,))


def _detached_tanh(x):
    return torch.tanh(x).detach()


def _bad_args():
    base = {"forward": M.tanh_forward, "backward": M.tanh_backward, "torch_fn": torch.tanh, "shapes": [(2, 3)]}
    layer = types.SimpleNamespace(forward=M.tanh_forward, backward=M.tanh_backward)
    cases = {
        "forward-not-callable": ({"forward": 3}, r"forward: got int 3, needs the manual forward"),
        "backward-missing": ({"backward": None}, r"backward: got NoneType None, needs the manual backward"),
        "backward-with-a-layer-object": ({"forward": layer}, r"backward: got function, needs None when forward is a"),
        "torch_fn-not-callable": ({"torch_fn": "tanh"}, r"torch_fn: got 'tanh', needs the same forward in torch"),
        "shapes-one-tuple": ({"shapes": (2, 3)}, r"shapes: got \(2, 3\), needs a non-empty list of shapes"),
        "shapes-empty": ({"shapes": []}, r"shapes: got \[\], needs"),
        "shapes-negative": ({"shapes": [(2, -1)]}, r"shapes: got \[\(2, -1\)\], needs .* ints >= 0"),
        "shapes-missing": ({"shapes": None}, r"shapes: got None"),
        "seeds-int": ({"seeds": 3}, r"seeds: got 3, needs a non-empty sequence of integer seeds >= 0"),
        "seeds-negative": ({"seeds": [0, -1]}, r"seeds: got \[0, -1\]"),
        "dtypes-float16": ({"dtypes": ["float16"]}, r"dtypes: got 'float16', needs float64 or float32"),
        "dtypes-unknown": ({"dtypes": ["double-ish"]}, r"dtypes: got 'double-ish', needs float64 or float32"),
        "dtypes-empty": ({"dtypes": []}, r"dtypes: got \[\], needs a non-empty sequence of dtypes"),
        "kwargs-list": ({"kwargs": [("k", 1)]}, r"kwargs: got \[\('k', 1\)\], needs None or a dict"),
        "differentiable-length": ({"differentiable": [True, True]}, r"differentiable: got \[True, True\], needs None "
                                  r"or 1 booleans"),
        "differentiable-none-true": ({"differentiable": [False]}, r"needs at least one differentiable input"),
        "input_factory-int": ({"input_factory": 3}, r"input_factory: got 3, needs None, a callable"),
        "input_factory-wrong-shape": ({"input_factory": _bad_factory_shape},
                                      r"input_factory: for input 0 of shape \(2, 3\) got shape \(1,\), needs"),
        "input_factory-list": ({"input_factory": lambda rng, shape: [1.0]},
                               r"input_factory: for input 0 of shape \(2, 3\) got list"),
        "integer-input-only": ({"input_factory": lambda rng, shape: np.zeros(shape, dtype=int)},
                               r"differentiable: no input is floating point"),
        "gradcheck-string": ({"gradcheck": "yes"}, r"gradcheck: got 'yes', needs True or False"),
        "forward-without-cache": ({"forward": lambda x: np.tanh(x)},
                                  r"forward: returned ndarray, needs \(out, cache\)"),
        "torch_fn-numpy": ({"torch_fn": lambda x: np.tanh(x.detach().numpy())},
                           r"torch_fn: returned ndarray, needs a torch.Tensor"),
        "torch_fn-detached": ({"torch_fn": _detached_tanh}, r"torch_fn: returned a tensor that autograd cannot trace"),
        "backward-count": ({"backward": lambda dout, cache: ()}, r"backward: returned 0 gradient\(s\), needs 1"),
        "backward-dict": ({"backward": lambda dout, cache: {"dx": dout}}, r"backward: returned dict, needs a tuple"),
    }
    return [pytest.param({**base, **change}, match, id=name) for name, (change, match) in cases.items()]


@pytest.mark.parametrize(("arguments", "match"), _bad_args())
def test_bad_arguments_are_input_errors_naming_the_argument(arguments, match):
    with pytest.raises(InputError, match=match):
        check_layer(**arguments)


def test_labels_cannot_be_declared_differentiable():
    with pytest.raises(InputError, match=r"differentiable: input labels has dtype int64, which has no gradient"):
        check_layer(M.softmax_cross_entropy_forward, M.softmax_cross_entropy_backward, F.cross_entropy,
                    [(4, 5), (4,)], input_factory=[None, labels_below(5)], differentiable=[True, True])


# --- the example in examples/user_layer ----------------------------------------------------------------

def test_the_user_layer_example_is_at_most_ten_lines():
    assert len((EXAMPLE / "test_my_layer.py").read_text().splitlines()) <= 10


def test_the_user_layer_example_passes(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest(str(EXAMPLE), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("right", "broken", "quantity"),
    [
        ("(dz * x).sum(axis=0)", "(dz * x).mean(axis=0)", "dbeta"),  # forgets that beta is shared over the batch
        ("dy * s + dz * beta", "dy * s + dz", "dx"),  # drops the inner derivative of beta * x
    ],
    ids=["dbeta-mean", "dx-without-beta"],
)
def test_the_user_layer_example_fails_with_a_broken_backward(pytester, monkeypatch, right, broken, quantity):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    source = (EXAMPLE / "my_layer.py").read_text()
    assert source.count(right) == 1
    pytester.makepyfile(my_layer=source.replace(right, broken),
                        test_my_layer=(EXAMPLE / "test_my_layer.py").read_text())
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E*AssertionError: swish_forward(4x5, 5) against torch autograd: FAILED, * of 21 checks differ",
        f"E*FAIL seed0-float64  {quantity} differs; worst element at index *: manual *, autograd *, abs error *",
        "E*FAIL seed0-float64  gradcheck: torch.autograd.gradcheck failed: Jacobian mismatch*",
    ])
