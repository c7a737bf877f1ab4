"""Edges of the CI reports (crosscheck.reports.Outputs) and of the saved run's checks (crosscheck.runfile) that the
other tests leave open: --markdown - without --json, the check's JUnit report stamped when the run started, a
summary that cannot be appended after the check naming --markdown, a version that cannot be read; runs at the edges
of what RUN_KEYS allows (epoch counts of 0 and repeated, accuracies of 0 and 1, atol 0, folders still to be made)
accepted, and the messages of what it refuses, whole."""

from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from run_files import same_bits, synthetic_run

from crosscheck import reports, runfile
from crosscheck.check import Result, Row
from crosscheck.compare import Comparison
from netdesc import InputError

TITLE = "seed network 4x4-k2-out1-N1-sum-float64-seed0"
RULE = "`|manual - autograd| <= 1e-12 + 1e-10 * |autograd|`"


def _result(injected=""):
    comparison = Comparison("Z1", (2, 3), True, 1e-17, 2e-17, (1, 2), 0.5, 0.25, "", "", 6)
    return Result(TITLE, "float64", (Row("", "Z1", comparison),), injected)


# --- crosscheck.reports ---------------------------------------------------------------------------------------

def test_a_distribution_that_is_not_installed_has_version_unknown():
    assert reports.installed_version("no-such-distribution-of-crosscheck") == "unknown"


def test_markdown_dash_without_json_returns_the_summary_in_place_of_the_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outputs = reports.Outputs("seed", markdown="-")  # as_json is False unless said
    assert outputs.markdown == "-"
    assert outputs.result(_result(), "the table") == (
        "## ✅ crosscheck seed: all 1 quantities agree\n\n"
        f"{TITLE}, float64: hand-derived NumPy against PyTorch autograd; pass when {RULE}.\n\n"
        "| quantity | shape | max abs err | max rel err | result |\n"
        "| --- | --- | ---: | ---: | --- |\n"
        "| Z1 | (2, 3) | 1.000e-17 | 2.000e-17 | ok |")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("injected", ["sign flipped in dE/dX", "sign flipped in dE/dX "])
def test_markdown_dash_drops_only_the_closing_newlines(injected):
    """Nothing compared: the summary ends with the injected derivation, kept as written up to its last character."""
    outputs = reports.Outputs("seed", markdown="-")
    assert outputs.result(Result(TITLE, "float64", (), injected), "the table") == (
        "## ❌ crosscheck seed: nothing was compared\n\n"
        f"{TITLE}, float64: hand-derived NumPy against PyTorch autograd; pass when {RULE}.\n\n"
        f"Injected wrong derivation: {injected}")


def test_the_junit_report_of_a_check_is_stamped_when_the_run_started(tmp_path):
    outputs = reports.Outputs("seed", junit=str(tmp_path / "junit.xml"))
    outputs.started = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    assert outputs.result(_result(), "the table") == "the table"
    suite = ET.parse(tmp_path / "junit.xml").getroot()[0]
    assert suite.get("timestamp") == "2024-05-06T07:08:09+02:00"


def test_a_summary_that_cannot_be_appended_after_the_check_names_markdown(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    outputs = reports.Outputs("seed", markdown=str(folder / "summary.md"))
    folder.rmdir()  # the folder goes away during the run
    with pytest.raises(InputError) as info:
        outputs.result(_result(), "the table")
    assert str(info.value) == (f"--markdown: got '{folder}/summary.md', cannot append to it: No such file or "
                               "directory")


# --- crosscheck.runfile -------------------------------------------------------------------------------------

def _changed(**changes):
    return synthetic_run(steps=4, epochs=3, classes=3) | changes


def test_epochs_of_no_steps_and_epochs_ending_on_the_same_step_are_accepted():
    run = runfile.check_run(_changed(epoch_steps=np.array([0, 0, 4])))
    assert run["epoch_steps"].tolist() == [0, 0, 4]


def test_accuracies_of_zero_and_one_and_an_atol_of_zero_are_accepted(tmp_path):
    accuracy = np.array([0.0, 0.5, 1.0])
    run = _changed(train_accuracy_manual=accuracy, test_accuracy_autograd=accuracy[::-1].copy(), atol=np.array(0.0))
    path, _ = runfile.save_run(tmp_path / "r.npz", run)
    loaded = runfile.load_run(path)
    assert all(same_bits(loaded[k], np.asarray(run[k])) for k in run)


def test_a_run_is_saved_into_folders_made_for_it(tmp_path):
    path, beside = runfile.save_run(tmp_path / "runs" / "today" / "r.npz", synthetic_run())
    assert (path.is_file(), beside.is_file()) == (True, True)
    assert beside.parent == tmp_path / "runs" / "today"


@pytest.mark.parametrize(("run", "message"), [
    (_changed(loss_autograd=np.zeros(3)), "arrays['loss_autograd']: got shape (3,), needs (4,), one per step as "
     "loss_manual"),
    (_changed(rtol=np.array(1e-10, np.float32)), "arrays['rtol']: got dtype float32, needs float64"),
    (_changed(atol=np.array(1e-12, np.float32)), "arrays['atol']: got dtype float32, needs float64"),
    (_changed(train_accuracy_manual=np.zeros(3, np.float32)), "arrays['train_accuracy_manual']: got dtype float32, "
     "needs float64"),
    (_changed(test_accuracy_manual=np.array([0.5, 1.5, 1.0])), "arrays['test_accuracy_manual']: got values outside "
     "[0, 1], needs accuracies in [0, 1]"),
    (_changed(extra=np.zeros(1), more=np.zeros(1)), "arrays: unknown extra, more; needs exactly the keys of "
     "crosscheck.runfile.RUN_KEYS"),
], ids=["loss-autograd-length", "rtol-float32", "atol-float32", "accuracy-float32", "accuracy-above-one",
        "two-unknown-keys"])
def test_what_a_run_may_not_hold_is_refused_with_the_whole_message(run, message, tmp_path):
    with pytest.raises(InputError) as info:
        runfile.save_run(tmp_path / "r.npz", run)
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []
