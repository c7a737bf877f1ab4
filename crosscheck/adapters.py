"""Adapters for the conventions of real NumPy code, so that check_layer takes it as it is.

``params_layer(factory, ["W", "b"])``: a layer object whose parameters and gradients live on the object
(``layer.params["W"]`` and ``layer.grads["W"]`` filled by ``backward(dout)``, or attributes ``layer.W`` and
``layer.dW``) -> a layer for check_layer whose inputs are the layer's inputs and then its parameters, so the input
gradient and every parameter gradient are checked. ``closure_layer(forward)``: thinc-style ``forward(X) ->
(Y, backprop)`` with ``backprop(dY) -> dX``. ``check_model``: a whole hand-written model in the course-assignment
style, ``model.loss(X, y) -> (loss, grads)`` with ``grads`` a dict by parameter name, against a torch
``nn.Module`` through a parameter-name mapping.
"""

import copy
import inspect
import types

import numpy as np
import torch

from crosscheck.api import LayerCheck, _call, _check_choice, _check_dtypes, _check_tolerance, _Judge, _Raised
from crosscheck.compare import ManualFailure
from netdesc.checks import InputError

__all__ = ["assert_model_matches", "check_model", "closure_layer", "params_layer"]


# --- parameters on the object -------------------------------------------------------------------------

def _store(where, what):
    """"params" -> a dict attribute; "{}" or "d{}" -> an attribute pattern. -> (get(layer, name), set(...))."""
    if not isinstance(where, str) or not where or where.count("{}") > 1:
        raise InputError(f"{what}: got {where!r}, needs the name of a dict attribute (e.g. 'params') or an attribute "
                         "pattern with one {} for the parameter's name (e.g. '{}' for layer.W, 'd{}' for layer.dW)")
    if "{}" in where:
        return (lambda layer, name: getattr(layer, where.format(name)),
                lambda layer, name, value: setattr(layer, where.format(name), value))
    return (lambda layer, name: getattr(layer, where)[name],
            lambda layer, name, value: getattr(layer, where).__setitem__(name, value))


def _place(where, name):
    return f"layer.{where.format(name)}" if "{}" in where else f"layer.{where}[{name!r}]"


def params_layer(factory, params, *, values="params", grads="grads"):
    """A layer object that holds its parameters -> a layer object for check_layer (the pair contract).

    factory: () -> the layer object. params: the parameter names, in the order torch_fn takes them after the
    layer's inputs. values: where the parameters live ("params": a dict attribute; "{}": attributes layer.W).
    grads: where backward(dout) leaves their gradients ("grads": a dict attribute; "d{}": attributes layer.dW).
    The layer's own forward(*inputs) -> out and backward(dout) -> the input gradient(s) are called. Each forward
    and each backward gets a new object from factory, given the drawn parameters (backward runs forward on it
    first), so a layer that keeps its inputs or adds into its gradient buffers is checked as one use of a fresh
    layer.
    """
    if not callable(factory):
        raise InputError(f"factory: got {factory!r}, needs a callable () -> layer object")
    if not (isinstance(params, (list, tuple)) and params and all(isinstance(p, str) and p for p in params)
            and len(set(params)) == len(params)):
        raise InputError(f"params: got {params!r}, needs a non-empty list of distinct parameter names, e.g. ['W', 'b']")
    params = tuple(params)
    _, set_value = _store(values, "values")
    get_grad, _ = _store(grads, "grads")
    sample = factory()  # one object, for the names of the layer and its inputs
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    inputs = [p.name for p in inspect.signature(sample.forward).parameters.values() if p.kind in kinds]

    def run(args, kwargs):
        """A new object given copies of the drawn parameters and inputs (its code may write over them), run
        forward -> (the object, its output, how many inputs)."""
        args = tuple(a.copy() for a in args)
        layer = factory()
        n = len(args) - len(params)
        for name, value in zip(params, args[n:], strict=True):
            set_value(layer, name, value)
        return layer, layer.forward(*args[:n], **kwargs), n

    def forward(*args, **kwargs):
        return run(args, kwargs)[1], (args, kwargs)

    def backward(dout, cache):
        # each backward gets its own object, run forward again: gradcheck calls backward many times per forward,
        # and a layer that pops its cache or adds into its gradients can serve only one backward per forward
        layer, _, n = run(*cache)
        dx = layer.backward(dout)
        dx = (dx,) if n == 1 or not isinstance(dx, (tuple, list)) else tuple(dx)
        found = []
        for name in params:
            try:
                found.append(get_grad(layer, name))
            except (AttributeError, KeyError):
                found.append(ManualFailure(f"backward left no gradient at {_place(grads, name)}"))
        return (*dx, *found)

    forward.__signature__ = inspect.Signature(
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_ONLY) for p in (*inputs, *params)])
    return types.SimpleNamespace(__name__=type(sample).__name__, forward=forward, backward=backward)


# --- thinc-style closures -------------------------------------------------------------------------------

def closure_layer(forward):
    """thinc-style forward(*inputs, **kwargs) -> (out, backprop), backprop(dout) -> the input gradient(s) -> a layer
    object for check_layer (the closure is the cache)."""
    if not callable(forward):
        raise InputError(f"forward: got {forward!r}, needs forward(*inputs) -> (out, backprop)")

    def backward(dout, backprop):
        if not callable(backprop):
            raise InputError(f"forward: returned {type(backprop).__name__} as backprop, needs (out, backprop) with "
                             "backprop(dout) -> the input gradient(s)")
        return backprop(dout)

    return types.SimpleNamespace(__name__=getattr(forward, "__name__", type(forward).__name__), forward=forward,
                                 backward=backward)


# --- a whole model: loss(X, y) -> (loss, grads) against an nn.Module --------------------------------------

def _mapping(mapping, model_params, module):
    """-> [(manual name, torch name, to_torch)], every parameter of both sides mapped exactly once."""
    if not isinstance(mapping, dict) or not mapping:
        raise InputError(f"mapping: got {mapping!r}, needs a dict {{manual name: torch name, or (torch name, "
                         "to_torch)}, e.g. {'W1': ('fc1.weight', np.transpose)}")
    torch_params = dict(module.named_parameters())
    pairs = []
    for name, target in mapping.items():
        target, to_torch = (target, None) if isinstance(target, str) else (
            tuple(target) if isinstance(target, (tuple, list)) and len(target) == 2 else (None, None))
        if not isinstance(target, str) or not (to_torch is None or callable(to_torch)):
            raise InputError(f"mapping[{name!r}]: got {mapping[name]!r}, needs a torch parameter name or (name, "
                             "to_torch) with to_torch(manual array) -> the array in torch's layout")
        if name not in model_params:
            raise InputError(f"mapping: {name!r} is not in the model's params ({', '.join(model_params)})")
        if target not in torch_params:
            raise InputError(f"mapping[{name!r}]: {target!r} is not a parameter of the module "
                             f"({', '.join(torch_params)})")
        pairs.append((name, target, to_torch or (lambda a: a)))
    for side, names, mapped in (("the model's params", model_params, [p[0] for p in pairs]),
                                ("the module's parameters", torch_params, [p[1] for p in pairs])):
        unmapped = [n for n in names if n not in mapped]
        twice = [n for n in names if mapped.count(n) > 1]
        if unmapped or twice:
            found = f"unmapped: {', '.join(unmapped)}" if unmapped else f"mapped twice: {', '.join(twice)}"
            raise InputError(f"mapping: needs every one of {side} mapped exactly once; {found}")
    return pairs


def _model_case(model, module, pairs, X, y, torch_loss, method, dtype, judge):
    """One dtype: both sides on the same parameters (the model's, cast) -> [Row]."""
    model, module = copy.deepcopy(model), copy.deepcopy(module).to(getattr(torch, dtype))
    torch_params = dict(module.named_parameters())
    for name, target, to_torch in pairs:
        model.params[name] = np.array(model.params[name], dtype=dtype)
        value = np.asarray(to_torch(model.params[name]))
        if value.shape != tuple(torch_params[target].shape):
            raise InputError(f"mapping[{name!r}]: {name} {model.params[name].shape} is {value.shape} in torch's "
                             f"layout, {target} is {tuple(torch_params[target].shape)}; needs to_torch that maps "
                             "one to the other, e.g. (name, np.transpose)")
        with torch.no_grad():
            torch_params[target].copy_(torch.from_numpy(np.array(value, dtype=dtype)))
    X = np.array(X, dtype=dtype) if np.issubdtype(np.asarray(X).dtype, np.floating) else np.array(X)
    y = np.array(y)
    rows = []
    try:
        loss, grads = _call("loss", getattr(model, method), X.copy(), y.copy())
        t_loss = _call("torch_loss", torch_loss, module, torch.from_numpy(X.copy()), torch.from_numpy(y.copy()))
        if not (isinstance(t_loss, torch.Tensor) and t_loss.numel() == 1 and t_loss.requires_grad):
            raise InputError(f"torch_loss: returned {t_loss!r}, needs a scalar tensor computed by the module")
        t_grads = torch.autograd.grad(t_loss.reshape(()), [torch_params[t] for _, t, _ in pairs], allow_unused=True,
                                      materialize_grads=True)
        rows += judge.rows(None, dtype, "loss", np.asarray(loss), t_loss.detach().reshape(()).numpy())
        for (name, _, to_torch), t_grad in zip(pairs, t_grads, strict=True):
            grad = grads.get(name) if isinstance(grads, dict) else None
            grad = ManualFailure(f"{method} returned no gradient for {name}") if grad is None else to_torch(grad)
            rows += judge.rows(None, dtype, f"d{name}", grad, t_grad.numpy())
    except _Raised as error:
        rows.append(error.row(None, dtype))
    return rows


def check_model(model, module, mapping, X, y, torch_loss, *, dtypes=("float64",), tolerance=None, name=None,
                method="loss", dtype_policy="strict", shape_policy="strict"):
    """A hand-written model against a torch module on the same parameters and data -> LayerCheck.

    model: an object with a dict `params` and `loss(X, y) -> (loss, grads)`, grads a dict by parameter name (the
    course-assignment style; `method` names another method). module: the same model as a torch.nn.Module.
    mapping: {manual name: torch parameter name, or (torch name, to_torch)}, every parameter of both sides once;
    to_torch maps a manual array (and its gradient) to torch's layout, e.g. np.transpose for W (D, H) against
    nn.Linear's weight (H, D). torch_loss(module, X, y) -> the scalar loss tensor. The module gets the model's
    parameter values; the loss and every parameter's gradient are compared, per dtype. Copies of model and module
    are used: the caller's objects, X and y are left as they are. What the user's code raises is a row.
    tolerance, name, dtype_policy, shape_policy: as for check_layer.
    """
    if not (isinstance(getattr(model, "params", None), dict) and callable(getattr(model, method, None))):
        raise InputError(f"model: got {type(model).__name__}, needs an object with a dict `params` and "
                         f"`{method}(X, y) -> (loss, grads)`")
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"module: got {type(module).__name__}, needs a torch.nn.Module")
    if not callable(torch_loss):
        raise InputError(f"torch_loss: got {torch_loss!r}, needs torch_loss(module, X, y) -> a scalar tensor")
    pairs = _mapping(mapping, model.params, module)
    dtypes = _check_dtypes(dtypes)
    judge = _Judge(_check_tolerance(tolerance, dtypes), _check_choice("dtype_policy", dtype_policy),
                   _check_choice("shape_policy", shape_policy))
    rows = [row for dtype in dtypes for row in _model_case(model, module, pairs, X, y, torch_loss, method, dtype,
                                                           judge)]
    label = name or type(model).__name__
    return LayerCheck(f"{label}({'x'.join(map(str, np.shape(X)))}, {len(pairs)} parameters)", tuple(rows))


def assert_model_matches(model, module, mapping, X, y, torch_loss, **options):
    """check_model, raising AssertionError with the report of every failing check -> the LayerCheck."""
    __tracebackhide__ = True
    result = check_model(model, module, mapping, X, y, torch_loss, **options)
    if not result.passed:
        raise AssertionError(result.report(failures_only=True))
    return result

