"""crosscheck train: the digits, the mini-batches, the lockstep run against an independent torch loop, the verdicts
(agree, a wrong derivation stopped at its first step, rounding drift), the progress bar, the command line."""

import io
import json
import pathlib
import re
import sys

import numpy as np
import pytest
import torch
from runs import SEED_BASE
from torch.nn import functional as TF

from crosscheck import cli, render
from crosscheck import train as T
from crosscheck.catalogue import catalogue
from crosscheck.check import inject, overrides, seed_inject
from crosscheck.subjects import SeedSubject, slide_name
from crosscheck.tolerances import tolerance_for
from netdesc.checks import InputError
from netdesc.description import load_spec, parse_spec
from reference import network as reference_net

F32 = tolerance_for("float32")  # the table's: a float32 run against torch.optim's

ROOT = pathlib.Path(__file__).resolve().parents[1]
LENET = str(ROOT / "examples" / "digits-lenet.toml")


# --- the data and the batches ------------------------------------------------------------------------------------

def test_digits_are_sklearns_images_split_by_the_seed():
    (X, y), (Xt, yt) = T.digits(seed=0)
    assert X.shape == (1438, 8, 8) and Xt.shape == (359, 8, 8) and y.dtype == yt.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0 and set(np.unique(y)) == set(range(10))
    from sklearn.datasets import load_digits
    d = load_digits()
    # every image once, in one split or the other: the split is a partition of the 1,797 images
    together = np.concatenate([X, Xt]).reshape(1797, -1)
    assert sorted(map(bytes, together)) == sorted(map(bytes, d.data / 16.0))
    (X2, _), _ = T.digits(seed=0)
    (X3, _), _ = T.digits(seed=1)
    assert np.array_equal(X, X2) and not np.array_equal(X, X3)
    assert len(T.digits(test_fraction=0.5)[1][0]) == 898  # round(0.5 * 1797) = 898


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, "0.2", float("nan")])
def test_a_test_fraction_outside_zero_and_one_is_refused(fraction):
    with pytest.raises(InputError, match=r"^test_fraction: got .*, needs a number strictly between 0 and 1$"):
        T.digits(test_fraction=fraction)


def test_tiny_test_fractions_keep_one_image_on_each_side():
    assert len(T.digits(test_fraction=1e-9)[1][0]) == 1 and len(T.digits(test_fraction=1 - 1e-9)[0][0]) == 1


def test_the_digits_are_read_from_scikit_learns_file_as_load_digits_reads_them(monkeypatch):
    from sklearn.datasets import load_digits

    d = load_digits()
    images, labels = T._load_digits()
    assert T._digits_file().name == "digits.csv.gz"
    assert images.dtype == d.images.dtype and np.array_equal(images, d.images)
    assert labels.dtype == np.int64 and np.array_equal(labels, d.target)
    monkeypatch.setattr(T, "_digits_file", lambda: None)  # a scikit-learn that keeps the file elsewhere
    again = T._load_digits()
    assert np.array_equal(again[0], images) and np.array_equal(again[1], labels)


@pytest.mark.parametrize("where", ["elsewhere", "no file"])
def test_no_digits_file_where_scikit_learn_keeps_none(where, monkeypatch, tmp_path):
    if where == "elsewhere":
        monkeypatch.setattr(T.importlib.util, "find_spec", lambda name: type("Spec", (), {
            "submodule_search_locations": [str(tmp_path)]})())
    else:
        monkeypatch.setattr(T.importlib.util, "find_spec", lambda name: type("Spec", (), {
            "submodule_search_locations": None})())
    assert T._digits_file() is None


def test_without_scikit_learn_train_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(InputError, match=r"^crosscheck train needs scikit-learn's digits: pip install -c "
                                         r"constraints.txt 'backprop-crosscheck\[train\]'$"):
        T.digits()


def test_each_epoch_visits_every_full_batch_once_in_a_new_order():
    plan = T._plan(100, 32, 3, 0, None)
    assert [epoch for epoch, _ in plan] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # 100 // 32 = 3 full batches, 4 left out
    for epoch in range(3):
        seen = np.concatenate([i for e, i in plan if e == epoch])
        assert len(seen) == 96 and len(set(seen)) == 96
    assert not np.array_equal(plan[0][1], plan[3][1])
    assert [len(i) for _, i in T._plan(100, 32, 3, 0, 4)] == [32] * 4
    assert len(T._plan(32, 32, 2, 0, None)) == 2  # a batch of the whole set: one step per epoch
    with pytest.raises(InputError, match=r"^batch: got 33, needs at most the 32 training images$"):
        T._plan(32, 33, 1, 0, None)


# --- the lockstep run against torch written out here ---------------------------------------------------------------

def _torch_run(network, epochs, batch, seed):
    """The slides' network trained by a plain torch loop (own conv, sigmoid, linear, error and update) on the same
    batches: losses, final parameters and held-out predictions."""
    (X, y), (Xt, yt) = T.digits(seed)
    f, W, b = (torch.tensor(network.params[k], requires_grad=True) for k in ("f", "W", "b"))

    def out(images):
        H1 = torch.sigmoid(TF.conv2d(torch.tensor(images)[:, None], f[None, None]))
        return torch.sigmoid(H1.flatten(1) @ W + b)
    losses = []
    for _, i in T._plan(len(X), batch, epochs, seed, None):
        target = torch.tensor((y[i] % 2)[:, None], dtype=torch.float64)
        E = ((target - out(X[i])) ** 2 / 2).sum(1).mean()
        losses.append(E.item())
        E.backward()
        with torch.no_grad():
            for p in (f, W, b):
                p -= network.lr * p.grad
                p.grad = None
    with torch.no_grad():
        predicted = (out(Xt)[:, 0] > 0.5).numpy()
    return np.array(losses), {"f": f.detach().numpy(), "W": W.detach().numpy()}, predicted, yt % 2


def test_the_slides_network_trains_both_ways_as_plain_torch_does():
    network = T.Slides(n_out=1, dtype="float64", seed=SEED_BASE)
    run = T.train(network, epochs=2, batch=64, seed=SEED_BASE)
    losses, final, predicted, truth = _torch_run(network, 2, 64, SEED_BASE)
    assert run.passed and run.summary["steps"] == len(losses) == 44 and run.summary["stopped_at"] is None
    np.testing.assert_allclose(run.arrays["loss_autograd"], losses, rtol=1e-12, atol=0)
    np.testing.assert_allclose(run.arrays["loss_manual"], losses, rtol=1e-9, atol=0)
    np.testing.assert_allclose(run.arrays["filters_autograd"], final["f"], rtol=1e-10)
    accuracy = float(np.mean(predicted == truth))
    assert run.arrays["test_accuracy_autograd"][-1] == run.arrays["test_accuracy_manual"][-1] == accuracy
    confusion = run.arrays["confusion_autograd"]
    assert confusion.shape == (2, 2) and confusion.sum() == 359 and np.trace(confusion) / 359 == accuracy
    assert list(run.arrays["epoch_steps"]) == [22, 44] and run.summary["drift_from"] is None


def test_the_loss_falls_and_the_held_out_accuracy_beats_chance_for_ten_classes():
    run = T.train(T.Slides(n_out=10), epochs=3)
    curve = run.arrays["loss_autograd"]
    assert curve[-10:].mean() < 0.8 * curve[:10].mean() and run.arrays["test_accuracy_autograd"][-1] > 0.5
    assert run.arrays["confusion_manual"].shape == (10, 10) and run.arrays["filter_grad_manual"].shape == (3, 3)


def test_a_described_network_trains_with_its_optimizer_state_kept_across_batches():
    spec = load_spec(LENET)
    run = T.train(T.Described(spec, dtype="float32", seed=SEED_BASE), epochs=1, steps=12, batch=16, seed=SEED_BASE)
    assert run.passed and run.summary["steps"] == 12 and run.arrays["filter_grad_autograd"].shape == (6, 1, 3, 3)
    assert run.summary["lr"] == 0.05 and T.Described(spec, lr=0.5).lr == 0.5
    # the same 12 steps, torch.optim.SGD with momentum over the same batches, from the same parameters
    network = T.Described(spec, dtype="float32", seed=SEED_BASE)
    from reference import network as reference_net
    net = reference_net.build(network.spec, network.params)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses = _torch_optim_losses(net, opt)
    # float32 runs by different orders of operations: the table's float32 tolerance (rtol 1e-5 failed one loss by
    # 1.28e-5 after 12 Adam steps at fresh seed base 239040)
    np.testing.assert_allclose(run.arrays["loss_autograd"], losses, rtol=F32.rtol, atol=F32.atol)
    np.testing.assert_allclose(run.arrays["filters_autograd"], net[0].weight.detach().numpy(), rtol=F32.rtol,
                               atol=F32.atol)


def _torch_optim_losses(net, opt, scheduler=None):
    """12 steps of a torch.optim optimizer (and its scheduler, stepped after each) over the digits' batches of 16
    that crosscheck train draws at SEED_BASE -> the loss before each step."""
    (X, y), _ = T.digits(SEED_BASE)
    losses = []
    for _, i in T._plan(len(X), 16, 1, SEED_BASE, 12):
        opt.zero_grad()
        E = TF.cross_entropy(net(torch.tensor(X[i][:, None], dtype=torch.float32))[-1], torch.tensor(y[i]))
        E.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(E.item())
    return losses


def test_a_described_network_trains_with_adam_and_a_scheduler_as_torch_optim_does():
    """Adam (amsgrad, L2 decay) with StepLR stepped after every step, 12 steps over the digits' batches: the losses
    and the first filters of torch.optim.Adam and torch.optim.lr_scheduler.StepLR over the same batches."""
    import tomllib
    data = tomllib.loads(pathlib.Path(LENET).read_text())
    data["optimizer"] = {"type": "adam", "lr": 0.01, "amsgrad": True, "weight_decay": 1e-3,
                         "scheduler": {"type": "step", "step_size": 4, "gamma": 0.5}}
    network = T.Described(parse_spec(data, "digits-lenet-adam"), dtype="float32", seed=SEED_BASE)
    run = T.train(network, epochs=1, steps=12, batch=16, seed=SEED_BASE)
    assert run.passed and run.summary["steps"] == 12
    from reference import network as reference_net
    net = reference_net.build(network.spec, network.params)
    opt = torch.optim.Adam(net.parameters(), lr=0.01, amsgrad=True, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    losses = _torch_optim_losses(net, opt, scheduler)
    np.testing.assert_allclose(run.arrays["loss_autograd"], losses, rtol=F32.rtol, atol=F32.atol)
    np.testing.assert_allclose(run.arrays["loss_manual"], losses, rtol=F32.rtol, atol=F32.atol)
    np.testing.assert_allclose(run.arrays["filters_autograd"], net[0].weight.detach().numpy(), rtol=F32.rtol,
                               atol=F32.atol)
    assert scheduler.get_last_lr() == [0.01 * 0.5 ** 3]


@pytest.mark.parametrize("loss, out, targets", [
    ("mse", 10, (np.float64, (4, 10))), ("mse", 1, (np.float64, (4, 1))),
    ("softmax_cross_entropy", 2, (np.int64, (4,))), ("binary_cross_entropy_with_logits", 1, (np.float64, (4, 1))),
])
def test_the_task_follows_the_output_and_the_loss(loss, out, targets):
    spec = parse_spec({"input_shape": [1, 8, 8], "layers": [{"type": "flatten"}, {"type": "linear",
                       "out_features": out}], "loss": {"type": loss}})
    network = T.Described(spec)
    x, target = network.arrays(np.zeros((4, 8, 8)), np.array([0, 3, 8, 9]))
    assert x.shape == (4, 1, 8, 8) and (target.dtype, target.shape) == targets
    expected = [0, 1, 0, 1] if out in (1, 2) else [0, 3, 8, 9]
    assert np.array_equal(target.reshape(4, -1).argmax(1) if out == 10 and loss == "mse" else
                          target.reshape(-1), expected)
    logits = np.array([[0.1], [-0.1]]) if out == 1 else None
    if out == 1:  # odd above 0 for logits, above 0.5 for the other losses
        predicted = network._classes(logits)
        assert list(predicted) == ([1, 0] if loss.endswith("logits") else [0, 0])
    run = T.train(network, epochs=1, steps=3)
    assert run.passed


@pytest.mark.parametrize("change, message", [
    ({"input_shape": [3, 8, 8]}, "input_shape: got [3, 8, 8], needs [1, 8, 8] (the digits are 8x8 grey images, "
                                 "one channel)"),
    ({"out": 7}, "the last layer's output: got [7] for softmax_cross_entropy, needs 10 (the ten digits) or 2 "
                 "(odd or even)"),
    ({"out": 1}, "the last layer's output: got [1] for softmax_cross_entropy, needs 10 (the ten digits) or 2 "
                 "(odd or even)"),
    ({"out": 2, "loss": "mse"}, "the last layer's output: got [2] for mse, needs 10 (the ten digits, one-hot) or 1 "
                                "(odd or even)"),
])
def test_a_description_the_digits_do_not_fit_is_refused(change, message):
    shape = change.get("input_shape", [1, 8, 8])
    spec = parse_spec({"input_shape": shape, "layers": [{"type": "flatten"}, {"type": "linear", "out_features":
                       change.get("out", 10)}], "loss": {"type": change.get("loss", "softmax_cross_entropy")}})
    with pytest.raises(InputError) as err:
        T.Described(spec)
    assert str(err.value) == message


@pytest.mark.parametrize("n_out", [0, 2, 9, "1"])
def test_the_slides_network_learns_one_or_ten_outputs(n_out):
    with pytest.raises(InputError, match=r"^n_out: got .*, needs 1 \(odd or even\) or 10 \(the ten digits\)$"):
        T.Slides(n_out=n_out)


# --- verdicts ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_catalogued_wrong_derivation_stops_training_at_the_first_step(dtype):
    run = T.train(T.Slides(dtype=dtype, wrong=seed_inject("missing-dH1_dZ1"), seed=SEED_BASE), epochs=2,
                  seed=SEED_BASE)
    assert not run.passed and run.summary["stopped_at"] == run.summary["steps"] == 1
    assert run.first.name == "f after step 1" and run.diagnosis.quantity == "dH1/dZ1"
    assert run.diagnosis.classification.kind == "activation-missing" and run.epochs == []
    assert run.arrays["test_accuracy_manual"].shape == (0,) and run.arrays["confusion_manual"].sum() == 0


def test_a_wrong_layer_in_a_description_stops_training_at_the_first_step():
    spec = load_spec(LENET)
    network = T.Described(spec, wrong=inject("conv2d-dw-flipped", spec), seed=SEED_BASE)
    run = T.train(network, epochs=1, batch=8, seed=SEED_BASE)
    assert run.summary["stopped_at"] == 1 and run.diagnosis.quantity == "0 conv2d: dE/dweight"
    assert run.diagnosis.classification.kind == "kernel-flipped"


def test_a_manual_side_that_gives_no_gradient_is_stopped_on_its_step():
    wrong = overrides(backward={"dE_df": lambda X, dE_dZ1: "not an array"}, name="text")
    run = T.train(T.Slides(wrong=wrong), epochs=1)
    assert run.summary["stopped_at"] == 1 and "manual side failed" in run.first.problem
    assert np.isnan(run.arrays["loss_manual"][0]) and np.isnan(run.arrays["filter_grad_manual"]).all()
    assert run.diagnosis.quantity == "dE/df"


class _Drifting(T.Slides):
    """The slides' network whose manual side moves every parameter by 1e-9 (10 float64 tolerances) from its
    `from_step`-th step on: a drift of the runs that no single step from the same parameters shows, when
    from_step > 1 (the one-step check takes one step)."""

    def __init__(self, from_step, **kwargs):
        super().__init__(**kwargs)
        self.from_step = from_step

    def subject(self, batch, data, max_memory=None):
        subject, from_step = super().subject(batch, data, max_memory), self.from_step
        steps = subject.manual_steps

        def drifting(batches, buffers=None):
            for k, (E, grads, params) in enumerate(steps(batches, buffers), 1):
                yield E, grads, params if k < from_step else {n: p * (1 + 1e-9) for n, p in params.items()}
        subject.manual_steps = drifting
        return subject


def test_rounding_drift_is_told_from_a_wrong_derivation_by_the_one_step_check():
    run = T.train(_Drifting(from_step=5), epochs=1, steps=8)
    assert run.passed and run.summary["drift_from"] == 5 and run.summary["unconfirmed"] == 0
    assert run.arrays["max_rel_diff"][3] < 1e-10 < run.arrays["max_rel_diff"][4]
    text = render.training_text(run)
    assert "from step 5 the two runs drift apart by rounding (largest relative difference" in text
    assert "manual and autograd agree at all 8 steps" in text


def test_a_one_step_difference_the_diagnosis_finds_nowhere_is_not_a_verdict():
    # the manual side drifts on its every step, the one-step check too; the diagnosis, walking every quantity
    # from the same parameters with the slides' own code, finds nothing wrong: training goes on
    run = T.train(_Drifting(from_step=1), epochs=1, steps=3)
    assert run.passed and run.summary["drift_from"] == 1 and run.summary["unconfirmed"] == 3
    assert "(3 of them after a diagnosis of every quantity)" in " ".join(render.training_text(run).split())
    assert isinstance(run.diagnosis.checked, tuple) and not run.diagnosis.wrong


def test_the_subjects_take_given_data():
    network = T.Slides()
    X, Y = network.arrays(*T.digits()[0])
    subject = network.subject(4, (X[:4], Y[:4], network.params))
    assert isinstance(subject, SeedSubject) and np.array_equal(subject.X, X[:4])


# --- the progress bar ---------------------------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_shows_epoch_losses_accuracy_and_divergence_on_a_terminal():
    stream = _Terminal()
    with T.progress_bar(True, stream, mininterval=0) as progress:
        T.train(T.Slides(), epochs=2, batch=512, progress=progress)
    shown = stream.getvalue()
    assert "4/4" in shown and "epoch 2" in shown and "E manual" in shown and "E autograd" in shown
    assert "held-out -" in shown and "held-out " in shown.replace("held-out -", "") and "max rel diff" in shown


@pytest.mark.parametrize("wanted, stream", [(False, _Terminal()), (True, io.StringIO())])
def test_no_progress_bar_off_a_terminal_or_when_not_wanted(wanted, stream):
    with T.progress_bar(wanted, stream) as progress:
        assert progress is None
    assert stream.getvalue() == ""


def test_no_progress_bar_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with T.progress_bar(True, _Terminal()) as progress:
        assert progress is None


def test_the_progress_bar_defaults_to_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with T.progress_bar(True, mininterval=0) as progress:
        progress(1, 2, {"epoch": 1, "E manual": 1.0, "E autograd": 1.0, "held-out": 0.5, "max rel diff": 0.0})
    assert "held-out 50.0 %" in sys.stderr.getvalue()


# --- the command line ----------------------------------------------------------------------------------------------

def test_train_prints_one_row_per_epoch_and_the_verdict(capsys):
    assert cli.main(["train", "--epochs", "2", "--batch", "128"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == "" and lines[0].startswith("train: the slides' network (3x3 filter -> sigmoid -> linear -> "
                                             "sigmoid, n_out 1) on scikit-learn's digits")
    assert lines[1] == "task odd or even: 1438 training images, 359 held out; batch 128, lr 2, 2 epochs (22 steps), " \
                       "float64, seed 0"
    rows = [line.split() for line in lines if line[:5].strip().isdigit()]
    assert [r[:2] for r in rows] == [["1", "11"], ["2", "22"]]
    assert lines[-2].startswith("manual and autograd agree at all 22 steps: held-out accuracy ")
    assert lines[-1].startswith("time per step: manual ")


def test_train_json_is_one_document_without_progress(capsys):
    assert cli.main(["train", "--n-out", "10", "--epochs", "1", "--steps", "5", "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert err == "" and data["steps"] == 5 and data["planned_steps"] == 5 and data["task"] == "the ten digits"
    assert [row["steps"] for row in data["epoch_rows"]] == [5]  # where the run ends, its accuracy is measured
    assert data["diagnosis"] is None and data["agree"] is True


def test_train_with_a_wrong_derivation_exits_1_with_the_diagnosis(capsys):
    assert cli.main(["train", "--inject", "flipped-sign-dE_dO", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "stopped at step 1 (epoch 1): f after step 1 differs" in out
    assert "first wrong quantity: dE/dO, shape (32, 1)" in out and "class: sign flipped (sign)" in out


def test_train_a_description_with_a_wrong_optimizer_in_json(capsys):
    # the momentum buffer not kept: the first update is the same (the buffer starts as the gradient), the second
    # not; the walk of step 1 takes two updates from the same parameters, so training stops at step 1
    assert cli.main(["train", "--spec", LENET, "--inject", "sgd-buffer-not-kept", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["title"] == "network digits-lenet" and data["stopped_at"] == 1 and data["agree"] is False
    assert data["first"]["name"] == "11 linear: weight after step 2" and data["diagnosis"]["class"]["kind"] == \
        "momentum"


def test_train_a_description_given_as_json_text(capsys):
    text = json.dumps({"input_shape": [1, 8, 8], "layers": [{"type": "flatten"}, {"type": "linear",
                       "out_features": 10}], "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"lr": 0.5}})
    assert cli.main(["train", "--spec-json", text, "--epochs", "3", "--lr", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "lr 0.2, 3 epochs (132 steps)" in out and "network spec-json" in out


# --- what docs/training.md says the runs reach ------------------------------------------------------------------

def _reached():
    """The rows of docs/training.md's table: (the command's arguments, held-out accuracy in %)."""
    rows = []
    for line in (ROOT / "docs" / "training.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[2].endswith(" %"):
            args = re.search(r"`([^`]+)`", cells[0])[1].split()
            rows.append(pytest.param(args, float(cells[2][:-2]), id=" ".join(args),
                                     marks=[pytest.mark.training] if "resnet" in cells[0] else []))
    return rows


@pytest.mark.parametrize("args, accuracy", _reached())
def test_the_accuracy_the_docs_state_is_reached_both_ways(args, accuracy, capsys):
    assert len(_reached()) == 4
    assert cli.main(["train", *args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps"] == 440 and data["agree"] is True
    assert round(100 * data["accuracy"]["test_manual"], 1) == round(100 * data["accuracy"]["test_autograd"], 1) \
        == accuracy
    assert (data["drift_from"] is None) == ("resnet" not in args[-1])
    if args != ["--n-out", "1"]:  # the README states the ten-class runs' accuracies too
        assert f" {accuracy} %" in (ROOT / "README.md").read_text()


# --- a run saved and drawn -----------------------------------------------------------------------------------------

def test_a_saved_run_reloads_bit_identically_and_is_drawn(tmp_path, capsys):
    from crosscheck import runfile

    saved, drawn = tmp_path / "run.npz", tmp_path / "plots"
    assert cli.main(["train", "--epochs", "2", "--save", str(saved), "--plots", str(drawn)]) == 0
    out = capsys.readouterr().out
    written = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("written: ")]
    assert written[:2] == [str(saved), str(tmp_path / "run.json")] and len(written) == 2 + 10
    assert sorted(p.name for p in drawn.iterdir()) == sorted(f"{name}.{fmt}" for name in
                                                             ("training", "divergence", "filter-gradient", "filters",
                                                              "confusion") for fmt in ("png", "svg"))
    run = runfile.load_run(saved)
    again = T.train(T.Slides(), epochs=2)
    for key, value in again.saved().items():  # a rerun gives the same arrays, bit for bit
        if key != "summary":
            assert run[key].dtype == value.dtype and run[key].tobytes() == value.tobytes(), key
    summary = json.loads(str(run["summary"]))
    timers = ("seconds", "ms_per_step")  # the summary differs in the clock's readings only
    assert {k: v for k, v in summary.items() if k not in timers} == \
        {k: v for k, v in again.summary.items() if k not in timers}
    assert summary["steps"] == 88 and summary["stopped_at"] is None and summary["agree"] is True
    beside = json.loads((tmp_path / "run.json").read_text())
    assert beside["title"] == summary["title"]
    # saved again from what was loaded: the same bytes, array by array
    runfile.save_run(tmp_path / "again.npz", run)
    assert all(runfile.load_run(tmp_path / "again.npz")[k].tobytes() == v.tobytes() for k, v in run.items())


def test_a_stopped_run_is_saved_and_drawn_too(tmp_path, capsys):
    from crosscheck import runfile

    saved = tmp_path / "stopped.npz"
    assert cli.main(["train", "--inject", "missing-dH1_dZ1", "--save", str(saved), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["written"] == [str(saved), str(tmp_path / "stopped.json")]
    run = runfile.load_run(saved)
    assert run["loss_manual"].shape == (1,) and json.loads(str(run["summary"]))["stopped_at"] == 1
    assert cli.main(["plot", str(saved), "--out", str(tmp_path / "p"), "--format", "png"]) == 0
    assert len(list((tmp_path / "p").iterdir())) == 5


def test_a_manual_side_of_another_shape_is_reported_in_json_and_saved(tmp_path, capsys):
    # dE/dW transposed: the update cannot use it, the step's parameters are no numbers: no relative difference
    saved = tmp_path / "run.npz"
    assert cli.main(["train", "--inject", "transposed-dE_dW", "--json", "--save", str(saved)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["stopped_at"] == 1 and data["max_rel_diff"] is None and data["first"]["max_rel_error"] is None
    assert data["diagnosis"]["quantity"] == "dE/dW" and data["diagnosis"]["class"]["kind"] == "transposed"
    from crosscheck import runfile
    run = runfile.load_run(saved)
    assert np.isinf(run["max_rel_diff"][0]) and json.loads(str(run["summary"]))["max_rel_diff"] is None


@pytest.mark.parametrize("entry", [e for e in catalogue() if e.on_seed], ids=str)
def test_every_mistake_of_the_slides_network_stops_training_at_step_1_where_the_catalogue_says(entry):
    # the catalogue's own case aside (its batch, reduction): on the digits, at the train defaults, mean reduction
    run = T.train(T.Slides(wrong=entry, seed=SEED_BASE), epochs=1, seed=SEED_BASE)
    assert run.summary["stopped_at"] == 1
    assert (run.diagnosis.quantity, run.diagnosis.classification.kind) == (slide_name(entry.first_wrong), entry.kind)


def test_a_mistake_training_cannot_see_is_caught_on_step_1():
    # the first layer's input gradient left on the padded grid: no parameter depends on it, so the losses and the
    # parameters agree at every step; the walk of step 1 compares it
    spec = load_spec(LENET)
    run = T.train(T.Described(spec, wrong=inject("conv2d-padding-not-cropped", spec)), epochs=1)
    assert run.summary["stopped_at"] == 1 and run.diagnosis.quantity == "0 conv2d: dE/dinput"
    assert run.diagnosis.classification.kind == "padding" and run.first.name == "0 conv2d: dE/dinput"
    assert [row.quantity for row in run.result().failed] == ["0 conv2d: dE/dinput at steps 1..1"]
    assert run.arrays["max_rel_diff"][0] < 1e-10  # the trajectory itself agreed


DIGITS_LENET, DIGITS_RESNET = LENET, str(ROOT / "examples" / "digits-resnet.toml")
# (entry, description): each changes something these networks compute, so training stops at step 1 where the
# catalogue says and with its class (the first layer's input gradient and a tie in a max pool on the digits' blank
# borders included: the walk of step 1 compares them)
STOPS = [(e, s) for e in ("conv2d-padding-wrong-side", "conv2d-padding-not-cropped", "conv2d-dw-flipped",
                          "avg-pool-not-divided", "cross-entropy-onehot-forgotten", "cross-entropy-mean-forgotten",
                          "sgd-buffer-not-kept", "sgd-weight-decay-forgotten") for s in (DIGITS_LENET, DIGITS_RESNET)] \
    + [(e, DIGITS_LENET) for e in ("max-pool-every-element", "max-pool-last-tie", "tanh-of-output")] \
    + [("fan-out-overwritten", DIGITS_RESNET)]
# ... and each of these replaces a function by one that is right for these networks: no stride 2 in the first
# conv2d, no dilation, no dampening, no Nesterov, no ReLU input exactly 0, LeNet without a fan-out
NO_OPS = [(e, s) for e in ("conv2d-stride-ignored-dx", "conv2d-dilation-ignored-dw", "sgd-dampening-first-step",
                           "sgd-nesterov-lookahead-missing", "relu-ge-instead-of-gt") for s in (DIGITS_LENET,
                                                                                                 DIGITS_RESNET)] \
    + [("fan-out-overwritten", DIGITS_LENET)]


@pytest.mark.parametrize("name, path", STOPS, ids=[f"{e}-{pathlib.Path(s).stem}" for e, s in STOPS])
def test_a_layer_mistake_on_a_digits_network_stops_training_at_step_1(name, path):
    spec = load_spec(path)
    entry = next(e for e in catalogue() if e.name == name)
    run = T.train(T.Described(spec, wrong=inject(name, spec), seed=SEED_BASE), epochs=1, seed=SEED_BASE)
    assert run.summary["stopped_at"] == 1 and run.diagnosis.classification.kind == entry.kind
    # the same quantity of the same kind of layer, at this network's index (a fan-out: at this network's fan-out)
    mine, theirs = run.diagnosis.quantity.split(" ", 1)[1], entry.first_wrong.split(" ", 1)[1]
    assert mine.split(": ")[-1] == theirs.split(": ")[-1] and (mine == theirs or name == "fan-out-overwritten")


@pytest.mark.parametrize("name, path", NO_OPS, ids=[f"{e}-{pathlib.Path(s).stem}" for e, s in NO_OPS])
def test_a_mistake_that_changes_nothing_on_a_network_is_no_false_alarm(name, path):
    spec = load_spec(path)
    run = T.train(T.Described(spec, wrong=inject(name, spec), seed=SEED_BASE), epochs=1, steps=5, seed=SEED_BASE)
    assert run.passed and run.diagnosis is None


# --- batch norms' running statistics, compared after every step ----------------------------------------------------

BATCH_NORM_DIGITS = {"name": "digits-bn", "input_shape": [1, 8, 8], "layers": [
    {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1, "bias": False},
    {"type": "batch_norm2d"}, {"type": "relu"}, {"type": "flatten"}, {"type": "linear", "out_features": 10}],
    "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"lr": 0.05, "momentum": 0.9}}
RUNNING = ["1.running_mean", "1.running_var"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batch_norms_running_statistics_are_compared_after_every_step(dtype, capsys):
    network = T.Described(parse_spec(BATCH_NORM_DIGITS), dtype=dtype, seed=SEED_BASE)
    run = T.train(network, epochs=1, steps=3, batch=16, seed=SEED_BASE)
    assert run.passed and run.summary["steps"] == 3 and sorted(run.summary["buffers"]) == RUNNING
    assert all(0 <= diff < 1e-3 for diff in run.summary["buffers"].values())
    judged = [c.name for c in run.judged]
    assert [name for name in judged if "running" in name] == [f"{n} after step 3" for n in RUNNING]
    assert "the loss and every parameter, every batch norm's running mean and variance, after every step" \
        in render.training_text(run)
    # torch's own BatchNorm2d over the same three batches, from the same parameters: its buffers at the end
    net = reference_net.build(network.spec, network.params)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    (X, y), _ = T.digits(SEED_BASE)
    for _, i in T._plan(len(X), 16, 1, SEED_BASE, 3):
        opt.zero_grad()
        TF.cross_entropy(net(torch.tensor(X[i][:, None], dtype=getattr(torch, dtype)))[-1],
                         torch.tensor(y[i])).backward()
        opt.step()
    assert torch.count_nonzero(net[1].running_mean) == 3 and net[1].num_batches_tracked == 3
    subject = network.subject(16, network.arrays(X[:16], y[:16]) + (network.params,))
    mine, theirs = {}, {}
    batches = [network.arrays(X[i], y[i]) for _, i in T._plan(len(X), 16, 1, SEED_BASE, 3)]
    list(subject.manual_steps(batches, mine)), list(subject.reference_steps(batches, theirs))
    rtol = 1e-12 if dtype == "float64" else 1e-5
    for name, side in (("running_mean", mine), ("running_var", mine), ("running_mean", theirs),
                       ("running_var", theirs)):
        np.testing.assert_allclose(side[f"1.{name}"], getattr(net[1], name).numpy(), rtol=rtol, atol=rtol)


def test_the_steps_continue_from_the_running_statistics_given():
    # both sides' steps from running statistics other than torch's 0 and 1 (the one-step check starts from
    # autograd's): torch's BatchNorm2d with its buffers set to them, one training-mode forward
    network = T.Described(parse_spec(BATCH_NORM_DIGITS), seed=SEED_BASE)
    (X, y), _ = T.digits(SEED_BASE)
    x, target = network.arrays(X[:8], y[:8])
    start = {"1.running_mean": np.array([0.5, -1.0, 2.0]), "1.running_var": np.array([3.0, 0.25, 1.5])}
    subject = network.subject(8, (x, target, network.params))
    mine, theirs = dict(start), dict(start)
    next(subject.manual_steps([(x, target)], mine)), next(subject.reference_steps([(x, target)], theirs))
    bn = torch.nn.BatchNorm2d(3, dtype=torch.float64)
    bn.running_mean.copy_(torch.tensor(start["1.running_mean"]))
    bn.running_var.copy_(torch.tensor(start["1.running_var"]))
    conv = TF.conv2d(torch.tensor(x), torch.tensor(network.params["0.weight"]), padding=1)
    bn(conv)
    for side in (mine, theirs):
        np.testing.assert_allclose(side["1.running_mean"], bn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(side["1.running_var"], bn.running_var.numpy(), rtol=1e-12)
    rows = T._one_step(network, 8, (x, target, network.params), 4, None, start)
    assert [r.name for r in rows if "running_var" in r.name] == ["1.running_var after step 4"] * 2
    assert all(r.passed for r in rows)


class _RunningDrift(T.Described):
    """A described network whose manual side moves its batch norm's running variance by 1e-6 from its third step
    on: no parameter changes (the training-mode forward reads the batch's statistics), only the buffer."""

    def subject(self, batch, data, max_memory=None):
        subject = super().subject(batch, data, max_memory)
        steps = subject.manual_steps

        def drifting(batches, buffers=None):
            for k, step in enumerate(steps(batches, buffers), 1):
                if k >= 3:
                    buffers["1.running_var"] = buffers["1.running_var"] * (1 + 1e-6)
                yield step
        subject.manual_steps = drifting
        return subject


def test_a_running_statistic_that_moves_from_step_3_is_seen_at_step_3():
    run = T.train(_RunningDrift(parse_spec(BATCH_NORM_DIGITS), seed=SEED_BASE), epochs=1, steps=4, batch=16,
                  seed=SEED_BASE)
    plain = T.train(T.Described(parse_spec(BATCH_NORM_DIGITS), seed=SEED_BASE), epochs=1, steps=4, batch=16,
                    seed=SEED_BASE)
    # the one-step check from autograd's running statistics takes two steps: it agrees, so this is a drift
    assert run.passed and run.summary["drift_from"] == 3
    # steps 1 and 2 are the run without the drift, exactly: no bound can say so, since a relative error of rounding
    # has none (an element near 0 gave 1.4e-9 at step 2, fresh seed base 403110); step 3 holds the 1e-6 put there
    np.testing.assert_array_equal(run.arrays["max_rel_diff"][:2], plain.arrays["max_rel_diff"][:2])
    assert run.arrays["max_rel_diff"][2] >= 1e-6 * (1 - 1e-8)
    assert run.summary["buffers"]["1.running_var"] > 1e-7 > run.summary["buffers"]["1.running_mean"]


def test_a_biased_running_variance_stops_training_at_step_1():
    # in float64: over a batch of 16 8x8 maps (M = 1024 values per channel) the biased variance is 1/1023 off, its
    # share of the running variance (momentum 0.1) about 1e-5 relative, under float32's rtol of 1e-4
    spec = parse_spec(BATCH_NORM_DIGITS)
    wrong = inject("batchnorm-biased-running-var", spec)
    run = T.train(T.Described(spec, wrong=wrong, seed=SEED_BASE), epochs=1, steps=3, batch=16, seed=SEED_BASE)
    assert run.summary["stopped_at"] == 1 and run.first.name == "1.running_var after step 1"
    assert run.diagnosis.quantity == "1 batch_norm2d: running_var after step 1"
    assert run.diagnosis.classification.kind == "biased-variance"
    # the loss and every parameter agreed at step 1: only the running variance told
    assert [c.name for c in run.judged if not c.passed] == ["1.running_var after step 1"] * 2
