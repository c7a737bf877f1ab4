"""A saved training run: the arrays of ``crosscheck train``, manual and autograd side by side, in one ``.npz`` file
with a JSON summary beside it (``run.npz`` -> ``run.json``). NumPy only; ``crosscheck plot`` draws it.

RUN_KEYS maps every key to a line saying what it holds; each is required and no other is allowed (``check_run``
checks a run: keys, dtypes, shapes, lengths, ranges, the summary). "steps" is the number of SGD steps done,
"epochs" the number of epochs finished; a run stopped at the first divergence is shorter than planned, its
per-epoch arrays possibly empty.

=========================== ===================== =================================================================
key                         dtype (shape)         meaning
=========================== ===================== =================================================================
loss_manual, loss_autograd  float64 (steps,)      the mini-batch loss before each step, by hand and by autograd
max_rel_diff                float64 (steps,)      after each step, the largest |manual - autograd| / |autograd|
                                                  among the loss and every parameter (0 where the two are equal;
                                                  inf and NaN allowed)
rtol, atol                  float64 ()            the tolerance of the run's dtype: an element passes when
                                                  |m - a| <= atol + rtol * |a| (crosscheck.tolerances)
epoch_steps                 int64 (epochs,)       the steps done at the end of each epoch, non-decreasing
train_accuracy_manual,      float64 (epochs,)     the accuracy on the training split after each epoch, in [0, 1]
train_accuracy_autograd
test_accuracy_manual,       float64 (epochs,)     the accuracy on the held-out split after each epoch, in [0, 1]
test_accuracy_autograd
filter_grad_manual,         float32 or float64,   the first convolution's weight gradient at the last step:
filter_grad_autograd        (KH, KW) or           dE/df of the slides' network, or the first conv2d's
                            (C_out, C_in, KH, KW) dE/dweight of a described network
filters_manual,             as filter_grad_*      the first convolution's weights at the end of the run
filters_autograd
confusion_manual,           int64 (C, C)          counts on the held-out split: rows the true class, columns the
confusion_autograd                                predicted one
summary                     unicode ()            JSON text of a dict with at least "title" (text), "dtype"
                                                  (text), "epochs" (planned, int), "steps" (done, int, the length
                                                  of the per-step arrays) and "stopped_at" (the step, in 1 ..
                                                  steps, where training stopped at the first divergence, or null)
=========================== ===================== =================================================================

The two sides' filter arrays may differ in shape (a derivation that returns a wrong shape): the plots say so.
``save_run`` writes both files atomically (each to a temporary file in the same folder, then os.replace; the folder
is made where missing): a failed write leaves the files that were there before. The JSON beside the run is its
summary plus the final values: "run" (the .npz file's name), "rtol", "atol", "epochs_done", "largest_rel_diff"
(over the steps) and the last "loss_*" and "*_accuracy_*" of each side, null where there is none or it is not
finite. ``load_run`` reads with ``allow_pickle=False``; loading and saving again gives the same arrays bit for
bit, with the same dtypes.
"""

import json
import math
import os
import pathlib
import zipfile

import numpy as np

from crosscheck.reports import temporary_beside
from netdesc.checks import InputError, is_int

_STEP = ("loss_manual", "loss_autograd", "max_rel_diff")
_EPOCH = ("train_accuracy_manual", "train_accuracy_autograd", "test_accuracy_manual", "test_accuracy_autograd")
_FILTERS = ("filter_grad_manual", "filter_grad_autograd", "filters_manual", "filters_autograd")
_CONFUSION = ("confusion_manual", "confusion_autograd")
SUMMARY_FIELDS = ("title", "dtype", "epochs", "steps", "stopped_at")
# What a run file's arrays may take in all: far above any run (a million steps take 24 MB), far below what would
# hurt a machine to allocate on the word of a damaged header.
MAX_RUN_BYTES = 2**30

RUN_KEYS = {
    "loss_manual": "float64 (steps,): the manual side's mini-batch loss before each step",
    "loss_autograd": "float64 (steps,): autograd's mini-batch loss before each step",
    "max_rel_diff": "float64 (steps,): the largest |manual - autograd| / |autograd| among the loss and every "
                    "parameter after each step",
    "rtol": "float64 (): the run's relative tolerance",
    "atol": "float64 (): the run's absolute tolerance",
    "epoch_steps": "int64 (epochs,): the steps done at the end of each epoch",
    "train_accuracy_manual": "float64 (epochs,): the manual side's accuracy on the training split, in [0, 1]",
    "train_accuracy_autograd": "float64 (epochs,): autograd's accuracy on the training split, in [0, 1]",
    "test_accuracy_manual": "float64 (epochs,): the manual side's accuracy on the held-out split, in [0, 1]",
    "test_accuracy_autograd": "float64 (epochs,): autograd's accuracy on the held-out split, in [0, 1]",
    "filter_grad_manual": "float (KH, KW) or (C_out, C_in, KH, KW): the manual first conv's weight gradient, last step",
    "filter_grad_autograd": "float (KH, KW) or (C_out, C_in, KH, KW): autograd's first conv's weight gradient",
    "filters_manual": "float (KH, KW) or (C_out, C_in, KH, KW): the manual side's first conv's weights at the end",
    "filters_autograd": "float (KH, KW) or (C_out, C_in, KH, KW): autograd's first conv's weights at the end",
    "confusion_manual": "int64 (C, C): the manual side's held-out counts, rows true class, columns predicted",
    "confusion_autograd": "int64 (C, C): autograd's held-out counts, rows true class, columns predicted",
    "summary": "unicode (): JSON text of a dict with title, dtype, epochs, steps, stopped_at",
}


# --- validation ------------------------------------------------------------------------------------------------

def check_run(arrays, source=None):
    """The arrays of a run checked against RUN_KEYS -> {key: ndarray}; InputError otherwise, one line naming the key
    (as arrays['key'], or as "FILE: key" where `source` names the file read), what it got and what it needs."""
    def label(key):
        return f"arrays[{key!r}]" if source is None else f"{source}: {key}"

    if not hasattr(arrays, "keys"):
        raise InputError(f"arrays: got {type(arrays).__name__}, needs a mapping of the run's keys to arrays")
    keys = set(arrays.keys())
    missing, unknown = sorted(set(RUN_KEYS) - keys), sorted(map(str, keys - set(RUN_KEYS)))
    if missing or unknown:
        got = "; ".join(part for part in (missing and f"missing {', '.join(missing)}",
                                          unknown and f"unknown {', '.join(unknown)}") if part)
        raise InputError(f"{'arrays' if source is None else source}: {got}; needs exactly the keys of "
                         "crosscheck.runfile.RUN_KEYS")
    run = {}
    for key in RUN_KEYS:
        try:
            run[key] = np.asarray(arrays[key])
        except (ValueError, TypeError):  # ragged nesting
            raise InputError(f"{label(key)}: got {type(arrays[key]).__name__}, needs an array") from None
    _check_arrays(run, label)
    return run


def _need(ok, label, key, got, needs):
    if not ok:
        raise InputError(f"{label(key)}: got {got}, needs {needs}")


def _dtype(run, label, key, kinds, needs):
    a = run[key]
    _need(a.dtype in kinds, label, key, f"dtype {a.dtype}", needs)
    return a


def _ndim(run, label, key, ndims, needs):
    a = run[key]
    _need(a.ndim in ndims, label, key, f"shape {a.shape}", needs)
    return a


def _check_arrays(run, label):
    f64, i64 = (np.dtype(np.float64),), (np.dtype(np.int64),)
    for key in _STEP:
        _dtype(run, label, key, f64, "float64")
        _ndim(run, label, key, (1,), "1-D (steps,)")
    steps = len(run["loss_manual"])
    for key in _STEP[1:]:
        _need(len(run[key]) == steps, label, key, f"shape {run[key].shape}", f"({steps},), one per step as "
              "loss_manual")
    for key, least in (("rtol", 0.0), ("atol", 0.0)):
        a = _dtype(run, label, key, f64, "float64")
        _ndim(run, label, key, (0,), "a 0-d array (a scalar)")
        _need(np.isfinite(a) and (a > least if key == "rtol" else a >= least), label, key, f"{float(a)!r}",
              "a finite number > 0" if key == "rtol" else "a finite number >= 0")
    epoch_steps = _dtype(run, label, "epoch_steps", i64, "int64")
    _ndim(run, label, "epoch_steps", (1,), "1-D (epochs,)")
    _need(bool(np.all((epoch_steps >= 0) & (epoch_steps <= steps)) and np.all(np.diff(epoch_steps) >= 0)), label,
          "epoch_steps", f"{epoch_steps.tolist()}", f"non-decreasing step counts in [0, {steps}]")
    for key in _EPOCH:
        a = _dtype(run, label, key, f64, "float64")
        _need(a.shape == epoch_steps.shape, label, key, f"shape {a.shape}", f"{epoch_steps.shape}, one per epoch as "
              "epoch_steps")
        _need(bool(np.all((a >= 0) & (a <= 1))), label, key, "values outside [0, 1]", "accuracies in [0, 1]")
    for key in _FILTERS:
        _dtype(run, label, key, (np.dtype(np.float32), np.dtype(np.float64)), "float32 or float64")
        _ndim(run, label, key, (2, 4), "(KH, KW) or (C_out, C_in, KH, KW)")
    for key in _CONFUSION:
        a = _dtype(run, label, key, i64, "int64")
        _need(a.ndim == 2 and a.shape[0] == a.shape[1], label, key, f"shape {a.shape}", "a square (C, C) matrix")
        _need(bool(np.all(a >= 0)), label, key, "negative counts", "counts >= 0")
    _need(run["confusion_autograd"].shape == run["confusion_manual"].shape, label, "confusion_autograd",
          f"shape {run['confusion_autograd'].shape}", f"{run['confusion_manual'].shape}, as confusion_manual")
    _check_summary(run, label)


def summary_of(run):
    """A checked run's summary as a dict."""
    return json.loads(str(run["summary"]))


def _finite_number(text):
    """json's parse_float and parse_constant: a number JSON can hold, never NaN or a float out of range."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is no finite number, and JSON holds no other")
    return value


def _check_summary(run, label):
    """The run's summary as a dict, checked: a 0-d unicode array of JSON text with SUMMARY_FIELDS."""
    a = run["summary"]
    _need(a.dtype.kind == "U" and a.ndim == 0, label, "summary", f"dtype {a.dtype} shape {a.shape}",
          "a 0-d unicode array of JSON text")
    try:
        summary = json.loads(str(a), parse_float=_finite_number, parse_constant=_finite_number)
    except ValueError as err:
        raise InputError(f"{label('summary')}: not JSON: {err}") from None
    _need(isinstance(summary, dict), label, "summary", type(summary).__name__, "a JSON object (a dict)")
    missing = [field for field in SUMMARY_FIELDS if field not in summary]
    _need(not missing, label, "summary", f"no {', '.join(missing)}", f"the fields {', '.join(SUMMARY_FIELDS)}")
    for field in ("title", "dtype"):
        _need(isinstance(summary[field], str), label, "summary", f"{field} {summary[field]!r}", f"{field} as text")
    steps, epochs = len(run["loss_manual"]), len(run["epoch_steps"])
    _need(summary["steps"] == steps and is_int(summary["steps"]), label, "summary",
          f"steps {summary['steps']!r}", f"{steps}, the length of the per-step arrays")
    _need(is_int(summary["epochs"], epochs), label, "summary", f"epochs {summary['epochs']!r}",
          f"an integer >= {epochs}, the epochs finished")
    stopped = summary["stopped_at"]
    _need(stopped is None or (is_int(stopped, 1) and stopped <= steps), label, "summary", f"stopped_at {stopped!r}",
          f"null or a step in [1, {steps}]")
    return summary


# --- writing and reading -----------------------------------------------------------------------------------------

def _finite_or_none(values, pick):
    if not len(values):
        return None
    value = float(pick(values))
    return value if np.isfinite(value) else None


def _summary_json(run, name):
    """The JSON beside a run: its summary and the final values (null where none or not finite)."""
    last = lambda v: v[-1]  # noqa: E731
    document = summary_of(run) | {
        "run": name, "rtol": float(run["rtol"]), "atol": float(run["atol"]), "epochs_done": len(run["epoch_steps"]),
        "largest_rel_diff": _finite_or_none(run["max_rel_diff"], np.max),
    }
    for key in ("loss_manual", "loss_autograd", *_EPOCH):
        document[key] = _finite_or_none(run[key], last)
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def _temporary(target):
    """A new file beside `target` (created with the umask's permissions, as a plain open would) -> its path."""
    name = temporary_beside(target)
    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return name


def write_atomically(files):
    """{target path: write(binary file)}: every file written to a temporary beside its target, flushed to disk,
    then moved over the targets in order; on any error the temporaries are removed and the targets are as they
    were (short of an error between two moves). OSError -> InputError naming the target."""
    temporaries = {}
    target = None
    try:
        for target, write in files.items():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise InputError(f"{target}: cannot write: a file stands in the way of its folder "
                                 f"{target.parent}") from None
            temporaries[target] = _temporary(target)
            with open(temporaries[target], "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        for target, temporary in temporaries.items():
            os.replace(temporary, target)
    except OSError as err:
        raise InputError(f"{target}: cannot write: {err.strerror or err}") from None
    finally:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)


def run_path(path, name="path"):
    """Where a run is to be saved -> Path; InputError naming `name` for another suffix or a directory (checked
    before a run starts, by crosscheck train --save, and again by save_run)."""
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        raise InputError(f"{name}: got {str(path)!r}, needs a file name ending in .npz")
    if path.is_dir():
        raise InputError(f"{path}: got a directory, needs a file name ending in .npz")
    return path


def save_run(path, arrays):
    """Save a run (RUN_KEYS -> arrays) to `path` (.npz) and its JSON summary beside it (.json), atomically ->
    (npz path, json path). InputError for a missing or unknown key, an array that is not as RUN_KEYS says, or a
    file that cannot be written."""
    path = run_path(path)
    run = check_run(arrays)
    beside = path.with_suffix(".json")
    text = _summary_json(run, path.name)
    write_atomically({path: lambda f: np.savez(f, allow_pickle=False, **run),
                      beside: lambda f: f.write(text.encode())})
    return path, beside


def _arrays(f, name):
    """Every array of the .npz archive open as f -> {key: ndarray}; each member's header read first, so that an
    object array is refused before anything is unpickled and a size that cannot be is refused before it is
    allocated."""
    try:
        data = np.load(f, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile):  # no archive: text, pickles, nothing, a cut-off zip
        raise InputError(f"{name}: not a saved run: not an .npz archive") from None
    except Exception as err:  # noqa: BLE001 - a damaged zip directory (a version, a flag) makes zipfile raise others
        raise _damaged(name, err) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{name}: not a saved run: one .npy array, needs an .npz archive of the run's arrays")
    with data:
        try:
            members = data.zip.infolist()
            if sum(info.file_size for info in members) > MAX_RUN_BYTES:
                raise InputError(f"{name}: not a saved run: its arrays take more than {MAX_RUN_BYTES:,} bytes")
            for info in members:
                _check_member(data.zip, info, name)
            return {key: data[key] for key in data.files}
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - damaged bytes make zipfile and numpy raise many kinds
            raise _damaged(name, err) from None


def _damaged(name, err):
    return InputError(f"{name}: not a saved run: a damaged archive ({type(err).__name__}: {err})")


def _check_member(archive, info, name):
    """One .npy member's header: not an object array, and as many bytes as its shape and dtype need."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        # 3.0 is 2.0 with a UTF-8 header, which only a structured dtype's field names need (a run has none)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
                (3, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise InputError(f"{name}: not a saved run: {info.filename} is in .npy format version {version[0]}."
                             f"{version[1]}, needs 1.0, 2.0 or 3.0")
        shape, _, dtype = read(member)
        if dtype.hasobject:
            raise InputError(f"{name}: not a saved run: it holds object arrays (pickled Python objects), needs "
                             "arrays of numbers and text")
        needed = math.prod(shape) * dtype.itemsize
        if needed != info.file_size - member.tell():
            raise InputError(f"{name}: not a saved run: a damaged archive ({info.filename}: its header says "
                             f"{needed:,} bytes, it holds {info.file_size - member.tell():,})")


def load_run(path):
    """A run saved by save_run -> {key: ndarray}, read with allow_pickle=False. InputError (one line naming the
    path) for a missing file, a directory, a file that is not an .npz archive, object arrays, missing or unknown
    keys, or arrays that are not as RUN_KEYS says."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise InputError(f"{name}: got a directory, needs a saved run (.npz)")
    try:
        with open(name, "rb") as f:  # closed here whatever np.load raises
            arrays = _arrays(f, name)
    except OSError as err:
        raise InputError(f"{name}: cannot read: {err.strerror or err}") from None
    return check_run(arrays, name)
