"""What the one checker checks: a subject is a network with its inputs drawn from a seed and checked once, here at
the boundary. It yields

- ``walk()``: every quantity in the order the computation makes it, manual's value beside autograd's: the forward
  values and the error; the backward pass from the loss back to the first layer; the parameters after the first
  update steps. Each Step carries what a diagnosis needs (a finite-difference site, hypotheses, scales);
- ``training()``: the loss at every step of a k-step run and the parameters at its end, on both sides;
- ``reference_training(params)``: autograd's run alone, from other parameters (the chaos test of crosscheck.check).

Two subjects: the slides' network (``SeedSubject``: manual.seed_network against reference.seed_network, quantities
named as the slides name them) and a described network (``NetworkSubject``: manual.network against
reference.network, quantities named "<index> <type>: <quantity>"). A wrong derivation (crosscheck.catalogue's
WrongDerivation, or a user's module read into one) applies to either through ``wrong``.
"""

import itertools
import math
import operator
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cache, reduce

import numpy as np
import torch
from torch.nn import functional as TF

import netdesc.inputs
import netdesc.seed
from crosscheck import frames, numerical
from crosscheck import hypotheses as H
from crosscheck.compare import ManualFailure, compare, within_nudges
from crosscheck.tolerances import nudge, tolerance_for
from manual import network as manual_net
from manual import optim as manual_optim
from manual import seed_network as manual_seed
from netdesc.checks import (
    InputError,
    check_learning_rate,
    check_positive_int,
    check_reduction,
    check_steps,
    is_int,
    unusable,
)
from netdesc.description import BATCH_NORMS, INDEXED
from reference import network as reference_net
from reference import seed_network as reference_seed

DTYPES = {"float64": np.float64, "float32": np.float32}
NETWORK_UPDATE_STEPS = 2  # a described network's parameters after steps 1 and 2: a momentum buffer matters at step 2

# The slides' quantities in the order the computation makes them: forward; the chain rule from the error back to
# the filter; the updates, from the last layer's parameters back.
SEED_FORWARD = ("Z1", "H1", "Z2", "O", "E")
SEED_BACKWARD = ("dE_dO", "dO_dZ2", "dE_dZ2", "dZ2_dW", "dE_dW", "dE_db", "dZ2_dH1", "dE_dH1", "dH1_dZ1", "dE_dZ1",
                 "dZ1_df", "dE_df")
SEED_UPDATED = ("W", "b", "f")


def slide_name(quantity):
    """'dE_dZ1' -> 'dE/dZ1', as the slides write it."""
    return quantity.replace("_d", "/d", 1) if quantity.startswith("d") else quantity


# --- what a run may allocate -------------------------------------------------------------------------------

# Bytes per element of the largest arrays a run makes, in float64 whatever its dtype: the value, autograd's copy,
# their gradients, and the comparison's float64 temporaries (difference, allowance, excess), with room to spare.
BYTES_PER_ELEMENT = 64


def memory_budget():
    """The default limit on what one run may allocate: half of this machine's physical memory, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def size_text(n):
    """Bytes as a short text: 1.5 GB, 12 MB, 800 bytes."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def check_memory(elements, what, budget=None):
    """Refuse, before any allocation, a run whose largest arrays hold `elements` values in all (InputError naming
    the size, what makes it and the budget)."""
    budget = memory_budget() if budget is None else budget
    needed = BYTES_PER_ELEMENT * elements
    if needed > budget:
        raise InputError(f"memory: {what} needs about {size_text(needed)}, more than the budget of "
                         f"{size_text(budget)} (--max-memory SIZE sets it)")


def seed_elements(case):
    """The values of the slides' network's largest arrays: X with its KW shifted copies, the KH*KW patches of X
    (dZ1/df, a Jacobian autograd makes whole), the hidden layer and W."""
    (H, W), (KH, KW), N = case.input_shape, case.kernel_shape, case.batch
    n_hidden = (H - KH + 1) * (W - KW + 1)
    return N * H * W * (KW + 1) + N * n_hidden * (KH * KW + 1) + n_hidden * case.n_out * (N + 1)


def network_elements(spec):
    """The values of a described network's largest arrays: every layer's output, a convolution's unfolded input
    (its im2col, C*KH*KW values per output position) and every parameter, for the batch."""
    N, total = spec.batch_size, 0
    for layer in spec.layers:
        out = math.prod(layer.out_shape)
        if layer.type == "conv2d":
            out *= 1 + layer.in_shape[0] * math.prod(layer.options["kernel_size"])
        total += N * out + sum(math.prod(s) for s in layer.param_shapes().values())
    return total + N * math.prod(spec.input_shape)


def check_dtype(dtype):
    if dtype not in DTYPES:
        raise InputError(f"dtype: got {dtype!r}, needs one of {', '.join(DTYPES)}")
    return dtype


@dataclass(frozen=True)
class Step:
    """One quantity of a walk: where ("" on the slides' network, "3 conv2d" or "loss") and what ("dE/dZ1",
    "dE/dweight", "W after step 1"); site: () -> numerical.Site (gradients only); before: an update's parameter
    before the step; scales: (value, kind, meaning) a fitted constant is read against; own: () -> autograd's value
    taken at manual's own forward values, None where a layer's output differs (a described network's gradients);
    nudged: (j) -> autograd's value on nudged run j, the input, a target of values and the parameters nudged by one
    rounding (the same, in float64)."""

    where: str
    quantity: str
    manual: object
    autograd: object
    site: Callable | None = None
    hypotheses: tuple = ()
    before: object = None
    scales: tuple = ()
    steps: int = 0  # the optimizer steps behind the quantity (an update's, a training run's); 0 for the rest
    own: Callable | None = None
    nudged: Callable | None = None

    def __post_init__(self):  # what a hand-written side gave instead of numbers is a finding on this row
        object.__setattr__(self, "manual", unusable(self.manual, "the manual side") or self.manual)

    @property
    def name(self):
        return f"{self.where}: {self.quantity}" if self.where else self.quantity


class BrokenChain(Exception):
    """A hand-written backward returned no usable gradient for a parameter: the update cannot be taken. A finding
    about the code under test (reported as a row), never bad input."""


def _guarded(step, params, key=str):
    """`step` (params, grads, ...) refusing a gradient that is not a finite array of its parameter's shape;
    grads[key(name)] is the gradient of params[name]."""
    def guarded(p, grads, *args, **kwargs):
        for name, value in params.items():
            grad = grads.get(key(name)) if isinstance(grads, dict) else None
            if not isinstance(grad, np.ndarray) or grad.shape != value.shape:
                got = f"shape {grad.shape}" if isinstance(grad, np.ndarray) else (grad or "nothing")
                raise BrokenChain(f"no gradient to step with for {key(name)}: got {got}, needs shape {value.shape}")
            if grad.dtype != value.dtype:
                raise BrokenChain(f"no gradient to step with for {key(name)}: got dtype {grad.dtype}, needs "
                                  f"{value.dtype}, the parameter's")
            if not np.all(np.isfinite(grad)):
                raise BrokenChain(f"no gradient to step with for {key(name)}: it holds non-finite values")
        return step(p, grads, *args, **kwargs)
    return guarded


def _chained(name, equation, replaced):
    """An equation of the slides' backward under a wrong derivation: a broken factor passes down the chain (a
    ManualFailure in, the same out), and what is not numbers, or what a later equation cannot use (a transposed
    factor, a broadcast that fails), is a ManualFailure on its row and the rows below: a finding, not a crash. What
    a replaced equation itself raises still escapes: the code under test raised (exit 3)."""
    def chained(*factors):
        broken = next((f for f in factors if isinstance(f, ManualFailure)), None)
        if broken is not None:
            return broken
        if replaced:
            value = equation(*factors)
        else:
            try:
                value = equation(*factors)
            except (ValueError, TypeError, IndexError) as err:
                return ManualFailure(f"{name} could not use the factors before it: {frames.what(err)}")
        return unusable(value, name) or value
    return chained


def _failed(names, err):
    return dict.fromkeys(names, ManualFailure(str(err)))


def _float64(value):
    """A floating array (or dict of them) in float64, exactly; labels as they are."""
    if isinstance(value, dict):
        return {k: _float64(v) for k, v in value.items()}
    return value.astype(np.float64) if np.issubdtype(value.dtype, np.floating) else value


def _witnesses(twin):
    """{name: autograd's value} over the twin's walk and autograd's training run (the twin's manual side does not
    train: its values are not used, and a run that diverges would leave the floats there for nothing)."""
    return {step.name: step.autograd for step in (*twin.walk(), *twin.training(manual=False))}


# --- the slides' network ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeedCase:
    """One configuration of the slides' network; str() is its test id. Checked when made."""

    input_shape: tuple = (8, 8)
    kernel_shape: tuple = (3, 3)
    n_out: int = 1
    batch: int = 4
    seed: int = 0
    dtype: str = "float64"
    reduction: str = "sum"
    lr: float = 0.5
    steps: int = 50

    def __post_init__(self):
        check_dtype(self.dtype)
        check_reduction(self.reduction)
        check_learning_rate(self.lr)
        for name in ("n_out", "batch"):
            check_positive_int(name, getattr(self, name))
        check_steps(self.steps)
        check_positive_int("seed", self.seed, minimum=0)
        for name in ("input_shape", "kernel_shape"):
            shape = getattr(self, name)
            if not isinstance(shape, tuple) or len(shape) != 2 or not all(is_int(s, 1) for s in shape):
                raise InputError(f"{name}: got {shape!r}, needs two positive integers (height, width)")
        (H_, W), (KH, KW) = self.input_shape, self.kernel_shape
        if KH > H_ or KW > W:
            raise InputError(f"kernel_shape: got {KH}x{KW}, needs at most the input's {H_}x{W}")

    def __str__(self):
        (H_, W), (KH, KW) = self.input_shape, self.kernel_shape
        k = f"k{KH}" if KH == KW else f"k{KH}x{KW}"
        return f"{H_}x{W}-{k}-out{self.n_out}-N{self.batch}-{self.reduction}-{self.dtype}-seed{self.seed}"

    def as_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def inputs(self):
        """(X, Y, params) drawn from this case's seed, in its dtype."""
        dtype = DTYPES[self.dtype]
        rng = np.random.default_rng(self.seed)
        X = rng.normal(size=(self.batch, *self.input_shape)).astype(dtype)
        Y = rng.uniform(size=(self.batch, self.n_out)).astype(dtype)
        params = netdesc.seed.init_params(self.input_shape, self.kernel_shape, self.n_out, dtype, seed=self.seed + 1)
        return X, Y, params


class SeedSubject:
    """The slides' network for one SeedCase, with an optional wrong derivation (equations swapped by name, or the
    SGD step replaced); ``data`` (X, Y, params) in place of the case's random draw (crosscheck.train)."""

    update_steps = 1

    def __init__(self, case, wrong=None, max_memory=None, data=None):
        self.case, self.wrong = case, wrong
        check_memory(seed_elements(case), f"the slides' network {case}", max_memory)
        X, Y, self.params = case.inputs() if data is None else data
        self.X, self.Y = netdesc.seed.check_inputs(X, Y, self.params, case.reduction)
        self.title = f"seed network {case}"
        self.dtype, self.steps, self.seed = case.dtype, case.steps, case.seed

    def _equations(self):
        if self.wrong is None:
            return None
        replaced = self.wrong.backward
        return {name: _chained(name, fn, name in replaced) for name, fn in (manual_seed.EQUATIONS | replaced).items()}

    def _step(self):
        w = self.wrong
        step = manual_seed.sgd_step if w is None or w.optimizer_step is None else w.optimizer_step
        return _guarded(step, self.params, key=lambda name: f"dE_d{name}")

    def _manual_update(self, grads):
        try:
            return self._step()(self.params, grads, self.case.lr)
        except BrokenChain as err:
            return _failed(self.params, err)

    def walk(self):
        c, X, Y, params = self.case, self.X, self.Y, self.params
        values = manual_seed.forward(X, params, Y, c.reduction)
        grads = manual_seed.backward(X, Y, params, values, c.reduction, self._equations())
        ref_values, ref_grads = reference_seed.run(X, params, Y, c.reduction)
        sites = cache(lambda: numerical.seed_sites(X, Y, params, c.reduction))
        Z1 = np.asarray(ref_values["Z1"], np.float64)
        dE_dH1 = np.asarray(ref_grads["dE_dH1"], np.float64).reshape(Z1.shape)

        def conv(f):
            return TF.conv2d(H.as_tensor(X)[:, None], f[None, None])[:, 0]
        hypotheses = {
            "dO_dZ2": H.local_derivative(torch.sigmoid, ref_values["Z2"]),
            "dH1_dZ1": H.local_derivative(torch.sigmoid, Z1),
            "dE_dZ2": H.activation(torch.sigmoid, ref_values["Z2"], ref_grads["dE_dO"]),
            "dE_dZ1": H.activation(torch.sigmoid, Z1, dE_dH1),
            "dE_df": (H.flipped_upstream(conv, params["f"], np.asarray(ref_grads["dE_dZ1"], np.float64)),),
        }
        with_site = set(numerical.SEED_SITES)
        scales = H.batch_scales(X.shape[0])
        yield from (Step("", k, values[k], ref_values[k]) for k in SEED_FORWARD)
        for k in SEED_BACKWARD:
            site = (lambda k=k: sites()[k]) if k in with_site else None
            yield Step("", slide_name(k), grads[k], ref_grads[k], site, hypotheses.get(k, ()), scales=scales)
        updated = self._manual_update(grads)
        _, ref_updated = reference_seed.train(X, Y, params, c.lr, 1, c.reduction)
        for k in SEED_UPDATED:
            yield Step("", f"{k} after step 1", updated[k], ref_updated[k], before=params[k], steps=1)

    def manual_steps(self, batches, buffers=None):
        """The manual side's SGD steps from self.params, one per (X, Y) of `batches` -> yields (E, grads, params).
        `buffers` as a described network's: the slides' network has no batch norm, the dict stays empty."""
        return manual_seed.training(batches, self.params, self.case.lr, self.case.reduction, self._equations(),
                                    self._step())

    def reference_steps(self, batches, buffers=None):
        return reference_seed.training(batches, self.params, self.case.lr, self.case.reduction)

    def training(self, manual=True):
        """The training run's Steps; manual=False: autograd's run on both sides (the float64 witness's)."""
        c = self.case
        ref_errors, ref_final = self.reference_training(self.params)
        if not manual:
            return self._training_steps(ref_errors, ref_final, ref_errors, ref_final)
        try:
            errors, final = manual_seed.train(self.X, self.Y, self.params, c.lr, c.steps, c.reduction,
                                              self._equations(), self._step())
        except BrokenChain as err:
            errors, final = ManualFailure(str(err)), _failed(self.params, err)
        return self._training_steps(errors, final, ref_errors, ref_final)

    def reference_training(self, params):
        c = self.case
        return reference_seed.train(self.X, self.Y, params, c.lr, c.steps, c.reduction)

    def witnesses(self):
        """Autograd in float64 on this subject's own values, by quantity name -> {name: value}: float32's witness
        (crosscheck.tolerances)."""
        data = (_float64(self.X), _float64(self.Y), _float64(self.params))
        return _witnesses(SeedSubject(replace(self.case, dtype="float64"), data=data))

    def _training_steps(self, errors, final, ref_errors, ref_final):
        k = self.steps
        return [Step("", f"E at steps 1..{k}", errors, ref_errors, steps=k)] + [
            Step("", f"{name} after {k} steps", final[name], ref_final[name], steps=k) for name in SEED_UPDATED]

    def lockstep(self, k):
        """No excuse: plain SGD on the slides' network amplifies no rounding a step by step check could excuse;
        its training runs have crosscheck.check's chaos rule."""
        return ""


# --- a described network ---------------------------------------------------------------------------------

class NetworkSubject:
    """A described network (netdesc.Spec) with parameters and a batch drawn from `seed`, in `dtype`; `steps`
    training steps (default: the description's); an optional wrong derivation (layer functions swapped by index
    or "loss", the optimizer's step or its scheduler replaced, the batch drawn otherwise); ``data`` (x, target,
    params) in place of the random draw (crosscheck.train)."""

    update_steps = NETWORK_UPDATE_STEPS

    def __init__(self, spec, seed=0, dtype="float64", steps=None, wrong=None, max_memory=None, data=None):
        self.spec, self.wrong = spec, wrong
        check_memory(network_elements(spec), f"network {spec.name!r} with batch {spec.batch_size}", max_memory)
        self.seed = check_positive_int("seed", seed, minimum=0)
        self.dtype = check_dtype(dtype)
        self.steps = spec.optimizer.steps if steps is None else check_steps(steps)
        np_dtype = DTYPES[dtype]
        if data is None:
            self.params = netdesc.inputs.init_params(spec, np_dtype, self.seed)
            draw = netdesc.inputs.random_batch if wrong is None or wrong.inputs is None else wrong.inputs
            self.x, self.target = draw(spec, np_dtype, self.seed)
        else:
            self.x, self.target, self.params = data
        netdesc.inputs.check_inputs(spec, self.params, self.x, self.target)
        self.masks = netdesc.inputs.seeded_masks(spec, self.seed)  # (step, N) -> the dropout masks, both sides'
        self.title = f"network {spec.name}, seed {self.seed}"
        self._locksteps = {}

    def _hooks(self):
        w = self.wrong
        own = manual_optim.OPTIMIZER_STEPS[self.spec.optimizer.type]
        step = own if w is None or w.optimizer_step is None else w.optimizer_step
        return {"layer_backward": None if w is None else w.backward,
                "layer_forward": None if w is None else w.forward,
                "optimizer_step": _guarded(step, self.params),
                "accumulate": None if w is None else w.accumulate,
                "scheduler": None if w is None else w.scheduler,
                "running_stats": None if w is None else w.running_stats,
                "masks": self.masks}

    def _manual_train(self, steps):
        """The manual side's run of `steps` steps -> (losses, final params), a ManualFailure where it broke. A run
        that diverges can leave the floats (a log_softmax under a squared error at lr 0.1 grows past 1e38 in 20
        float32 steps, fresh seed base 220930): its overflow is its values, compared and judged by crosscheck.check's
        chaos rule, not NumPy's warning; a manual layer that then refuses a non-finite value breaks this run, which
        made it (its inputs were checked when the subject was made)."""
        names = [*self.params, *(key for _, _, key in self._buffers())]
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                return manual_net.train(self.spec, self.params, self.x, self.target, steps, **self._hooks())
        except BrokenChain as err:
            return ManualFailure(str(err)), _failed(names, err)
        except InputError as err:
            reason = f"the manual run left the floats ({err})"
            return ManualFailure(reason), _failed(names, reason)

    def walk(self):
        spec, params, x, target = self.spec, self.params, self.x, self.target
        hooks = self._hooks()
        masks = self.masks(0, len(x))  # step 1's
        m = manual_net.run(spec, params, x, target, hooks["layer_backward"], hooks["layer_forward"],
                           hooks["accumulate"], masks)
        a = reference_net.run(spec, params, x, target, masks)
        sites = cache(lambda: numerical.network_sites(spec, params, x, target, masks))
        own = cache(lambda: self._at_own_values(params, m.outputs, a["outputs"], masks))
        nudged = cache(lambda j: self._nudged_run(masks, j)) if self.dtype == "float64" else None
        batch = H.batch_scales(spec.batch_size)
        for layer in spec.layers:
            j = layer.inputs[0]
            hypotheses = () if layer.merge else \
                H.output_hypotheses(layer, np.asarray(x if j < 0 else a["outputs"][j], np.float64), params)
            yield Step(_where(layer), "output", m.outputs[layer.index], a["outputs"][layer.index],
                       hypotheses=hypotheses, nudged=_at(nudged, ("outputs", layer.index)))
        yield Step("loss", "E", m.loss, a["loss"], nudged=_at(nudged, ("loss",)))
        yield Step("loss", "dE/dinput", m.loss_grad, a["loss_grad"], lambda: sites()["loss: dE/dinput"],
                   H.loss_hypotheses(spec, a["outputs"][-1], target), scales=batch + H.loss_scales(spec, target),
                   own=_at(own, ("loss_grad",)), nudged=_at(nudged, ("loss_grad",)))
        for layer in reversed(spec.layers):
            i, where, j = layer.index, _where(layer), layer.inputs[0]
            x_i = np.asarray(x if j < 0 else a["outputs"][j], None if layer.type in INDEXED else np.float64)
            up = np.asarray(a["output_grads"][i], np.float64)  # autograd's dE/d(output of layer i)
            # (kind, manual, autograd, where autograd's run at manual's own forward values holds it)
            if layer.merge:  # one input gradient per input
                gradients = [(f"input[{k}]", mg, ag, ("input_grads", i, k))
                             for k, (mg, ag) in enumerate(zip(m.input_grads[i], a["input_grads"][i], strict=True))]
            elif layer.type in INDEXED:  # integer indices: no gradient, no row (the header says so)
                gradients = []
            else:
                gradients = [("input", m.input_grads[i], a["input_grads"][i], ("input_grads", i))]
            gradients += [(kind, m.param_grads[f"{i}.{kind}"], a["param_grads"][f"{i}.{kind}"],
                           ("param_grads", f"{i}.{kind}")) for kind in layer.param_shapes()]
            scales = batch + ((H.window(layer), "scaled", "the window size KH*KW of the pool"),) \
                if layer.type in ("max_pool2d", "avg_pool2d") else batch
            scales += H.dropout_scales(layer)
            for kind, mg, ag, path in gradients:
                name = f"{where}: dE/d{kind}"
                hypotheses = H.fan_out_hypotheses(spec, layer, kind, x_i, params, a) \
                    + H.layer_hypotheses(layer, kind, x_i, params, up)
                yield Step(where, f"dE/d{kind}", mg, ag, lambda name=name: sites()[name], hypotheses, scales=scales,
                           own=_at(own, path), nudged=_at(nudged, path))
        yield from self._update_steps()

    def manual_steps(self, batches, buffers=None):
        """The manual side's optimizer steps from self.params, one per (x, target) of `batches` -> yields
        (E, grads, params); a dict `buffers` holds the batch norms' running statistics after each step, starting
        from what it holds (empty: torch's 0 and 1)."""
        return manual_net.training(self.spec, self.params, batches, buffers=buffers, **self._hooks())

    def reference_steps(self, batches, buffers=None):
        return reference_net.training(self.spec, self.params, batches, buffers, masks=self.masks)

    def _update_steps(self):
        spec, params, x, target = self.spec, self.params, self.x, self.target
        if not params:  # nothing to update: a network of parameter-free layers
            return
        trajectory = [params | reference_net.initial_buffers(spec, params)] + [
            reference_net.train(spec, params, x, target, k, self.masks)[1] for k in range(1, self.update_steps + 1)]
        # step j's gradients and every layer's input (autograd's, from the parameters before it, its masks)
        at = cache(lambda j: reference_net.run(spec, trajectory[j - 1], x, target, self.masks(j - 1, len(x))))
        gradients = cache(lambda j: at(j)["param_grads"])
        inputs = cache(lambda j: at(j)["outputs"])
        for k in range(1, self.update_steps + 1):
            _, mine = self._manual_train(k)
            for layer, kind, key in self._parameters():
                yield Step(_where(layer), f"{kind} after step {k}", mine[key], trajectory[k][key],
                           hypotheses=H.optimizer_hypotheses(spec, gradients, params, k, key),
                           before=trajectory[k - 1][key], steps=k)
            for layer, name, key in self._buffers():
                j = layer.inputs[0]
                seen = [x if j < 0 else inputs(step)[j] for step in range(1, k + 1)]  # the batch norm's inputs
                yield Step(_where(layer), f"{name} after step {k}", mine[key], trajectory[k][key],
                           hypotheses=H.running_hypotheses(layer, name, seen), before=trajectory[k - 1][key],
                           steps=k)

    def _parameters(self):
        """(layer, kind, key) of every parameter, from the last layer back (the order of the updates' rows)."""
        return [(layer, kind, f"{layer.index}.{kind}") for layer in reversed(self.spec.layers)
                for kind in layer.param_shapes()]

    def _buffers(self):
        """(layer, name, key) of every batch norm's running statistics, from the last layer back."""
        return [(layer, name, f"{layer.index}.{name}") for layer in reversed(self.spec.layers)
                if layer.type in BATCH_NORMS for name in reference_net.BUFFERS]

    def training(self, manual=True):
        """The training run's Steps; manual=False: autograd's run on both sides (the float64 witness's)."""
        if not self.params:  # nothing trains: the loss stays where the walk compared it
            return []
        ref = self.reference_training(self.params)
        return self._training_steps(*(self._manual_train(self.steps) if manual else ref), *ref)

    def reference_training(self, params):
        return reference_net.train(self.spec, params, self.x, self.target, self.steps, self.masks)

    def lockstep(self, k):
        """Manual's first k steps judged one at a time from manual's own parameters: at each, manual's loss,
        gradients and running statistics against autograd's at the same parameters, and manual's parameters after
        it against torch's optimizer stepping with manual's gradients -> the reason as text where every one agrees
        (a run that parts from autograd's only by rounding the optimizer amplifies, e.g. Adam dividing a gradient
        that is 0 but for rounding by its eps), "" where one differs (crosscheck.check)."""
        if k not in self._locksteps:
            self._locksteps[k] = self._lockstep(k)
        return self._locksteps[k]

    def _lockstep(self, k):
        spec, x, target = self.spec, self.x, self.target
        dtype = DTYPES[self.dtype]
        run, params, buffers, kept = [], self.params, manual_net.initial_buffers(spec, dtype), {}
        # called for a row that compared numbers: the same k steps ran, no hook broke the chain
        for E, grads, after in manual_net.training(spec, params, itertools.repeat((x, target), k), **self._hooks(),
                                                   buffers=kept):
            run.append((params, buffers, grads, E, after, dict(kept)))
            params, buffers = after, dict(kept)
        reference = reference_net.lockstep(spec, [(p, b, g) for p, b, g, *_ in run], x, target, self.masks)
        decided = []  # the steps whose gradients agree only at manual's own forward values
        for step, ((params, buffers, grads, E, after, kept), (ref_E, ref_grads, ref_kept, ref_after)) in enumerate(
                zip(run, reference, strict=True)):
            pairs = [(E, ref_E)] + [(kept[n], ref_kept[n]) for n in ref_kept] \
                + [(after[n], ref_after[n]) for n in ref_after]
            if not self._agree(pairs):
                return ""
            if not self._gradients_agree(step, params, buffers, grads, ref_grads):
                if not self._agree_at_own_values(step, params, buffers, grads):
                    return ""
                decided.append(step + 1)
        reason = (f"steps 1..{k} agree one at a time from manual's own parameters (the loss, every gradient and "
                  f"running statistic at them, and torch's {spec.optimizer.type} stepping with manual's gradients): "
                  "the runs part by rounding the optimizer amplifies")
        if decided:
            reason += (f"; at step{'s' * (len(decided) > 1)} {', '.join(map(str, decided))} a max or a kink "
                       "decided the other way under rounding: every layer's output agrees, and every gradient agrees "
                       "with autograd's taken at manual's own forward values")
        return reason

    def _at_own_values(self, params, outputs, autograd_outputs, masks):
        """Autograd's run (reference.network.run) taken at manual's own forward values `outputs`, None where a
        layer's output differs from autograd's `autograd_outputs` (a forward that differs excuses nothing)."""
        if not self._agree(zip(outputs, autograd_outputs, strict=True)):
            return None
        return reference_net.run(self.spec, params, self.x, self.target, masks, values=outputs)

    def _nudged_run(self, masks, j, params=None):
        """Autograd's run j with every parameter, the input (not token ids) and a target of values (not labels) nudged
        by one rounding, each drawn from (seed, j, k): how far autograd's own values move with their inputs' last bit
        (crosscheck.check.judge's float64 second judge, crosscheck.tolerances.NUDGES runs). params: a lockstep step's
        (default: the subject's); running statistics play no part in a training forward."""
        dtype = DTYPES[self.dtype]
        params = nudge(self.params if params is None else params, (self.seed, j, 0), dtype)
        x = self.x if self.spec.indexed else nudge({"x": self.x}, (self.seed, j, 1), dtype)["x"]
        target = nudge({"target": self.target}, (self.seed, j, 2), dtype)["target"] \
            if np.issubdtype(self.target.dtype, np.floating) else self.target
        return reference_net.run(self.spec, params, x, target, masks)

    def _agree(self, pairs):
        return all(compare("", m, a, self.dtype).passed for m, a in pairs)

    def _gradients_agree(self, step, params, buffers, grads, ref_grads):
        """Whether manual's gradients at a lockstep's step agree with autograd's as the walk judges them: by the
        table, or in float32 by the float64 witness, autograd in float64 at the same parameters and batch (fresh seed
        base 763694 on an AVX2 machine: an attention layer's in_proj gradients 2.1e-6 off, as in the walk, where the
        witness passes them, while a step that cancels, 0.1 - 0.05 * 1.9, took the update rows past the table), or
        in float64 by the nudged runs at the step's parameters (fresh seed base 218882: a transposed conv's bias in
        front of a layer norm has a gradient that is 0 but for rounding, which Adam divides by its eps)."""
        if self._agree([(grads[n], ref_grads[n]) for n in ref_grads]):
            return True
        masks = self.masks(step, len(self.x))
        if self.dtype == "float64":
            nudged = cache(lambda j: self._nudged_run(masks, j, params)["param_grads"])
            return all(compare(n, grads[n], ref_grads[n], self.dtype).passed
                       or within_nudges(grads[n], ref_grads[n], lambda j, n=n: nudged(j)[n], tolerance_for(self.dtype))
                       for n in ref_grads)
        w = cache(lambda: reference_net.run(self.spec, _float64(params | buffers), _float64(self.x),
                                            _float64(self.target), masks)["param_grads"])
        return all(compare(n, grads[n], ref_grads[n], self.dtype, witness=lambda n=n: w()[n]).passed
                   for n in ref_grads)

    def _agree_at_own_values(self, step, params, buffers, grads):
        """Whether a step whose gradients differ from autograd's is manual deciding a max, a tie or a ReLU at 0 the
        other way on values that differ only by rounding: every layer's output agrees with autograd's forward,
        and manual's gradients agree with autograd's taken through manual's own outputs (Graph.forward's values)."""
        spec, x, target, hooks = self.spec, self.x, self.target, self._hooks()
        masks = self.masks(step, len(x))
        mine = manual_net.run(spec, params, x, target, hooks["layer_backward"], hooks["layer_forward"],
                              hooks["accumulate"], masks)
        own = self._at_own_values(params | buffers, mine.outputs,
                                  reference_net.run(spec, params | buffers, x, target, masks)["outputs"], masks)
        return own is not None and self._agree([(grads[n], own["param_grads"][n]) for n in own["param_grads"]])

    def witnesses(self):
        """Autograd in float64 on this subject's own values, by quantity name -> {name: value}: float32's witness
        (crosscheck.tolerances)."""
        data = (_float64(self.x), _float64(self.target), _float64(self.params))
        return _witnesses(NetworkSubject(self.spec, self.seed, "float64", self.steps, data=data))

    def _training_steps(self, losses, final, ref_losses, ref_final):
        k = self.steps
        return [Step("loss", f"E at steps 1..{k}", losses, ref_losses, steps=k)] + [
            Step(_where(layer), f"{kind} after {k} steps", final[key], ref_final[key], steps=k)
            for layer, kind, key in self._parameters() + self._buffers()]


def _at(run, path):
    """(*args) -> the value at `path` (keys, then indices) of the reference run `run(*args)` returns (None where it
    returns None), for Step's own= (no args) and nudged= (the run j); None where there is no such run."""
    if run is None:
        return None
    return lambda *args: None if run(*args) is None else reduce(operator.getitem, path, run(*args))


def _where(layer):
    return f"{layer.index} {layer.type}"


def wobble(subject):
    """How far autograd's own training run moves when every parameter is nudged by one rounding error -> the
    training Steps of the nudged run against the plain run. A stable run stays within the tolerance; a chaotic
    one (too large a learning rate) does not, and then no comparison of training runs can tell a wrong gradient
    from rounding."""
    nudged = nudge(subject.params, subject.seed, DTYPES[subject.dtype])
    return subject._training_steps(*subject.reference_training(nudged), *subject.reference_training(subject.params))
