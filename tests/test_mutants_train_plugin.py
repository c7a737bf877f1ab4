"""What crosscheck.train's `train` reports beyond the other tests: the whole summary of a run that drifts (its keys,
the tolerance rule of its dtype, float32's too, the last epoch's accuracy), the time it took per part read from a
clock that ticks once per reading (so that every part's sum is a count: each step's manual, autograd and comparison
time, the one-step checks, the accuracy after each epoch, step 1's walk once, and per step all but the accuracy and
the walk), the progress callback's every call, the held-out confusion matrices of both sides, a batch norm's largest
running-statistic difference over all steps rather than the last step's, the diagnosis of a stop (one-step check or
step 1's walk) made on the step's own batch with the `top` given, and the memory budget given reaching the one-step
check and the diagnosis of a run that stops."""

import itertools
import types

import numpy as np
import pytest
from runs import BATCH_NORM_DIGITS, TINY

from crosscheck import render, subjects
from crosscheck import train as T
from crosscheck.check import overrides, seed_inject
from crosscheck.diagnose import diagnose
from manual import functional as MF
from netdesc.checks import InputError
from netdesc.description import parse_spec


class _Drifting(T.Slides):
    """The slides' network whose manual side moves every parameter by 1e-9 (10 float64 tolerances) from its third
    step on: the one-step check (one step) agrees, so the run drifts from step 3 and each later step is judged by
    the one-step check."""

    def subject(self, batch, data, max_memory=None):
        subject = super().subject(batch, data, max_memory)
        steps = subject.manual_steps

        def drifting(batches, buffers=None):
            for k, (E, grads, params) in enumerate(steps(batches, buffers), 1):
                yield E, grads, params if k < 3 else {n: p * (1 + 1e-9) for n, p in params.items()}
        subject.manual_steps = drifting
        return subject


def _ticking(monkeypatch):
    """train's clock: 0, 1, 2, ... one tick per reading."""
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=itertools.count().__next__))


def test_the_summary_of_a_drifting_run_with_its_times_and_progress(monkeypatch):
    """18 training images in batches of 8 over 2 epochs: 4 steps, drifting from step 3. Every step reads the clock
    4 times (manual, autograd, comparisons: one tick each), a one-step check twice (steps 3 and 4), the accuracy
    after each epoch twice, step 1's walk twice: the seconds are those counts."""
    _ticking(monkeypatch)
    calls = []
    network = _Drifting()
    run = T.train(network, epochs=2, batch=8, test_fraction=0.99,
                  progress=lambda done, total, info: calls.append((done, total, info)))
    arrays = run.arrays
    assert run.passed and [(c["epoch"], c["steps"]) for c in run.epochs] == [(1, 2), (2, 4)]
    assert run.summary == {
        "title": "the slides' network (3x3 filter -> sigmoid -> linear -> sigmoid, n_out 1)", "task": "odd or even",
        "injected": "", "dtype": "float64", "seed": 0, "batch": 8, "lr": 2.0, "epochs": 2, "steps": 4,
        "planned_steps": 4, "train_images": 18, "test_images": 1779, "stopped_at": None, "agree": True,
        "first": None, "drift_from": 3, "unconfirmed": 0, "accuracy": run.epochs[-1],
        "max_rel_diff": float(arrays["max_rel_diff"].max()), "buffers": {},
        "rule": {"rtol": 1e-10, "atol": 1e-12},
        "ms_per_step": {"manual": 1000.0, "autograd": 1000.0, "compare": 1000.0, "one-step": 500.0},
        "seconds": {"manual": 4.0, "autograd": 4.0, "compare": 4.0, "one-step": 2.0, "accuracy": 2.0, "walk": 1.0},
    }
    assert list(run.summary) == ["title", "task", "injected", "dtype", "seed", "batch", "lr", "epochs", "steps",
                                 "planned_steps", "train_images", "test_images", "stopped_at", "agree", "first",
                                 "drift_from", "unconfirmed", "accuracy", "max_rel_diff", "buffers", "rule",
                                 "ms_per_step", "seconds"]
    assert (arrays["rtol"], arrays["atol"]) == (1e-10, 1e-12)
    # the progress callback: after every step, the epoch counted from 1, the held-out accuracy of the last epoch
    held_out = [None, run.epochs[0]["test_autograd"], run.epochs[0]["test_autograd"], run.epochs[1]["test_autograd"]]
    assert calls == [(k, 4, {"epoch": 1 + (k > 2), "E manual": arrays["loss_manual"][k - 1],
                             "E autograd": arrays["loss_autograd"][k - 1], "held-out": held_out[k - 1],
                             "max rel diff": arrays["max_rel_diff"][:k].max()}) for k in (1, 2, 3, 4)]
    # the held-out confusion matrices: every held-out image once, the diagonal the ones predicted right, the same
    # on both sides (their parameters differ by rounding only)
    manual, autograd = arrays["confusion_manual"], arrays["confusion_autograd"]
    assert manual.shape == (2, 2) and manual.dtype == np.int64 and np.array_equal(manual, autograd)
    assert manual.sum() == 1779 and np.trace(manual) / 1779 == run.epochs[-1]["test_manual"]


def test_a_float32_run_is_judged_by_float32s_tolerance():
    run = T.train(T.Slides(dtype="float32"), steps=1, batch=8)
    assert run.summary["rule"] == {"rtol": 1e-4, "atol": 1e-6}
    assert (run.arrays["rtol"], run.arrays["atol"]) == (np.float64(1e-4), np.float64(1e-6))


class _RunningNudge(T.Described):
    """A described network whose manual side moves its batch norm's running variance by 1e-6 at its third step only
    (the one-step checks take two steps: never there); the difference then decays with the running average."""

    def subject(self, batch, data, max_memory=None):
        subject = super().subject(batch, data, max_memory)
        steps = subject.manual_steps

        def nudged(batches, buffers=None):
            for k, step in enumerate(steps(batches, buffers), 1):
                if k == 3:
                    buffers["1.running_var"] = buffers["1.running_var"] * (1 + 1e-6)
                yield step
        subject.manual_steps = nudged
        return subject


def test_a_running_statistics_difference_is_the_largest_over_all_steps_not_the_last():
    run = T.train(_RunningNudge(parse_spec(BATCH_NORM_DIGITS)), epochs=1, steps=4, batch=16)
    diffs = run.arrays["max_rel_diff"]
    assert run.passed and run.summary["drift_from"] == 3
    assert diffs[2] > diffs[3] > 1e-7  # the nudge at step 3, smaller at step 4
    assert run.summary["buffers"]["1.running_var"] == diffs[2]


# --- the diagnosis of a stop ---------------------------------------------------------------------------------------

def _first_batch(network, batch):
    X, Y = network.arrays(*T.digits(0)[0])
    indices = T._plan(len(X), batch, 10, 0, 1)[0][1]
    return X[indices], Y[indices], network.params


def test_the_one_step_checks_diagnosis_is_of_the_steps_batch_with_the_top_given():
    network = T.Slides(wrong=seed_inject("flipped-sign-dE_dO"))
    run = T.train(network, steps=1, batch=8, top=2)
    assert run.summary["stopped_at"] == 1 and run.first.name == "f after step 1"
    expected = diagnose(network.subject(8, _first_batch(network, 8)), 2)
    assert run.diagnosis.quantity == "dE/dO" and len(run.diagnosis.worst) == 2
    assert render.diagnosis_text(run.diagnosis) == render.diagnosis_text(expected)


def _doubled_dx(dout, cache):
    dx, dw, db = MF.linear_backward(dout, cache)
    return 2 * dx, dw, db


def test_step_1s_walk_diagnoses_the_steps_batch_with_the_top_given():
    """A linear layer after a flatten whose input gradient is doubled: no parameter depends on it, so only step 1's
    walk sees it."""
    network = T.Described(parse_spec(TINY), wrong=overrides({1: _doubled_dx}))
    run = T.train(network, steps=1, batch=4, top=2)
    assert run.summary["stopped_at"] == 1 and run.first.name == "1 linear: dE/dinput"
    assert run.arrays["max_rel_diff"][0] < 1e-10  # the step itself agreed
    expected = diagnose(network.subject(4, _first_batch(network, 4)), 2)
    assert run.diagnosis.quantity == "1 linear: dE/dinput" and len(run.diagnosis.worst) == 2
    assert render.diagnosis_text(run.diagnosis) == render.diagnosis_text(expected)


def test_the_memory_budget_given_reaches_the_one_step_check_and_the_diagnosis(monkeypatch):
    """On a machine whose default budget (half its memory) is too small, the budget given lets a run that stops
    make its one-step check and its diagnosis."""
    monkeypatch.setattr(subjects, "memory_budget", lambda: 1000)  # a machine of 2 kB
    network = T.Slides(wrong=seed_inject("flipped-sign-dE_dO"))
    with pytest.raises(InputError, match=r"^memory: "):
        network.subject(8, _first_batch(network, 8))
    run = T.train(network, steps=1, batch=8, max_memory=10**9)
    assert run.summary["stopped_at"] == 1 and run.diagnosis.quantity == "dE/dO"
