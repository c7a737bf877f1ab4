"""``crosscheck explain``: the slides' derivation walked equation by equation on one small example, each value by
hand (manual.seed_network) and by autograd (reference.seed_network), side by side."""

import numpy as np
import torch

from crosscheck.compare import compare
from crosscheck.seed_check import one_step_pairs
from crosscheck.tolerances import tolerance_for

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
    """A value as a few aligned lines: the batch axis dropped for one sample, a column (n, 1) as a row ^T."""
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


def _equation(text, manual, autograd, dtype, batch, before=None):
    """One equation: its text and agree / DIFFER, then the values (the parameter before, for an update)."""
    agree = compare(text, manual, autograd, dtype).passed
    lines = [f"  {text:<42}{'agree' if agree else 'DIFFER'}"]
    if before is not None:
        lines += _labelled("before", before, batch)
    lines += _labelled("manual", manual, batch) + _labelled("autograd", autograd, batch)
    return lines, agree


def explain(case, wrong_name=None):
    """The walk through the slides' derivation for `case` (one sample) -> (text, all equations agree)."""
    pairs = {name: (m, a) for name, m, a in one_step_pairs(case, wrong_name)}
    X, Y, params = case.inputs()
    N, (H, W), (KH, KW) = case.batch, case.input_shape, case.kernel_shape
    n_hidden = (H - KH + 1) * (W - KW + 1)
    tol = tolerance_for(case.dtype)
    lines = [
        f"The slides' network by hand (NumPy) and by autograd (PyTorch {torch.__version__}):",
        f"  X {H}x{W} -> Z1 {H - KH + 1}x{W - KW + 1} -> H1 {n_hidden} -> Z2 -> O {case.n_out} -> E",
        f"  f {KH}x{KW}, W {n_hidden}x{case.n_out}, b {case.n_out}; N = {N}, seed {case.seed}, {case.dtype}, "
        f"alpha = {case.lr:g}",
        f"  agree: |manual - autograd| <= {tol.atol:g} + {tol.rtol:g} |autograd|",
    ]
    if wrong_name:
        lines.append(f"  injected wrong derivation: {wrong_name}")
    lines += ["", "given"]
    for name, value in (("X", X), ("Y", Y), ("f", params["f"]), ("W", params["W"]), ("b", params["b"])):
        lines += _labelled(name, value, N)
    total, differ = 0, []
    for title, equations in (("forward", FORWARD), ("backward: the chain rule from E back to f", BACKWARD),
                             (f"update: one SGD step, alpha = {case.lr:g}", UPDATES)):
        lines += ["", title]
        for name, text in equations:
            if title.startswith("update"):
                block, agree = _equation(text, *pairs[f"{name} after 1 step"], case.dtype, N, before=params[name])
            else:
                block, agree = _equation(text, *pairs[name], case.dtype, N)
            lines += block
            total += 1
            differ += [] if agree else [text]
    lines.append("")
    lines.append(f"all {total} equations agree" if not differ else
                 f"{len(differ)} of {total} equations differ, the first: {differ[0]}")
    return "\n".join(lines), not differ
