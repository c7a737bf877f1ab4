"""The one comparison helper: manual (actual) against autograd (desired), named, with the worst element."""

from dataclasses import asdict, dataclass

import numpy as np

from crosscheck.tolerances import NUDGES, ROUNDING, crossed_a_jump, tolerance_for
from netdesc.checks import ManualFailure, unusable

__all__ = ["Comparison", "ManualFailure", "assert_close", "compare", "excess"]


@dataclass(frozen=True)
class Comparison:
    """The result of comparing one quantity; `worst_*` describe the element furthest out of tolerance."""

    name: str
    shape: tuple
    passed: bool
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple = ()
    worst_manual: float = float("nan")
    worst_autograd: float = float("nan")
    problem: str = ""  # set when the two cannot be compared element by element (shape, dtype)
    note: str = ""  # set when a difference is no verdict (a chaotic training run): passed, with the reason
    compared: int = 0  # the elements compared; 0 where the two could not be compared (then never passed)
    # set when the table failed and a second judge passed it, with the reason: float32's float64 witness
    # (crosscheck.tolerances) or, for a quantity that steps an optimizer, the lockstep (crosscheck.check.judge)
    witnessed: str = ""

    def as_dict(self):
        d = asdict(self)
        d["shape"], d["worst_index"] = list(self.shape), list(self.worst_index)
        # JSON has no inf/nan: a value that could not be measured is null.
        return {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in d.items()}

    def describe(self, case=""):
        """A one-paragraph failure message naming the case, the quantity and the worst element."""
        where = f"case {case}: " if case else ""
        if self.problem:
            return f"{where}{self.name}: {self.problem}"
        return (
            f"{where}{self.name} {'agrees' if self.passed else 'differs'}; worst element at index "
            f"{self.worst_index}: manual {self.worst_manual!r}, autograd {self.worst_autograd!r}, "
            f"abs error {self.max_abs_error:.3e}, rel error {self.max_rel_error:.3e}"
        )


def _not_comparable(name, shape, problem):
    return Comparison(name, shape, False, float("inf"), float("inf"), problem=problem)


def excess(manual, autograd, tol):
    """Per element, |manual - autograd| / (atol + rtol * |autograd|) in float64: above 1 (or NaN) where it fails."""
    a, d = np.asarray(manual, np.float64), np.asarray(autograd, np.float64)
    return np.abs(a - d) / (tol.atol + tol.rtol * np.abs(d))


WITNESSES = {  # what w is, and what max |autograd - w| then measures
    "float64": ("float32 rounding", "autograd in float64 on the same values", "autograd's own largest error"),
    "nudged": ("float64 rounding", "autograd on the inputs and parameters nudged by one rounding",
               "the largest change of autograd's own value: a quantity that is rounding noise, as a gradient that is "
               "0 in exact arithmetic"),
}


def within_rounding(manual, autograd, witness, tol, rounding=None, kind="float64"):
    """Whether manual is as close to the witness w as autograd's own rounding allows (crosscheck.tolerances):
    |manual - w| <= atol + rtol * |w| + rounding * max |autograd - w| on every element (rounding: the tolerance's
    own factor by default) -> the reason as text, or "" where it is not (or the witness is missing, of another
    shape, not finite, or a nudged run that crossed a jump: crosscheck.tolerances.crossed_a_jump). kind: what w is
    (WITNESSES): float32's float64 witness, or float64's nudged run."""
    if witness is None or np.shape(witness) != np.shape(autograd):
        return ""
    rounding = tol.rounding if rounding is None else rounding
    a, d, w = (np.asarray(v, np.float64) for v in (manual, autograd, witness))
    own = float(np.max(np.abs(d - w)))  # autograd's own rounding error on this quantity
    if kind == "nudged" and crossed_a_jump(d, w):  # the nudge crossed a jump: its change is no rounding
        return ""
    if not np.isfinite(own) or not np.all(np.abs(a - w) <= tol.atol + tol.rtol * np.abs(w) + rounding * own):
        return ""
    title, what, measure = WITNESSES[kind]
    return (f"{title}: manual is within {tol.atol:g} + {tol.rtol:g} * |w| + {rounding:g} * {own:.3e} of w, {what} "
            f"({own:.3e}: {measure})")


def within_nudges(manual, autograd, nudged, tol):
    """float64's second judge: within_rounding against nudged run 0, 1, ... up to NUDGES, each with its own draw of
    the nudge (a sum that cancels can stay exactly 0 under one: crosscheck.tolerances) -> the first reason, or "".
    nudged: (j) -> autograd's value on nudged run j, or None where there is none."""
    for j in range(NUDGES):
        reason = within_rounding(manual, autograd, nudged(j), tol, ROUNDING, "nudged")
        if reason:
            return reason
    return ""


def compare(name, manual, autograd, dtype=None, tol=None, witness=None):
    """Compare arrays element by element under the tolerance of `dtype` (default: autograd's dtype), or `tol`
    where a witness of another precision is compared (finite differences, crosscheck.numerical).

    witness: () -> autograd's value in float64 from the same float32 values (or None where there is none),
    called only where the table fails and the tolerance allows for rounding (float32: crosscheck.tolerances)."""
    autograd = np.asarray(autograd)
    manual = unusable(manual, "the manual side") or manual
    if isinstance(manual, ManualFailure):
        return _not_comparable(name, autograd.shape, f"manual side failed: {manual}")
    manual = np.asarray(manual)
    dtype = np.dtype(dtype or autograd.dtype)
    tol = tol or tolerance_for(dtype)
    if manual.shape != autograd.shape:
        hint = ""
        if manual.T.shape == autograd.shape and np.allclose(manual.T, autograd, tol.rtol, tol.atol):
            hint = "; manual equals autograd transposed"
        problem = f"shape mismatch: manual {manual.shape}, autograd {autograd.shape}{hint}"
        return _not_comparable(name, autograd.shape, problem)
    if manual.dtype != dtype or autograd.dtype != dtype:
        return _not_comparable(
            name, autograd.shape, f"dtype mismatch: manual {manual.dtype}, autograd {autograd.dtype}, expected {dtype}"
        )
    if manual.size == 0:  # nothing compared is no pass
        return _not_comparable(name, autograd.shape, "nothing to compare: 0 elements")
    a, d = manual.astype(np.float64), autograd.astype(np.float64)
    abs_err = np.abs(a - d)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = np.where(abs_err == 0, 0.0, abs_err / np.abs(d))
    allowed = tol.atol + tol.rtol * np.abs(d)
    worst = np.unravel_index(np.argmax(excess(a, d, tol)), abs_err.shape)
    passed, witnessed = bool(np.all(abs_err <= allowed)), ""
    if not passed and witness is not None and tol.rounding:
        witnessed = within_rounding(a, d, witness(), tol)
        passed = bool(witnessed)
    return Comparison(
        name=name,
        shape=autograd.shape,
        passed=passed,
        max_abs_error=float(abs_err.max()),
        max_rel_error=float(rel_err.max()),
        worst_index=tuple(int(i) for i in worst),
        worst_manual=float(a[worst]),
        worst_autograd=float(d[worst]),
        compared=int(manual.size),
        witnessed=witnessed,
    )


def assert_close(manual, autograd, name, case="", dtype=None, witness=None):
    """Raise AssertionError with `Comparison.describe` unless manual matches autograd (witness: as compare's)."""
    result = compare(name, manual, autograd, dtype, witness=witness)
    if not result.passed:
        tol = tolerance_for(dtype or np.asarray(autograd).dtype)
        raise AssertionError(f"{result.describe(case)} (allowed {tol.atol:g} + {tol.rtol:g} * |autograd|)")
    return result
