"""Edges of the adapters (crosscheck.adapters) that the examples leave open: check_model's mapping messages (two names
unmapped, a torch parameter mapped twice), integer and float32 data, a module parameter the loss never uses, what
torch_loss raises, dtype_policy, a model without params or loss; assert_model_matches' options and its hidden frame;
params_layer's keyword options, its shapes counted against the layer's inputs and parameters, a one-input backward
that returns a list, empty names; closure_layer's name for a callable object and its message for a backprop that is
not callable."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crosscheck import assert_model_matches, check_layer, check_model, closure_layer, params_layer
from netdesc import InputError

pytest_plugins = ["pytester"]


# --- a softmax regression in the course-assignment style ------------------------------------------------------

class Softmax:
    """scores = X @ W + b, softmax cross-entropy, mean over the batch; `extra` params are carried, never used (their
    gradient is zero); `upcast` returns the gradients in float64 whatever the case's dtype."""

    def __init__(self, D=5, C=3, extra=(), upcast=False):
        rng = np.random.default_rng(1)
        self.params = {"W": rng.standard_normal((D, C)) * 0.5, "b": rng.standard_normal(C) * 0.1}
        self.params.update({name: np.ones(2) for name in extra})
        self.upcast = upcast

    def loss(self, X, y):
        W, b = self.params["W"], self.params["b"]
        scores = X @ W + b
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        N = X.shape[0]
        dscores = np.exp(log_probs)
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads = {"W": X.T @ dscores, "b": dscores.sum(axis=0)}
        grads.update({name: np.zeros_like(self.params[name]) for name in self.params if name not in ("W", "b")})
        if self.upcast:
            grads = {name: g.astype(np.float64) for name, g in grads.items()}
        return -log_probs[np.arange(N), y].mean(), grads


class TorchSoftmax(nn.Module):
    """The same model in torch; `extra` parameters are registered and never used in forward."""

    def __init__(self, D=5, C=3, extra=()):
        super().__init__()
        self.fc = nn.Linear(D, C)
        for name in extra:
            self.register_parameter(name, nn.Parameter(torch.ones(2, dtype=torch.float64)))

    def forward(self, X):
        return self.fc(X)


MAPPING = {"W": ("fc.weight", np.transpose), "b": "fc.bias"}


def _ce(module, X, y):
    return F.cross_entropy(module(X), y)


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5)), rng.integers(0, 3, 6)


def _quantities(check):
    return [(r.case, r.quantity) for r in check.rows]


# --- the mapping's messages -----------------------------------------------------------------------------------

def test_every_unmapped_name_is_listed_with_a_comma():
    """Two manual parameters left out of the mapping: both named, in the model's order."""
    with pytest.raises(InputError) as raised_error:
        check_model(Softmax(extra=("c", "d")), TorchSoftmax(extra=("c", "d")), MAPPING, *_data(), _ce)
    assert str(raised_error.value) == ("mapping: needs every one of the model's params mapped exactly once; "
                                       "unmapped: c, d")


def test_a_torch_parameter_mapped_twice_with_none_left_out_says_mapped_twice():
    """Three manual names on a module of two parameters: every torch parameter is mapped, one of them twice, and the
    message names it."""
    with pytest.raises(InputError) as raised_error:
        check_model(Softmax(extra=("c",)), TorchSoftmax(), {**MAPPING, "c": "fc.bias"}, *_data(), _ce)
    assert str(raised_error.value) == ("mapping: needs every one of the module's parameters mapped exactly once; "
                                       "mapped twice: fc.bias")


# --- the data: integer inputs kept, floating ones cast to the case's dtype -------------------------------------

class Bag:
    """Token ids X (N, T) -> the mean of their embeddings E (V, D) -> scores @ W (D, C), softmax cross-entropy."""

    def __init__(self, V=7, D=4, C=3):
        rng = np.random.default_rng(2)
        self.params = {"E": rng.standard_normal((V, D)), "W": rng.standard_normal((D, C)) * 0.5}

    def loss(self, X, y):
        E, W = self.params["E"], self.params["W"]
        h = E[X].mean(axis=1)
        scores = h @ W
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        N, T = X.shape
        dscores = np.exp(log_probs)
        dscores[np.arange(N), y] -= 1
        dscores /= N
        dE = np.zeros_like(E)
        np.add.at(dE, X, np.repeat((dscores @ W.T)[:, None, :] / T, T, axis=1))
        return -log_probs[np.arange(N), y].mean(), {"E": dE, "W": h.T @ dscores}


class TorchBag(nn.Module):
    def __init__(self, V=7, D=4, C=3):
        super().__init__()
        self.embed, self.out = nn.Embedding(V, D), nn.Linear(D, C, bias=False)

    def forward(self, X):
        return self.out(self.embed(X).mean(dim=1))


def test_integer_inputs_reach_both_sides_as_integers():
    """Token ids index the embedding on both sides: they are not cast to the case's dtype (nor lost)."""
    rng = np.random.default_rng(3)
    X, y = rng.integers(0, 7, (5, 3)), rng.integers(0, 3, 5)
    check = check_model(Bag(), TorchBag(), {"E": "embed.weight", "W": ("out.weight", np.transpose)}, X, y, _ce,
                        dtypes=["float64", "float32"])
    assert check.passed and _quantities(check) == [(d, q) for d in ("float64", "float32") for q in ("loss", "dE", "dW")]


def test_float32_data_is_cast_to_a_float64_case():
    """Data given in float32 is cast to float64 for the float64 case, on both sides (torch refuses float32 data
    against float64 weights)."""
    X, y = _data()
    check = check_model(Softmax(), TorchSoftmax(), MAPPING, X.astype(np.float32), y, _ce, dtypes=["float64"])
    assert check.passed and _quantities(check) == [("float64", q) for q in ("loss", "dW", "db")]


# --- the torch side ------------------------------------------------------------------------------------------------

def test_a_module_parameter_the_loss_never_uses_has_a_zero_gradient():
    """autograd gives no gradient to a parameter the loss does not use; it is taken as zero, as the model's is."""
    check = check_model(Softmax(extra=("c",)), TorchSoftmax(extra=("c",)), {**MAPPING, "c": "c"}, *_data(), _ce)
    assert check.passed and _quantities(check) == [("float64", q) for q in ("loss", "dW", "db", "dc")]


def _raising_loss(module, X, y):
    raise ValueError("no loss today")


def test_what_torch_loss_raises_is_a_row_named_torch_loss():
    check = check_model(Softmax(), TorchSoftmax(), MAPPING, *_data(), _raising_loss)
    line = _raising_loss.__code__.co_firstlineno + 1
    assert [r.line() for r in check.rows] == [
        f"FAIL float64        torch_loss: raised ValueError: no loss today (in _raising_loss, "
        f"test_adapters_edges.py:{line})"]


def test_to_torch_may_return_another_float_dtype():
    """The module gets to_torch's array in the case's dtype, whatever dtype to_torch returns (here long double,
    which torch.from_numpy does not take where it is wider than float64); the gradients, in that dtype too, are
    compared by value."""
    def transpose(a):
        return np.asarray(a.T, dtype=np.longdouble)

    check = check_model(Softmax(), TorchSoftmax(), {**MAPPING, "W": ("fc.weight", transpose)}, *_data(), _ce,
                        dtype_policy="values")
    assert check.passed and _quantities(check)[-2:] == [("float64", "dW"), ("float64", "db")]


# --- the options and the model's checks ---------------------------------------------------------------------------

def test_dtype_policy_values_compares_float64_gradients_of_a_float32_case_by_value():
    model, module = Softmax(upcast=True), TorchSoftmax()
    strict = check_model(model, module, MAPPING, *_data(), _ce, dtypes=["float32"])
    assert [r.quantity for r in strict.failures] == ["dW", "db"]
    check = check_model(model, module, MAPPING, *_data(), _ce, dtypes=["float32"], dtype_policy="values")
    assert check.passed and [r.line() for r in check.rows if r.is_note] == [
        f"note float32        d{name}: dtype: manual float64, autograd float32; compared by value "
        "(dtype_policy='values')" for name in ("W", "b")]


class NoLoss:
    def __init__(self):
        self.params = {"W": np.zeros((5, 3)), "b": np.zeros(3)}


class NoParams:
    def loss(self, X, y):
        return 0.0, {}


@pytest.mark.parametrize(("model", "method", "message"), [
    (NoLoss(), "loss", "model: got NoLoss, needs an object with a dict `params` and `loss(X, y) -> (loss, grads)`"),
    (NoParams(), "loss", "model: got NoParams, needs an object with a dict `params` and `loss(X, y) -> (loss, grads)`"),
    (Softmax(), "train_loss", "model: got Softmax, needs an object with a dict `params` and `train_loss(X, y) -> "
                              "(loss, grads)`"),
], ids=["no-loss", "no-params", "no-such-method"])
def test_a_model_without_params_or_its_method_is_an_input_error(model, method, message):
    with pytest.raises(InputError) as raised_error:
        check_model(model, TorchSoftmax(), MAPPING, *_data(), _ce, method=method)
    assert str(raised_error.value) == message


def test_assert_model_matches_passes_its_options_on():
    result = assert_model_matches(Softmax(), TorchSoftmax(), MAPPING, *_data(), _ce, dtypes=["float64", "float32"],
                                  name="softmax")
    assert result.layer == "softmax(6x5, 2 parameters)"
    assert _quantities(result) == [(d, q) for d in ("float64", "float32") for q in ("loss", "dW", "db")]


def test_a_failing_assert_model_matches_shows_the_callers_line_not_its_own(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_wrong_model='''
        import numpy as np
        import torch.nn.functional as F
        from torch import nn

        from crosscheck import assert_model_matches


        class Wrong:
            def __init__(self):
                self.params = {"W": np.ones((2, 3)), "b": np.zeros(3)}

            def loss(self, X, y):
                return 0.0, {"W": np.zeros((2, 3)), "b": np.zeros(3)}


        def test_it():
            module = nn.Linear(2, 3).double()
            assert_model_matches(Wrong(), module, {"W": ("weight", np.transpose), "b": "bias"}, np.ones((4, 2)),
                                 np.zeros(4, dtype=np.int64), lambda m, X, y: F.cross_entropy(m(X), y))
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "assert_model_matches(Wrong(), module" in output
    assert "raise AssertionError(result.report(failures_only=True))" not in output


# --- params_layer and closure_layer -----------------------------------------------------------------------------

class Scaled:
    """out = scale * (x @ W), scale a keyword-only option of forward; gradients as attributes layer.dW."""

    def __init__(self):
        self.W = np.zeros((4, 2))

    def forward(self, x, *, scale=1.0):
        self.x, self.scale = x, scale
        return scale * (x @ self.W)

    def backward(self, dy):
        self.dW = self.scale * self.x.T @ dy
        return self.scale * dy @ self.W.T


def test_params_layer_passes_keyword_options_to_the_layers_forward():
    check = check_layer(params_layer(Scaled, ["W"], values="{}", grads="d{}"),
                        torch_fn=lambda x, W, scale: scale * (x @ W), shapes=[(3, 4), (4, 2)],
                        kwargs={"scale": 3.0}, seeds=[0])
    assert check.passed and check.layer == "Scaled(3x4, 4x2, scale=3.0)"
    assert [r.quantity for r in check.rows] == ["out", "dx", "dW"] * 2


class ListGrad:
    """One input; backward returns the input gradient as a nested list (a pure-Python layer)."""

    def __init__(self):
        self.params, self.grads = {"W": np.zeros((4, 2))}, {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"]

    def backward(self, dy):
        self.grads["W"] = self.x.T @ dy
        return (dy @ self.params["W"].T).tolist()


def test_a_one_input_layer_may_return_its_gradient_as_a_list():
    """With one input, whatever backward returns is that input's gradient, a list included."""
    check = check_layer(params_layer(ListGrad, ["W"]), torch_fn=lambda x, W: x @ W, shapes=[(3, 4), (4, 2)],
                        seeds=[0], dtypes=["float64"])
    assert check.passed and [r.quantity for r in check.rows] == ["out", "dx", "dW"]


@pytest.mark.parametrize("shapes, count", [([(3, 4)], "1 shape"), ([(3, 4), (4, 2), (2,)], "3 shapes")],
                         ids=["too-few", "too-many"])
def test_shapes_not_one_per_input_and_parameter_of_a_params_layer_is_an_input_error(shapes, count):
    """The layer's inputs (x) and its parameters (W) are the adapter's forward(x, W): one shape each."""
    with pytest.raises(InputError) as raised_error:
        check_layer(params_layer(Scaled, ["W"], values="{}", grads="d{}"), torch_fn=lambda x, W: x @ W,
                    shapes=shapes)
    assert str(raised_error.value) == f"shapes: got {count}, needs 2, one per input of forward(x, W)"


@pytest.mark.parametrize("params", [["W", ""], ["W", 3]], ids=["empty-name", "not-a-string"])
def test_params_layer_wants_non_empty_string_names(params):
    with pytest.raises(InputError) as raised_error:
        params_layer(Scaled, params, values="{}", grads="d{}")
    assert str(raised_error.value) == (f"params: got {params!r}, needs a non-empty list of distinct parameter names, "
                                       "e.g. ['W', 'b']")


def test_an_empty_values_place_is_an_input_error():
    with pytest.raises(InputError) as raised_error:
        params_layer(Scaled, ["W"], values="", grads="d{}")
    assert str(raised_error.value) == (
        "values: got '', needs the name of a dict attribute (e.g. 'params') or an attribute pattern with one {} "
        "for the parameter's name (e.g. '{}' for layer.W, 'd{}' for layer.dW)")


class Softplus:
    """A callable object (no __name__) in the thinc style: X -> (softplus(X), backprop)."""

    def __call__(self, X):
        def backprop(dY):
            return dY / (1 + np.exp(-X))

        return np.logaddexp(0, X), backprop


def test_a_callable_object_closure_is_named_by_its_type():
    layer = closure_layer(Softplus())
    check = check_layer(layer, torch_fn=F.softplus, shapes=[(4, 6)], seeds=[0])
    assert layer.__name__ == "Softplus" and check.passed and check.layer == "Softplus(4x6)"


def test_a_backprop_that_is_not_callable_is_named_by_its_type():
    check = check_layer(closure_layer(lambda X: (X, 3)), torch_fn=lambda x: x * 1.0, shapes=[(2,)], seeds=[0],
                        dtypes=["float64"])
    assert [r.line() for r in check.failures] == [
        "FAIL seed0-float64  backward: raised InputError: forward: returned int as backprop, needs (out, backprop) "
        "with backprop(dout) -> the input gradient(s)"]
