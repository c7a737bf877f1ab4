"""``crosscheck train``: one network trained twice on real images, by hand (manual/) and by torch (reference/), side
by side, compared after every step.

The images are scikit-learn's bundled handwritten digits (1,797 grey 8x8 images, pixel values 0..16 scaled to
[0, 1]; no download), split into a training set and a held-out set by a seeded shuffle. Each epoch visits the
training set in a new seeded order, in mini-batches of ``batch`` images (a last, smaller batch is left out, so
that every step sees the same batch size). Two networks:

- the slides' network (crosscheck.subjects.SeedSubject): n_out 1 learns odd against even (target 1 for an odd
  digit, predicted odd where O > 0.5); n_out 10 the ten digits (one-hot targets, predicted by the largest O);
- a described network (crosscheck.subjects.NetworkSubject) with input_shape [1, 8, 8] and an output of 10 (the
  ten digits: labels for softmax_cross_entropy, one-hot targets for the other losses), 2 (odd or even, labels) or
  1 (odd or even as a 0/1 target; predicted odd above 0.5, above 0 for binary_cross_entropy_with_logits). Its
  optimizer is the description's, its momentum buffers kept across the batches on both sides.

Both sides start from the same parameters and see the same batches; each then follows its own updates. After
every step the loss (before the step), every parameter (after it) and every batch norm's running mean and variance
(after it, each side's own) are compared under the dtype's tolerance (crosscheck.compare). Step 1 is also walked
quantity by quantity (the checker's walk: every layer's output and input gradient, every parameter gradient, the
first updates), so that a mistake training cannot see is caught too: the input gradient of the first layer changes
no parameter. Where they differ, the step is checked once more from the same parameters: both sides take that step
on that batch from autograd's parameters and running statistics before it (a fresh optimizer state on both; a
described network twice, so that its momentum buffer counts, as in the checker's walk). If that differs too, the
diagnosis (crosscheck.diagnose) walks every quantity of the step: where it finds one that differs, the derivation
is wrong, and training stops there with the diagnosis. Otherwise the two runs only drifted apart by rounding, which
long runs amplify (float32 over hundreds of steps): training goes on, from then on every step judged by the check
from the same parameters, and the drift is reported with the step where it began.
"""

import contextlib
import importlib.util
import json
import pathlib
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from crosscheck.compare import compare
from crosscheck.diagnose import diagnose
from crosscheck.subjects import DTYPES, BrokenChain, NetworkSubject, SeedCase, SeedSubject, _failed, check_dtype
from crosscheck.tolerances import tolerance_for
from manual import network as manual_net
from manual import seed_network as manual_seed
from netdesc import seed as seed_inputs
from netdesc.checks import InputError, ManualFailure, check_learning_rate, check_positive_int
from reference import network as reference_net
from reference import seed_network as reference_seed

IMAGE = (8, 8)
TEST_FRACTION = 0.2
NEEDS = "pip install -c constraints.txt 'backprop-crosscheck[train]'"


def digits(seed=0, test_fraction=TEST_FRACTION):
    """scikit-learn's digits -> ((train images, labels), (held-out images, labels)): images (N, 8, 8) float64 in
    [0, 1], labels (N,) int64 0..9; the split drawn from `seed`."""
    if not (isinstance(test_fraction, int | float) and 0 < test_fraction < 1):
        raise InputError(f"test_fraction: got {test_fraction!r}, needs a number strictly between 0 and 1")
    images, labels = _load_digits()
    images = images / 16.0
    order = np.random.default_rng([seed, 2]).permutation(len(labels))
    n_test = min(max(round(test_fraction * len(labels)), 1), len(labels) - 1)
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


def _digits_file():
    """scikit-learn's digits.csv.gz (64 pixel values and the label per row), found without importing
    scikit-learn, whose import takes over a second (scipy.stats) -> its path, or None."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def _load_digits():
    """-> (images (1797, 8, 8) float64 0..16, labels (1797,) int64): read as sklearn.datasets.load_digits reads
    them, from its file; through load_digits itself where that file is not where it was."""
    path = _digits_file()
    if path is not None:
        data = np.loadtxt(path, delimiter=",")
        return data[:, :-1].reshape(-1, *IMAGE), data[:, -1].astype(np.int64)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError(f"crosscheck train needs scikit-learn's digits: {NEEDS}") from None
    d = load_digits()
    return d.images, d.target.astype(np.int64)


def _one_hot(labels, classes, dtype):
    return np.eye(classes, dtype=dtype)[labels]


# --- the two networks, as crosscheck train needs them -----------------------------------------------------------

class Slides:
    """The slides' network on the digits (kernel k, n_out 1 or 10, SGD at lr, reduction over the batch)."""

    filter_key, grad_key = "f", "dE_df"

    def __init__(self, n_out=1, kernel=(3, 3), lr=2.0, reduction="mean", dtype="float64", seed=0, wrong=None):
        if n_out not in (1, 10):
            raise InputError(f"n_out: got {n_out!r}, needs 1 (odd or even) or 10 (the ten digits)")
        self.n_out, self.kernel, self.lr, self.reduction = n_out, kernel, check_learning_rate(lr), reduction
        self.dtype, self.seed, self.wrong = check_dtype(dtype), seed, wrong
        self.classes = 2 if n_out == 1 else 10
        self.task = "odd or even" if n_out == 1 else "the ten digits"
        SeedCase(IMAGE, kernel, n_out, 1, seed, dtype, reduction, lr, 1)  # the kernel checked before the title
        self.title = f"the slides' network (3x3 filter -> sigmoid -> linear -> sigmoid, n_out {n_out})" \
            if kernel == (3, 3) else f"the slides' network ({kernel[0]}x{kernel[1]} filter, n_out {n_out})"
        self.params = seed_inputs.init_params(IMAGE, kernel, n_out, DTYPES[dtype], seed=seed + 1)
        k = f"k{kernel[0]}" if kernel[0] == kernel[1] else f"k{kernel[0]}x{kernel[1]}"
        self.case_id = f"slides-digits-{k}-out{n_out}-{dtype}-seed{seed}"

    def arrays(self, images, labels):
        """-> (X (N, 8, 8), Y (N, n_out)) in the dtype."""
        dtype = DTYPES[self.dtype]
        Y = (labels % 2)[:, None].astype(dtype) if self.n_out == 1 else _one_hot(labels, 10, dtype)
        return images.astype(dtype), Y

    def task_labels(self, labels):
        return labels % 2 if self.n_out == 1 else labels

    def subject(self, batch, data, max_memory=None):
        case = SeedCase(IMAGE, self.kernel, self.n_out, batch, self.seed, self.dtype, self.reduction, self.lr, 1)
        return SeedSubject(case, self.wrong, max_memory, data)

    def _classes(self, O):
        return (O[:, 0] > 0.5).astype(np.int64) if self.n_out == 1 else O.argmax(axis=1)

    def predict_manual(self, params, X):
        return self._classes(manual_seed.forward(X, params, np.zeros((len(X), self.n_out), X.dtype))["O"])

    def predict_autograd(self, params, X):
        with torch.no_grad():
            return self._classes(reference_seed.SeedNetwork.from_manual(params, IMAGE)(torch.from_numpy(X))["O"]
                                 .numpy())


class Described:
    """A described network (netdesc.Spec) on the digits; `lr` replaces the description's learning rate."""

    def __init__(self, spec, lr=None, dtype="float64", seed=0, wrong=None, max_memory=None):
        if tuple(spec.input_shape) != (1, *IMAGE):
            raise InputError(f"input_shape: got {list(spec.input_shape)}, needs [1, 8, 8] (the digits are 8x8 grey "
                             "images, one channel)")
        out, loss = tuple(spec.output_shape), spec.loss.type
        if out not in (((10,), (2,)) if loss == "softmax_cross_entropy" else ((10,), (1,))):
            needs = "10 (the ten digits) or 2 (odd or even)" if loss == "softmax_cross_entropy" else \
                "10 (the ten digits, one-hot) or 1 (odd or even)"
            raise InputError(f"the last layer's output: got {list(out)} for {loss}, needs {needs}")
        optimizer = spec.optimizer if lr is None else replace(spec.optimizer, lr=check_learning_rate(lr))
        self.spec = replace(spec, loss=replace(spec.loss, labels=None), optimizer=optimizer)
        self.dtype, self.seed = check_dtype(dtype), seed
        self.classes = 2 if out in ((1,), (2,)) else 10
        self.task = "odd or even" if self.classes == 2 else "the ten digits"
        self.title, self.case_id = f"network {spec.name}", f"{spec.name}-digits-{dtype}-seed{seed}"
        self.lr = optimizer.lr
        self.wrong = wrong  # a WrongDerivation aimed at this description (crosscheck.check.inject), or None
        self.params = NetworkSubject(self.spec, seed, dtype, 1, max_memory=max_memory).params
        weights = [key for key, shape in self.spec.param_shapes().items() if key.endswith(".weight")]
        convs = [k for k in weights if len(self.spec.param_shapes()[k]) == 4]
        self.filter_key = self.grad_key = (convs or weights or [None])[0]

    def arrays(self, images, labels):
        """-> (x (N, 1, 8, 8), target: labels, one-hot or a 0/1 column) in the dtype."""
        dtype, labels = DTYPES[self.dtype], self.task_labels(labels)
        x = images[:, None].astype(dtype)
        if self.spec.loss.type == "softmax_cross_entropy":
            return x, labels
        return x, labels[:, None].astype(dtype) if self.classes == 2 else _one_hot(labels, 10, dtype)

    def task_labels(self, labels):
        return labels % 2 if self.classes == 2 else labels

    def subject(self, batch, data, max_memory=None):
        return NetworkSubject(replace(self.spec, batch_size=batch), self.seed, self.dtype, 1, self.wrong, max_memory,
                              data)

    def _classes(self, out):
        if out.shape[1] > 1:
            return out.argmax(axis=1)
        threshold = 0.0 if self.spec.loss.type == "binary_cross_entropy_with_logits" else 0.5
        return (out[:, 0] > threshold).astype(np.int64)

    def predict_manual(self, params, x):
        return self._classes(manual_net.forward(self.spec, params, x)[0][-1])

    def predict_autograd(self, params, x):
        with torch.no_grad():
            return self._classes(reference_net.build(self.spec, params)(torch.from_numpy(x))[-1].numpy())


# --- the lockstep run ------------------------------------------------------------------------------------------

@dataclass
class Training:
    """A lockstep run: `arrays` in crosscheck.runfile's layout, `summary` (JSON-ready), the first differing
    comparison (None: every step agreed) and the diagnosis at it."""

    arrays: dict
    summary: dict
    first: object = None
    diagnosis: object = None
    epochs: list = field(default_factory=list)
    judged: tuple = ()  # the comparisons that judged the last step: the loss and every parameter

    def result(self):
        """The run as the checker's Result (crosscheck.check), one row per quantity, for the CI reports: the loss
        and each parameter, judged at every step up to the last one (its comparison shown)."""
        from crosscheck.check import Result, Row

        k = self.summary["steps"]
        named = [(f"{c.name.split(' at step ')[0].split(' after step ')[0]} at steps 1..{k}", c) for c in self.judged]
        rows = tuple(Row("", name, replace(c, name=name)) for name, c in named)
        return Result(f"train {self.summary['title']}", self.summary["dtype"], rows, self.summary["injected"])

    @property
    def passed(self):
        return self.first is None

    def saved(self):
        """The arrays crosscheck.runfile saves: `arrays` and the summary as JSON text."""
        return self.arrays | {"summary": np.array(json.dumps(self.summary, allow_nan=False))}


@contextlib.contextmanager
def progress_bar(wanted, stream=None, mininterval=0.1):
    """A progress bar on `stream` (stderr) while training -> the progress callback of train, or None: only where
    it is `wanted` and the stream is a terminal (never into --json or a pipe), and only with tqdm installed."""
    stream = sys.stderr if stream is None else stream
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if not wanted or tqdm is None or not stream.isatty():
        yield None
        return
    with tqdm(file=stream, unit="step", leave=False, dynamic_ncols=True, mininterval=mininterval) as bar:
        def progress(done, total, info):
            bar.total = total
            bar.update(done - bar.n)
            held_out = "-" if info["held-out"] is None else f"{100 * info['held-out']:.1f} %"
            bar.set_postfix_str(f"epoch {info['epoch']}, E manual {info['E manual']:.4g}, E autograd "
                                f"{info['E autograd']:.4g}, held-out {held_out}, max rel diff "
                                f"{info['max rel diff']:.1e}", refresh=not mininterval)
        yield progress


def _injected(network):
    wrong = network.wrong
    return "" if wrong is None else f"{wrong.name} ({wrong.description})"


def _finite(x):
    """JSON has no inf or NaN: a difference that could not be measured (a manual side of another shape) is None."""
    return float(x) if np.isfinite(x) else None


def _accuracy(predicted, labels):
    return float(np.mean(predicted == labels))


def _confusion(labels, predicted, classes):
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def _plan(n_train, batch, epochs, seed, steps):
    """The mini-batches: per epoch a seeded permutation cut into full batches -> [(epoch, indices)], at most
    `steps` of them."""
    if batch > n_train:
        raise InputError(f"batch: got {batch}, needs at most the {n_train} training images")
    rng = np.random.default_rng([seed, 3])
    plan = [(epoch, order[i:i + batch]) for epoch in range(epochs)
            for order in [rng.permutation(n_train)] for i in range(0, n_train - batch + 1, batch)]
    return plan if steps is None else plan[:steps]


def _usable(grads, key, like):
    value = None if isinstance(grads, ManualFailure) else grads.get(key)
    if value is None or isinstance(value, ManualFailure) or np.shape(value) != np.shape(like):
        return np.full(np.shape(like), np.nan)
    return np.asarray(value, np.float64)


def _kept(steps, buffers):
    """(E, grads, params) of `steps` -> (E, grads, params, a copy of the running statistics after that step)."""
    for E, grads, params in steps:
        yield E, grads, params, dict(buffers)


def _one_step(network, batch, data, k, max_memory, buffers):
    """Both sides' step on one batch from the same parameters (data: X, T, params) and running statistics
    (`buffers`, autograd's; empty before step 1: torch's 0 and 1) and a fresh optimizer state, taken `update_steps`
    times (twice on a described network: its momentum buffer counts from the second step on, as in the checker's
    walk) -> the comparisons of E, of every parameter and of every running statistic after each."""
    subject = network.subject(batch, data, max_memory)
    X, T, params = data
    batches = [(X, T)] * subject.update_steps
    mine, theirs = dict(buffers), dict(buffers)
    try:
        manual = list(_kept(subject.manual_steps(batches, mine), mine))
    except BrokenChain as err:
        manual = [(ManualFailure(str(err)), None, _failed(params, err), {})] * len(batches)
    autograd = _kept(subject.reference_steps(batches, theirs), theirs)
    return [row for (E_m, _, params_m, buffers_m), (E_a, _, params_a, buffers_a) in zip(manual, autograd, strict=True)
            for row in _compared(network, k, E_m, E_a, params_m, params_a, buffers_m, buffers_a)]


def _compared(network, k, E_m, E_a, params_m, params_a, buffers_m, buffers_a):
    """The comparisons of step k: E, every parameter, every batch norm's running statistics (a manual side that
    kept none where autograd keeps them: a ManualFailure on each)."""
    missing = ManualFailure("the manual side kept no running statistics")
    return [compare(f"E at step {k}", E_m, E_a, network.dtype)] + [
        compare(f"{name} after step {k}", params_m[name], params_a[name], network.dtype) for name in params_a] + [
        compare(f"{name} after step {k}", buffers_m.get(name, missing), buffers_a[name], network.dtype)
        for name in buffers_a]


def train(network, epochs=10, batch=32, seed=0, steps=None, test_fraction=TEST_FRACTION, max_memory=None,
          progress=None, top=5):
    """Train `network` (Slides or Described) both ways in lockstep -> Training. `steps` stops after that many
    steps; `progress(done, total, info)` is called after every step (crosscheck.cli's progress bar)."""
    epochs = check_positive_int("epochs", epochs)
    batch = check_positive_int("batch", batch)
    steps = None if steps is None else check_positive_int("steps", steps)
    (train_images, train_labels), (test_images, test_labels) = digits(seed, test_fraction)
    X, T = network.arrays(train_images, train_labels)
    X_test, _ = network.arrays(test_images, test_labels)
    labels, labels_test = network.task_labels(train_labels), network.task_labels(test_labels)
    plan = _plan(len(X), batch, epochs, seed, steps)
    subject = network.subject(batch, (X[plan[0][1]], T[plan[0][1]], network.params), max_memory)
    tol = tolerance_for(DTYPES[network.dtype])
    buffers_m, buffers_a = {}, {}  # the batch norms' running statistics, each side's, after the latest step
    manual = subject.manual_steps(((X[i], T[i]) for _, i in plan), buffers_m)
    autograd = subject.reference_steps(((X[i], T[i]) for _, i in plan), buffers_a)
    record = {"loss_manual": [], "loss_autograd": [], "max_rel_diff": []}
    seconds = {"manual": 0.0, "autograd": 0.0, "compare": 0.0, "one-step": 0.0, "accuracy": 0.0, "walk": 0.0}
    curves, epoch_steps, first, diagnosis, drift_from, unconfirmed = [], [], None, None, None, 0
    before = params_m = params_a = network.params
    buffers_before, buffers_diff = {}, {}
    grads_m = grads_a, judged = {}, []
    for k, (epoch, indices) in enumerate(plan, 1):
        start = time.perf_counter()
        try:
            E_m, grads_m, params_m = next(manual)
        except BrokenChain as err:  # the manual side gave what cannot be used: a finding on this step
            E_m, grads_m, params_m = ManualFailure(str(err)), ManualFailure(str(err)), _failed(before, err)
        middle = time.perf_counter()
        E_a, grads_a, params_a = next(autograd)
        compared = time.perf_counter()
        rows = _compared(network, k, E_m, E_a, params_m, params_a, buffers_m, buffers_a)
        seconds["manual"] += middle - start
        seconds["autograd"] += compared - middle
        seconds["compare"] += time.perf_counter() - compared
        record["loss_manual"].append(float(E_m) if not isinstance(E_m, ManualFailure) else np.nan)
        record["loss_autograd"].append(float(E_a))
        record["max_rel_diff"].append(max(r.max_rel_error for r in rows))
        for name, row in zip(buffers_a, rows[len(rows) - len(buffers_a):], strict=True):
            buffers_diff[name] = max(buffers_diff.get(name, 0.0), row.max_rel_error)
        failed = [r for r in rows if not r.passed]
        if failed or drift_from is not None:  # judged by the one step from the same parameters
            start = time.perf_counter()
            data = (X[indices], T[indices], before)
            rows = _one_step(network, batch, data, k, max_memory, buffers_before)
            failed = [r for r in rows if not r.passed]
            if failed:  # the diagnosis has the last word: it compares every quantity of the step
                diagnosis = diagnose(network.subject(batch, data, max_memory), top)
                failed, unconfirmed = (failed, unconfirmed) if diagnosis.wrong else ([], unconfirmed + 1)
            seconds["one-step"] += time.perf_counter() - start
            drift_from = k if drift_from is None and not failed else drift_from
        if k == 1 and not failed and diagnosis is None:  # step 1 quantity by quantity: what training cannot see too
            start = time.perf_counter()
            walked = diagnose(network.subject(batch, (X[indices], T[indices], before), max_memory), top)
            seconds["walk"] += time.perf_counter() - start
            if walked.wrong:
                diagnosis, failed, rows = walked, [walked.first], rows + [walked.first]
        judged = rows
        last = k == len(plan) or plan[k][0] != epoch
        if last and not failed:
            start = time.perf_counter()
            curves.append({"epoch": epoch + 1, "steps": k, **{
                f"{split}_{side}": _accuracy(predict(params, images), truth)
                for split, images, truth in (("train", X, labels), ("test", X_test, labels_test))
                for side, predict, params in (("manual", network.predict_manual, params_m),
                                              ("autograd", network.predict_autograd, params_a))}})
            seconds["accuracy"] += time.perf_counter() - start
            epoch_steps.append(k)
        if progress is not None:
            progress(k, len(plan), {"epoch": epoch + 1, "E manual": record["loss_manual"][-1],
                                    "E autograd": record["loss_autograd"][-1],
                                    "held-out": curves[-1]["test_autograd"] if curves else None,
                                    "max rel diff": max(record["max_rel_diff"])})
        if failed:
            first = failed[0]
            break
        before, buffers_before = params_a, dict(buffers_a)
    done = len(record["loss_manual"])
    arrays = {key: np.asarray(value, np.float64) for key, value in record.items()}
    arrays |= {"rtol": np.float64(tol.rtol), "atol": np.float64(tol.atol),
               "epoch_steps": np.asarray(epoch_steps, np.int64)}
    for split in ("train", "test"):
        for side in ("manual", "autograd"):
            arrays[f"{split}_accuracy_{side}"] = np.asarray([c[f"{split}_{side}"] for c in curves], np.float64)
    like = network.params[network.filter_key]
    arrays["filter_grad_manual"] = _usable(grads_m, network.grad_key, like)
    arrays["filter_grad_autograd"] = _usable(grads_a, network.grad_key, like)
    arrays["filters_manual"] = _usable(params_m, network.filter_key, like)
    arrays["filters_autograd"] = _usable(params_a, network.filter_key, like)
    arrays["confusion_manual"] = _confusion(labels_test, network.predict_manual(params_m, X_test), network.classes) \
        if first is None else np.zeros((network.classes,) * 2, np.int64)
    arrays["confusion_autograd"] = _confusion(labels_test, network.predict_autograd(params_a, X_test),
                                              network.classes)
    summary = {
        "title": network.title, "task": network.task, "injected": _injected(network), "dtype": network.dtype,
        "seed": seed, "batch": batch,
        "lr": network.lr, "epochs": epochs, "steps": done, "planned_steps": len(plan),
        "train_images": len(X), "test_images": len(X_test), "stopped_at": None if first is None else done,
        "agree": first is None, "first": None if first is None else first.as_dict(), "drift_from": drift_from,
        "unconfirmed": unconfirmed,
        "accuracy": curves[-1] if curves else None, "max_rel_diff": _finite(arrays["max_rel_diff"].max()),
        # every batch norm's running statistics, compared after every step: the largest relative difference of each
        "buffers": {name: _finite(diff) for name, diff in buffers_diff.items()},
        "rule": {"rtol": tol.rtol, "atol": tol.atol},
        "ms_per_step": {part: 1e3 * s / done for part, s in seconds.items() if part not in ("accuracy", "walk")},
        "seconds": seconds,
    }
    return Training(arrays, summary, first, diagnosis, curves, tuple(judged))
