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
    if not value.dtype.isnative:  # a loss would come back native-order while its dout is checked against this dtype
        raise InputError(f"{name}: got dtype {value.dtype.str} (not this machine's byte order), needs float32 or "
                         f"float64 in native byte order: .astype(np.{value.dtype.name})")
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


def check_labels(labels, classes, N, meaning, ignore_index=None):
    """Raise InputError unless labels is an integer array of N class labels in [0, classes) (or equal to
    `ignore_index`, a label that counts for nothing); N is a count, or a shape such as (N, T) for a label per step;
    `meaning` explains it."""
    if not isinstance(labels, np.ndarray) or not np.issubdtype(labels.dtype, np.integer):
        got = f"dtype {labels.dtype}" if isinstance(labels, np.ndarray) else type(labels).__name__
        raise InputError(f"labels: got {got}, needs a NumPy array of integer class labels")
    check_shape("labels", labels, N if isinstance(N, tuple) else (N,), meaning)
    bad = np.argwhere(((labels < 0) | (labels >= classes)) & (labels != ignore_index))
    if bad.size:
        at = tuple(int(i) for i in bad[0])
        ignored = "" if ignore_index is None else f" or ignore_index {ignore_index}"
        raise InputError(f"labels[{', '.join(map(str, at))}]: got {labels[at]}, needs a class in [0, {classes - 1}]"
                         f"{ignored}")


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


# torch.optim's optimizers as descriptions name them, each with its settings and torch's defaults (SGD's lr: 0.01,
# this project's default since before the other types; torch's is 1e-3).
OPTIMIZER_DEFAULTS = {
    "sgd": {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False},
    "rmsprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False},
    "adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
}
# torch.optim.lr_scheduler's StepLR and CosineAnnealingLR as descriptions name them; None: required.
SCHEDULER_DEFAULTS = {"step": {"step_size": None, "gamma": 0.1}, "cosine": {"T_max": None, "eta_min": 0.0}}


def check_flag(name, value):
    """A true/false option or argument (Python's or NumPy's bool) -> bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name}: got {value!r}, needs True or False")
    return bool(value)


def _betas(name, value):
    pair = list(value) if isinstance(value, (list, tuple)) else None
    if pair is None or len(pair) != 2 or not all(
            not isinstance(b, bool) and isinstance(b, (int, float, np.integer, np.floating)) and 0 <= b < 1
            for b in pair):
        raise InputError(f"{name}: got {value!r}, needs two numbers [beta1, beta2], each in [0, 1)")
    return tuple(float(b) for b in pair)


def _at_least_zero(name, value):
    return check_number(name, value, "a finite number >= 0", minimum=0)


def _positive(name, value):
    # eps > 0 (torch accepts 0): eps keeps a division by sqrt(v) finite where a gradient is 0
    number = check_number(name, value, "a finite number > 0")
    if number <= 0:
        raise InputError(f"{name}: got {value!r}, needs a finite number > 0")
    return number


def _fraction(name, value):
    # alpha in [0, 1] (torch only asks >= 0): above 1 the average of squares can turn negative, and its root nan
    number = check_number(name, value, "a number in [0, 1]", minimum=0)
    if number > 1:
        raise InputError(f"{name}: got {value!r}, needs a number in [0, 1]")
    return number


SETTING_CHECKS = {
    "lr": lambda name, value: check_learning_rate(value), "momentum": _at_least_zero,
    "dampening": lambda name, value: check_number(name, value, "a finite number"), "nesterov": check_flag,
    "weight_decay": _at_least_zero, "betas": _betas, "eps": _positive, "amsgrad": check_flag, "alpha": _fraction,
    "centered": check_flag, "lr_decay": _at_least_zero, "initial_accumulator_value": _at_least_zero,
    "step_size": check_positive_int, "gamma": _positive, "T_max": check_positive_int, "eta_min": _at_least_zero,
}


def check_optimizer_settings(kind, settings):
    """Validate one optimizer's settings (a dict holding every key of OPTIMIZER_DEFAULTS[kind]) as torch.optim
    does, or stricter where torch's bounds let a run turn to nan -> a new dict of them as Python numbers."""
    if kind == "sgd":
        return check_sgd_settings(**settings)
    return {key: SETTING_CHECKS[key](key, value) for key, value in settings.items()}


def check_scheduler_settings(settings):
    """Validate a scheduler's settings (step_size, gamma; T_max, eta_min) -> a new dict of them."""
    return {key: SETTING_CHECKS[key](key, value) for key, value in settings.items()}
