"""The seed network checked quantity by quantity: manual.seed_network against reference.seed_network."""

from dataclasses import asdict, dataclass, replace

import numpy as np

import netdesc.inputs
import netdesc.seed
from crosscheck.catalogue import WrongDerivation
from crosscheck.catalogue import seed as wrong
from crosscheck.compare import ManualFailure, compare
from manual import seed_network as manual_net
from netdesc.checks import InputError, check_learning_rate, check_positive_int, check_reduction
from reference import seed_network as reference_net

# The order of the checks: forward values and E, the chain-rule factors as the slides derive
# them (from the error back to the filter), the parameter gradients.
FORWARD = ("Z1", "H1", "Z2", "O", "E")
FACTORS = ("dE_dO", "dO_dZ2", "dE_dZ2", "dZ2_dW", "dZ2_dH1", "dE_dH1", "dH1_dZ1", "dE_dZ1", "dZ1_df")
GRADIENTS = ("dE_df", "dE_dW", "dE_db")
DTYPES = {"float64": np.float64, "float32": np.float32}


def slide_name(quantity):
    """'dE_dZ1' -> 'dE/dZ1', as the slides write it."""
    return quantity.replace("_d", "/d", 1) if quantity.startswith("d") else quantity


@dataclass(frozen=True)
class SeedCase:
    """One configuration of the seed network; str() is its test id."""

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
        if self.dtype not in DTYPES:
            raise InputError(f"dtype: got {self.dtype!r}, needs one of {', '.join(DTYPES)}")
        check_reduction(self.reduction)
        check_learning_rate(self.lr)
        for name in ("n_out", "batch", "steps"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("seed", self.seed, minimum=0)
        for name in ("input_shape", "kernel_shape"):
            shape = getattr(self, name)
            if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
                raise InputError(f"{name}: got {shape!r}, needs two positive integers (height, width)")
        (H, W), (KH, KW) = self.input_shape, self.kernel_shape
        if KH > H or KW > W:
            raise InputError(f"kernel_shape: got {KH}x{KW}, needs at most the input's {H}x{W}")

    def __str__(self):
        (H, W), (KH, KW) = self.input_shape, self.kernel_shape
        k = f"k{KH}" if KH == KW else f"k{KH}x{KW}"
        return f"{H}x{W}-{k}-out{self.n_out}-N{self.batch}-{self.reduction}-{self.dtype}-seed{self.seed}"

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


def one_step_pairs(case, wrong_name=None):
    """[(quantity, manual value, autograd value)] for one forward, backward and SGD step, in check order."""
    X, Y, params = case.inputs()
    entry = _entry(wrong_name)
    X, Y = netdesc.seed.check_inputs(X, Y, params, case.reduction)  # bad input is the caller's error, not a mismatch
    values = manual_net.forward(X, params, Y, case.reduction)
    grads = manual_net.backward(X, Y, params, values, case.reduction, wrong=entry.backward)
    ref_values, ref_grads = reference_net.run(X, params, Y, case.reduction)
    try:
        updated = (entry.optimizer_step or manual_net.sgd_step)(params, grads, case.lr)
    except InputError as err:  # a gradient of the wrong shape: a mismatch to report, not a crash
        updated = dict.fromkeys(manual_net.PARAM_NAMES, ManualFailure(str(err)))
    _, ref_updated = reference_net.train(X, Y, params, case.lr, 1, case.reduction)
    return (
        [(k, values[k], ref_values[k]) for k in FORWARD]
        + [(k, grads[k], ref_grads[k]) for k in FACTORS + GRADIENTS]
        + [(f"{k} after 1 step", updated[k], ref_updated[k]) for k in manual_net.PARAM_NAMES]
    )


def training_pairs(case, wrong_name=None):
    """[(quantity, manual, autograd)] for `case.steps` SGD steps: E at every step, parameters at the end."""
    X, Y, params = case.inputs()
    netdesc.seed.check_inputs(X, Y, params, case.reduction)  # bad input is the caller's error, not a mismatch
    entry = _entry(wrong_name)
    try:
        errors, final = manual_net.train(X, Y, params, case.lr, case.steps, case.reduction,
                                         wrong=entry.backward, step=entry.optimizer_step)
    except InputError as err:  # as in one_step_pairs
        errors = ManualFailure(str(err))
        final = dict.fromkeys(manual_net.PARAM_NAMES, errors)
    ref_errors, ref_final = reference_net.train(X, Y, params, case.lr, case.steps, case.reduction)
    steps = case.steps
    return [(f"E at steps 1..{steps}", errors, ref_errors)] + [
        (f"{k} after {steps} steps", final[k], ref_final[k]) for k in manual_net.PARAM_NAMES
    ]


_RIGHT = WrongDerivation("", "the real derivation", "seed", "", "")


def _entry(wrong_name):
    """The catalogue entry called `wrong_name`; for None, an entry that changes nothing."""
    return _RIGHT if wrong_name is None else wrong.get(wrong_name)


def reference_wobble(case):
    """How far autograd's own training run moves when every parameter is nudged by one rounding error
    (a relative eps of the dtype, random signs) -> [Comparison of the nudged run against the plain run].

    A stable run stays within the tolerance; a chaotic one (too large a learning rate) does not, and then
    no comparison of training runs can tell a wrong gradient from rounding.
    """
    X, Y, params = case.inputs()
    rng = np.random.default_rng(case.seed)
    eps = np.finfo(X.dtype).eps
    nudged = {k: v * (1 + eps * rng.choice([-1, 1], v.shape)).astype(v.dtype) for k, v in params.items()}
    errors, final = reference_net.train(X, Y, params, case.lr, case.steps, case.reduction)
    nudged_errors, nudged_final = reference_net.train(X, Y, nudged, case.lr, case.steps, case.reduction)
    steps = case.steps
    pairs = [(f"E at steps 1..{steps}", nudged_errors, errors)]
    pairs += [(f"{k} after {steps} steps", nudged_final[k], final[k]) for k in manual_net.PARAM_NAMES]
    return [compare(name, n, a, case.dtype) for name, n, a in pairs]


def check(case, wrong_name=None, train=True):
    """Every comparison for `case`, in order -> list of Comparison.

    When every one-step quantity agrees but the training run does not, and autograd's own run is chaotic
    (``reference_wobble``), the training rows pass with a note: they can give no verdict, the one-step rows
    (the same update, step by step) do.
    """
    one_step = [compare(slide_name(name), m, a, case.dtype) for name, m, a in one_step_pairs(case, wrong_name)]
    if not train:
        return one_step
    training = [compare(name, m, a, case.dtype) for name, m, a in training_pairs(case, wrong_name)]
    if all(r.passed for r in one_step) and not all(r.passed for r in training):
        wobble = max(reference_wobble(case), key=lambda w: w.max_abs_error)
        if not wobble.passed:
            note = (f"a one-ulp nudge of the parameters moves autograd's own run by up to "
                    f"{wobble.max_abs_error:.3e} ({wobble.name}), more than the tolerance")
            training = [r if r.passed else replace(r, passed=True, note=note) for r in training]
    return one_step + training
