"""Check your own layer against torch autograd in a few lines of a test file.

    from crosscheck import assert_layer_matches
    assert_layer_matches(swish_forward, swish_backward, torch_swish, shapes=[(4, 5), (5,)])

For every seed and dtype (a case): inputs drawn with ``np.random.default_rng(seed)`` (standard normal unless
``input_factory`` says otherwise), the manual forward, run twice (a layer whose two outputs differ is reported as
stateful or nondeterministic), then the manual backward with a random upstream gradient (never ones: a backward
that forgets to multiply by it must fail); ``torch_fn`` on the same inputs, differentiated by
``torch.autograd.grad`` with the same upstream gradient; the output and every input gradient compared by
``crosscheck.compare`` under the dtype's tolerance (or the call's ``tolerance``; where the table fails, float32's
float64 witness and float64's nudged run judge again: crosscheck.tolerances). ``gradcheck=True`` adds the
fourth witness, ``torch.autograd.gradcheck`` on the manual pair, once per seed in float64 (``crosscheck.gradcheck``).

The layer is either a pair ``forward(*inputs, **kwargs) -> (out, cache)``, ``backward(dout, cache) -> tuple``
(one gradient per input, None where there is none), or an object with ``.forward`` and ``.backward`` methods:
if its backward takes ``(dout, cache)`` it is that pair; if it takes ``dout`` alone, the object keeps its own
state, ``.forward(*inputs, **kwargs) -> out`` and ``.backward(dout) -> gradient(s)``. ``factory=`` (a callable
without arguments returning such an object) gives every case a new object, and every backward call one of its
own, run forward on the same inputs first (gradcheck calls backward once per output element).

What the user's code raises is caught per case and becomes a failing row naming the exception, the function, its
file and line; the other rows stay. InputError is for the arguments of check_layer itself (and for code that
breaks the contract above, e.g. a forward without a cache). A check of zero elements is never a pass.
"""

import functools
import inspect
import os
import re
from dataclasses import dataclass, replace

import numpy as np
import torch

from crosscheck import frames
from crosscheck.compare import Comparison, ManualFailure, compare, within_nudges
from crosscheck.gradcheck import GradcheckError, as_gradients, gradcheck_pair
from crosscheck.tolerances import Tolerance, nudge, tolerance_for
from netdesc.checks import InputError, is_int

__all__ = ["LayerCheck", "Row", "assert_layer_matches", "check_layer"]

DTYPES = ("float64", "float32")
GRADCHECK = "gradcheck"
REPEAT = "repeat"
KINK_HINT = ("the inputs sit at a kink (ReLU at 0, a max-pool tie): finite differences' one-sided slopes differ "
             "there; move inputs off it with input_factory")
REENTRANT_HINT = ("gradcheck found the backward not reentrant: the same dout gave different gradients; does the "
                  "layer keep state between calls (kept inputs, gradients added into buffers)? factory= gives every "
                  "backward a new object")
POLICIES = {"dtype_policy": ("strict", "values"), "shape_policy": ("strict", "squeeze")}


# --- results -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One checked quantity ("out", "dx", ..., "gradcheck") for one seed and dtype; `tolerance` is the one it was
    judged by (None for gradcheck, a raised exception or a note), `given` whether the call gave it."""

    seed: int | None
    dtype: str
    result: Comparison
    tolerance: Tolerance | None = None
    given: bool = False

    @property
    def case(self):
        return self.dtype if self.seed is None else f"seed{self.seed}-{self.dtype}"  # None: data given, not drawn

    @property
    def quantity(self):
        return self.result.name

    @property
    def passed(self):
        return self.result.passed

    @property
    def is_note(self):
        """A note reports a convention (dtype, shape) that the call allowed: no verdict."""
        return bool(self.result.note)

    def _allowed(self):
        tol = self.tolerance
        source = f"given: {tol.why}" if self.given else f"the {self.dtype} table"
        return f"(allowed {tol.atol:g} + {tol.rtol:g} * |autograd|, {source})"

    def line(self):
        """One line of the report: the case, the quantity and, for a mismatch, the worst element."""
        c = self.result
        if self.is_note:
            return f"note {self.case:<14} {c.name}: {c.note}"
        if c.passed:
            text = "torch.autograd.gradcheck passed" if c.name == GRADCHECK else (
                f"{c.name} agrees; max abs error {c.max_abs_error:.3e}, max rel error {c.max_rel_error:.3e} "
                f"{self._allowed()}" + (f"; {c.witnessed}" if c.witnessed else ""))
        elif c.problem or self.tolerance is None:
            text = c.describe()
        else:
            text = f"{c.describe()} {self._allowed()}"
        return f"{'ok  ' if c.passed else 'FAIL'} {self.case:<14} {text}"

    def as_dict(self):
        tol = None if self.tolerance is None else {
            "rtol": self.tolerance.rtol, "atol": self.tolerance.atol, "given": self.given,
            "why": self.tolerance.why if self.given else f"the {self.dtype} table"}
        return {"case": self.case, "seed": self.seed, "dtype": self.dtype, **self.result.as_dict(), "tolerance": tol}


@dataclass(frozen=True)
class LayerCheck:
    """Every Row of one check_layer call; `layer` names the layer, its input shapes and options.

    It passes when every row passes and at least one compared one element or more: no rows, or only rows of
    nothing, are no pass. Notes (a dtype or shape convention the call allowed) pass and are not counted as checks.
    """

    layer: str
    rows: tuple

    @property
    def passed(self):
        return all(row.passed for row in self.rows) and any(row.result.compared for row in self.rows)

    @property
    def failures(self):
        return tuple(row for row in self.rows if not row.passed)

    def report(self, failures_only=False):
        """Readable text: a summary line, then one line per row (per failing row with failures_only)."""
        checks = sum(not row.is_note for row in self.rows)
        if self.passed:
            verdict = "passed"
        elif self.failures:
            verdict = f"FAILED, {len(self.failures)} of {checks} checks differ"
        else:
            verdict = "FAILED, nothing was compared"
        rows = self.failures if failures_only else self.rows
        return "\n".join([f"{self.layer} against torch autograd: {verdict}", *(row.line() for row in rows)])

    def as_dict(self):
        """JSON-ready: the layer, the verdict and every row (null where an error could not be measured)."""
        return {"layer": self.layer, "passed": self.passed, "rows": [row.as_dict() for row in self.rows]}


# --- the user's code raising: one failing row per case, naming where --------------------------------------

class _Raised(Exception):
    """The user's code raised in `stage` (forward, backward, torch_fn, factory, gradcheck)."""

    def __init__(self, stage, error):
        super().__init__(stage)
        self.stage, self.error = stage, error

    def row(self, seed, dtype):
        return Row(seed, dtype, _not_checked(self.stage, raised(self.error)))


def raised(error):
    """An exception -> "raised ValueError: message (in function, file.py:line)": the last frame of the user's
    code (crosscheck.frames' rule); no place where none of the frames is theirs."""
    frame = frames.last_under_test(error)
    where = f" (in {frame.name}, {os.path.basename(frame.filename)}:{frame.lineno})" if frame else ""
    return f"raised {frames.what(error)}{where}"


def _call(stage, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except _Raised:  # a stage inside this one (a backward's own factory call) keeps its name
        raise
    except Exception as error:  # the user's code: reported as a row of its case, never raised
        raise _Raised(stage, error) from error


def _not_checked(name, problem):
    return Comparison(name, (), False, float("inf"), float("inf"), problem=problem)


# --- the layer: a pair, or an object with .forward and .backward -------------------------------------

@dataclass(frozen=True)
class _Layer:
    name: str
    make: object  # () -> (forward, backward), the pair contract; a new object per call where a factory was given
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
        kept = tuple(a.copy() for a in inputs)  # taken first: a layer may write its output over its input
        return layer.forward(*inputs, **kwargs), (kept, kwargs)

    def backward(dout, cache):
        inputs, kwargs = cache
        layer.forward(*(a.copy() for a in inputs), **kwargs)  # copies again: gradcheck reuses one cache
        return layer.backward(dout)

    return forward, backward


def _object_pair(layer):
    if _required_positional(layer.backward) >= 2:
        return layer.forward, layer.backward
    return _stateful(layer)


def _from_factory(factory):
    if not callable(factory):
        raise InputError(f"factory: got {type(factory).__name__} {factory!r}, needs a callable () -> layer object")
    layer = _call("factory", factory)
    if not _is_layer_object(layer):
        raise InputError(f"factory: returned {type(layer).__name__}, needs a layer object with .forward and .backward")
    return _Layer(type(layer).__name__, lambda: _fresh_backward(factory), layer.forward)


def _fresh_backward(factory):
    """A new object's pair, whose every backward runs on an object of its own, made and run forward on the same
    inputs first: gradcheck calls backward once per output element after one forward, and a layer that adds into
    its gradient buffers or pops what its forward kept serves one backward per forward. The forward keeps its
    object, so running it twice still shows a layer whose output depends on how often it ran."""
    forward = _object_pair(_call("factory", factory))[0]

    def kept(*inputs, **kwargs):
        copies = tuple(a.copy() for a in inputs)  # taken first: a layer may write its output over its input
        result = forward(*inputs, **kwargs)  # anything but (out, cache) goes on to _manual_forward's InputError
        return (result[0], (copies, kwargs)) if isinstance(result, tuple) and len(result) == 2 else result

    def backward(dout, cache):
        inputs, kwargs = cache
        fresh = _call("factory", factory)
        if _required_positional(fresh.backward) >= 2:
            return fresh.backward(dout, _manual_forward(fresh.forward, inputs, kwargs)[1])
        _call("forward", fresh.forward, *(a.copy() for a in inputs), **kwargs)  # once: its state is these inputs'
        return fresh.backward(dout)

    return kept, backward


def _layer(forward, backward, factory):
    """Check the layer arguments -> _Layer with the pair contract."""
    if factory is not None:
        if forward is not None or backward is not None:
            raise InputError("factory: given with forward or backward, needs them None (the factory makes the layer)")
        return _from_factory(factory)
    if _is_layer_object(forward):
        if backward is not None:
            raise InputError(
                f"backward: got {type(backward).__name__}, needs None when forward is a layer object "
                f"({type(forward).__name__} has its own .backward)"
            )
        name = getattr(forward, "__name__", type(forward).__name__)
        pair = _object_pair(forward)
        return _Layer(name, lambda: pair, forward.forward)
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
    return _Layer(getattr(forward, "__name__", type(forward).__name__), lambda: (forward, backward), forward)


def _input_names(fn, n, names):
    """names if given, else the forward's first n positional parameter names, or input0, input1, ... for a
    variadic forward."""
    if names is not None:
        if not (isinstance(names, (list, tuple)) and len(names) == n and all(isinstance(s, str) and s for s in names)
                and len(set(names)) == n):
            raise InputError(f"names: got {names!r}, needs None or {n} distinct non-empty strings, one per input")
        return list(names)
    params = [p.name for p in inspect.signature(fn).parameters.values() if p.kind in POSITIONAL]
    return params[:n] if len(params) >= n else [f"input{i}" for i in range(n)]


def _check_arity(fn, n, kwargs):
    """The number of shapes against the forward's positional parameters that kwargs does not give, where the
    forward has a fixed number of them: a count outside them is the caller's mistake, not a row of the layer's."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in POSITIONAL and p.name not in kwargs]
    least = sum(p.default is inspect.Parameter.empty for p in positional)
    if not least <= n <= len(positional):
        needs = f"{least}" if least == len(positional) else f"{least} to {len(positional)}"
        raise InputError(f"shapes: got {n} shape{'s' * (n != 1)}, needs {needs}, one per input of "
                         f"forward({', '.join(p.name for p in positional)})")


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


def _check_tolerance(tolerance, dtypes):
    """None (the table) or a Tolerance for every dtype; one looser than the table needs its reason, why=."""
    if tolerance is None:
        return None
    number = (int, float, np.integer, np.floating)
    if not (isinstance(tolerance, Tolerance) and all(isinstance(v, number) and not isinstance(v, bool)
                                                     and np.isfinite(v) and v >= 0
                                                     for v in (tolerance.rtol, tolerance.atol))
            and isinstance(tolerance.why, str)):
        raise InputError(f"tolerance: got {tolerance!r}, needs None (the table) or Tolerance(rtol, atol, why) with "
                         "finite rtol, atol >= 0")
    for dtype in dtypes:
        table = tolerance_for(dtype)
        if (tolerance.rtol > table.rtol or tolerance.atol > table.atol) and not tolerance.why.strip():
            raise InputError(
                f"tolerance: rtol {tolerance.rtol:g}, atol {tolerance.atol:g} is looser than the {dtype} table "
                f"(rtol {table.rtol:g}, atol {table.atol:g}), needs why=, the reason it may be"
            )
    return Tolerance(float(tolerance.rtol), float(tolerance.atol), tolerance.why)


def _check_choice(argument, value):
    if value not in POLICIES[argument]:
        raise InputError(f"{argument}: got {value!r}, needs one of {', '.join(map(repr, POLICIES[argument]))}")
    return value


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


# --- one case: seed x dtype -------------------------------------------------------------------------

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


@dataclass(frozen=True)
class _Judge:
    """How one case's quantities are judged: the tolerance (given or the table's) and the two policies."""

    tolerance: Tolerance | None
    dtype_policy: str
    shape_policy: str

    def rows(self, seed, dtype, name, manual, autograd, witness=None, nudged=None):
        """Manual against autograd -> [Row]: the comparison, after a note where a policy allowed a convention;
        witness: () -> autograd in float64 on the same values (crosscheck.compare); nudged: (j) -> autograd on the
        inputs nudged by one rounding in run j, float64's second judge where the table fails (crosscheck.tolerances)."""
        tol, given = (self.tolerance, True) if self.tolerance else (tolerance_for(dtype), False)
        notes = []
        if not isinstance(manual, ManualFailure):
            manual = np.asarray(manual)
            if self.shape_policy == "squeeze" and manual.shape != autograd.shape and manual.size == autograd.size \
                    and _squeezed(manual.shape) == _squeezed(autograd.shape):
                notes.append(f"shape convention: manual {manual.shape}, autograd {autograd.shape}; compared by "
                             "value (shape_policy='squeeze')")
                manual = manual.reshape(autograd.shape)
            if self.dtype_policy == "values" and manual.dtype != dtype and np.issubdtype(manual.dtype, np.number):
                notes.append(f"dtype: manual {manual.dtype}, autograd {autograd.dtype}; compared by value "
                             "(dtype_policy='values')")
                manual = manual.astype(dtype)
        comparison = compare(name, manual, autograd, dtype, tol, witness)
        if not (comparison.passed or comparison.problem or given or nudged is None):
            reason = within_nudges(manual, autograd, nudged, tol)
            comparison = replace(comparison, passed=True, witnessed=reason) if reason else comparison
        return [Row(seed, dtype, Comparison(name, comparison.shape, True, float("nan"), float("nan"), note=note))
                for note in notes] + [Row(seed, dtype, comparison, tol, given)]


def _squeezed(shape):
    return tuple(d for d in shape if d != 1)


def _torch_side(torch_fn, inputs, wants, kwargs):
    """-> (torch output tensor, the input tensors), checked."""
    tensors = [torch.from_numpy(a.copy()).requires_grad_(w) for a, w in zip(inputs, wants, strict=True)]
    out = _call("torch_fn", torch_fn, *tensors, **kwargs)
    if not isinstance(out, torch.Tensor):
        raise InputError(f"torch_fn: returned {type(out).__name__}, needs a torch.Tensor computed from its inputs")
    if not out.requires_grad:
        raise InputError(
            "torch_fn: returned a tensor that autograd cannot trace to the inputs (detached, or computed outside "
            "torch), needs the forward written in torch operations"
        )
    return out, tensors


def _float64_side(torch_fn, inputs, wants, kwargs, dout):
    """torch_fn again in float64 on the same values -> (output, [gradient per differentiable input]) for `dout`:
    float32's witness (crosscheck.tolerances); None where torch_fn cannot run in float64."""
    try:
        floats = [a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a for a in inputs]
        out, tensors = _torch_side(torch_fn, floats, wants, kwargs)
        grads = torch.autograd.grad(out, [t for t, w in zip(tensors, wants, strict=True) if w],
                                    torch.from_numpy(np.asarray(dout, np.float64)).reshape(out.shape),
                                    allow_unused=True, materialize_grads=True)
    except Exception:  # no witness: the table's verdict stands
        return None
    return out.detach().numpy(), [g.numpy() for g in grads]


def _nudged_side(torch_fn, inputs, wants, kwargs, dout, seed, j):
    """_float64_side with the floating inputs and the upstream gradient each nudged by one rounding
    (crosscheck.tolerances.nudge, drawn from (seed, j)), labels as they are: float64's nudged run j."""
    moved = nudge({i: a for i, a in enumerate((*inputs, dout)) if np.issubdtype(a.dtype, np.floating)}, (seed, j),
                  np.float64)
    return _float64_side(torch_fn, [moved.get(i, a) for i, a in enumerate(inputs)], wants, kwargs, moved[len(inputs)])


def _manual_forward(forward, inputs, kwargs):
    result = _call("forward", forward, *(a.copy() for a in inputs), **kwargs)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise InputError(
            f"forward: returned {type(result).__name__}, needs (out, cache) (a layer object that keeps its own "
            "cache has a backward that takes dout alone)"
        )
    return result


def _repeat(out, again):
    """The same forward twice on the same inputs -> None, or a failing Comparison when the outputs differ at all."""
    out, again = np.asarray(out), np.asarray(again)
    if out.shape != again.shape:
        detail = f"shapes {out.shape} and {again.shape}"
    elif np.array_equal(out, again, equal_nan=np.issubdtype(out.dtype, np.inexact)):
        return None
    else:
        detail = f"max abs difference {np.max(np.abs(out.astype(np.float64) - again.astype(np.float64))):.3e}"
    return _not_checked(REPEAT, f"stateful or nondeterministic layer: the same forward on the same inputs gave "
                                f"two different outputs ({detail})")


def _run(layer, torch_fn, names, inputs, wants, rng, case, judge, kwargs):
    """Compare the manual forward and backward with torch on one set of inputs -> [Row]; what the user's code
    raises ends the case with a row naming it, after the rows already made."""
    seed, dtype = case
    rows = []
    try:
        forward, backward = layer.make()
        out, cache = _manual_forward(forward, inputs, kwargs)
        again, _ = _manual_forward(forward, inputs, kwargs)
        t_out, tensors = _torch_side(torch_fn, inputs, wants, kwargs)
        desired = t_out.detach().numpy()
        # A random upstream gradient, never ones: a backward that forgets to multiply by dout cannot pass.
        dout = np.asarray(rng.standard_normal(desired.shape), dtype=dtype)
        witness = functools.cache(lambda: _float64_side(torch_fn, inputs, wants, kwargs, dout))
        nudged = functools.cache(lambda j: _nudged_side(torch_fn, inputs, wants, kwargs, dout, seed, j)) \
            if np.dtype(dtype) == np.float64 else lambda j: None
        rows += judge.rows(seed, dtype, "out", out, desired, lambda: witness() and witness()[0],
                           lambda j: nudged(j) and nudged(j)[0])
        repeat = _repeat(out, again)
        rows += [] if repeat is None else [Row(seed, dtype, repeat)]
        t_grads = iter(torch.autograd.grad(t_out, [t for t, w in zip(tensors, wants, strict=True) if w],
                                           torch.from_numpy(dout), allow_unused=True, materialize_grads=True))
        if np.shape(out) == desired.shape or judge.shape_policy == "squeeze" and np.size(out) == desired.size \
                and _squeezed(np.shape(out)) == _squeezed(desired.shape):
            grads = as_gradients(_call("backward", backward, dout.reshape(np.shape(out)).copy(), cache), len(inputs))
        else:
            grads = [ManualFailure(f"not checked: the forward output has shape {np.shape(out)}, autograd's "
                                   f"{desired.shape}")] * len(inputs)
        for k, (name, grad) in enumerate((n, g) for n, g, want in zip(names, grads, wants, strict=True) if want):
            grad = ManualFailure("backward returned None for a differentiable input") if grad is None else grad
            rows += judge.rows(seed, dtype, f"d{name}", grad, next(t_grads).numpy(),
                               lambda k=k: witness() and witness()[1][k], lambda j, k=k: nudged(j) and nudged(j)[1][k])
    except _Raised as error:
        rows.append(error.row(seed, dtype))
    return rows


def _at_kink(forward, inputs, wants, kwargs):
    """Whether finite differences of the manual forward see a kink at `inputs` (crosscheck.numerical's detector:
    the one-sided differences of <forward, a random dout> part by more than smooth curvature explains)."""
    from crosscheck import numerical  # only on a failed gradcheck: it imports more of the project

    try:
        out = np.asarray(forward(*(a.copy() for a in inputs), **kwargs)[0], np.float64)
        dout = np.random.default_rng(0).standard_normal(out.shape)
        for i in (i for i, want in enumerate(wants) if want):
            def value(x, i=i):
                moved = [a.copy() for a in inputs]
                moved[i] = x
                return float(np.vdot(np.asarray(forward(*moved, **kwargs)[0], np.float64), dout))

            site = numerical.Site(f"input{i}", np.asarray(inputs[i], np.float64), numerical.looped(value))
            if numerical.differences(site).kinks.any():
                return True
    except Exception:  # the forward failing on moved inputs is no evidence of a kink
        return False
    return False


def _gradcheck(layer, names, inputs, wants, kwargs):
    """torch.autograd.gradcheck on the manual pair -> a Comparison named "gradcheck", with a hint only where
    there is evidence for it: gradcheck saying the backward is not reentrant, or a kink at the inputs."""
    try:
        forward, backward = layer.make()
        gradcheck_pair(forward, backward, inputs, kwargs=kwargs, differentiable=wants)
    except _Raised as error:
        return _not_checked(GRADCHECK, raised(error.error))
    except GradcheckError as error:
        first = str(error).strip().splitlines()[0].rstrip(",")
        first = re.sub(r"input (\d+)", lambda m: f"input {m[1]} ({names[int(m[1])]})", first)
        if "not reentrant" in str(error):
            first += f" ({REENTRANT_HINT})"
        elif _at_kink(forward, inputs, wants, kwargs):
            first += f" ({KINK_HINT})"
        return _not_checked(GRADCHECK, f"torch.autograd.gradcheck failed: {first}")
    except Exception as error:  # the user's code raised inside torch's gradcheck
        return _not_checked(GRADCHECK, raised(error))
    return Comparison(GRADCHECK, (), True, float("nan"), float("nan"))


def _label(name, shapes, kwargs):
    options = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    return f"{name}({', '.join('x'.join(map(str, s)) or 'scalar' for s in shapes)}{options})"


# --- the public API ----------------------------------------------------------------------------------

def check_layer(forward=None, backward=None, torch_fn=None, shapes=None, *, factory=None, seeds=(0, 1, 2),
                dtypes=DTYPES, kwargs=None, differentiable=None, input_factory=None, gradcheck=False,
                tolerance=None, names=None, name=None, dtype_policy="strict", shape_policy="strict"):
    """Check a manual layer against torch autograd -> LayerCheck (nothing raised for a mismatch, nor for what
    the layer's own code raises: each is a failing row of its case).

    forward, backward: the NumPy pair, or a layer object as forward and backward=None (module docstring).
    factory: instead of forward and backward, a callable () -> layer object: a new object per case, and one per
    backward call, run forward on the case's inputs first (gradcheck calls backward many times per forward).
    torch_fn: the same forward in torch, (*tensors, **kwargs) -> tensor; autograd gives its gradients.
    shapes: one shape per forward input. seeds, dtypes: the grid; kwargs: options passed to both forwards.
    differentiable: per input, whether it gets a gradient (default: the floating inputs; labels do not).
    input_factory: (rng, shape) -> array for every input, or a list with one (None: standard normal) per input.
    gradcheck: also run torch.autograd.gradcheck on the manual pair, per seed in float64.
    tolerance: Tolerance(rtol, atol, why) for every comparison instead of the table; why is required where it is
    looser than the table. names: the inputs' names (default: the forward's parameters); name: the layer's.
    dtype_policy: "strict" (a result of another dtype fails) or "values" (compared by value, with a note row).
    shape_policy: "strict" or "squeeze" (shapes differing only by size-1 axes compared by value, with a note row).
    """
    layer = None
    if factory is None:
        layer = _layer(forward, backward, None)
    if not callable(torch_fn):
        raise InputError(f"torch_fn: got {torch_fn!r}, needs the same forward in torch, (*tensors) -> tensor")
    shapes, seeds, dtypes = _check_shapes(shapes), _check_seeds(seeds), _check_dtypes(dtypes)
    kwargs, draws = _check_kwargs(kwargs), _check_input_factory(input_factory, len(shapes))
    differentiable = _check_differentiable(differentiable, len(shapes))
    if not isinstance(gradcheck, bool):
        raise InputError(f"gradcheck: got {gradcheck!r}, needs True or False")
    if name is not None and not (isinstance(name, str) and name):
        raise InputError(f"name: got {name!r}, needs None or a non-empty string naming the layer")
    judge = _Judge(_check_tolerance(tolerance, dtypes), _check_choice("dtype_policy", dtype_policy),
                   _check_choice("shape_policy", shape_policy))
    if layer is None:
        try:
            layer = _layer(forward, backward, factory)
        except _Raised as error:  # the factory itself raised: one row, nothing else can run
            return LayerCheck(_label(name or getattr(factory, "__name__", "factory"), shapes, kwargs),
                              (error.row(seeds[0], dtypes[0]),))
    _check_arity(layer.signature_of, len(shapes), kwargs)
    names = _input_names(layer.signature_of, len(shapes), names)

    rows = []
    for seed in seeds:
        for dtype in dtypes:
            rng = np.random.default_rng(seed)
            inputs = _draw(draws, shapes, rng, dtype)
            wants = _wanted(differentiable, inputs, names)
            rows += _run(layer, torch_fn, names, inputs, wants, rng, (seed, dtype), judge, kwargs)
        if gradcheck:
            inputs = _draw(draws, shapes, np.random.default_rng(seed), "float64")
            wants = _wanted(differentiable, inputs, names)
            rows.append(Row(seed, "float64", _gradcheck(layer, names, inputs, wants, kwargs)))
    return LayerCheck(_label(name or layer.name, shapes, kwargs), tuple(rows))


def assert_layer_matches(forward=None, backward=None, torch_fn=None, shapes=None, **options):
    """check_layer, raising AssertionError with the report of every failing check -> the LayerCheck."""
    __tracebackhide__ = True  # pytest shows the user's call, not this line
    result = check_layer(forward, backward, torch_fn, shapes, **options)
    if not result.passed:
        raise AssertionError(result.report(failures_only=True))
    return result
