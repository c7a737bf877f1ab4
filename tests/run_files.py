"""Synthetic saved runs (crosscheck.runfile's keys) with known values, for the plots' and the run file's tests, and
what the picture tests share."""

import io
import json

import numpy as np

from crosscheck.compare import compare
from crosscheck.diagnose import Diagnosis
from crosscheck.subjects import Step


def synthetic_run(steps=60, epochs=3, classes=10, bank=(3, 3), stopped_at=None, seed=0, title="synthetic run"):
    """A run that looks like a real one: a falling loss, autograd's a rounding error away from manual's, relative
    differences around 1e-16 with exact zeros among them, rising accuracies, a filter bank of shape `bank`, and
    confusion matrices of `classes` classes."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    loss = 2.3 * np.exp(-t / 20) + 0.1 + 0.05 * rng.random(steps)
    rel = np.where(rng.random(steps) < 0.3, 0.0, rng.uniform(1e-16, 8e-16, steps))
    accuracy = np.linspace(0.5, 0.95, epochs)
    grad = rng.normal(size=bank)
    filters = rng.normal(size=bank)
    truth = rng.integers(0, classes, 400)
    guess = np.where(rng.random(400) < 0.8, truth, rng.integers(0, classes, 400))
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (truth, guess), 1)
    summary = {"title": title, "dtype": "float64", "epochs": epochs, "steps": steps, "stopped_at": stopped_at}
    return {
        "loss_manual": loss, "loss_autograd": loss * (1 + 2e-16),
        "max_rel_diff": rel,
        "rtol": np.array(1e-10), "atol": np.array(1e-12),
        "epoch_steps": np.linspace(steps // epochs, steps, epochs).astype(np.int64) if epochs else np.zeros(0, int),
        "train_accuracy_manual": accuracy, "train_accuracy_autograd": accuracy.copy(),
        "test_accuracy_manual": accuracy - 0.02, "test_accuracy_autograd": accuracy - 0.02,
        "filter_grad_manual": grad, "filter_grad_autograd": grad * (1 + 1e-16),
        "filters_manual": filters, "filters_autograd": filters.copy(),
        "confusion_manual": confusion, "confusion_autograd": confusion.copy(),
        "summary": np.array(json.dumps(summary)),
    }


def npz_bytes(allow_pickle=False, **arrays):
    """The bytes of an .npz archive of `arrays`."""
    out = io.BytesIO()
    np.savez(out, allow_pickle=allow_pickle, **arrays)
    return out.getvalue()


def npy_bytes(array):
    """The bytes of an .npy file of one array."""
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def same_bits(a, b):
    """Whether two arrays are equal bit for bit, with the same dtype and shape."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def diagnosis_of(manual, autograd, quantity="q", where="", dtype="float64", subject="a test subject"):
    """A diagnosis whose first wrong quantity is `manual` against `autograd`, compared under `dtype`'s tolerance."""
    step = Step(where, quantity, manual, autograd)
    return Diagnosis(subject, dtype, (step.name,), compare(step.name, manual, autograd, dtype), step=step)


def centred(ax, message):
    """Assert that a panel's one text is `message`, centred in the panel within a pixel (a picture's empty panel)."""
    (text,) = ax.texts
    assert text.get_text() == message
    box, panel = text.get_window_extent(), ax.get_window_extent()
    assert abs((box.x0 + box.x1) / 2 - (panel.x0 + panel.x1) / 2) < 1
    assert abs((box.y0 + box.y1) / 2 - (panel.y0 + panel.y1) / 2) < 1
    assert box.width > 30 and box.height > 5  # the text itself, not a point


def visible_ticks(ax, which):
    """The ticks of axis `which` ("x" or "y") that fall inside the panel's limits, as floats."""
    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    ticks = ax.get_xticks() if which == "x" else ax.get_yticks()
    return [float(t) for t in ticks if low <= t <= high]
