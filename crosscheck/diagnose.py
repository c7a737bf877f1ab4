"""Localization and classification: the first quantity where the manual side leaves autograd, and what kind of
mistake it is.

A walk lists the quantities in the order the computation makes them: the forward values and the error; the
backward pass from the loss back to the first layer (the seed network in the slides' order, dE/dO, dO/dZ2,
dE/dZ2, dE/dW, dE/db, dE/dH1, dH1/dZ1, dE/dZ1, dE/df; a described network layer by layer from the last, each
layer's input gradient then its parameter gradients); then the parameters after each SGD step. ``diagnose``
compares them in turn (crosscheck.compare, the dtype's tolerance) and stops at the first that differs. There it
tests hypotheses on the manual and autograd arrays, and on the cached forward values where one needs them: a
flipped sign, a transpose, a flipped kernel, padding, a missing or misplaced activation derivative, a stride or
dilation left out, a pool or loss mistake, a kink convention (finite differences find a kink at every element
that differs), a constant factor (the batch size N: a wrong batch reduction), an update of the wrong sign, a
momentum mistake. Finite differences (crosscheck.numerical) say which side they support and give the third
value of the worst elements.

A module given to ``crosscheck diagnose --module FILE`` follows one of two conventions (``load_module``):

    # the seed network (manual.seed_network's steps "E", "O", "Z2", "H1", "Z1")
    LAYER_BACKWARD = {"Z1": my_conv_backward}     # backward(dout, cache[, input_grad]) as manual.layers'
    SGD_STEP = my_sgd_step                        # optional: (params, grads, lr) -> params
    CASE = {"input_shape": [6, 6], "reduction": "mean"}   # optional: crosscheck.seed_check.SeedCase fields

    # a described network (netdesc.description): SPEC is the description (a dict) or the path of a .toml / .json file,
    # relative to the module's folder
    SPEC = "../small3conv.toml"
    LAYER_BACKWARD = {3: my_conv_backward, "loss": my_loss_backward}   # by layer index, as manual.network's
    LAYER_FORWARD = {3: my_conv_forward}          # optional: forward(x, layer params, options) -> (out, cache)
    OPTIMIZER_STEP = my_sgd_step                  # optional: manual.optim.sgd_step's signature
    INPUTS = my_inputs                            # optional: (spec, dtype, seed) -> (x, target)

examples/diagnose/ holds one module of each kind.
"""

import importlib.util
import pathlib
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cache

import numpy as np
import torch
from torch.nn import functional as TF

import netdesc.inputs
import netdesc.seed
from crosscheck import numerical, verify
from crosscheck.catalogue import layers as wrong_layers
from crosscheck.catalogue import seed as wrong
from crosscheck.compare import ManualFailure, compare, excess
from crosscheck.seed_check import FORWARD, SeedCase, slide_name
from crosscheck.tolerances import tolerance_for
from manual import network as manual_net
from manual import optim
from manual import seed_network as manual_seed
from netdesc.checks import InputError
from netdesc.description import load_spec, parse_spec
from reference import network as reference_net
from reference import seed_network as reference_seed

TOP_K = 5
UPDATE_STEPS = 2  # a described network's parameters after steps 1 and 2: a momentum buffer first matters at step 2
KINK_PROBES = 64  # the worst differing elements probed for a kink
WIDTH = 100  # of the report's lines

CLASSES = {
    "sign": "sign flipped",
    "transposed": "transposed",
    "kernel-flipped": "kernel flipped",
    "padding": "padding mishandled",
    "activation-missing": "activation derivative missing",
    "activation-wrong-point": "activation derivative taken at the wrong point",
    "activation-twice": "activation derivative applied twice",
    "stride": "stride ignored in the backward",
    "dilation": "dilation ignored",
    "window": "pool gradient sent to the whole window",
    "one-hot": "one-hot term left out",
    "kink": "a convention at a kink",
    "batch-reduction": "wrong batch reduction",
    "scaled": "scaled by a constant",
    "update-sign": "update applied with the wrong sign",
    "momentum": "momentum buffer mistake",
    "weight-decay": "weight decay mishandled",
    "unclassified": "no hypothesis fits",
}


# --- results -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hypothesis:
    """A class and the pairs (actual, expected) that agree if it holds: pairs(m, a) -> iterable, float64 arrays."""

    kind: str
    detail: str
    pairs: Callable


@dataclass(frozen=True)
class Step:
    """One quantity of a walk. site: () -> numerical.Site (gradients only); before: an update's parameter
    before the step; scales: (value, kind, meaning) a fitted constant is read against."""

    name: str
    manual: object
    autograd: object
    site: Callable | None = None
    hypotheses: tuple = ()
    before: object = None
    scales: tuple = ()


@dataclass(frozen=True)
class Classification:
    kind: str  # a key of CLASSES
    detail: str
    constant: float | None = None  # c of manual = c * autograd


@dataclass(frozen=True)
class Element:
    index: tuple
    manual: float
    autograd: float
    numerical: float | None = None
    kink: bool | None = None


def _wrap(text, indent=""):
    """Lines of at most WIDTH characters, the continuation lines indented two more."""
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ")


def _finite(value):
    return None if isinstance(value, float) and not np.isfinite(value) else value


@dataclass(frozen=True)
class Diagnosis:
    """The first quantity where manual leaves autograd (None: everything agrees), its class, its worst elements
    and what finite differences say there."""

    subject: str
    dtype: str
    checked: tuple  # the names compared, in order, up to and including the first that differs
    first: object = None  # its Comparison
    classification: Classification | None = None
    worst: tuple = ()
    numerical: object = None  # numerical.Verdict
    injected: str = ""

    @property
    def wrong(self):
        return self.first is not None

    @property
    def quantity(self):
        return self.first.name if self.wrong else None

    def as_dict(self):
        return {
            "subject": self.subject, "dtype": self.dtype, "injected": self.injected or None, "wrong": self.wrong,
            "quantity": self.quantity, "checked": list(self.checked),
            "comparison": self.first.as_dict() if self.wrong else None,
            "class": None if self.classification is None else asdict(self.classification),
            "worst": [{k: _finite(v) for k, v in asdict(e).items()} | {"index": list(e.index)} for e in self.worst],
            "numerical": None if self.numerical is None else self.numerical.as_dict(),
        }

    def report(self):
        """The diagnosis as text, a few short lines per part."""
        lines = [f"diagnosis: {self.subject}, {self.dtype}"]
        if self.injected:
            lines += _wrap(f"injected: {self.injected}")
        if not self.wrong:
            lines.append(f"no diagnosis: all {len(self.checked)} quantities agree with autograd "
                         "(forward, backward from the loss, updates)")
            return "\n".join(lines)
        tol, r = tolerance_for(self.dtype), self.first
        errors = r.problem or f"max abs err {r.max_abs_error:.3e}, max rel err {r.max_rel_error:.3e} " \
            f"(allowed {tol.atol:g} + {tol.rtol:g} * |autograd|)"
        lines += [
            f"walked {len(self.checked)} quantities in the order the computation makes them; "
            f"the first {len(self.checked) - 1} agree",
            "",
            f"first wrong quantity: {self.quantity}, shape {r.shape}",
            *_wrap(errors, "  "),
            f"class: {CLASSES[self.classification.kind]} ({self.classification.kind})",
            *_wrap(self.classification.detail, "  "),
        ]
        if self.numerical is not None:
            lines += self._numerical_lines()
        if self.worst:
            lines += self._worst_lines()
        return "\n".join(lines)

    def _numerical_lines(self):
        v = self.numerical
        probes = "every element" if v.mode == "elements" else f"{v.probes} random directions"
        lines = ["", f"finite differences (float64, central, eps {numerical.EPS:g} * max(1, |x|), {probes}):",
                 *_wrap(v.detail, "  ")]
        for side, result in (("manual", v.vs_manual), ("autograd", v.vs_autograd)):
            if result is not None:
                state = "agrees" if result.passed else "differs"
                error = result.problem or f"max abs err {result.max_abs_error:.2e}, " \
                    f"max rel err {result.max_rel_error:.2e}"
                lines += _wrap(f"{side:<8} vs finite differences: {state} ({error})", "  ")
        if v.kinks:
            lines.append(f"  {v.kinks} of {v.probes} probes straddle a kink")
        return lines

    def _worst_lines(self):
        lines = ["", f"worst {len(self.worst)} elements:",
                 f"  {'index':<16} {'manual':>13} {'autograd':>13} {'numerical':>13}"]
        for e in self.worst:
            fd = "n/a" if e.numerical is None else f"{e.numerical:13.6g}" + (" kink" if e.kink else "")
            lines.append(f"  {str(e.index):<16} {e.manual:13.6g} {e.autograd:13.6g} {fd:>13}")
        return lines


# --- hypotheses ----------------------------------------------------------------------------------------

def _t(array):
    return torch.from_numpy(np.array(array, dtype=np.float64))


def _vjp(fn, primal, upstream):
    """Autograd's vector-Jacobian product of fn at primal with upstream -> float64 array."""
    # grad of sum(fn * upstream), not torch.func.vjp (imports torch._dynamo) nor grad_outputs= (imports sympy)
    primal = _t(primal).requires_grad_()
    return torch.autograd.grad((fn(primal) * _t(upstream)).sum(), primal)[0].numpy()


def _single(candidate):
    """pairs for 'manual equals this candidate' (candidate: a -> array, or None where it does not apply)."""
    def pairs(m, a):
        c = candidate(a)
        return [] if c is None else [(m, c)]
    return pairs


def _transposes(m, a):
    if a.ndim < 2:
        return []
    candidates = [a.T, np.ascontiguousarray(a.T).reshape(a.shape)]
    if a.ndim > 2:
        candidates += [a.swapaxes(-1, -2), a.swapaxes(0, 1)]
    return [(m, c) for c in candidates if c.shape == m.shape]


def _not_cropped(m, a):
    if m.ndim != a.ndim or m.ndim < 3 or m.shape[:-2] != a.shape[:-2]:
        return []
    (dh, dw), (H, W) = np.subtract(m.shape[-2:], a.shape[-2:]), a.shape[-2:]
    if min(dh, dw) < 0 or dh % 2 or dw % 2 or dh + dw == 0:
        return []
    return [(m[..., dh // 2:dh // 2 + H, dw // 2:dw // 2 + W], a)]


def _shifted(m, a):
    """m[..., i + dy, j + dx] = a[..., i, j] on the overlap, for shifts up to 2 that keep most of a's mass."""
    if m.shape != a.shape or a.ndim < 3:
        return []
    H, W = a.shape[-2:]
    total = np.abs(a).sum()
    pairs = []
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            if (dy, dx) == (0, 0) or abs(dy) >= H or abs(dx) >= W:
                continue
            ms = m[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)]
            As = a[..., max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
            if np.abs(As).sum() >= 0.5 * total:
                pairs.append((ms, As))
    return pairs


GENERIC = (
    Hypothesis("sign", "manual = -autograd", _single(lambda a: -a)),
    Hypothesis("transposed", "manual = autograd transposed (or its values laid out transposed)", _transposes),
    Hypothesis("kernel-flipped", "manual = autograd with both kernel axes reversed, a[..., ::-1, ::-1]",
               _single(lambda a: a[..., ::-1, ::-1] if a.ndim >= 2 else None)),
    Hypothesis("padding", "padding not cropped: the centre of manual's padded grid equals autograd", _not_cropped),
    Hypothesis("padding", "manual = autograd shifted: the padding cropped at the wrong side", _shifted),
)


def _activation(fn, z, upstream):
    """Hypotheses on dE/dz for out = fn(z) elementwise, upstream = autograd's dE/d(out) in z's shape."""
    def local(at):
        return _vjp(fn, at, np.ones(np.shape(at)))
    return (
        Hypothesis("activation-missing", "manual = dE/d(output): the local derivative left out",
                   _single(lambda a: upstream)),
        Hypothesis("activation-twice", "manual = autograd * the local derivative: applied twice",
                   _single(lambda a: a * local(z))),
        Hypothesis("activation-wrong-point", "manual = dE/d(output) * the derivative taken at the output instead "
                   "of at the input", _single(lambda a: upstream * local(fn(_t(z)).numpy()))),
    )


def _flipped_upstream(conv, w, upstream):
    """dE/dw with dE/d(output) slid flipped: conv(w) the layer's output as a function of its weight."""
    return Hypothesis("kernel-flipped", "manual slides dE/d(output) flipped over the input: a true convolution "
                      "instead of the cross-correlation", _single(lambda a: _vjp(conv, w, upstream[..., ::-1, ::-1])))


ACTIVATIONS = {
    "sigmoid": lambda o: torch.sigmoid,
    "tanh": lambda o: torch.tanh,
    "relu": lambda o: torch.relu,
    "leaky_relu": lambda o: lambda t: TF.leaky_relu(t, o["negative_slope"]),
}


def _conv_hypotheses(layer, x, params, upstream, kind):
    """Hypotheses on a conv2d layer's dE/dinput (the stride left out) or dE/dweight (the dilation left out,
    dE/d(output) slid flipped); x its input, upstream autograd's dE/d(output)."""
    o, w = layer.options, params[f"{layer.index}.weight"]
    (sh, sw), (ph, pw), (dh, dw) = o["stride"], o["padding"], o["dilation"]
    (N, C, H, W), (KH, KW), (OH, OW) = x.shape, w.shape[2:], upstream.shape[2:]

    def stride_ignored(a):
        small = (N, C, OH + dh * (KH - 1), OW + dw * (KW - 1))  # the input a stride-1 conv maps to OH x OW
        dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
        dxp[:, :, :small[2], :small[3]] = _vjp(lambda s: TF.conv2d(s, _t(w), None, 1, 0, (dh, dw)), np.zeros(small),
                                               upstream)
        return dxp[:, :, ph:ph + H, pw:pw + W]

    def dilation_ignored(a):
        crop = TF.pad(_t(x), (pw, pw, ph, ph))[:, :, :(OH - 1) * sh + KH, :(OW - 1) * sw + KW]
        return _vjp(lambda weight: TF.conv2d(crop, weight, None, (sh, sw)), w, upstream)

    def conv(weight):
        return TF.conv2d(_t(x), weight, None, (sh, sw), (ph, pw), (dh, dw))
    hypotheses = []
    if kind == "input" and (sh, sw) != (1, 1):
        hypotheses.append(Hypothesis("stride", f"manual = the input gradient of a stride-1 conv: the stride {(sh, sw)} "
                                     "left out where dE/d(output) is scattered back", _single(stride_ignored)))
    if kind == "weight" and (dh, dw) != (1, 1):
        hypotheses.append(Hypothesis("dilation", f"manual = dE/dweight of the undilated conv: the dilation {(dh, dw)} "
                                     "left out", _single(dilation_ignored)))
    if kind == "weight":
        hypotheses.append(_flipped_upstream(conv, w, upstream))
    return tuple(hypotheses)


def _pool_hypotheses(layer, x, upstream):
    o = layer.options
    size = o["kernel_size"][0] * o["kernel_size"][1]

    def window_sum(t):
        return TF.avg_pool2d(t, o["kernel_size"], o["stride"], o["padding"]) * size
    return (Hypothesis("window", "manual = the gradient of the window's sum: dE/d(output) sent to every element of "
                       "the window, not only to its maximum", _single(lambda a: _vjp(window_sum, x, upstream))),)


def _layer_hypotheses(layer, kind, x, params, upstream):
    """Hypotheses on one gradient of a described network's layer (kind "input", "weight" or "bias")."""
    if layer.type in ACTIVATIONS:
        return _activation(ACTIVATIONS[layer.type](layer.options), x, upstream)
    if layer.type == "conv2d":
        return _conv_hypotheses(layer, x, params, upstream, kind)
    if layer.type == "max_pool2d":
        return _pool_hypotheses(layer, x, upstream)
    return ()


def _loss_hypotheses(spec, pred, target):
    if spec.loss.type != "softmax_cross_entropy":
        return ()
    scale = len(target) if spec.loss.reduction == "mean" else 1
    return (Hypothesis("one-hot", "manual = softmax / N: the one-hot term of softmax - onehot(labels) left out",
                       _single(lambda a: _vjp(lambda z: torch.logsumexp(z, 1).sum() / scale, pred, 1.0))),)


def _batch_scales(N):
    if N == 1:
        return ()
    return ((N, "batch-reduction", "the batch size N: a sum where the mean was meant"),
            (1 / N, "batch-reduction", f"1/N for the batch size N = {N}: a mean where the sum was meant"))


def _agree(actual, expected, tol):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return actual.shape == expected.shape and compare("", actual, expected, np.float64, tol).passed


def _scaled(m, a, tol, scales, what="manual"):
    """manual = c * autograd for one constant c, read against the step's known scales -> Classification or None."""
    aa = float(np.vdot(a, a))
    if m.shape != a.shape or aa == 0:
        return None
    c = float(np.vdot(m, a)) / aa
    if not _agree(m, c * a, tol):
        return None
    for value, kind, meaning in scales:
        if abs(c - value) <= 10 * tol.rtol * abs(value):
            return Classification(kind, f"{what} = c * autograd with c = {c:.7g}, {meaning}", c)
    return Classification("scaled", f"{what} = c * autograd with c = {c:.7g}", c)


def classify(step, m, a, dtype, kinked=False):
    """Test the hypotheses in turn -> the first Classification that fits. kinked: finite differences found a
    kink at every element that differs."""
    tol = tolerance_for(dtype)
    if isinstance(m, ManualFailure):
        return Classification("unclassified", f"the manual side failed: {m}")
    m, a = np.asarray(m, np.float64), np.asarray(a, np.float64)
    if step.before is not None:
        return _classify_update(step, m, a, tol)
    for h in GENERIC + tuple(step.hypotheses):
        if any(_agree(actual, expected, tol) for actual, expected in h.pairs(m, a)):
            return Classification(h.kind, h.detail)
    if kinked:
        return Classification("kink", "manual and autograd differ only where finite differences find a kink (ReLU "
                              "at 0, a max-pool tie): a different convention at a non-differentiable point")
    return _scaled(m, a, tol, step.scales) or Classification(
        "unclassified", "no hypothesis fits: not a sign, a transpose, a flip, a constant factor or a known "
        "layer mistake")


def _classify_update(step, m, a, tol):
    before = np.asarray(step.before, np.float64)
    dm, da = m - before, a - before
    if _agree(dm, -da, tol):
        return Classification("update-sign", "manual moved the parameter by +lr * g: its step = -autograd's step")
    for h in step.hypotheses:
        if any(_agree(actual, expected, tol) for actual, expected in h.pairs(m, a)):
            return Classification(h.kind, h.detail)
    return _scaled(dm, da, tol, (), "manual's step") or Classification(
        "unclassified", "no hypothesis fits: not the sign of the step, a known SGD mistake or a scaled step")


# --- the walks -----------------------------------------------------------------------------------------

def seed_walk(case, layer_backward=None, sgd_step=None):
    """The seed network's quantities in order (forward, the slides' backward, W, b, f after one SGD step)."""
    X, Y, params = case.inputs()
    values, c = manual_seed.forward(X, params, Y, case.reduction)
    grads = manual_seed.backward(c, layer_backward)
    ref_values, ref_grads = reference_seed.run(X, params, Y, case.reduction)
    sites = cache(lambda: numerical.seed_sites(X, Y, params, case.reduction))
    site = {k: (lambda k=k: sites()[k]) for k in ("dE_dO", "dO_dZ2", "dE_dZ2", "dE_dW", "dE_db", "dE_dH1", "dH1_dZ1",
                                                    "dE_dZ1", "dE_df")}
    Z1 = np.asarray(ref_values["Z1"], np.float64)
    dE_dH1 = np.asarray(ref_grads["dE_dH1"], np.float64).reshape(Z1.shape)

    def conv(f):
        return TF.conv2d(_t(X)[:, None], f[None, None])[:, 0]
    hypotheses = {
        "dE_dZ2": _activation(torch.sigmoid, ref_values["Z2"], ref_grads["dE_dO"]),
        "dE_dZ1": _activation(torch.sigmoid, Z1, dE_dH1),
        "dE_df": (_flipped_upstream(conv, params["f"], np.asarray(ref_grads["dE_dZ1"], np.float64)),),
    }
    N = X.shape[0]
    yield from (Step(k, values[k], ref_values[k]) for k in FORWARD)
    for k in ("dE_dO", "dO_dZ2", "dE_dZ2", "dE_dW", "dE_db", "dE_dH1", "dH1_dZ1", "dE_dZ1", "dE_df"):
        yield Step(slide_name(k), grads[k], ref_grads[k], site[k], hypotheses.get(k, ()), scales=_batch_scales(N))
    try:
        updated = (sgd_step or manual_seed.sgd_step)(params, grads, case.lr)
    except InputError as err:  # a gradient of the wrong shape: a mismatch to report, not a crash
        updated = dict.fromkeys(manual_seed.PARAM_NAMES, ManualFailure(str(err)))
    _, ref_updated = reference_seed.train(X, Y, params, case.lr, 1, case.reduction)
    for k in ("W", "b", "f"):
        yield Step(f"{k} after step 1", updated[k], ref_updated[k], before=params[k])


def _optimizer_hypotheses(spec, gradients, params, k, key):
    """SGD variants replayed over autograd's gradients of steps 1..k (gradients: j -> grads at step j)."""
    s = spec.optimizer.settings()

    def replay(zero_start=False, fresh=False, **changes):
        def candidate(a):
            p, state = params, {n: np.zeros_like(v) for n, v in params.items()} if zero_start else {}
            for j in range(1, k + 1):
                p, state = optim.sgd_step(p, gradients(j), {} if fresh else state, **(s | changes))
            return p[key]
        return _single(candidate)
    variants = []
    if s["momentum"] and s["dampening"]:
        variants.append(Hypothesis("momentum", "the buffer started at zero: step 1 moved by (1 - dampening) g "
                                   "instead of g (torch: buf = g on the first step)", replay(zero_start=True)))
    if s["nesterov"]:
        variants.append(Hypothesis("momentum", "Nesterov's look-ahead g + momentum * buf left out: the update used "
                                   "buf, plain momentum", replay(nesterov=False)))
    if s["momentum"]:
        variants.append(Hypothesis("momentum", "the momentum buffer not carried from one step to the next",
                                   replay(fresh=True)))
    if s["weight_decay"]:
        variants.append(Hypothesis("weight-decay", "the weight decay term left out of the gradient",
                                   replay(weight_decay=0.0)))
    return tuple(variants)


def stack_walk(spec, seed=0, dtype="float64", layer_backward=None, layer_forward=None, optimizer_step=None,
               inputs=None, steps=UPDATE_STEPS):
    """A described network's quantities in order: every layer's output, E, dE/d(last output), then per layer
    from the last its input gradient and parameter gradients; then the parameters after SGD steps 1..`steps`."""
    seed, np_dtype, _ = verify.check_options(spec, seed, dtype)
    params = netdesc.inputs.init_params(spec, np_dtype, seed)
    x, target = (inputs or netdesc.inputs.random_batch)(spec, np_dtype, seed)
    m = manual_net.run(spec, params, x, target, layer_backward, layer_forward)
    a = reference_net.run(spec, params, x, target)
    sites = cache(lambda: numerical.network_sites(spec, params, x, target))
    ins = [x, *a["outputs"][:-1]]
    ups = [*a["input_grads"][1:], a["loss_grad"]]  # autograd's dE/d(output of layer i)
    batch = _batch_scales(spec.batch_size)
    for layer in spec.layers:
        yield Step(f"{layer.index} {layer.type}: output", m.outputs[layer.index], a["outputs"][layer.index])
    yield Step("loss: E", m.loss, a["loss"])
    yield Step("loss: dE/dinput", m.loss_grad, a["loss_grad"], lambda: sites()["loss: dE/dinput"],
               _loss_hypotheses(spec, a["outputs"][-1], target), scales=batch)
    for layer in reversed(spec.layers):
        i, where = layer.index, f"{layer.index} {layer.type}"
        x_i, up = np.asarray(ins[i], np.float64), np.asarray(ups[i], np.float64)
        gradients = [("input", m.input_grads[i], a["input_grads"][i])]
        gradients += [(kind, m.param_grads[f"{i}.{kind}"], a["param_grads"][f"{i}.{kind}"])
                      for kind in layer.param_shapes()]
        for kind, mg, ag in gradients:
            name = f"{where}: dE/d{kind}"
            scales = batch + ((_window(layer), "scaled", "the window size KH*KW of the pool"),) \
                if layer.type.endswith("pool2d") else batch
            yield Step(name, mg, ag, lambda name=name: sites()[name],
                       _layer_hypotheses(layer, kind, x_i, params, up), scales=scales)
    yield from _update_steps(spec, params, x, target, steps, layer_backward, layer_forward, optimizer_step)


def _window(layer):
    return layer.options["kernel_size"][0] * layer.options["kernel_size"][1]


def _update_steps(spec, params, x, target, steps, layer_backward, layer_forward, optimizer_step):
    trajectory = [params] + [reference_net.train(spec, params, x, target, k)[1] for k in range(1, steps + 1)]
    gradients = cache(lambda j: reference_net.run(spec, trajectory[j - 1], x, target)["param_grads"])
    for k in range(1, steps + 1):
        _, mine = manual_net.train(spec, params, x, target, k, layer_backward, layer_forward, optimizer_step)
        for layer in reversed(spec.layers):
            for kind in layer.param_shapes():
                key = f"{layer.index}.{kind}"
                yield Step(f"{layer.index} {layer.type}: {kind} after step {k}", mine[key], trajectory[k][key],
                           hypotheses=_optimizer_hypotheses(spec, gradients, params, k, key),
                           before=trajectory[k - 1][key])


# --- the diagnosis ---------------------------------------------------------------------------------------

def diagnose(subject, walk, dtype, top=TOP_K, injected=""):
    """Compare the walk's quantities in order; at the first that differs, classify it -> Diagnosis."""
    checked = []
    for step in walk:
        checked.append(step.name)
        result = compare(step.name, step.manual, step.autograd, dtype)
        if not result.passed:
            return _diagnosis(Diagnosis(subject, dtype, tuple(checked), result, injected=injected), step, top)
    return Diagnosis(subject, dtype, tuple(checked), injected=injected)


def _diagnosis(d, step, top):
    m, a = step.manual, np.asarray(step.autograd)
    shaped = not isinstance(m, ManualFailure) and np.shape(m) == a.shape
    site = None if step.site is None else step.site()
    diffs = None if site is None else numerical.differences(site)
    d = replace(d, numerical=None if diffs is None else numerical.verdict(diffs, m, a, d.dtype))
    if shaped and d.first.problem:  # same shape, another dtype
        return replace(d, classification=Classification("unclassified", d.first.problem))
    if not shaped:
        return replace(d, classification=classify(step, m, a, d.dtype))
    ratio = np.nan_to_num(excess(m, a, tolerance_for(d.dtype)), nan=np.inf).reshape(-1)
    differing = np.argsort(-ratio, kind="stable")[: int((ratio > 1).sum())]
    probed = np.union1d(differing[:top], differing[:KINK_PROBES])
    central, kinks = _probe(site, diffs, probed)
    kinked = kinks is not None and bool(kinks.all())
    worst = tuple(_element(i, m, a, central, kinks, probed) for i in differing[:top])
    return replace(d, classification=classify(step, m, a, d.dtype, kinked), worst=worst)


def _probe(site, diffs, indices):
    """Central differences and kink flags at the flat indices (None, None without a site)."""
    if site is None:
        return None, None
    if diffs.mode == "elements":
        return diffs.central[indices], diffs.kinks[indices]
    probe = numerical.element_differences(site, indices)
    return probe.central, probe.kinks


def _element(i, m, a, central, kinks, probed):
    index = tuple(int(j) for j in np.unravel_index(i, a.shape))
    e = Element(index, float(np.asarray(m).reshape(-1)[i]), float(a.reshape(-1)[i]))
    if central is None:
        return e
    at = int(np.searchsorted(probed, i))
    return Element(e.index, e.manual, e.autograd, float(central[at]), bool(kinks[at]))


# --- the catalogue and user modules -----------------------------------------------------------------------

def catalogue():
    """Every catalogued wrong derivation: the seed network's (crosscheck.catalogue.seed), then the general layers'."""
    return [*wrong.SEED_CATALOGUE, *wrong_layers.STACK_CATALOGUE]


def find(name):
    """The catalogue entry called `name`; InputError listing the names otherwise."""
    for entry in catalogue():
        if entry.name == name:
            return entry
    raise InputError(f"--wrong: got {name!r}, needs one of {', '.join(e.name for e in catalogue())}")


def network_of(entry):
    """"seed" for an entry of the seed network, else the layer types of its described network."""
    if isinstance(entry, wrong.WrongDerivation):
        return "seed"
    return "-".join(layer["type"] for layer in entry.spec["layers"])


def expected_name(entry):
    """The first wrong quantity of an entry as diagnose names it."""
    return slide_name(entry.first_wrong) if isinstance(entry, wrong.WrongDerivation) else entry.first_wrong


def diagnose_entry(entry, dtype=None, seed=None, top=TOP_K):
    """Run a catalogue entry on its network -> Diagnosis."""
    dtype = dtype or entry.dtypes[0]
    injected = f"{entry.name} ({entry.description})"
    if isinstance(entry, wrong.WrongDerivation):
        fields = dict(entry.case) | {"dtype": dtype} | ({} if seed is None else {"seed": seed})
        return diagnose_seed(SeedCase(**fields), *_seed_parts(entry), top=top, injected=injected)
    spec = parse_spec(entry.spec, entry.name)
    return diagnose_stack(spec, seed or 0, dtype, entry.layer_backward, entry.layer_forward, entry.optimizer_step,
                          entry.inputs, top=top, injected=injected)


def _seed_parts(entry):
    if entry.step == "update":
        return {}, entry.backward
    return {entry.step: entry.backward}, None


def diagnose_seed(case, layer_backward=None, sgd_step=None, top=TOP_K, injected=""):
    return diagnose(f"seed network {case}", seed_walk(case, layer_backward, sgd_step), case.dtype, top, injected)


def diagnose_stack(spec, seed=0, dtype="float64", layer_backward=None, layer_forward=None, optimizer_step=None,
                   inputs=None, top=TOP_K, injected=""):
    walk = stack_walk(spec, seed, dtype, layer_backward, layer_forward, optimizer_step, inputs)
    return diagnose(f"network {spec.name}, seed {seed}", walk, dtype, top, injected)


SEED_STEPS = tuple(manual_seed.LAYER_BACKWARD)


def _callables(module, name, keys, where):
    table = getattr(module, name, {})
    if not isinstance(table, dict):
        raise InputError(f"{where}: {name} is a {type(table).__name__}, needs a dict of callables")
    for key, fn in table.items():
        if key not in keys:
            raise InputError(f"{where}: {name} has the key {key!r}, needs keys among {', '.join(map(repr, keys))}")
        if not callable(fn):
            raise InputError(f"{where}: {name}[{key!r}] is a {type(fn).__name__}, needs a function")
    return table


def _function(module, name, where):
    fn = getattr(module, name, None)
    if fn is not None and not callable(fn):
        raise InputError(f"{where}: {name} is a {type(fn).__name__}, needs a function")
    return fn


def load_module(path):
    """Import a user's module of backward overrides (the convention in this module's docstring)."""
    path = pathlib.Path(path)
    if path.suffix != ".py" or not path.is_file():
        raise InputError(f"--module: got {str(path)!r}, needs an existing .py file")
    spec = importlib.util.spec_from_file_location(f"crosscheck_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: whatever it raises is bad input, reported in one line
        raise InputError(f"{path}: importing it raised {type(err).__name__}: {err}") from None
    return module


def diagnose_module(path, dtype="float64", seed=None, top=TOP_K):
    """Run a user's module (see the module docstring) -> Diagnosis."""
    module = load_module(path)
    where = str(path)
    if not hasattr(module, "SPEC"):
        backward = _callables(module, "LAYER_BACKWARD", SEED_STEPS, where)
        fields = getattr(module, "CASE", {})
        if not isinstance(fields, dict):
            raise InputError(f"{where}: CASE is a {type(fields).__name__}, needs a dict of SeedCase fields")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        try:
            case = SeedCase(**(fields | {"dtype": dtype} | ({} if seed is None else {"seed": seed})))
        except TypeError as err:
            raise InputError(f"{where}: CASE: {err}") from None
        return diagnose_seed(case, backward, _function(module, "SGD_STEP", where), top, injected=where)
    raw = module.SPEC
    if isinstance(raw, dict):
        spec = parse_spec(raw, pathlib.Path(path).stem)
    else:  # a file, relative to the module's folder
        spec = load_spec(pathlib.Path(path).parent / raw)
    keys = [*range(len(spec.layers)), "loss"]
    return diagnose_stack(spec, seed or 0, dtype, _callables(module, "LAYER_BACKWARD", keys, where),
                          _callables(module, "LAYER_FORWARD", keys, where), _function(module, "OPTIMIZER_STEP", where),
                          _function(module, "INPUTS", where), top, injected=where)
