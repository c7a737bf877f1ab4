"""Check your own layer against torch autograd in a few lines of a test file.

    from crosscheck import assert_layer_matches
    assert_layer_matches(swish_forward, swish_backward, torch_swish, shapes=[(4, 5), (5,)])

For every seed and dtype: inputs drawn with ``np.random.default_rng(seed)`` (standard normal unless
``input_factory`` says otherwise), the manual forward, then the manual backward with a random upstream
gradient (never ones: a backward that forgets to multiply by it must fail); ``torch_fn`` on the same inputs,
differentiated by ``torch.autograd.grad`` with the same upstream gradient; the output and every input gradient
compared by ``crosscheck.compare`` under the dtype's tolerance. ``gradcheck=True`` adds the fourth witness,
``torch.autograd.gradcheck`` on the manual pair, once per seed in float64 (``crosscheck.gradcheck``).

The layer is either a pair ``forward(*inputs, **kwargs) -> (out, cache)``, ``backward(dout, cache) -> tuple``
(one gradient per input, None where there is none), or an object with ``.forward`` and ``.backward`` methods:
if its backward takes ``(dout, cache)`` it is that pair; if it takes ``dout`` alone, the object keeps its own
state, ``.forward(*inputs, **kwargs) -> out`` and ``.backward(dout) -> gradient(s)``.
"""

import inspect
import re
from dataclasses import dataclass

import numpy as np
import torch

from crosscheck.compare import Comparison, ManualFailure, compare
from crosscheck.gradcheck import GradcheckError, as_gradients, gradcheck_pair
from crosscheck.tolerances import tolerance_for
from netdesc.checks import InputError, is_int

__all__ = ["LayerCheck", "Row", "assert_layer_matches", "check_layer"]

DTYPES = ("float64", "float32")
GRADCHECK = "gradcheck"
KINK_HINT = "near a kink (ReLU at 0, a max-pool tie) finite differences mislead: move inputs off it with input_factory"


# --- results -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One checked quantity ("out", "dx", ..., "gradcheck") for one seed and dtype."""

    seed: int
    dtype: str
    result: Comparison

    @property
    def case(self):
        return f"seed{self.seed}-{self.dtype}"

    @property
    def quantity(self):
        return self.result.name

    @property
    def passed(self):
        return self.result.passed

    def line(self):
        """One line of the report: the case, the quantity and, for a mismatch, the worst element."""
        c = self.result
        if c.passed:
            text = "torch.autograd.gradcheck passed" if c.name == GRADCHECK else (
                f"{c.name} agrees; max abs error {c.max_abs_error:.3e}, max rel error {c.max_rel_error:.3e}")
        elif c.problem:
            text = c.describe()
        else:
            tol = tolerance_for(self.dtype)
            text = f"{c.describe()} (allowed {tol.atol:g} + {tol.rtol:g} * |autograd|)"
        return f"{'ok  ' if c.passed else 'FAIL'} {self.case:<14} {text}"

    def as_dict(self):
        return {"case": self.case, "seed": self.seed, "dtype": self.dtype, **self.result.as_dict()}


@dataclass(frozen=True)
class LayerCheck:
    """Every Row of one check_layer call; `layer` names the layer, its input shapes and options."""

    layer: str
    rows: tuple

    @property
    def passed(self):
        return bool(self.rows) and all(row.passed for row in self.rows)  # nothing checked is no pass

    @property
    def failures(self):
        return tuple(row for row in self.rows if not row.passed)

    def report(self, failures_only=False):
        """Readable text: a summary line, then one line per row (per failing row with failures_only)."""
        verdict = "passed" if self.passed else f"FAILED, {len(self.failures)} of {len(self.rows)} checks differ"
        rows = self.failures if failures_only else self.rows
        return "\n".join([f"{self.layer} against torch autograd: {verdict}", *(row.line() for row in rows)])

    def as_dict(self):
        """JSON-ready: the layer, the verdict and every row (null where an error could not be measured)."""
        return {"layer": self.layer, "passed": self.passed, "rows": [row.as_dict() for row in self.rows]}


# --- the layer: a pair, or an object with .forward and .backward -------------------------------------

@dataclass(frozen=True)
class _Layer:
    name: str
    forward: object
    backward: object
    signature_of: object  # the callable whose parameters name the inputs


def _is_layer_object(value):
    return callable(getattr(value, "forward", None)) and callable(getattr(value, "backward", None))


POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _required_positional(fn):
    params = inspect.signature(fn).parameters.values()
    return sum(p.kind in POSITIONAL and p.default is inspect.Parameter.empty for p in params)


def _stateful(layer):
    """A layer that keeps its own cache -> the pair contract. The "cache" holds the inputs, and backward runs
    forward on them again first, so the layer's state belongs to these inputs even when other forwards ran in
    between (gradcheck runs many before it calls backward)."""

    def forward(*inputs, **kwargs):
        return layer.forward(*inputs, **kwargs), (inputs, kwargs)

    def backward(dout, cache):
        inputs, kwargs = cache
        layer.forward(*inputs, **kwargs)
        return layer.backward(dout)

    return forward, backward


def _layer(forward, backward):
    """Check the layer arguments -> _Layer with the pair contract."""
    if _is_layer_object(forward):
        if backward is not None:
            raise InputError(
                f"backward: got {type(backward).__name__}, needs None when forward is a layer object "
                f"({type(forward).__name__} has its own .backward)"
            )
        name = getattr(forward, "__name__", type(forward).__name__)
        if _required_positional(forward.backward) >= 2:
            return _Layer(name, forward.forward, forward.backward, forward.forward)
        return _Layer(name, *_stateful(forward), forward.forward)
    if not callable(forward):
        raise InputError(
            f"forward: got {type(forward).__name__} {forward!r}, needs the manual forward, a callable "
            "forward(*inputs) -> (out, cache), or a layer object with .forward and .backward methods"
        )
    if not callable(backward):
        raise InputError(
            f"backward: got {type(backward).__name__} {backward!r}, needs the manual backward, a callable "
            "backward(dout, cache) -> one gradient per forward input"
        )
    return _Layer(getattr(forward, "__name__", type(forward).__name__), forward, backward, forward)


def _input_names(fn, n):
    """The forward's first n positional parameter names, or input0, input1, ... for a variadic forward."""
    names = [p.name for p in inspect.signature(fn).parameters.values() if p.kind in POSITIONAL]
    return names[:n] if len(names) >= n else [f"input{i}" for i in range(n)]


# --- the other arguments -----------------------------------------------------------------------------

def _check_shapes(shapes):
    if not (isinstance(shapes, (list, tuple)) and shapes
            and all(isinstance(s, (list, tuple)) and all(is_int(d) for d in s) for s in shapes)):
        raise InputError(
            f"shapes: got {shapes!r}, needs a non-empty list of shapes, one tuple of ints >= 0 per forward input, "
            "e.g. [(4, 5), (5,)]"
        )
    return [tuple(int(d) for d in s) for s in shapes]


def _check_seeds(seeds):
    if not (isinstance(seeds, (list, tuple, range)) and len(seeds) and all(is_int(s) for s in seeds)):
        raise InputError(f"seeds: got {seeds!r}, needs a non-empty sequence of integer seeds >= 0, e.g. (0, 1, 2)")
    return tuple(int(s) for s in seeds)


def _dtype_name(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise InputError(f"dtypes: got {dtype!r}, needs float64 or float32 (the dtypes of the tolerance table)")
    return name


def _check_dtypes(dtypes):
    dtypes = (dtypes,) if isinstance(dtypes, str) else dtypes
    if not isinstance(dtypes, (list, tuple)) or not dtypes:
        raise InputError(f"dtypes: got {dtypes!r}, needs a non-empty sequence of dtypes, e.g. ('float64', 'float32')")
    return tuple(_dtype_name(d) for d in dtypes)


def _check_kwargs(kwargs):
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise InputError(f"kwargs: got {kwargs!r}, needs None or a dict of keyword options for both forwards")
    return dict(kwargs)


def _check_differentiable(differentiable, n):
    if differentiable is None:
        return None
    if not (isinstance(differentiable, (list, tuple)) and len(differentiable) == n
            and all(isinstance(d, (bool, np.bool_)) for d in differentiable)):
        raise InputError(f"differentiable: got {differentiable!r}, needs None or {n} booleans, one per input")
    if not any(differentiable):
        raise InputError(f"differentiable: got {differentiable!r}, needs at least one differentiable input")
    return tuple(bool(d) for d in differentiable)


def _standard_normal(rng, shape):
    return rng.standard_normal(shape)


def _check_input_factory(input_factory, n):
    """-> one draw (rng, shape) -> array per input."""
    if input_factory is None:
        return (_standard_normal,) * n
    if callable(input_factory):
        return (input_factory,) * n
    if isinstance(input_factory, (list, tuple)) and len(input_factory) == n \
            and all(f is None or callable(f) for f in input_factory):
        return tuple(_standard_normal if f is None else f for f in input_factory)
    raise InputError(
        f"input_factory: got {input_factory!r}, needs None, a callable (rng, shape) -> array, or {n} of them "
        "(None for standard normal), one per input"
    )


# --- one run: seed x dtype ---------------------------------------------------------------------------

def _draw(draws, shapes, rng, dtype):
    """Every input from its draw; floating ones cast to `dtype`, integer ones (labels) kept."""
    inputs = []
    for i, (draw, shape) in enumerate(zip(draws, shapes, strict=True)):
        a = draw(rng, shape)
        if not isinstance(a, np.ndarray) or a.shape != shape:
            got = f"shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise InputError(f"input_factory: for input {i} of shape {shape} got {got}, needs a NumPy array of it")
        inputs.append(a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a)
    return inputs


def _wanted(differentiable, inputs, names):
    """Which inputs get a gradient: as given, else every floating input; never an integer one."""
    floating = [np.issubdtype(a.dtype, np.floating) for a in inputs]
    wants = differentiable or tuple(floating)
    for name, want, is_float, a in zip(names, wants, floating, inputs, strict=True):
        if want and not is_float:
            raise InputError(f"differentiable: input {name} has dtype {a.dtype}, which has no gradient; needs False")
    if not any(wants):
        raise InputError("differentiable: no input is floating point, needs at least one differentiable input")
    return wants


def _torch_side(torch_fn, inputs, wants, kwargs):
    """-> (torch output tensor, the input tensors), checked."""
    tensors = [torch.from_numpy(a.copy()).requires_grad_(w) for a, w in zip(inputs, wants, strict=True)]
    out = torch_fn(*tensors, **kwargs)
    if not isinstance(out, torch.Tensor):
        raise InputError(f"torch_fn: returned {type(out).__name__}, needs a torch.Tensor computed from its inputs")
    if not out.requires_grad:
        raise InputError(
            "torch_fn: returned a tensor that autograd cannot trace to the inputs (detached, or computed outside "
            "torch), needs the forward written in torch operations"
        )
    return out, tensors


def _run(layer, torch_fn, names, inputs, wants, rng, dtype, kwargs):
    """Compare the manual forward and backward with torch on one set of inputs -> [Comparison]."""
    out, cache = _manual_forward(layer, inputs, kwargs)
    t_out, tensors = _torch_side(torch_fn, inputs, wants, kwargs)
    desired = t_out.detach().numpy()
    results = [compare("out", out, desired, dtype)]
    # A random upstream gradient, never ones: a backward that forgets to multiply by dout cannot pass.
    dout = np.asarray(rng.standard_normal(desired.shape), dtype=dtype)
    t_grads = iter(torch.autograd.grad(t_out, [t for t, w in zip(tensors, wants, strict=True) if w],
                                       torch.from_numpy(dout), allow_unused=True, materialize_grads=True))
    if np.shape(out) == desired.shape:
        grads = as_gradients(layer.backward(dout.copy(), cache), len(inputs))
    else:
        grads = [ManualFailure(f"not checked: the forward output has shape {np.shape(out)}, autograd's "
                               f"{desired.shape}")] * len(inputs)
    for name, grad, want in zip(names, grads, wants, strict=True):
        if want:
            grad = ManualFailure("backward returned None for a differentiable input") if grad is None else grad
            results.append(compare(f"d{name}", grad, next(t_grads).numpy(), dtype))
    return results


def _manual_forward(layer, inputs, kwargs):
    result = layer.forward(*(a.copy() for a in inputs), **kwargs)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise InputError(
            f"forward: returned {type(result).__name__}, needs (out, cache) (a layer object that keeps its own "
            "cache has a backward that takes dout alone)"
        )
    return result


def _gradcheck(layer, names, inputs, wants, kwargs):
    """torch.autograd.gradcheck on the manual pair -> a Comparison named "gradcheck"."""
    try:
        gradcheck_pair(layer.forward, layer.backward, inputs, kwargs=kwargs, differentiable=wants)
    except GradcheckError as error:
        first = str(error).strip().splitlines()[0].rstrip(",")
        first = re.sub(r"input (\d+)", lambda m: f"input {m[1]} ({names[int(m[1])]})", first)
        return Comparison(GRADCHECK, (), False, float("inf"), float("inf"),
                          problem=f"torch.autograd.gradcheck failed: {first} ({KINK_HINT})")
    return Comparison(GRADCHECK, (), True, float("nan"), float("nan"))


def _label(name, shapes, kwargs):
    options = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    return f"{name}({', '.join('x'.join(map(str, s)) or 'scalar' for s in shapes)}{options})"


# --- the public API ----------------------------------------------------------------------------------

def check_layer(forward, backward=None, torch_fn=None, shapes=None, *, seeds=(0, 1, 2), dtypes=DTYPES,
                kwargs=None, differentiable=None, input_factory=None, gradcheck=False):
    """Check a manual layer against torch autograd -> LayerCheck (nothing raised for a mismatch).

    forward, backward: the NumPy pair, or a layer object as forward and backward=None (module docstring).
    torch_fn: the same forward in torch, (*tensors, **kwargs) -> tensor; autograd gives its gradients.
    shapes: one shape per forward input. seeds, dtypes: the grid; kwargs: options passed to both forwards.
    differentiable: per input, whether it gets a gradient (default: the floating inputs; labels do not).
    input_factory: (rng, shape) -> array for every input, or a list with one (None: standard normal) per input.
    gradcheck: also run torch.autograd.gradcheck on the manual pair, per seed in float64.
    """
    layer = _layer(forward, backward)
    if not callable(torch_fn):
        raise InputError(f"torch_fn: got {torch_fn!r}, needs the same forward in torch, (*tensors) -> tensor")
    shapes, seeds, dtypes = _check_shapes(shapes), _check_seeds(seeds), _check_dtypes(dtypes)
    kwargs, draws = _check_kwargs(kwargs), _check_input_factory(input_factory, len(shapes))
    differentiable = _check_differentiable(differentiable, len(shapes))
    if not isinstance(gradcheck, bool):
        raise InputError(f"gradcheck: got {gradcheck!r}, needs True or False")
    names = _input_names(layer.signature_of, len(shapes))

    rows = []
    for seed in seeds:
        for dtype in dtypes:
            rng = np.random.default_rng(seed)
            inputs = _draw(draws, shapes, rng, dtype)
            wants = _wanted(differentiable, inputs, names)
            rows += [Row(seed, dtype, c) for c in _run(layer, torch_fn, names, inputs, wants, rng, dtype, kwargs)]
        if gradcheck:
            inputs = _draw(draws, shapes, np.random.default_rng(seed), "float64")
            wants = _wanted(differentiable, inputs, names)
            rows.append(Row(seed, "float64", _gradcheck(layer, names, inputs, wants, kwargs)))
    return LayerCheck(_label(layer.name, shapes, kwargs), tuple(rows))


def assert_layer_matches(forward, backward=None, torch_fn=None, shapes=None, **options):
    """check_layer, raising AssertionError with the report of every failing check -> the LayerCheck."""
    __tracebackhide__ = True  # pytest shows the user's call, not this line
    result = check_layer(forward, backward, torch_fn, shapes, **options)
    if not result.passed:
        raise AssertionError(result.report(failures_only=True))
    return result
