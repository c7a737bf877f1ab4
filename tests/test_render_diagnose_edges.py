"""Edges of ``crosscheck diagnose`` and of the diagnosis and training texts: --dtype, --seed, --top and --max-memory
reaching the subject of every kind of diagnose (--wrong, --module, --spec), --inject's scale taken in the run's
dtype, the dtype in the JUnit report's properties, --json indented two spaces; a diagnosis without a mistake in two
lines, the line of an attention layer's inside and the worst elements without finite differences or at a kink; a
training run that stops in its second epoch (its epoch, the header and float32's allowance kept) and one whose runs
drift apart (each epoch's mean loss of each side, the time of the one-step checks)."""

import json
import pathlib
import xml.etree.ElementTree as ET

import numpy as np

from crosscheck import cli, render
from crosscheck import train as T
from crosscheck.check import overrides
from crosscheck.compare import compare
from crosscheck.diagnose import Diagnosis, Element
from crosscheck.hypotheses import Classification
from crosscheck.subjects import NetworkSubject, SeedSubject
from manual import seed_network as manual_seed
from netdesc.description import load_spec

ROOT = pathlib.Path(__file__).resolve().parents[1]
SLIDES = str(ROOT / "examples" / "slides.toml")
SEED_MODULE = str(ROOT / "examples" / "diagnose" / "seed_sigmoid.py")
FLOAT32 = "(allowed 1e-06 + 0.0001 * |autograd|)"  # atol 1e-6, rtol 1e-4: float32's tolerance


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- crosscheck diagnose: the options reach the subject ------------------------------------------------------------

def test_diagnose_wrong_takes_dtype_and_top_and_reports_the_dtype(tmp_path, capsys):
    """--wrong with --dtype float32: the slides' network in float32 judged by float32's tolerance, --top 2 worst
    elements shown (not the default 5), and the JUnit report's dtype property float32."""
    report = tmp_path / "r.xml"
    code, out, _ = _run(["diagnose", "--wrong", "missing-dH1_dZ1", "--dtype", "float32", "--top", "2",
                         "--junit-xml", str(report)], capsys)
    lines = out.splitlines()
    assert code == 1 and lines[0] == "diagnosis: seed network 8x8-k3-out1-N4-sum-float32-seed0, float32"
    assert lines[lines.index("first wrong quantity: dH1/dZ1, shape (4, 6, 6)") + 1].endswith(f" {FLOAT32}")
    worst = lines.index("worst 2 elements:")
    assert lines[worst + 1].split() == ["index", "manual", "autograd", "numerical"] and len(lines) == worst + 4
    properties = {p.get("name"): p.get("value") for p in ET.parse(report).getroot().iter("property")}
    assert properties["dtype"] == "float32"


def test_diagnose_module_takes_the_seed(capsys):
    """--module with --seed 3: the module's CASE drawn from seed 3, as its case id says."""
    code, out, _ = _run(["diagnose", "--module", SEED_MODULE, "--seed", "3"], capsys)
    assert code == 1 and out.splitlines()[0] == "diagnosis: seed network 6x6-k3-out1-N2-sum-float64-seed3, float64"


def test_a_description_without_a_mistake_is_two_lines_for_its_own_seed(capsys):
    """--spec with --seed 2 and no mistake: the subject named with seed 2, then every quantity of its walk agreeing;
    nothing else. --json: the same diagnosis indented two spaces, as every --json of crosscheck."""
    walked = len(list(NetworkSubject(load_spec(SLIDES), 2).walk()))
    code, out, _ = _run(["diagnose", "--spec", SLIDES, "--seed", "2"], capsys)
    assert code == 0 and out == (f"diagnosis: network slides, seed 2, float64\nno diagnosis: all {walked} quantities "
                                 "agree with autograd (forward, backward from the loss, updates)\n")
    code, out, _ = _run(["diagnose", "--spec", SLIDES, "--seed", "2", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["subject"] == "network slides, seed 2" and data["wrong"] is False
    assert out == json.dumps(data, indent=2) + "\n"


def test_diagnose_inject_scales_by_the_runs_dtype(capsys):
    """--inject scaled@0 with --dtype float32: layer 0's backward scaled by 1 + 100 * float32's rtol 1e-4."""
    code, out, _ = _run(["diagnose", "--spec", SLIDES, "--inject", "scaled@0", "--dtype", "float32"], capsys)
    assert code == 1 and out.splitlines()[:2] == [
        "diagnosis: network slides, seed 0, float32",
        "injected: scaled@0 (layer 0 (conv2d)'s backward scaled by 1 + 0.01)"]


def test_diagnose_spec_keeps_to_the_memory_budget(capsys):
    """--spec with --max-memory 1k: refused before the run, as --wrong and --module are (test_limits)."""
    code, out, err = _run(["diagnose", "--spec", SLIDES, "--max-memory", "1k"], capsys)
    assert code == 2 and out == "" and err.startswith("crosscheck: error: memory: network 'slides' with batch 4 "
                                                      "needs about ")
    assert err.endswith(" kB, more than the budget of 1 kB (--max-memory SIZE sets it)\n")


# --- the diagnosis text ----------------------------------------------------------------------------------------

def _wrong(**fields):
    """A diagnosis of quantity q = [1, 2] by hand against [1, 3] by autograd, unclassified."""
    first = compare("q", np.array([1.0, 2.0]), np.array([1.0, 3.0]), "float64")
    return Diagnosis("a test subject", "float64", ("p", "q"), first, Classification("unclassified", "none fits"),
                     **fields)


def test_the_inside_of_an_attention_layer_is_a_line_indented_under_the_quantity():
    """The head and the quantity inside the layer, wrapped at 100 columns: two spaces, four on the continuation."""
    inside = {"quantity": "dv", "part": "values", "heads": [1], "head": 1, "num_heads": 2}
    lines = render.diagnosis_text(_wrong(inside=inside)).splitlines()
    start = lines.index("first wrong quantity: q, shape (2,)") + 1
    assert lines[start:start + 2] == [
        "  inside the attention: dv (values) is the first of its intermediates to leave autograd, in head 1",
        "    of 2 (heads 1 differ)"]
    assert lines[start + 2].startswith("  max abs err 1.000e+00, ")


def test_worst_elements_without_finite_differences_or_at_a_kink():
    """An element finite differences did not probe shows n/a; one at a kink its value followed by kink."""
    worst = (Element((1,), 2.0, 3.0), Element((0,), 1.0, 1.0, 1.5, True), Element((2,), 1.0, 1.0, 0.25, False))
    lines = render.diagnosis_text(_wrong(worst=worst)).splitlines()
    assert lines[-5:] == [
        "worst 3 elements:",
        "  index                   manual      autograd     numerical",
        "  (1,)                         2             3           n/a",
        "  (0,)                         1             1           1.5 kink",
        "  (2,)                         1             1          0.25"]


# --- the training text -----------------------------------------------------------------------------------------

def _late_step():
    """An SGD step with twice the learning rate from the third parameters it sees on (the filter f told apart to
    0.1 %): the first two steps of a run are right, the third wrong, wherever it is taken from."""
    seen = []

    def step(params, grads, lr):
        f = params["f"]
        k = next((j for j, s in enumerate(seen) if np.allclose(f, s, rtol=1e-3, atol=0)), None)
        if k is None:
            seen.append(np.array(f))
            k = len(seen) - 1
        return manual_seed.sgd_step(params, grads, 2 * lr if k >= 2 else lr)
    return step


def test_a_run_that_stops_in_its_second_epoch_names_that_epoch():
    """Two steps an epoch (batch 700 of 1438 images), wrong from step 3 on, in float32: the text keeps its header
    and epoch 1's row, stops at step 3 in epoch 2, with float32's allowance, then the diagnosis."""
    wrong = overrides(optimizer_step=_late_step(), name="late")
    run = T.train(T.Slides(dtype="float32", wrong=wrong), epochs=2, batch=700)
    assert run.summary["stopped_at"] == 3 and [r["steps"] for r in run.epochs] == [2]
    lines = render.training_text(run).splitlines()
    assert lines[0].startswith("train: the slides' network (3x3 filter -> sigmoid -> linear -> sigmoid, n_out 1) ")
    assert lines[1] == "task odd or even: 1438 training images, 359 held out; batch 700, lr 2, 2 epochs (4 steps), " \
                       "float32, seed 0"
    stop = next(line for line in lines if line.startswith("stopped at"))
    assert stop == f"stopped at step 3 (epoch 2): {run.first.describe()} {FLOAT32}; from the same parameters, " \
                   "that step differs too"
    assert "diagnosis: seed network 8x8-k3-out1-N700-mean-float32-seed0, float32" in lines


class _Drifting(T.Slides):
    """The slides' network whose training run (the first subject train asks for) steps its parameters 1 % too
    far from its second step on; every other subject (the walk of step 1, the one-step checks) steps right: the
    two runs drift apart with every step from the same parameters agreeing."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.subjects = 0

    def subject(self, batch, data, max_memory=None):
        self.subjects += 1
        if self.subjects > 1:
            return super().subject(batch, data, max_memory)
        calls = []

        def drifting(params, grads, lr):
            calls.append(1)
            new = manual_seed.sgd_step(params, grads, lr)
            return new if len(calls) < 2 else {k: v * 1.01 for k, v in new.items()}
        subject = super().subject(batch, data, max_memory)
        return SeedSubject(subject.case, overrides(optimizer_step=drifting, name="drift"), max_memory, data)


def test_a_drifting_run_shows_each_sides_mean_loss_and_the_one_step_checks():
    """Three epochs of one step (batch 1438, every training image) drifting from step 2: epoch 3's row has each
    side's own loss, the drift's paragraph says every step agrees (no diagnosis needed), the time line the one-step
    checks'."""
    run = T.train(_Drifting(), epochs=3, batch=1438)
    s, arrays = run.summary, run.arrays
    assert run.passed and s["drift_from"] == 2 and s["unconfirmed"] == 0
    manual, autograd = arrays["loss_manual"][2:3].mean(), arrays["loss_autograd"][2:3].mean()
    assert f"{manual:.6f}" != f"{autograd:.6f}"
    lines = render.training_text(run).splitlines()
    row = next(line for line in lines if line.startswith("    3      3 "))
    assert row.split()[2:4] == [f"{manual:.6f}", f"{autograd:.6f}"]
    drift = lines[lines.index(next(line for line in lines if line.startswith("from step 2 "))):-1]
    assert " ".join(line.strip() for line in drift) == (
        f"from step 2 the two runs drift apart by rounding (largest relative difference {s['max_rel_diff']:.3e}): "
        "every step since, taken by both sides from the same parameters, agrees")
    ms = s["ms_per_step"]
    assert ms["one-step"] > 0 and lines[-1] == (
        f"time per step: manual {ms['manual']:.2f} ms, autograd {ms['autograd']:.2f} ms, comparisons "
        f"{ms['compare']:.2f} ms, one-step checks {ms['one-step']:.2f} ms")
