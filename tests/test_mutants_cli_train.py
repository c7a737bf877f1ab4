"""crosscheck train's command line around the run: the memory budget and the seed checked for both networks, the
--save option named in its error, --dtype reaching the slides' network and an injected layer, the progress bar only
where wanted, the JUnit properties of a described network, and --json indented by two."""

import functools
import io
import json
import pathlib
import sys
import xml.etree.ElementTree as ET

import pytest

from crosscheck import cli
from crosscheck import train as training

ROOT = pathlib.Path(__file__).resolve().parents[1]
LENET = str(ROOT / "examples" / "digits-lenet.toml")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_train_refuses_the_slides_network_over_the_memory_budget(capsys):
    assert cli.main(["train", "--max-memory", "1", "--steps", "1"]) == 2
    assert capsys.readouterr() == ("", "crosscheck: error: memory: the slides' network "
                                   "8x8-k3-out1-N32-mean-float64-seed0 needs about 1.34 MB, more than the budget of "
                                   "1 bytes (--max-memory SIZE sets it)\n")


def test_train_refuses_a_described_network_over_the_memory_budget_before_the_run(capsys):
    assert cli.main(["train", "--spec", LENET, "--max-memory", "1", "--steps", "1"]) == 2
    assert capsys.readouterr() == ("", "crosscheck: error: memory: network 'digits-lenet' with batch 2 needs about "
                                   "2.82 MB, more than the budget of 1 bytes (--max-memory SIZE sets it)\n")


@pytest.mark.parametrize("spec", [[], ["--spec", LENET]], ids=["slides", "described"])
def test_train_refuses_a_negative_seed_naming_it(spec, capsys):
    assert cli.main(["train", *spec, "--seed", "-1"]) == 2
    assert capsys.readouterr() == ("", "crosscheck: error: seed: got -1, needs an integer >= 0\n")


def test_train_save_needs_an_npz_name_and_says_so_before_training(capsys):
    assert cli.main(["train", "--save", "run.txt"]) == 2
    assert capsys.readouterr() == ("", "crosscheck: error: --save: got 'run.txt', needs a file name ending in "
                                   ".npz\n")


def test_train_dtype_reaches_the_slides_network(capsys):
    assert cli.main(["train", "--dtype", "float32", "--steps", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dtype"] == "float32" and data["title"].startswith("the slides' network")


def test_train_json_is_indented_by_two(capsys):
    assert cli.main(["train", "--steps", "1", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('{\n  "title": "the slides\' network') and out.endswith('\n  "written": []\n}\n')


@pytest.mark.parametrize("argv, shown", [([], True), (["--no-progress"], False), (["--json"], False),
                                         (["--json", "--no-progress"], False)])
def test_train_shows_the_progress_bar_on_a_terminal_unless_told_not_to(argv, shown, monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    # every step drawn at once (no minimum interval), so that what the bar shows does not depend on the clock
    monkeypatch.setattr(training, "progress_bar", functools.partial(training.progress_bar, mininterval=0))
    assert cli.main(["train", "--steps", "2", *argv]) == 0
    assert ("2/2" in terminal.getvalue() and "epoch 1, E manual" in terminal.getvalue()) is shown
    if not shown:
        assert terminal.getvalue() == ""


def test_train_junit_properties_name_the_description_the_seed_and_the_dtype(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    assert cli.main(["train", "--spec", LENET, "--steps", "1", "--seed", "3", "--junit-xml", str(report)]) == 0
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert {k: properties.get(k) for k in ("description", "seed", "dtype")} == \
        {"description": LENET, "seed": "3", "dtype": "float64"}


def test_train_scales_an_injected_layer_by_the_tolerance_of_the_dtype_trained(capsys):
    # float32's rtol is 1e-4: the layer's backward scaled by 1 + 100 * 1e-4, out of float32's tolerance at step 1
    assert cli.main(["train", "--spec", LENET, "--dtype", "float32", "--inject", "0", "--steps", "1", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["injected"] == "scaled@0 (layer 0 (conv2d)'s backward scaled by 1 + 0.01)"
    assert (data["stopped_at"], data["agree"], data["first"]["name"]) == (1, False, "0 conv2d: dE/dinput")


def test_train_markdown_of_a_stopped_run_carries_the_diagnosis(capsys):
    assert cli.main(["train", "--inject", "missing-dH1_dZ1", "--markdown", "-"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("## ❌ crosscheck train: 1 of 4 quantities differ\n")
    assert ("\n**First wrong quantity: dH1/dZ1**, shape (32, 6, 6); walked 14 quantities in the order the computation "
            "makes them, the first 13 agree.\n\n**Class:** activation derivative missing (activation-missing): "
            "manual = 1: the local derivative left out\n\nFinite differences side with autograd: the manual "
            "derivation is wrong.\n") in out


def test_train_junit_properties_of_the_slides_network_have_no_description(tmp_path, capsys):
    report = tmp_path / "junit.xml"
    assert cli.main(["train", "--steps", "1", "--junit-xml", str(report)]) == 0
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    names = [p.get("name") for p in suite.find("properties")]
    assert names[:3] == ["dtype", "seed", "injected"] and "description" not in names
