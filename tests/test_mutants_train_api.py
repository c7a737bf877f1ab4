"""What crosscheck train, its two networks and the adapters promise beyond the other tests: the digits read from
scikit-learn's file without importing sklearn.datasets (int64 labels through load_digits too), digits' and train's
defaults (seed 0, 10 epochs of batches of 32, the diagnosis' five worst elements), the held-out fraction given,
a last batch one short of full left out; both sides starting from the network's params, the memory budget given
reaching every run; a described network's defaults, task, classes, lr, filter, targets in its dtype, predicted
classes at the threshold, own labels dropped, and its subject of one step on the data given; the training's Result
and summary of a clean run; the arrays of a float32 run in float64, a manual filter of another shape as NaN; the
one-step check's rows for a broken chain on a batch norm, and its step from the parameters given; check_model's
"mapped twice" list and params_layer's forward refusing a call that leaves a parameter out."""

import sys

import numpy as np
import pytest
import torch.nn.functional as F
from runs import BATCH_NORM_DIGITS, TINY
from torch import nn

from crosscheck import check_model, params_layer, subjects
from crosscheck import train as T
from crosscheck.check import overrides, seed_inject
from manual import seed_network as manual_seed
from netdesc.checks import InputError
from netdesc.description import parse_spec


def _tiny(out=10, loss="softmax_cross_entropy", **top):
    return parse_spec(TINY | {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": out}],
                              "loss": {"type": loss} if isinstance(loss, str) else loss} | top)


# --- the digits and the batches -----------------------------------------------------------------------------------

def test_the_digits_are_read_without_importing_sklearn_datasets(monkeypatch):
    """The file is read as load_digits reads it; scikit-learn's datasets module, whose import takes over a second,
    is not needed where the file is found."""
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # importing it would raise ImportError
    images, labels = T._load_digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,) and labels.dtype == np.int64


def test_the_digits_through_load_digits_have_int64_labels(monkeypatch):
    monkeypatch.setattr(T, "_digits_file", lambda: None)  # a scikit-learn that keeps the file elsewhere
    images, labels = T._load_digits()
    assert images.shape == (1797, 8, 8) and labels.dtype == np.int64


def test_the_digits_split_defaults_to_seed_0():
    (_, y), (_, yt) = T.digits()
    (_, y0), (_, yt0) = T.digits(seed=0)
    assert np.array_equal(y, y0) and np.array_equal(yt, yt0)


def test_a_last_batch_one_short_of_full_is_left_out():
    # 9 images in batches of 5: one full batch per epoch, the 4 left are no batch
    assert [(epoch, len(i)) for epoch, i in T._plan(9, 5, 2, 0, None)] == [(0, 5), (1, 5)]


# --- train's defaults and what a clean run reports -----------------------------------------------------------------

def test_train_defaults_to_10_epochs_of_batches_of_32_from_seed_0():
    run = T.train(T.Slides(), steps=1)
    s = run.summary
    assert (s["epochs"], s["batch"], s["seed"], s["steps"]) == (10, 32, 0, 1)
    assert (s["train_images"], s["test_images"], s["injected"]) == (1438, 359, "")
    indices = T._plan(1438, 32, 10, 0, 1)[0][1]
    X, Y = T.Slides().arrays(*T.digits(0)[0])
    E = manual_seed.forward(X[indices], T.Slides().params, Y[indices], "mean")["E"]
    assert run.arrays["loss_autograd"][0] == pytest.approx(float(E), rel=1e-12)


def test_train_holds_out_the_fraction_it_is_given():
    s = T.train(T.Slides(), steps=1, test_fraction=0.5).summary
    assert (s["train_images"], s["test_images"]) == (899, 898)  # round(0.5 * 1797) = 898


def test_a_stopped_run_shows_the_five_worst_elements_by_default():
    run = T.train(T.Slides(wrong=seed_inject("flipped-sign-dE_dO")), steps=1)
    assert run.diagnosis.quantity == "dE/dO" and len(run.diagnosis.worst) == 5  # 32 elements differ


def test_a_float32_runs_result_and_arrays():
    """The run as the checker's Result: titled "train <title>", in the run's dtype, nothing injected, one row per
    quantity with no layer; the filter and its gradient saved in float64 whatever the run's dtype."""
    run = T.train(T.Slides(dtype="float32"), steps=1)
    result = run.result()
    assert (result.title, result.dtype, result.injected) == (
        "train the slides' network (3x3 filter -> sigmoid -> linear -> sigmoid, n_out 1)", "float32", "")
    assert [(row.where, row.quantity, row.result.name) for row in result.rows] == [
        ("", f"{q} at steps 1..1", f"{q} at steps 1..1") for q in ("E", "f", "W", "b")]
    assert run.summary["injected"] == "" and run.summary["dtype"] == "float32"
    for key in ("filter_grad_manual", "filter_grad_autograd", "filters_manual", "filters_autograd"):
        assert run.arrays[key].dtype == np.float64 and run.arrays[key].shape == (3, 3), key
        assert np.isfinite(run.arrays[key]).all(), key


def test_a_manual_filter_of_another_shape_is_saved_as_nan():
    """An update that gives f another shape: the filters saved for it are NaN in f's shape, never its array."""
    narrow = overrides(optimizer_step=lambda params, grads, lr: dict(params, f=params["f"][:, :2]), name="narrow")
    run = T.train(T.Slides(wrong=narrow), steps=1, batch=8)
    assert run.summary["stopped_at"] == 1
    assert run.arrays["filters_manual"].shape == (3, 3) and np.isnan(run.arrays["filters_manual"]).all()
    assert np.isfinite(run.arrays["filters_autograd"]).all()


def test_train_starts_both_sides_from_the_networks_params():
    network = T.Slides()
    network.params = {name: value * 0.5 for name, value in network.params.items()}
    run = T.train(network, steps=1, batch=8)
    X, Y = network.arrays(*T.digits(0)[0])
    indices = T._plan(len(X), 8, 10, 0, 1)[0][1]
    E = manual_seed.forward(X[indices], network.params, Y[indices], "mean")["E"]
    assert run.arrays["loss_autograd"][0] == pytest.approx(float(E), rel=1e-12)
    assert run.arrays["loss_manual"][0] == pytest.approx(float(E), rel=1e-12)


def test_the_memory_budget_given_reaches_every_run_of_a_described_network(monkeypatch):
    """On a machine whose default budget (half its memory) is too small, the budget given lets the network be made
    and every run of the training (the lockstep run, step 1's walk) go."""
    monkeypatch.setattr(subjects, "memory_budget", lambda: 1000)  # a machine of 2 kB
    with pytest.raises(InputError, match=r"^memory: network 'tiny' with batch 2 needs about "):
        T.Described(_tiny())
    network = T.Described(_tiny(), max_memory=10**9)
    run = T.train(network, steps=1, batch=4, max_memory=10**9)
    assert run.passed and run.summary["steps"] == 1


# --- a described network -------------------------------------------------------------------------------------------

def test_a_described_network_defaults_to_seed_0_and_names_its_task():
    ten, two, one = T.Described(_tiny()), T.Described(_tiny(2)), T.Described(_tiny(1, "mse"))
    assert (ten.seed, ten.case_id, ten.title) == (0, "tiny-digits-float64-seed0", "network tiny")
    assert [(n.task, n.classes) for n in (ten, two, one)] == [
        ("the ten digits", 10), ("odd or even", 2), ("odd or even", 2)]


def test_the_lr_given_replaces_the_descriptions_in_training():
    given = T.train(T.Described(_tiny(), lr=0.5), steps=1)
    described = T.train(T.Described(_tiny(optimizer={"lr": 0.5})), steps=1)
    assert given.summary["lr"] == described.summary["lr"] == 0.5
    assert np.array_equal(given.arrays["filters_autograd"], described.arrays["filters_autograd"])
    assert np.array_equal(given.arrays["filters_manual"], described.arrays["filters_manual"])
    assert given.arrays["confusion_autograd"].shape == given.arrays["confusion_manual"].shape == (10, 10)


def test_the_filter_is_the_first_conv_weight_even_after_a_batch_norms_weight():
    spec = parse_spec({"name": "bn-first", "input_shape": [1, 8, 8], "layers": [
        {"type": "batch_norm2d"}, {"type": "conv2d", "out_channels": 2, "kernel_size": 3}, {"type": "flatten"},
        {"type": "linear", "out_features": 10}], "loss": {"type": "softmax_cross_entropy"}})
    network = T.Described(spec)
    assert network.filter_key == network.grad_key == "1.weight" and network.params["1.weight"].shape == (2, 1, 3, 3)


def test_the_classes_predicted_from_two_outputs_and_from_one():
    two = T.Described(_tiny(2))
    assert list(two._classes(np.array([[0.9, 0.1], [0.2, 0.8]]))) == [0, 1]  # the larger of two
    mse = T.Described(_tiny(1, "mse"))
    assert list(mse._classes(np.array([[0.7], [0.5], [0.2]]))) == [1, 0, 0]  # odd above 0.5, not at it
    logits = T.Described(_tiny(1, "binary_cross_entropy_with_logits"))
    assert list(logits._classes(np.array([[0.1], [0.0], [-0.1]]))) == [1, 0, 0]  # odd above 0, not at it


@pytest.mark.parametrize("out, shape", [(1, (4, 1)), (10, (4, 10))])
def test_a_float32_networks_targets_are_float32(out, shape):
    network = T.Described(_tiny(out, "mse"), dtype="float32")
    x, target = network.arrays(np.zeros((4, 8, 8)), np.array([0, 3, 8, 9]))
    assert (x.dtype, target.dtype, target.shape) == (np.float32, np.float32, shape)


def test_a_descriptions_own_labels_are_dropped_for_the_digits():
    """The description's labels are for its batch_size: the digits' labels are the targets, and a subject of another
    batch draws its own."""
    spec = _tiny(10, {"type": "softmax_cross_entropy", "labels": [3, 7]}, batch_size=2)
    network = T.Described(spec)
    assert network.spec.loss.labels is None
    subject = network.subject(4, None)
    assert subject.x.shape == (4, 1, 8, 8) and subject.target.shape == (4,)


def test_a_described_networks_subject_is_one_step_on_the_given_data():
    network = T.Described(_tiny())
    x, target = network.arrays(*(a[:4] for a in T.digits()[0]))
    params = {name: value * 0.5 for name, value in network.params.items()}
    subject = network.subject(4, (x, target, params))
    assert subject.x is x and subject.target is target and subject.params is params
    assert subject.steps == 1 and subject.spec.batch_size == 4


# --- the one-step check ---------------------------------------------------------------------------------------------

def test_the_one_step_check_of_a_broken_chain_says_the_running_statistics_are_missing():
    """A non-finite bias gradient breaks the chain before the update: each step of the check (two, for a described
    network) has no running statistics on the manual side, and each row of them says so."""
    def nan_bias(dout, cache):
        from manual import functional as MF
        dx, dw, db = MF.linear_backward(dout, cache)
        return dx, dw, db * float("nan")

    network = T.Described(parse_spec(BATCH_NORM_DIGITS), wrong=overrides({4: nan_bias}))
    rng = np.random.default_rng(0)
    x, target = network.arrays(rng.random((4, 8, 8)), rng.integers(0, 10, 4))
    rows = T._one_step(network, 4, (x, target, network.params), 3, None, {})
    why = "manual side failed: the manual side kept no running statistics"
    assert [(r.name, r.passed, r.problem) for r in rows if "running" in r.name] == [
        ("1.running_mean after step 3", False, why), ("1.running_var after step 3", False, why)] * 2


def test_the_one_step_check_steps_from_the_parameters_given():
    network = T.Slides()
    rng = np.random.default_rng(0)
    X, Y = network.arrays(rng.random((4, 8, 8)), rng.integers(0, 10, 4))
    params = {name: value * 0.5 for name, value in network.params.items()}
    rows = T._one_step(network, 4, (X, Y, params), 3, None, {})
    E = float(manual_seed.forward(X, params, Y, "mean")["E"])
    assert rows[0].name == "E at step 3" and rows[0].passed
    assert rows[0].worst_manual == pytest.approx(E, rel=1e-12) and rows[0].worst_autograd == pytest.approx(E, rel=1e-12)


# --- the adapters --------------------------------------------------------------------------------------------------

class _Softmax:
    """A softmax regression in the course-assignment style with two extra parameters it never uses."""

    def __init__(self):
        rng = np.random.default_rng(1)
        self.params = {"W": rng.standard_normal((5, 3)), "b": rng.standard_normal(3), "c": np.ones((3, 5)),
                       "d": np.ones(3)}

    def loss(self, X, y):
        return 0.0, {}


class _TorchSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 3)

    def forward(self, X):
        return self.fc(X)


def test_every_torch_parameter_mapped_twice_is_listed_with_a_comma():
    mapping = {"W": ("fc.weight", np.transpose), "b": "fc.bias", "c": "fc.weight", "d": "fc.bias"}
    with pytest.raises(InputError) as raised_error:
        check_model(_Softmax(), _TorchSoftmax(), mapping, np.zeros((2, 5)), np.zeros(2, np.int64),
                    lambda module, X, y: F.cross_entropy(module(X), y))
    assert str(raised_error.value) == ("mapping: needs every one of the module's parameters mapped exactly once; "
                                       "mapped twice: fc.weight, fc.bias")


class _Dense:
    def __init__(self):
        self.params, self.grads = {"W": np.zeros((3, 2)), "b": np.zeros(2)}, {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads = {"W": self.x.T @ dout, "b": dout.sum(0)}
        return dout @ self.params["W"].T


def test_the_adapted_forward_refuses_a_call_that_leaves_a_parameter_out():
    """The adapted forward takes the layer's inputs and then every parameter: called with fewer values than
    parameters, it raises, rather than setting a parameter to an input."""
    layer = params_layer(_Dense, ["W", "b"])
    with pytest.raises(ValueError, match=r"^zip\(\) argument 2 is shorter than argument 1$"):
        layer.forward(np.ones((4, 3)))
