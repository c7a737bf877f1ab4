"""The adapters (crosscheck.adapters) for the conventions of real NumPy code: each example of examples/adapters
passes, and a deliberately wrong version of it is caught on the quantity it gets wrong; the adapters' bad
arguments are InputErrors; check_model leaves the caller's model, module and data as they were."""

import pathlib
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crosscheck import Tolerance, assert_model_matches, check_layer, check_model, closure_layer, params_layer
from crosscheck.api import REENTRANT_HINT
from netdesc import InputError

pytest_plugins = ["pytester"]

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples" / "adapters"
ONE = {"seeds": [0], "dtypes": ["float64"]}


def _module(name, right=None, wrong=None):
    """examples/adapters/<name>.py as a module, with `right` replaced by `wrong` (which must occur once)."""
    source = (EXAMPLES / f"{name}.py").read_text()
    if right is not None:
        assert source.count(right) == 1
        source = source.replace(right, wrong)
    module = types.ModuleType(name)
    exec(compile(source, str(EXAMPLES / f"{name}.py"), "exec"), module.__dict__)
    return module


def _failing(check):
    return sorted({r.quantity for r in check.failures})


def test_the_adapter_examples_pass(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest(str(EXAMPLES), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


# --- (a) parameters and gradients on the object ----------------------------------------------------------

def _dense(dense_module):
    return check_layer(params_layer(dense_module.Dense, ["W", "b"]), torch_fn=lambda x, W, b: x @ W + b,
                       shapes=[(4, 5), (5, 3), (3,)], gradcheck=True)


def test_a_right_dense_passes_every_gradient():
    check = _dense(_module("dense"))
    assert check.passed and check.layer == "Dense(4x5, 5x3, 3)"
    assert {r.quantity for r in check.rows} == {"out", "dx", "dW", "db", "gradcheck"}


@pytest.mark.parametrize(("right", "wrong", "caught"), [
    ('self.grads["b"] = dy.sum(axis=0)', 'self.grads["b"] = dy.mean(axis=0)', ["db", "gradcheck"]),
    ("self.x.T @ dy", "self.x.T @ dy * 0.5", ["dW", "gradcheck"]),
    ('return dy @ self.params["W"].T', 'return dy @ self.params["W"].T * 2', ["dx", "gradcheck"]),
    ('self.grads["b"] = dy.sum(axis=0)', "pass", ["db", "gradcheck"]),
], ids=["db-mean", "dW-halved", "dx-doubled", "db-never-set"])
def test_a_wrong_dense_is_caught(right, wrong, caught):
    assert _failing(_dense(_module("dense", right, wrong))) == caught


def test_a_gradient_left_out_is_named_where_it_was_looked_for():
    check = _dense(_module("dense", 'self.grads["b"] = dy.sum(axis=0)', "pass"))
    assert [r.line() for r in check.failures if r.seed == 0] == [
        "FAIL seed0-float64  db: manual side failed: backward left no gradient at layer.grads['b']",
        "FAIL seed0-float32  db: manual side failed: backward left no gradient at layer.grads['b']",
        "FAIL seed0-float64  gradcheck: torch.autograd.gradcheck failed: backward: gradient 2: backward left no "
        "gradient at layer.grads['b']"]


# --- (a') a layer that keeps its inputs and adds into its gradient buffers ------------------------------------

LINEAR = {"torch_fn": lambda x, W, b: x @ W + b, "shapes": [(4, 5), (5, 3), (3,)], "gradcheck": True}


def _accumulating(factory):
    return check_layer(params_layer(factory, ["W", "b"], values="{}", grads="d{}"), **LINEAR)


def test_a_right_accumulating_layer_passes_gradcheck_too():
    """gradcheck calls backward once per output element after one forward: each call gets a new object run forward
    again, so the popped input list and the buffers added into serve one backward each."""
    check = _accumulating(_module("stateful").AccumulatingLinear)
    assert check.passed and check.layer == "AccumulatingLinear(4x5, 5x3, 3)"
    assert sorted({r.quantity for r in check.rows}) == ["dW", "db", "dx", "gradcheck", "out"]
    assert sum(r.quantity == "gradcheck" for r in check.rows) == 3


@pytest.mark.parametrize(("right", "wrong", "caught"), [
    ("self.db += dy.sum(axis=0)", "self.db += dy.mean(axis=0)", ["db", "gradcheck"]),
    ("self.dW += x.T @ dy", "self.dW += x.T @ dy / len(x)", ["dW", "gradcheck"]),
    ("self.dW, self.db = 0.0, 0.0", "self.dW, self.db = 0.0, 1.0", ["db", "gradcheck"]),
    ("return dy @ self.W.T", "return -dy @ self.W.T", ["dx", "gradcheck"]),
], ids=["db-mean", "dW-over-batch", "db-buffer-not-cleared", "dx-sign"])
def test_a_wrong_accumulating_layer_is_caught(right, wrong, caught):
    assert _failing(_accumulating(_module("stateful", right, wrong).AccumulatingLinear)) == caught


def test_one_accumulating_object_reused_is_caught_and_gradcheck_says_why():
    """The same object for every forward (a factory that returns one layer): the buffers keep what the cases before
    added, from the second case on, and gradcheck finds the backward not reentrant, with the hint."""
    shared = _module("stateful").AccumulatingLinear()
    check = _accumulating(lambda: shared)
    assert [(r.case, r.quantity) for r in check.failures if r.seed == 0] == [
        ("seed0-float32", "dW"), ("seed0-float32", "db"), ("seed0-float64", "gradcheck")]
    # dW and db of the 5 cases after the first (3 seeds x 2 dtypes), and each seed's gradcheck
    assert {r.quantity for r in check.failures} == {"dW", "db", "gradcheck"} and len(check.failures) == 5 * 2 + 3
    gradcheck = [r.line() for r in check.failures if r.quantity == "gradcheck"]
    assert len(gradcheck) == 3 and all("Backward is not reentrant" in line and line.endswith(f" ({REENTRANT_HINT})")
                                       for line in gradcheck)


class AttrDense:
    """Parameters and gradients as attributes: layer.W, layer.b, layer.dW, layer.db."""

    def __init__(self, scale_db=1.0):
        self.W, self.b, self.scale_db = np.zeros((5, 3)), np.zeros(3), scale_db

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dy):
        self.dW, self.db = self.x.T @ dy, self.scale_db * dy.sum(axis=0)
        return dy @ self.W.T


def test_attributes_are_adapted_with_patterns():
    def check(factory):
        return check_layer(params_layer(factory, ["W", "b"], values="{}", grads="d{}"),
                           torch_fn=lambda x, W, b: x @ W + b, shapes=[(4, 5), (5, 3), (3,)], **ONE)

    assert check(AttrDense).passed
    assert _failing(check(lambda: AttrDense(scale_db=0.5))) == ["db"]
    missing = check_layer(params_layer(AttrDense, ["W", "b"], values="{}", grads="grad_{}"),
                          torch_fn=lambda x, W, b: x @ W + b, shapes=[(4, 5), (5, 3), (3,)], **ONE)
    assert [r.result.problem for r in missing.failures] == [
        "manual side failed: backward left no gradient at layer.grad_W",
        "manual side failed: backward left no gradient at layer.grad_b"]


class TwoInputs:
    """A layer of two inputs with a parameter: y = (x1 + x2) * s; backward returns (dx1, dx2)."""

    def __init__(self):
        self.params, self.grads = {"s": np.ones(3)}, {}

    def forward(self, x1, x2):
        self.total = x1 + x2
        return self.total * self.params["s"]

    def backward(self, dy):
        self.grads["s"] = (dy * self.total).sum(axis=0)
        return dy * self.params["s"], dy * self.params["s"]


def test_a_layer_of_several_inputs_names_each():
    check = check_layer(params_layer(TwoInputs, ["s"]), torch_fn=lambda a, b, s: (a + b) * s,
                        shapes=[(2, 3), (2, 3), (3,)], **ONE)
    assert check.passed and [r.quantity for r in check.rows] == ["out", "dx1", "dx2", "ds"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: params_layer(3, ["W"]), "factory: got 3, needs a callable () -> layer object"),
    (lambda: params_layer(AttrDense, []), "params: got [], needs a non-empty list of distinct parameter names, "
                                          "e.g. ['W', 'b']"),
    (lambda: params_layer(AttrDense, ["W", "W"]), "params: got ['W', 'W'], needs a non-empty list of distinct "
                                                  "parameter names, e.g. ['W', 'b']"),
    (lambda: params_layer(AttrDense, ["W"], values="{}{}"),
     "values: got '{}{}', needs the name of a dict attribute (e.g. 'params') or an attribute pattern with one {} "
     "for the parameter's name (e.g. '{}' for layer.W, 'd{}' for layer.dW)"),
    (lambda: params_layer(AttrDense, ["W"], grads=None),
     "grads: got None, needs the name of a dict attribute (e.g. 'params') or an attribute pattern with one {} "
     "for the parameter's name (e.g. '{}' for layer.W, 'd{}' for layer.dW)"),
    (lambda: closure_layer(None), "forward: got None, needs forward(*inputs) -> (out, backprop)"),
], ids=["factory", "no-params", "repeated-params", "two-patterns", "grads-none", "closure-not-callable"])
def test_bad_adapter_arguments_are_input_errors(call, message):
    with pytest.raises(InputError) as raised_error:
        call()
    assert str(raised_error.value) == message


# --- (b) closures ------------------------------------------------------------------------------------------

def _softplus(module):
    return check_layer(closure_layer(module.softplus), torch_fn=F.softplus, shapes=[(4, 6)], gradcheck=True)


def test_a_right_closure_passes_and_a_wrong_one_is_caught():
    check = _softplus(_module("closures"))
    assert check.passed and check.layer == "softplus(4x6)" and {r.quantity for r in check.rows} == {
        "out", "dX", "gradcheck"}
    assert _failing(_softplus(_module("closures", "np.exp(-X)", "np.exp(X)"))) == ["dX", "gradcheck"]
    assert _failing(_softplus(_module("closures", "return dY / ", "return 1 / "))) == ["dX", "gradcheck"]


def test_a_closure_that_returns_no_backprop_is_a_row_without_a_place_in_crosscheck():
    check = check_layer(closure_layer(lambda X: (X, None)), torch_fn=lambda x: x * 1.0, shapes=[(2,)], **ONE)
    assert check.failures[0].line() == ("FAIL seed0-float64  backward: raised InputError: forward: returned NoneType "
                                        "as backprop, needs (out, backprop) with backprop(dout) -> the input "
                                        "gradient(s)")


# --- (c) a whole model against an nn.Module ------------------------------------------------------------------

MAPPING = {"W1": ("0.weight", np.transpose), "b1": "0.bias", "W2": ("2.weight", np.transpose), "b2": "2.bias"}


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 6)), rng.integers(0, 4, 8)


def _torch_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))


def _ce(module, X, y):
    return F.cross_entropy(module(X), y)


def _net(module, **options):
    return check_model(module.TwoLayerNet(), _torch_net(), MAPPING, *_data(), _ce, **options)


def test_a_right_model_passes_and_leaves_the_callers_objects_alone():
    net_module = _module("two_layer_net")
    model, module, (X, y) = net_module.TwoLayerNet(), _torch_net(), _data()
    before = ({k: v.copy() for k, v in model.params.items()}, {k: v.clone() for k, v in module.state_dict().items()},
              X.copy(), y.copy())
    check = check_model(model, module, MAPPING, X, y, _ce, dtypes=["float64", "float32"])
    assert check.passed and check.layer == "TwoLayerNet(8x6, 4 parameters)"
    assert [(r.case, r.quantity) for r in check.rows] == [
        (d, q) for d in ("float64", "float32") for q in ("loss", "dW1", "db1", "dW2", "db2")]
    for k, v in before[0].items():
        assert model.params[k].dtype == np.float64 and np.array_equal(model.params[k], v)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in before[1].items())
    assert np.array_equal(X, before[2]) and np.array_equal(y, before[3])


@pytest.mark.parametrize(("right", "wrong", "caught"), [
    ("        dscores /= N\n", "", ["dW1", "dW2", "db1", "db2"]),
    (" * (h > 0)", "", ["dW1", "db1"]),
    ('"b2": dscores.sum(axis=0)', '"b2": dscores.sum(axis=0) * 0.9', ["db2"]),
    ("-log_probs[np.arange(N), y].mean()", "-log_probs[np.arange(N), y].sum()", ["loss"]),
], ids=["forgets-1/N", "forgets-relu-mask", "db2-scaled", "loss-summed"])
def test_a_wrong_model_is_caught(right, wrong, caught):
    assert _failing(_net(_module("two_layer_net", right, wrong))) == caught


def test_what_the_model_raises_or_leaves_out_is_a_row():
    missing = _net(_module("two_layer_net", '"b1": dh.sum(axis=0)}', "}"))
    assert [r.line() for r in missing.failures] == ["FAIL float64        db1: manual side failed: loss returned no "
                                                    "gradient for b1"]
    not_a_dict = _net(_module("two_layer_net", "return loss, grads", "return loss, list(grads.values())"))
    assert _failing(not_a_dict) == ["dW1", "dW2", "db1", "db2"]
    raising = _net(_module("two_layer_net", "        N = X.shape[0]\n", "        N = X.shape[0]\n        1 / 0\n"))
    line = (EXAMPLES / "two_layer_net.py").read_text().splitlines().index("        N = X.shape[0]") + 2
    assert [r.line() for r in raising.rows] == [
        f"FAIL float64        loss: raised ZeroDivisionError: division by zero (in loss, two_layer_net.py:{line})"]


def _bad_model_args():
    net = _module("two_layer_net").TwoLayerNet
    base = {"model": net(), "module": _torch_net(), "mapping": MAPPING, "torch_loss": _ce}
    cases = {
        "model": ({"model": object()}, "model: got object, needs an object with a dict `params` and "
                                       "`loss(X, y) -> (loss, grads)`"),
        "module": ({"module": net()}, "module: got TwoLayerNet, needs a torch.nn.Module"),
        "torch_loss": ({"torch_loss": "ce"}, "torch_loss: got 'ce', needs torch_loss(module, X, y) -> a scalar tensor"),
        "mapping-empty": ({"mapping": {}}, "mapping: got {}, needs a dict {manual name: torch name, or (torch name, "
                                           "to_torch)}, e.g. {'W1': ('fc1.weight', np.transpose)}"),
        "mapping-value": ({"mapping": {**MAPPING, "b2": 3}}, "mapping['b2']: got 3, needs a torch parameter name or "
                          "(name, to_torch) with to_torch(manual array) -> the array in torch's layout"),
        "mapping-to_torch": ({"mapping": {**MAPPING, "b2": ("2.bias", 3)}}, "mapping['b2']: got ('2.bias', 3), needs "
                             "a torch parameter name or (name, to_torch) with to_torch(manual array) -> the array in "
                             "torch's layout"),
        "mapping-unknown-manual": ({"mapping": {**MAPPING, "W3": "2.bias"}}, "mapping: 'W3' is not in the model's "
                                   "params (W1, b1, W2, b2)"),
        "mapping-unknown-torch": ({"mapping": {**MAPPING, "b2": "fc2.bias"}}, "mapping['b2']: 'fc2.bias' is not a "
                                  "parameter of the module (0.weight, 0.bias, 2.weight, 2.bias)"),
        "unmapped": ({"mapping": {k: v for k, v in MAPPING.items() if k != "b2"}}, "mapping: needs every one of the "
                     "model's params mapped exactly once; unmapped: b2"),
        "mapped-twice": ({"mapping": {**MAPPING, "b2": "0.bias"}}, "mapping: needs every one of the module's "
                         "parameters mapped exactly once; unmapped: 2.bias"),
        "no-transpose": ({"mapping": {**MAPPING, "W1": "0.weight"}}, "mapping['W1']: W1 (6, 5) is (6, 5) in torch's "
                         "layout, 0.weight is (5, 6); needs to_torch that maps one to the other, e.g. (name, "
                         "np.transpose)"),
        "torch_loss-vector": ({"torch_loss": lambda m, X, y: m(X)}, "torch_loss: returned tensor"),
        "dtypes": ({"dtypes": ["float16"]}, "dtypes: got 'float16', needs float64 or float32 (the dtypes of the "
                                            "tolerance table)"),
    }
    return [pytest.param({**base, **change}, message, id=name) for name, (change, message) in cases.items()]


@pytest.mark.parametrize(("arguments", "message"), _bad_model_args())
def test_bad_model_arguments_are_input_errors(arguments, message):
    X, y = _data()
    with pytest.raises(InputError) as raised_error:
        check_model(X=X, y=y, **arguments)
    assert str(raised_error.value).startswith(message)
    assert message.startswith("torch_loss: returned tensor") or str(raised_error.value) == message


def test_assert_model_matches_raises_with_the_failing_rows_only():
    wrong = _module("two_layer_net", '"b2": dscores.sum(axis=0)', '"b2": dscores.sum(axis=0) * 0.9')
    with pytest.raises(AssertionError) as raised_error:
        assert_model_matches(wrong.TwoLayerNet(), _torch_net(), MAPPING, *_data(), _ce)
    first, second, *rest = str(raised_error.value).splitlines()
    assert first == "TwoLayerNet(8x6, 4 parameters) against torch autograd: FAILED, 1 of 5 checks differ"
    assert second.startswith("FAIL float64        db2 differs; worst element at index (") and rest == []
    assert assert_model_matches(_module("two_layer_net").TwoLayerNet(), _torch_net(), MAPPING, *_data(), _ce).passed


def test_check_model_returns_no_array():
    check = _net(_module("two_layer_net"))
    fields = [getattr(r.result, f) for r in check.rows for f in r.result.__dataclass_fields__]
    assert check.rows and not any(isinstance(v, np.ndarray) for v in fields)
    assert not any(isinstance(v, np.ndarray) for row in check.as_dict()["rows"] for v in row.values())


def test_check_model_takes_the_policies_and_a_tolerance():
    row_bias = _module("two_layer_net", '"b2": dscores.sum(axis=0)', '"b2": dscores.sum(axis=0, keepdims=True)')
    assert [r.result.problem for r in _net(row_bias).failures] == ["shape mismatch: manual (1, 4), autograd (4,)"]
    squeezed = _net(row_bias, shape_policy="squeeze", dtype_policy="values")
    assert squeezed.passed and [r.line() for r in squeezed.rows if r.is_note] == [
        "note float64        db2: shape convention: manual (1, 4), autograd (4,); compared by value "
        "(shape_policy='squeeze')"]
    scaled = _module("two_layer_net", '"b2": dscores.sum(axis=0)', '"b2": dscores.sum(axis=0) * 1.001')
    loose = _net(scaled, tolerance=Tolerance(rtol=1e-2, atol=1e-8, why="b2 is rounded on purpose"))
    assert loose.passed and loose.rows[-1].line().endswith("(allowed 1e-08 + 0.01 * |autograd|, given: b2 is rounded "
                                                           "on purpose)")
    with pytest.raises(InputError) as raised_error:
        _net(scaled, shape_policy="loose")
    assert str(raised_error.value) == "shape_policy: got 'loose', needs one of 'strict', 'squeeze'"
