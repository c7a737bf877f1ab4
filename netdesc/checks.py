"""Input checks shared by the manual side, the reference and the harness (NumPy only).

Every check raises :class:`InputError` whose message names the argument, what it
got and what it needs, so that bad input never becomes a silent wrong answer.
"""

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)
REDUCTIONS = ("sum", "mean")


class InputError(ValueError):
    """Bad input: the message names the argument, what it got and what it needs."""


class ManualFailure(str):
    """Stands in for a value the manual side failed to produce (a backward that broke the chain); the text
    says why. Comparing it with autograd's value is a mismatch, never a crash."""


def unusable(value, what):
    """None where `value` is numbers (an array of bool, int or float, or what NumPy reads as one) or already a
    ManualFailure; else a ManualFailure saying what `what` returned instead: None, text, objects, ragged lists."""
    if isinstance(value, ManualFailure):
        return None
    try:
        kind = np.asarray(value).dtype.kind
    except (ValueError, TypeError):  # ragged nesting
        kind = "O"
    if kind in "biuf":
        return None
    got = f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray) else repr(value)[:40]
    return ManualFailure(f"{what} returned {got}, needs an array of numbers")


def check_float_array(name, value, ndim=None):
    """Return `value` as a float32/float64 ndarray, or raise InputError.

    `ndim` is an int or a tuple of allowed ints.
    """
    if not isinstance(value, np.ndarray):
        raise InputError(f"{name}: got {type(value).__name__}, needs a NumPy array")
    if value.dtype.type not in FLOAT_DTYPES:
        raise InputError(f"{name}: got dtype {value.dtype}, needs float32 or float64")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            wanted = " or ".join(f"{n}-D" for n in allowed)
            raise InputError(f"{name}: got {value.ndim}-D array of shape {value.shape}, needs {wanted}")
    if not np.all(np.isfinite(value)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
        raise InputError(f"{name}: got non-finite value {value[bad]} at index {bad}, needs finite values")
    return value


def check_same_dtype(**arrays):
    """Raise InputError unless every array has the same dtype."""
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) > 1:
        got = ", ".join(f"{name} {dt}" for name, dt in dtypes.items())
        raise InputError(f"mixed dtypes: got {got}, needs one dtype (all float32 or all float64)")


def check_shape(name, value, expected, meaning):
    """Raise InputError unless `value.shape == expected`; `meaning` explains the expected shape."""
    if value.shape != tuple(expected):
        raise InputError(f"{name}: got shape {value.shape}, needs {tuple(expected)} ({meaning})")


def check_labels(labels, classes, N, meaning):
    """Raise InputError unless labels is an integer array of N class labels in [0, classes); `meaning` explains N."""
    if not isinstance(labels, np.ndarray) or not np.issubdtype(labels.dtype, np.integer):
        got = f"dtype {labels.dtype}" if isinstance(labels, np.ndarray) else type(labels).__name__
        raise InputError(f"labels: got {got}, needs a NumPy array of integer class labels")
    check_shape("labels", labels, (N,), meaning)
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise InputError(f"labels[{bad[0]}]: got {labels[bad[0]]}, needs a class in [0, {classes - 1}]")


def check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction: got {reduction!r}, needs one of {', '.join(REDUCTIONS)}")
    return reduction


def check_learning_rate(lr):
    """Return lr as a float; it must be a finite number > 0."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise InputError(f"lr: got {type(lr).__name__} {lr!r}, needs a positive number")
    if not np.isfinite(lr) or lr <= 0:
        raise InputError(f"lr: got {lr}, needs a finite number > 0")
    return float(lr)


def is_int(value, minimum=0):
    """Whether value is an integer (not a bool) >= minimum."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum


MAX_STEPS = 100_000  # a training run on one fixed batch: more steps show nothing the first ones do not


def check_steps(value):
    """A number of training steps: an integer in [1, MAX_STEPS] (a bound, so that a run ends)."""
    steps = check_positive_int("steps", value)
    if steps > MAX_STEPS:
        raise InputError(f"steps: got {steps}, needs at most {MAX_STEPS:,} (a training run on one batch)")
    return steps


def check_positive_int(name, value, minimum=1):
    if not is_int(value, minimum):
        raise InputError(f"{name}: got {value!r}, needs an integer >= {minimum}")
    return int(value)


def check_number(name, value, needs="a finite number", minimum=None):
    """Return value as a Python float; it must be a finite real number (not a bool), >= minimum if given."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or (minimum is not None and value < minimum):
        raise InputError(f"{name}: got {value!r}, needs {needs}")
    return float(value)


def check_sgd_settings(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """Validate the hyper-parameters as torch.optim.SGD does -> a dict of them as Python floats and a bool."""
    settings = {
        "lr": check_learning_rate(lr),
        "momentum": check_number("momentum", momentum, "a finite number >= 0", minimum=0),
        "dampening": check_number("dampening", dampening, "a finite number"),
        "nesterov": nesterov,
        "weight_decay": check_number("weight_decay", weight_decay, "a finite number >= 0", minimum=0),
    }
    if not isinstance(nesterov, (bool, np.bool_)):
        raise InputError(f"nesterov: got {nesterov!r}, needs True or False")
    if nesterov and (settings["momentum"] <= 0 or settings["dampening"] != 0):
        raise InputError(
            f"nesterov: got True with momentum={momentum!r} and dampening={dampening!r}, "
            "needs momentum > 0 and dampening = 0"
        )
    settings["nesterov"] = bool(nesterov)
    return settings
