"""Every text and JSON the harness prints, in one place: a check's table (crosscheck.check.Result), a diagnosis
(crosscheck.diagnose.Diagnosis), the catalogue, and ``crosscheck explain``'s walk through the slides' derivation,
each value by hand and by autograd, side by side."""

import dataclasses
import inspect
import json
import pathlib
import textwrap

import numpy as np
import torch

from crosscheck import numerical
from crosscheck.compare import compare
from crosscheck.diagnose import inside_text, place_text, time_step_text
from crosscheck.hypotheses import CLASSES
from crosscheck.subjects import DTYPES, check_dtype, slide_name
from crosscheck.tolerances import tolerance_for
from manual import functional as F
from manual import seed_network
from netdesc.checks import InputError, ManualFailure
from netdesc.description import DROPOUTS
from reference import network as reference_net

WIDTH = 100  # of a diagnosis' lines


# --- a check's result ----------------------------------------------------------------------------------------

def bound(dtype):
    """The tolerance's inequality for `dtype`, every element of a row that agrees satisfies it."""
    tol = tolerance_for(dtype)
    return f"|manual - autograd| <= {tol.atol:g} + {tol.rtol:g} * |autograd|"


def rule(dtype):
    return f"pass when {bound(dtype)} ({dtype})"


def seed_header(subject):
    c = subject.case
    (H, W), (KH, KW) = c.input_shape, c.kernel_shape
    return [
        f"seed network: hand-derived NumPy vs PyTorch {torch.__version__} autograd",
        f"case {c}: X {H}x{W}, f {KH}x{KW}, n_out {c.n_out}, N {c.batch}, seed {c.seed}, {c.dtype}, "
        f"reduction {c.reduction}, lr {c.lr:g}, {c.steps} steps",
        rule(c.dtype),
    ]


def network_header(subject, source):
    spec, o = subject.spec, subject.spec.optimizer
    indices = [f"input: integer indices, read by {spec.layers[0]}; they have no gradient, so no dE/dinput row "
               "for it"] if spec.indexed else []
    dropouts = [layer for layer in spec.layers if layer.type in DROPOUTS]
    if dropouts:
        indices.append(f"dropout: training mode, a mask per step drawn from (seed {subject.seed}, step, layer index) "
                       f"and given to both sides ({', '.join(str(layer) for layer in dropouts)})")
    return [
        f"network {spec.name} ({source}): hand-derived NumPy vs PyTorch {torch.__version__} autograd",
        f"input {spec.input_shape} per sample, batch {spec.batch_size}, {len(spec.layers)} layers, "
        f"loss {spec.loss.type} ({spec.loss.reduction}), seed {subject.seed}, {subject.dtype}",
        *indices,
        optimizer_line(o, subject.steps),
        rule(subject.dtype),
    ]


OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
SCHEDULER_NAMES = {"step": "StepLR", "cosine": "CosineAnnealingLR"}


def _setting(name, value, words=True):
    """'weight decay 0.0005', 'nesterov false', 'betas (0.9, 0.999)': a setting as the header shows it (`words`:
    its name's underscores as spaces; T_max keeps its own)."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, tuple):
        text = f"({', '.join(f'{v:g}' for v in value)})"
    else:
        text = f"{value:g}"
    return f"{name.replace('_', ' ') if words else name} {text}"


def optimizer_line(o, steps):
    """'SGD lr 0.02, momentum 0.9, ..., 20 steps', with the scheduler after the steps if there is one."""
    line = f"{OPTIMIZER_NAMES[o.type]} {', '.join(_setting(k, v) for k, v in o.settings().items())}, {steps} steps"
    if o.scheduler is not None:
        options = o.scheduler.options.items()
        line += f", {SCHEDULER_NAMES[o.scheduler.type]} {', '.join(_setting(k, v, False) for k, v in options)}"
    return line


def table(header, result):
    """The header lines, the injected mistake, one row per quantity, the verdict and the chaos note -> text."""
    lines = list(header)
    if result.injected:
        lines.append(f"injected wrong derivation: {result.injected}")
    layered = any(row.where for row in result.rows)
    # the columns as wide as their longest entry, at least 16 and 22 (a transformer's "dE/dself_attn.in_proj_bias")
    w = max([16, *(len(row.where) for row in result.rows)])
    q = max([22, *(len(row.quantity) for row in result.rows)])
    label = (lambda r: f"{r.where:<{w}} {r.quantity:<{q}}") if layered else (lambda r: f"{r.quantity:<{q}}")
    heading = f"{'layer':<{w}} {'quantity':<{q}}" if layered else f"{'quantity':<{q}}"
    lines += ["", f"{heading} {'shape':<18} {'max abs err':>12} {'max rel err':>12}  result"]
    for row in result.rows:
        r = row.result
        errors = f"{'n/a':>12} {'n/a':>12}" if r.problem else f"{r.max_abs_error:>12.3e} {r.max_rel_error:>12.3e}"
        verdict = "unstable" if r.note else "ok" if r.passed else "MISMATCH"
        lines.append(f"{label(row)} {str(r.shape):<18} {errors}  {verdict}")
    lines.append("")
    n, failed, unstable = len(result.rows), result.failed, result.unstable
    if failed:
        lines.append(f"{len(failed)} of {n} quantities differ; the first: {failed[0].result.describe()}")
    elif unstable:
        lines.append(f"{n - len(unstable)} of {n} quantities agree; {len(unstable)} give no verdict")
        lines.append(f"training is chaotic: {unstable[0].result.note}, so the rows marked unstable give no verdict; "
                     "the one-step rows, the same update step by step, do. A smaller learning rate gives a training "
                     "verdict.")
    else:
        lines.append(f"all {n} quantities agree")
    witnessed = [row.result for row in result.rows if row.result.witnessed]
    if witnessed:
        # float32's float64 witness, (a training row, either dtype) the lockstep, or (a described network's gradient)
        # autograd at manual's own forward values or, in float64, at inputs nudged by one rounding: the text says which
        lines.append(f"{len(witnessed)} quantities agree by a second judge (the float64 witness, the nudged run, the "
                     "lockstep or manual's own forward values, docs/tolerances.md), not by the table alone; "
                     f"{witnessed[0].name}: {witnessed[0].witnessed}")
    return "\n".join(lines)


def as_json(result, **about):
    """The result as JSON: `about` (what was checked), the tolerance, the verdict and every row."""
    tol = tolerance_for(result.dtype)
    return json.dumps(about | {
        "subject": result.title, "dtype": result.dtype, "injected": result.injected or None,
        "tolerance": {"rtol": tol.rtol, "atol": tol.atol}, "passed": result.passed, "compared": len(result.rows),
        "quantities": [row.as_dict() for row in result.rows],
    }, indent=2, allow_nan=False)


# --- a diagnosis --------------------------------------------------------------------------------------------

def _wrap(text, indent=""):
    """Lines of at most WIDTH characters, the continuation lines indented two more."""
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ")


def diagnosis_text(d):
    """A diagnosis (crosscheck.diagnose.Diagnosis) as text, a few short lines per part."""
    lines = [f"diagnosis: {d.subject}, {d.dtype}"]
    if d.injected:
        lines += _wrap(f"injected: {d.injected}")
    if not d.wrong:
        lines.append(f"no diagnosis: all {len(d.checked)} quantities agree with autograd "
                     "(forward, backward from the loss, updates)")
        return "\n".join(lines)
    tol, r = tolerance_for(d.dtype), d.first
    errors = r.problem or f"max abs err {r.max_abs_error:.3e}, max rel err {r.max_rel_error:.3e} " \
        f"(allowed {tol.atol:g} + {tol.rtol:g} * |autograd|)"
    lines += [
        f"walked {len(d.checked)} quantities in the order the computation makes them; "
        f"the first {len(d.checked) - 1} agree",
        "",
        f"first wrong quantity: {d.quantity}, shape {r.shape}",
        *(_wrap(place_text(d.place), "  ") if d.place and (d.place["name"] or d.place["add"]) else []),
        *(_wrap(time_step_text(d.time_step), "  ") if d.time_step else []),
        *(_wrap(inside_text(d.inside), "  ") if d.inside else []),
        *_wrap(errors, "  "),
        f"class: {CLASSES[d.classification.kind]} ({d.classification.kind})",
        *_wrap(d.classification.detail, "  "),
    ]
    if d.numerical is not None:
        lines += _numerical_lines(d)
    if d.worst:
        lines += _worst_lines(d)
    return "\n".join(lines)

def _numerical_lines(d):
    v = d.numerical
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

def _worst_lines(d):
    lines = ["", f"worst {len(d.worst)} elements:",
             f"  {'index':<16} {'manual':>13} {'autograd':>13} {'numerical':>13}"]
    for e in d.worst:
        fd = "n/a" if e.numerical is None else f"{e.numerical:13.6g}" + (" kink" if e.kink else "")
        lines.append(f"  {str(e.index):<16} {e.manual:13.6g} {e.autograd:13.6g} {fd:>13}")
    return lines


# --- the catalogue ----------------------------------------------------------------------------------------

def network_of(entry):
    """"seed" for an entry of the slides' network, else the layer types of its described network."""
    return "seed" if entry.on_seed else "-".join(layer["type"] for layer in entry.network["layers"])


def first_wrong(entry):
    """The first wrong quantity of an entry as the checker names it."""
    return slide_name(entry.first_wrong) if entry.on_seed else entry.first_wrong


def catalogue_text(entries, as_json_=False):
    rows = [{"name": e.name, "network": network_of(e), "first_wrong": first_wrong(e), "class": e.kind,
             "description": e.description, "dtypes": list(e.dtypes)} for e in entries]
    if as_json_:
        return json.dumps(rows, indent=2)
    lines = [f"{len(rows)} wrong derivations; crosscheck diagnose --wrong NAME runs one", "",
             f"{'name':<32} {'first wrong quantity':<32} class"]
    for e in rows:
        lines.append(f"{e['name']:<32} {e['first_wrong']:<32} {e['class']}")
        lines += textwrap.wrap(f"{e['network']}: {e['description']}", 100, initial_indent="    ",
                               subsequent_indent="      ")
    return "\n".join(lines)


# --- explain: the slides' derivation, equation by equation ------------------------------------------------------

# (quantity, the equation as the slides write it), for one sample (N = 1, the sum reduction).
FORWARD = (
    ("Z1", "Z1 = conv(X, f)"),
    ("H1", "H1 = sigmoid(Z1), flattened"),
    ("Z2", "Z2 = W^T H1 + b"),
    ("O", "O = sigmoid(Z2)"),
    ("E", "E = (Y - O)^2 / 2"),
)
BACKWARD = (
    ("dE_dO", "dE/dO = O - Y"),
    ("dO_dZ2", "dO/dZ2 = O (1 - O)"),
    ("dE_dZ2", "dE/dZ2 = dE/dO * dO/dZ2"),
    ("dZ2_dW", "dZ2/dW = H1"),
    ("dE_dW", "dE/dW = H1^T dE/dZ2"),
    ("dE_db", "dE/db = dE/dZ2, summed over samples"),
    ("dZ2_dH1", "dZ2/dH1 = W^T"),
    ("dE_dH1", "dE/dH1 = dE/dZ2 W^T"),
    ("dH1_dZ1", "dH1/dZ1 = H1 (1 - H1)"),
    ("dE_dZ1", "dE/dZ1 = dE/dH1 * dH1/dZ1"),
    ("dZ1_df", "dZ1/df = the KHxKW patches of X"),
    ("dE_df", "dE/df = conv(X, dE/dZ1)"),
)
UPDATES = (("W", "W <- W - alpha dE/dW"), ("b", "b <- b - alpha dE/db"), ("f", "f <- f - alpha dE/df"))
LABEL = 10  # width of the value labels, so that every array starts in the same column


def _format(a, batch):
    """A value as a few aligned lines: the batch axis dropped for one sample, a column (n, 1) as a row ^T; a value
    the manual side failed to produce (a ManualFailure) as what it says."""
    if isinstance(a, ManualFailure):
        return textwrap.wrap(f"not computed: {a}", 78)
    a = np.asarray(a, dtype=np.float64)
    if batch == 1 and a.ndim > 1 and a.shape[0] == 1:
        a = a[0]
    suffix = ""
    if a.ndim == 2 and a.shape[1] == 1 and a.shape[0] > 1:
        a, suffix = a[:, 0], " ^T"
    if a.ndim > 2:
        return [f"shape {a.shape}: not printed, {a.size} values"]
    text = np.array2string(a, precision=4, separator=" ", max_line_width=78, threshold=40, edgeitems=3, sign=" ")
    return (text + suffix).splitlines()


def _labelled(label, a, batch):
    rows = _format(a, batch)
    return [f"    {label:<{LABEL}}{rows[0]}"] + [f"    {'':<{LABEL}}{row}" for row in rows[1:]]


def in_slides_file():
    """Where each equation stands in manual/seed_network.py -> {quantity or parameter: "file:line what"}: the forward
    lines by the quantity they assign, the backward's equations by name, the update at sgd_step."""
    where = f"manual/{pathlib.Path(seed_network.__file__).name}"
    lines, first = inspect.getsourcelines(seed_network.forward)
    places = {}
    for offset, line in enumerate(lines):
        assigned = line.strip().split(" = ")[0]
        if assigned in ("Z1", "H1", "Z2", "O", "E"):
            places[assigned] = f"{where}:{first + offset}"
    for name, equation in seed_network.EQUATIONS.items():
        places[name] = f"{where}:{equation.__code__.co_firstlineno} {name}{inspect.signature(equation)}"
    step = f"{where}:{seed_network.sgd_step.__code__.co_firstlineno} sgd_step(params, grads, lr)"
    return places | dict.fromkeys(("W", "b", "f"), step)


def _equation(text, manual, autograd, dtype, batch, before=None, code="", width=42):
    """One equation: its text (in `width` columns) and agree / DIFFER, where it stands in the manual file, then the
    values (the parameter before, for an update)."""
    agree = compare(text, manual, autograd, dtype).passed
    lines = [f"  {text:<{width}}{'agree' if agree else 'DIFFER'}", f"    {'code':<{LABEL}}{code}"]
    if before is not None:
        lines += _labelled("before", before, batch)
    lines += _labelled("manual", manual, batch) + _labelled("autograd", autograd, batch)
    return lines, agree


def _tallied(lines, total, differ):
    """The walk's lines closed by its verdict -> (text, whether every one of `total` equations agrees); `differ`:
    the texts of those that differ, in order."""
    lines.append("")
    lines.append(f"all {total} equations agree" if not differ else
                 f"{len(differ)} of {total} equations differ, the first: {differ[0]}")
    return "\n".join(lines), not differ


def explain_text(subject):
    """The walk through the slides' derivation for a SeedSubject (one sample, or two under a mean reduction) ->
    (text, all equations agree)."""
    pairs = {step.name: (step.manual, step.autograd) for step in subject.walk()}
    case, X, Y, params = subject.case, subject.X, subject.Y, subject.params
    N, (H, W), (KH, KW) = case.batch, case.input_shape, case.kernel_shape
    n_hidden = (H - KH + 1) * (W - KW + 1)
    tol = tolerance_for(case.dtype)
    lines = [
        f"The slides' network by hand (NumPy) and by autograd (PyTorch {torch.__version__}):",
        f"  X {H}x{W} -> Z1 {H - KH + 1}x{W - KW + 1} -> H1 {n_hidden} -> Z2 -> O {case.n_out} -> E",
        f"  f {KH}x{KW}, W {n_hidden}x{case.n_out}, b {case.n_out}; N = {N}, seed {case.seed}, {case.dtype}, "
        f"alpha = {case.lr:g}" + ("; E is the mean over the N samples" if case.reduction == "mean" else ""),
        f"  agree: |manual - autograd| <= {tol.atol:g} + {tol.rtol:g} |autograd|",
    ]
    if subject.wrong is not None:
        lines.append(f"  injected wrong derivation: {subject.wrong.name}")
    lines += ["", "given"]
    for name, value in (("X", X), ("Y", Y), ("f", params["f"]), ("W", params["W"]), ("b", params["b"])):
        lines += _labelled(name, value, N)
    total, differ, code = 0, [], in_slides_file()
    for title, equations in (("forward", FORWARD), ("backward: the chain rule from E back to f", BACKWARD),
                             (f"update: one SGD step, alpha = {case.lr:g}", UPDATES)):
        lines += ["", title]
        for name, text in equations:
            if title.startswith("update"):
                block, agree = _equation(text, *pairs[f"{name} after step 1"], case.dtype, N, before=params[name],
                                         code=code[name])
            else:
                block, agree = _equation(text, *pairs[slide_name(name)], case.dtype, N, code=code[name])
            lines += block
            total += 1
            differ += [] if agree else [text]
    return _tallied(lines, total, differ)


# --- explain --layer batchnorm ----------------------------------------------------------------------------------

BATCH_NORM_SHAPE = (4, 3)  # N samples by C channels (a BatchNorm1d): every value printed, the statistics over 4


def _where_in_manual(function, containing=None):
    """"manual/functional.py:LINE name" of a function (of manual/, or the catalogue's wrong one): its first line, or
    with `containing`, the first of its lines containing that text. A decorated function (functools.wraps) is
    found where its original is written."""
    function = inspect.unwrap(function)
    path = pathlib.Path(function.__code__.co_filename).relative_to(pathlib.Path(F.__file__).parents[1])
    line = function.__code__.co_firstlineno
    if containing is not None:
        lines, first = inspect.getsourcelines(function)
        line = first + next(k for k, text in enumerate(lines) if containing in text)
    return f"{path.as_posix()}:{line} {function.__name__}"


def explain_batchnorm_text(seed=0, dtype="float64", wrong=None):
    """Batch norm's training-mode derivation on a random (N, C) batch drawn from `seed`, E = sum(dE/dy * y) with a
    random dE/dy: the forward mu, var, x_hat, y; the backward dE/dgamma, dE/dbeta, dE/dx_hat and dE/dx as the sum of
    its three paths. Manual values from manual.functional (its named backward terms), autograd's from
    reference.network.batch_norm_paths; `wrong` names a wrong batch-norm backward of
    crosscheck.catalogue.layers.BATCH_NORM_TERMS, taken apart into its paths -> (text, every line agrees)."""
    from crosscheck.catalogue.layers import BATCH_NORM_TERMS

    if wrong is not None and wrong not in BATCH_NORM_TERMS:
        raise InputError(f"--inject: got {wrong!r}, needs a wrong batch-norm backward: {', '.join(BATCH_NORM_TERMS)}")
    rng = np.random.default_rng(seed)
    N, C = BATCH_NORM_SHAPE
    np_dtype = DTYPES[check_dtype(dtype)]
    x = (rng.normal(size=(N, C)) * rng.uniform(0.5, 2, size=C) + rng.normal(size=C)).astype(np_dtype)
    gamma, beta, dy = (rng.normal(size=shape).astype(np_dtype) for shape in ((C,), (C,), (N, C)))
    y, cache = F.batch_norm_forward(x, None, None, gamma, beta, training=True)
    _, _, _, dgamma, dbeta = F.batch_norm_backward(dy, cache)
    terms = {k: np.broadcast_to(v, x.shape) for k, v in
             (F.batch_norm_backward_terms if wrong is None else BATCH_NORM_TERMS[wrong])(dy, cache).items()}
    mean, var = (v.reshape(-1).astype(np_dtype) for v in F._moments(x.astype(np.float64), (0,)))
    a = reference_net.batch_norm_paths(x, gamma, beta, dy)
    tol = tolerance_for(dtype)
    lines = [f"Batch norm in training mode by hand (NumPy) and by autograd (PyTorch {torch.__version__}):",
             f"  x {N}x{C} (N = {N} samples, C = {C} channels): each channel normalized over its {N} values, "
             f"eps 1e-5; seed {seed}, {dtype}",
             f"  E = sum(dE/dy * y), dE/dy drawn at random; agree: |manual - autograd| <= {tol.atol:g} + "
             f"{tol.rtol:g} |autograd|"]
    if wrong is not None:
        lines.append(f"  injected wrong derivation: {wrong}")
    lines += ["", "given"] + [line for name, value in (("x", x), ("gamma", gamma), ("beta", beta), ("dE/dy", dy))
                              for line in _labelled(name, value, N)]
    used = F._normalize_backward_terms if wrong is None else BATCH_NORM_TERMS[wrong]
    paths = _where_in_manual(used)
    sections = [
        ("forward", [
            ("mu = mean of x over the batch", mean, a["mean"], F._moments),
            ("var = mean of (x - mu)^2 (biased)", var, a["var"], F._moments),
            ("x_hat = (x - mu) / s, s = sqrt(var + eps)", cache[0], a["x_hat"], F._normalize),
            ("y = gamma x_hat + beta", y, a["y"], F._affine)]),
        ("backward: from dE/dy to gamma, beta and x_hat", [
            ("dE/dgamma = sum dE/dy * x_hat", dgamma, a["dE/dgamma"], F._affine_backward),
            ("dE/dbeta = sum dE/dy", dbeta, a["dE/dbeta"], F._affine_backward),
            ("dE/dx_hat = dE/dy * gamma", terms["dx_hat"], a["dE/dx_hat"], F._affine_backward)]),
        ("backward: dE/dx, the three paths from x to x_hat", [
            ("direct: dE/dx_hat / s", terms["direct"], a["direct"], paths),
            ("through mu: -mean(dE/dx_hat) / s", terms["through_mean"], a["through_mean"], paths),
            ("through var: -x_hat mean(dE/dx_hat x_hat) / s", terms["through_var"], a["through_var"], paths),
            ("dE/dx = direct + through mu + through var",
             terms["direct"] + terms["through_mean"] + terms["through_var"], a["dE/dx"],
             _where_in_manual(F._normalize_backward if wrong is None else used))]),
    ]
    total, differ = 0, []
    for title, equations in sections:
        lines += ["", title]
        for text, manual, autograd, code in equations:
            block, agree = _equation(text, manual, autograd, dtype, N, width=48,
                                     code=code if isinstance(code, str) else _where_in_manual(code))
            lines += block
            total += 1
            differ += [] if agree else [text]
    return _tallied(lines, total, differ)


# --- explain --layer lstm ---------------------------------------------------------------------------------------

LSTM_SIZES = {"T": 3, "N": 2, "F": 3, "H": 2}  # every value printed; step T - 2 has a step after it, and one before


def _lstm_walk(s, d, dh, c_t, h_t, grads, module, H):
    """The walk's sections: (title, [(equation, manual, autograd, (function, line's text))]). s: autograd's named
    (value, gradient) of the walked step; d: manual's step backward's named gradients; grads: manual's weight
    gradients over the whole sequence; module: torch.nn.LSTM's."""
    from manual import recurrent as R

    forward, backward, through = R.lstm_step_forward, R.lstm_step_backward, R.layer_backward
    c_prev, i, f, g, o, _ = s["manual cache"]
    gate = {q: slice(k * H, (k + 1) * H) for k, q in enumerate("ifgo")}
    return [
        ("forward: step t (the steps before it the same way, from h = c = 0)", [
            ("h_{t-1}: step t-1's hidden state", s["manual h_prev"], s["h_prev"][0], (forward, "h = o * tanh_c")),
            ("c_{t-1}: step t-1's cell state", c_prev, s["c_prev"][0], (forward, "c = f * c_prev")),
            ("i = sigmoid(a_i), the input gate", i, s["i"][0], (forward, "s = sigmoid(a)")),
            ("f = sigmoid(a_f), the forget gate", f, s["f"][0], (forward, "s = sigmoid(a)")),
            ("g = tanh(a_g), the candidate cell", g, s["g"][0], (forward, "g = np.tanh")),
            ("o = sigmoid(a_o), the output gate", o, s["o"][0], (forward, "s = sigmoid(a)")),
            ("c_t = f * c_{t-1} + i * g", c_t, s["c"][0], (forward, "c = f * c_prev")),
            ("h_t = o * tanh(c_t)", h_t, s["h"][0], (forward, "h = o * tanh_c"))]),
        ("backward: step t, from dE/dh_t and the cell state's gradient from the future", [
            ("dE/dh_t = dE/dout_t + dh_next", dh, s["h"][1], (through, "dh = dseq[t]")),
            ("dE/do = dE/dh_t * tanh(c_t)", d["do"], s["o"][1], (backward, "do = ")),
            ("dE/dc_t = dc_next + dE/dh_t o (1 - tanh(c_t)^2)", d["dc"], s["c"][1], (backward, "dc = ")),
            ("dE/di = dE/dc_t * g", d["di"], s["i"][1], (backward, "di, df, dg = ")),
            ("dE/df = dE/dc_t * c_{t-1}", d["df"], s["f"][1], (backward, "di, df, dg = ")),
            ("dE/dg = dE/dc_t * i", d["dg"], s["g"][1], (backward, "di, df, dg = ")),
            ("dE/da_i = dE/di * i (1 - i)", d["da_i"], s["a"][1][:, gate["i"]], (backward, "da_i, da_f")),
            ("dE/da_f = dE/df * f (1 - f)", d["da_f"], s["a"][1][:, gate["f"]], (backward, "da_i, da_f")),
            ("dE/da_g = dE/dg * (1 - g^2)", d["da_g"], s["a"][1][:, gate["g"]], (backward, "da_i, da_f")),
            ("dE/da_o = dE/do * o (1 - o)", d["da_o"], s["a"][1][:, gate["o"]], (backward, "da_i, da_f")),
            ("dE/da = [da_i da_f da_g da_o], torch's order", d["da"], s["a"][1], (backward, "da = np.concatenate")),
            ("dE/dc_{t-1} = dE/dc_t * f, to step t-1", d["dc_prev"], s["c_prev"][1], (backward, "dc_prev = ")),
            ("dE/dh_{t-1} = dE/da W_hh, to step t-1", d["dh_prev"], s["h_prev"][1], (backward, '"dh_prev"'))]),
        ("over the whole sequence: every step's dE/da summed (autograd: torch.nn.LSTM)", [
            ("dE/dW_ih = sum over t of dE/da_t^T x_t", grads[0], module["w_ih"], (through, "weight_grads = ")),
            ("dE/dW_hh = sum over t of dE/da_t^T h_{t-1}", grads[1], module["w_hh"], (through, "weight_grads = ")),
            ("dE/db_ih = sum over t and N of dE/da_t", grads[2], module["b_ih"], (through, "weight_grads = ")),
            ("dE/db_hh = the same sum", grads[3], module["b_hh"], (through, "weight_grads = "))]),
    ]


def explain_lstm_text(seed=0, dtype="float64", wrong=None):
    """One LSTM step's derivation, step t = T - 2 of a random sequence drawn from `seed` (sizes LSTM_SIZES, zero
    initial states, weights U(-1/sqrt(H), 1/sqrt(H)) as torch's), E = sum(dE/dout * output) with a random dE/dout:
    the forward gates i, f, g, o, the cell c_t and the hidden h_t; the backward from dE/dh_t (what the output sends
    and what step t + 1 sends) and the cell state's gradient from the future, to the gates, their pre-activations,
    and what goes back to step t - 1; then the weights' gradients over the whole sequence. Manual values from
    manual.recurrent (its step backward fed autograd's gradients from step t + 1, so that step t is judged on its
    own; the weights' from its backpropagation through time), autograd's from reference.recurrent.lstm_step_by_step;
    `wrong` names a wrong LSTM step backward of crosscheck.catalogue.recurrent.LSTM_STEPS, used for every step
    -> (text, every line agrees)."""
    from crosscheck.catalogue.recurrent import LSTM_STEPS
    from manual import recurrent as R
    from reference.recurrent import lstm_step_by_step

    if wrong is not None and wrong not in LSTM_STEPS:
        raise InputError(f"--inject: got {wrong!r}, needs a wrong LSTM step backward: {', '.join(LSTM_STEPS)}")
    T, N, F_, H = LSTM_SIZES.values()
    rng = np.random.default_rng(seed)
    np_dtype = DTYPES[check_dtype(dtype)]
    limit = 1 / np.sqrt(H)
    w_ih, w_hh, b_ih, b_hh = (rng.uniform(-limit, limit, size=shape).astype(np_dtype)
                              for shape in ((4 * H, F_), (4 * H, H), (4 * H,), (4 * H,)))
    x, dout = rng.normal(size=(T, N, F_)).astype(np_dtype), rng.normal(size=(T, N, H)).astype(np_dtype)
    out, cache = R.lstm_forward(x, None, None, w_ih, w_hh, b_ih, b_hh)
    step_backward = R.lstm_step_backward if wrong is None else LSTM_STEPS[wrong]
    zeros = np.zeros((N, H), np_dtype)
    _, _, grads, _ = R.layer_backward(dataclasses.replace(cache.kind, step_backward=step_backward), cache.layers[0],
                                      dout, [zeros, zeros])
    steps, module = lstm_step_by_step(x, w_ih, w_hh, b_ih, b_hh, dout)
    t, (_, _, h_prev, caches) = T - 2, cache.layers[0]
    dh_next, dc_next = steps[t + 1]["h_prev"][1], steps[t + 1]["c_prev"][1]
    d = step_backward(dout[t] + dh_next, dc_next, caches[t], w_hh)
    s = steps[t] | {"manual cache": caches[t], "manual h_prev": h_prev[t]}
    sections = _lstm_walk(s, d, dout[t] + dh_next, caches[t + 1][0], out[t], grads, module, H)
    tol = tolerance_for(dtype)
    lines = [f"One LSTM step by hand (NumPy) and by autograd (PyTorch {torch.__version__}):",
             f"  x: T = {T} steps of N = {N} samples by F = {F_} features, H = {H}, h and c from 0; seed {seed}, "
             f"{dtype}",
             "  a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (N x 4H): the gates i, f, g, o in torch's order",
             f"  E = sum over t of dE/dout_t * h_t, dE/dout drawn at random; the step walked: t = {t} of 0..{T - 1}",
             f"  agree: |manual - autograd| <= {tol.atol:g} + {tol.rtol:g} |autograd|"]
    if wrong is not None:
        lines.append(f"  injected wrong derivation: {wrong}, in every step's backward")
    lines += ["", "given"] + [line for name, value in (("W_ih", w_ih), ("W_hh", w_hh), ("b_ih", b_ih), ("b_hh", b_hh),
                                                       ("x_t", x[t]), ("dE/dout_t", dout[t]))
                              for line in _labelled(name, value, N)]
    lines += ["  from step t+1, by autograd (given to both sides, so that step t is judged on its own):",
              *_labelled("dh_next", dh_next, N), *_labelled("dc_next", dc_next, N)]
    total, differ = 0, []
    for title, equations in sections:
        lines += ["", title]
        for text, manual, autograd, (function, containing) in equations:
            if wrong is not None and function is R.lstm_step_backward:
                where = _where_in_manual(step_backward)
            else:
                where = _where_in_manual(function, containing)
            block, agree = _equation(text, manual, autograd, dtype, N, width=52, code=where)
            lines += block
            total += 1
            differ += [] if agree else [text]
    return _tallied(lines, total, differ)


# --- crosscheck train ----------------------------------------------------------------------------------------

def training_dict(t):
    """A lockstep training run (crosscheck.train.Training) -> a JSON-ready dict: the summary, every epoch, the
    diagnosis where it stopped."""
    return {**t.summary, "epoch_rows": t.epochs, "diagnosis": None if t.diagnosis is None else t.diagnosis.as_dict()}


def _percent(x):
    return f"{100 * x:5.1f} %"


def training_text(t):
    """A lockstep training run as text: what was trained, one row per epoch, the verdict, the time per step."""
    s, arrays = t.summary, t.arrays
    tol = tolerance_for(s["dtype"])
    lines = [
        f"train: {s['title']} on scikit-learn's digits, by hand (NumPy) and by PyTorch {torch.__version__} autograd",
        f"task {s['task']}: {s['train_images']} training images, {s['test_images']} held out; batch {s['batch']}, "
        f"lr {s['lr']:g}, {s['epochs']} epochs ({s['planned_steps']} steps), {s['dtype']}, seed {s['seed']}",
        f"{rule(s['dtype'])}: the loss and every parameter" + (", every batch norm's running mean and variance"
                                                                if s.get("buffers") else "") + ", after every step",
        "",
        f"{'epoch':>5} {'steps':>6} {'E manual':>12} {'E autograd':>12}  {'train accuracy':<19}  "
        f"{'held-out accuracy':<19}  {'max rel diff':>12}",
        f"{'':>5} {'':>6} {'(mean)':>12} {'(mean)':>12}  {'manual / autograd':<19}  {'manual / autograd'}",
    ]
    start = 0
    for row in t.epochs:
        k = row["steps"]
        losses = arrays["loss_manual"][start:k], arrays["loss_autograd"][start:k]
        lines.append(f"{row['epoch']:>5} {k:>6} {losses[0].mean():>12.6f} {losses[1].mean():>12.6f}  "
                     f"{_percent(row['train_manual'])} / {_percent(row['train_autograd'])}  "
                     f"{_percent(row['test_manual'])} / {_percent(row['test_autograd'])}  "
                     f"{arrays['max_rel_diff'][start:k].max():>12.3e}")
        start = k
    lines.append("")
    if t.first is not None:
        epoch = s["steps"] and next((r["epoch"] for r in t.epochs if r["steps"] >= s["steps"]), len(t.epochs) + 1)
        lines += [f"stopped at step {s['stopped_at']} (epoch {epoch}): {t.first.describe()} "
                  f"(allowed {tol.atol:g} + {tol.rtol:g} * |autograd|); from the same parameters, that step differs "
                  "too", "", diagnosis_text(t.diagnosis)]
    else:
        last = t.epochs[-1] if t.epochs else None
        accuracy = "" if last is None else (
            f": held-out accuracy {_percent(last['test_manual']).strip()} by hand, "
            f"{_percent(last['test_autograd']).strip()} by autograd")
        lines.append(f"manual and autograd agree at all {s['steps']} steps{accuracy}")
        if s["drift_from"] is not None:
            lines += _wrap(f"from step {s['drift_from']} the two runs drift apart by rounding (largest relative "
                           f"difference {s['max_rel_diff']:.3e}): every step since, taken by both sides from the same "
                           "parameters, agrees" + (f" ({s['unconfirmed']} of them after a diagnosis of every "
                                                   "quantity)" if s["unconfirmed"] else ""))
    ms = s["ms_per_step"]
    lines.append(f"time per step: manual {ms['manual']:.2f} ms, autograd {ms['autograd']:.2f} ms, comparisons "
                 f"{ms['compare']:.2f} ms" + (f", one-step checks {ms['one-step']:.2f} ms" if ms["one-step"] else ""))
    return "\n".join(line.rstrip() for line in lines)
