"""The one checker: a subject (crosscheck.subjects: the slides' network or a described network) compared quantity by
quantity, manual against autograd under the dtype's tolerance (crosscheck.compare) -> a Result of Rows in the
order the computation makes them: forward, backward from the loss, the first updates, then a k-step training run.

Wrong derivations reach a subject in one way, a crosscheck.catalogue.WrongDerivation: a catalogued one by name
(``--inject NAME``, ``--inject NAME@LAYER`` on another description, ``scaled@LAYER`` for any layer), or a user's
module of overrides read into one (``load_module``, the convention below).

A module given to ``crosscheck diagnose --module FILE`` follows one of two conventions:

    # the slides' network: equations of manual.seed_network.EQUATIONS replaced by name
    LAYER_BACKWARD = {"dH1_dZ1": my_sigmoid_derivative}
    SGD_STEP = my_sgd_step                        # optional: (params, grads, lr) -> params
    CASE = {"input_shape": [6, 6], "reduction": "mean"}   # optional: crosscheck.subjects.SeedCase fields

    # a described network: SPEC is the description (a dict) or the path of a .toml / .json file, relative to the
    # module's folder
    SPEC = "../small3conv.toml"
    LAYER_BACKWARD = {3: my_conv_backward, "loss": my_loss_backward}   # by layer index, as manual.network's
    LAYER_FORWARD = {3: my_conv_forward}          # optional: forward(x, layer params, options) -> (out, cache)
    OPTIMIZER_STEP = my_sgd_step                  # optional: manual.optim.sgd_step's signature
    INPUTS = my_inputs                            # optional: (spec, dtype, seed) -> (x, target)

examples/diagnose/ holds one module of each kind. A module is Python and runs as such: load trusted files only.
"""

import importlib.util
import inspect
import pathlib
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from crosscheck.catalogue import WrongDerivation, find
from crosscheck.compare import Comparison, compare, within_nudges
from crosscheck.subjects import DTYPES, NetworkSubject, SeedCase, SeedSubject, wobble
from crosscheck.tolerances import tolerance_for
from manual import network as manual_net
from manual import seed_network as manual_seed
from netdesc.checks import InputError
from netdesc.description import BATCH_NORMS, INDEXED, load_spec, parse_spec

GROWTH = 1e3  # a training run whose loss grows this many times over diverges


@dataclass(frozen=True)
class Row:
    """One compared quantity: where ("" on the slides' network, "3 conv2d" or "loss"), what, and the comparison."""

    where: str
    quantity: str
    result: Comparison

    @property
    def passed(self):
        return self.result.passed

    def as_dict(self):
        return {"layer": self.where, "quantity": self.quantity, **self.result.as_dict()}


@dataclass(frozen=True)
class Result:
    """Every row of one check of one subject."""

    title: str
    dtype: str
    rows: tuple
    injected: str = ""

    @property
    def passed(self):
        return bool(self.rows) and all(row.passed for row in self.rows)

    @property
    def failed(self):
        return [row for row in self.rows if not row.passed]

    @property
    def unstable(self):
        return [row for row in self.rows if row.result.note]


DECIDED = ("a max or a kink decided the other way under rounding: every layer's output agrees, and this gradient "
           "agrees with autograd's taken at manual's own forward values")


def judge(subject, step, witnesses):
    """One Step compared -> Comparison: under the dtype's table, with float32's float64 witness (`witnesses`, as
    witness() makes it), and a quantity that steps an optimizer (an update, a training run) excused where its steps
    agree one at a time from manual's own parameters (the subject's lockstep: rounding the optimizer amplifies),
    and a described network's gradient excused where it agrees with autograd's taken at manual's own forward values,
    every layer's output agreeing (a max or a ReLU at 0 decided the other way by rounding: DECIDED), or, in float64,
    where it is within ROUNDING times autograd's own change under a one-rounding nudge of the inputs and parameters
    (a gradient that is 0 in exact arithmetic, rounding noise on both sides: crosscheck.tolerances)."""
    result = compare(step.name, step.manual, step.autograd, subject.dtype, witness=lambda: witnesses().get(step.name))
    if result.passed or result.problem:
        return result
    if step.steps:
        reason = subject.lockstep(step.steps)
    else:
        reason = _decided(subject, step) or _noise(subject, step)
    return replace(result, passed=True, witnessed=reason) if reason else result


def _decided(subject, step):
    own = None if step.own is None else step.own()
    return DECIDED if own is not None and compare(step.name, step.manual, own, subject.dtype).passed else ""


def _noise(subject, step):
    """float64's second judge: manual within ROUNDING times autograd's own change under a one-rounding nudge, on
    one of NUDGES nudged runs (crosscheck.compare.within_nudges)."""
    if step.nudged is None:
        return ""
    return within_nudges(step.manual, step.autograd, step.nudged, tolerance_for(subject.dtype))


def _row(subject, step, witnesses):
    return Row(step.where, step.quantity, judge(subject, step, witnesses))


def witness(subject):
    """() -> {name: autograd in float64 on the subject's values}, run once on first need (float32's witness,
    crosscheck.tolerances)."""
    return cache(subject.witnesses)


def check(subject, train=True):
    """Every comparison for `subject`, in order -> Result.

    When every one-step row agrees but the training run does not, and autograd's own run is chaotic (a one-ulp
    nudge of the parameters moves it past the tolerance, subjects.wobble), the training rows pass with a note:
    they can give no verdict; the one-step rows, the same update step by step, do. The chaos rule never excuses a
    one-step row; only judge's second judges can, each with its evidence.
    """
    dtype, witnesses = subject.dtype, witness(subject)
    rows = [_row(subject, step, witnesses) for step in subject.walk()]
    if train:
        training = [_row(subject, step, witnesses) for step in subject.training()]
        note = None
        if all(r.passed for r in rows) and not all(r.passed for r in training):
            note = chaos(subject)
        if note:
            training = [r if r.passed else replace(r, result=replace(r.result, passed=True, note=note))
                        for r in training]
        rows += training
    injected = "" if subject.wrong is None else f"{subject.wrong.name} ({subject.wrong.description})"
    return Result(subject.title, dtype, tuple(rows), injected)


def chaos(subject):
    """Why autograd's own training run cannot judge gradients -> a note, or None where it can. Either its loss
    diverges (grows GROWTH-fold or leaves the floats: rounding is then amplified without bound), or a one-ulp
    nudge of the parameters moves its run past the tolerance (subjects.wobble)."""
    nudged = wobble(subject)
    losses = np.abs(np.asarray(nudged[0].autograd, np.float64))
    if not np.all(np.isfinite(losses)) or losses.max() > GROWTH * max(losses[0], np.finfo(np.float64).tiny):
        return (f"autograd's own loss grows from {losses[0]:.3e} to {losses.max():.3e}: a diverging run amplifies "
                "rounding without bound")
    moved = max((compare(s.name, s.manual, s.autograd, subject.dtype) for s in nudged), key=lambda c: c.max_abs_error)
    if moved.passed:
        return None
    return (f"a one-ulp nudge of the parameters moves autograd's own run by up to {moved.max_abs_error:.3e} "
            f"({moved.name}), more than the tolerance")


# --- wrong derivations on a subject ------------------------------------------------------------------------

def entry_subject(entry, dtype=None, seed=None, max_memory=None):
    """A catalogue entry on its own network -> the subject to check or diagnose."""
    dtype = dtype or entry.dtypes[0]
    if entry.on_seed:
        fields = entry.case | {"dtype": dtype} | ({} if seed is None else {"seed": seed})
        return SeedSubject(SeedCase(**fields), entry, max_memory)
    return NetworkSubject(parse_spec(entry.network, entry.name), seed or 0, dtype, wrong=entry, max_memory=max_memory)


def overrides(backward=None, forward=None, optimizer_step=None, inputs=None, name="overrides", network=""):
    """Hand-written replacements (a user's own backward, a deliberate mistake) as the WrongDerivation a subject takes:
    on the slides' network backward maps equation names to functions; on a described network backward and forward
    map a layer index or "loss" to functions, optimizer_step replaces manual.optim.sgd_step, inputs draws the batch."""
    return WrongDerivation(name, "replaced by hand", network, "", "", backward or {}, forward or {}, optimizer_step,
                           inputs)


def scaled_backward(backward, factor):
    """`backward` with every gradient it returns multiplied by `factor`: the smallest wrong derivation."""
    def wrong_backward(dout, cache):
        return tuple(None if g is None else g * factor for g in backward(dout, cache))
    return wrong_backward


def _layer_index(text, spec, option):
    layers = len(spec.layers)
    try:
        index = int(text)
    except ValueError:
        index = -1
    if not 0 <= index < layers:
        raise InputError(f"{option}: got layer {text!r}, needs a layer index in [0, {layers - 1}]")
    return index


def scaled(spec, index, dtype):
    """Layer `index`'s backward with every gradient scaled by 1 + 100 * rtol of `dtype`: a wrong derivation just
    outside the tolerance, to see a mismatch reported."""
    factor = 1 + 100 * tolerance_for(DTYPES[dtype]).rtol
    layer = spec.layers[index]
    first = "dE/dweight" if layer.type in INDEXED else "dE/dinput"  # integer indices have no gradient row
    return WrongDerivation(
        f"scaled@{index}", f"{layer}'s backward scaled by 1 + {factor - 1:g}", spec.name,
        f"{index} {layer.type}: {first}", "scaled", {index: scaled_backward(manual_net.BACKWARD[layer.type], factor)})


def inject(name, spec, dtype="float64", option="--inject"):
    """`--inject NAME[@LAYER]` on a described network -> a WrongDerivation aimed at this description: the entry's
    replaced layer functions moved to the first layer of the same type (or LAYER), its loss functions kept only
    for the same loss. An integer LAYER alone, or ``scaled@LAYER``, scales that layer's backward."""
    text = str(name)
    base, _, at = text.partition("@")
    if base.lstrip("-").isdigit() and not at:
        base, at = "scaled", base
    if base == "scaled":
        return scaled(spec, _layer_index(at, spec, option), dtype)
    entry = find(base, option)
    if entry.on_seed:
        raise InputError(f"{option}: got {base!r}, a mistake in the slides' network; it needs crosscheck seed "
                         f"--inject {base}")
    own = parse_spec(entry.network, entry.name)
    _check_same_optimizer(entry, own, spec, option)
    if entry.running_stats and not any(layer.type in BATCH_NORMS for layer in spec.layers):
        raise InputError(f"{option}: {base} changes a batch norm's running statistics; the description has none")
    moved = {}
    for key in {*entry.backward, *entry.forward}:
        if key == "loss":
            if own.loss.type != spec.loss.type:
                raise InputError(f"{option}: {base} changes the {own.loss.type} loss; the description's loss is "
                                 f"{spec.loss.type}")
            moved[key] = key
            continue
        kind = own.layers[key].type
        targets = [layer.index for layer in spec.layers if layer.type == kind]
        if at:
            index = _layer_index(at, spec, option)
            if spec.layers[index].type != kind:
                raise InputError(f"{option}: {base} changes a {kind} layer; layer {index} is a "
                                 f"{spec.layers[index].type}")
            targets = [index]
        if not targets:
            raise InputError(f"{option}: {base} changes a {kind} layer; the description has none")
        moved[key] = targets[0]
    return replace(entry, network=spec.name, backward={moved[k]: fn for k, fn in entry.backward.items()},
                   forward={moved[k]: fn for k, fn in entry.forward.items()})


def _check_same_optimizer(entry, own, spec, option):
    """An entry that replaces an optimizer's step or a scheduler fits only a description with the same one."""
    if entry.optimizer_step is not None and own.optimizer.type != spec.optimizer.type:
        raise InputError(f"{option}: {entry.name} changes the {own.optimizer.type} optimizer; the description's "
                         f"optimizer is {spec.optimizer.type}")
    mine, theirs = own.optimizer.scheduler, spec.optimizer.scheduler
    if entry.scheduler is not None and (theirs is None or theirs.type != mine.type):
        raise InputError(f"{option}: {entry.name} changes the {mine.type} scheduler; the description has "
                         f"{'none' if theirs is None else 'a ' + theirs.type + ' scheduler'}")


def seed_inject(name, option="--inject"):
    """`--inject NAME` on the slides' network -> its catalogue entry."""
    entry = find(name, option)
    if not entry.on_seed:
        raise InputError(f"{option}: got {name!r}, a mistake in a described network's layer; it needs crosscheck "
                         f"verify --spec FILE --inject {name}")
    return entry


# --- a user's module of overrides --------------------------------------------------------------------------------

def _callables(module, name, keys, where, arguments):
    """module.NAME, a dict of functions by key, each checked to take the arguments the harness passes it:
    `arguments(key)` -> (positional count, what they are)."""
    table = getattr(module, name, {})
    if not isinstance(table, dict):
        raise InputError(f"{where}: {name} is a {type(table).__name__}, needs a dict of callables")
    for key, fn in table.items():
        if key not in keys:
            raise InputError(f"{where}: {name} has the key {key!r}, needs keys among {', '.join(map(repr, keys))}")
        _takes(fn, f"{name}[{key!r}]", where, *arguments(key))
    return table


def _function(module, name, where, count, what, **keywords):
    fn = getattr(module, name, None)
    if fn is not None:
        _takes(fn, name, where, count, what, **keywords)
    return fn


def _takes(fn, name, where, count, what, **keywords):
    """InputError unless `fn` is callable with `count` positional arguments (and `keywords`): the one line that
    names it, where it is defined and what it must take, before any of it runs."""
    if not callable(fn):
        raise InputError(f"{where}: {name} is a {type(fn).__name__}, needs a function")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: it says so itself when called
        return
    try:
        signature.bind(*range(count), **keywords)
    except TypeError:
        code = getattr(fn, "__code__", None)
        defined = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
        raise InputError(f"{where}: {name} is {getattr(fn, '__name__', type(fn).__name__)}{signature}{defined}, "
                         f"needs to take {what}") from None


def _overrides(where, *tables):
    if not any(tables):
        raise InputError(f"{where}: overrides nothing, needs LAYER_BACKWARD or another override (crosscheck diagnose "
                         f"--help, docs/debugging.md)")


def _equation_arguments(key):
    names = tuple(inspect.signature(manual_seed.EQUATIONS[key]).parameters)
    return len(names), f"({', '.join(names)}) as manual.seed_network.{key} does"


def load_module(path):
    """Import a user's module of overrides (the convention in this module's docstring); it runs as Python."""
    given = pathlib.Path(path)
    if given.suffix != ".py" or not given.is_file():
        raise InputError(f"--module: got {str(given)!r}, needs an existing .py file")
    # Loaded from its absolute path: its frames are then the code under test (crosscheck.cli.raised).
    spec = importlib.util.spec_from_file_location(f"crosscheck_user_{given.stem}", given.resolve())
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:  # the user's code: whatever it raises is bad input, in one line
        raise InputError(f"{given}: importing it raised {type(err).__name__}: {err}") from None
    return module


def module_subject(path, dtype="float64", seed=None, max_memory=None):
    """A user's module (see the module docstring) read into a WrongDerivation -> the subject it applies to."""
    module = load_module(path)
    where = str(path)
    if not hasattr(module, "SPEC"):
        fields = getattr(module, "CASE", {})
        if not isinstance(fields, dict):
            raise InputError(f"{where}: CASE is a {type(fields).__name__}, needs a dict of SeedCase fields")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        try:
            case = SeedCase(**(fields | {"dtype": dtype} | ({} if seed is None else {"seed": seed})))
        except TypeError as err:
            raise InputError(f"{where}: CASE: {err}") from None
        backward = _callables(module, "LAYER_BACKWARD", tuple(manual_seed.EQUATIONS), where, _equation_arguments)
        step = _function(module, "SGD_STEP", where, 3, "(params, grads, lr) as manual.seed_network.sgd_step does")
        _overrides(where, backward, step)
        return SeedSubject(case, WrongDerivation(where, "a user's module", "seed", "", "", backward,
                                                 optimizer_step=step), max_memory)
    raw = module.SPEC
    if isinstance(raw, dict):
        spec = parse_spec(raw, pathlib.Path(path).stem)
    else:  # a file, relative to the module's folder
        spec = load_spec(pathlib.Path(path).parent / raw)
    keys = [*range(len(spec.layers)), "loss"]
    backward = _callables(module, "LAYER_BACKWARD", keys, where, lambda key: (2, "(dout, cache)"))
    forward = _callables(module, "LAYER_FORWARD", keys, where,
                         lambda key: (3, "(pred, target, reduction)" if key == "loss" else "(x, params, options)"))
    step = _function(module, "OPTIMIZER_STEP", where, 3, "(params, grads, state, **settings) as manual.optim."
                     "sgd_step does", **spec.optimizer.settings())
    draw = _function(module, "INPUTS", where, 3, "(spec, dtype, seed)")
    _overrides(where, backward, forward, step, draw)
    wrong = WrongDerivation(where, "a user's module", spec.name, "", "", backward, forward, step, draw)
    return NetworkSubject(spec, seed or 0, dtype, wrong=wrong, max_memory=max_memory)
