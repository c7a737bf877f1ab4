"""Edges of the subjects (crosscheck.subjects) that other tests leave open: a hand-written side that gives no
numbers is a ManualFailure on its Step, named "the manual side", which the diagnosis reports as such; a described
network's manual run that diverges raises no NumPy warning (its overflow is its values), and one that a layer then
refuses (a non-finite input) fails every training row with "the manual run left the floats (...)"; a described
network's update rows, parameters and running statistics alike, count the optimizer steps behind them and carry the
value before the step; its autograd trajectory and the replays of its hypotheses use the subject's own dropout masks
(seed 1, not seed 0's), step by step; a batch norm that is the first layer reads the network's input as what its
running variance saw; the slides' network's training rows count the run's steps; the slides' network accepts a
dimension of 1 and a filter as large as the input."""

import warnings

import numpy as np

from crosscheck.check import check, inject, overrides
from crosscheck.diagnose import diagnose
from crosscheck.subjects import SEED_UPDATED, NetworkSubject, SeedCase, SeedSubject
from manual.seed_network import sgd_step
from netdesc.description import parse_spec

MSE = {"type": "mse", "reduction": "sum"}
LINEAR2 = {"type": "linear", "out_features": 2}
# two linear layers, no squashing between them: at lr 1 the prediction grows past the floats
UNSQUASHED = {"input_shape": [1, 3, 3], "batch_size": 4, "loss": MSE,
              "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 6}, LINEAR2]}
# a dropout before the only parameters: their gradients depend on the step's mask
DROPPED = parse_spec({"input_shape": [1, 3, 3], "batch_size": 4, "loss": MSE,
                      "layers": [{"type": "flatten"}, {"type": "dropout", "p": 0.5}, LINEAR2],
                      "optimizer": {"type": "adam", "lr": 0.01, "steps": 3}})
# a batch norm as the first layer (its input is the network's input), SGD with momentum
NORMED_FIRST = parse_spec({"input_shape": [2, 3, 3], "batch_size": 4, "loss": MSE,
                           "layers": [{"type": "batch_norm2d"}, {"type": "flatten"},
                                      {"type": "linear", "out_features": 3}],
                           "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "steps": 3}})


# --- what is not numbers ----------------------------------------------------------------------------------------

def test_an_update_that_is_not_numbers_is_the_manual_sides_failure_in_the_diagnosis():
    """An SGD step that returns None for W: the Step holds a ManualFailure saying the manual side returned None,
    and the diagnosis stops at W's update with that as its problem and its classification."""
    def step(params, grads, lr):
        return sgd_step(params, grads, lr) | {"W": None}

    subject = SeedSubject(SeedCase(steps=1), overrides(optimizer_step=step))
    updates = {s.name: s for s in subject.walk() if s.steps}
    assert str(updates["W after step 1"].manual) == "the manual side returned None, needs an array of numbers"
    d = diagnose(subject)
    assert d.first.name == "W after step 1"
    assert d.first.problem == "manual side failed: the manual side returned None, needs an array of numbers"
    assert (d.classification.kind, d.classification.detail) == (
        "unclassified", "the manual side failed: the manual side returned None, needs an array of numbers")


# --- a described network's manual run leaving the floats ------------------------------------------------------

def test_a_manual_run_that_leaves_the_floats_fails_every_training_row_without_a_warning():
    """lr 1 on two unsquashed linear layers: the manual prediction overflows to -inf (no RuntimeWarning: the
    overflow is the run's values), then the loss refuses it; every training row, the loss and each parameter, is a
    ManualFailure with the loss's reason."""
    spec = parse_spec(UNSQUASHED | {"optimizer": {"lr": 1.0, "steps": 30}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steps = NetworkSubject(spec).training()
    reason = ("the manual run left the floats (pred: got non-finite value -inf at index (0, 0), needs finite "
              "values)")
    assert [(s.name, str(s.manual)) for s in steps] == [
        ("loss: E at steps 1..30", reason), ("2 linear: weight after 30 steps", reason),
        ("2 linear: bias after 30 steps", reason), ("1 linear: weight after 30 steps", reason),
        ("1 linear: bias after 30 steps", reason)]


def test_a_manual_run_whose_gradient_overflows_raises_no_warning():
    """lr 30 through a tanh: the manual gradients overflow and turn invalid (inf - inf) before the optimizer
    refuses them; NumPy says nothing, the rows say it."""
    spec = parse_spec(UNSQUASHED | {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 6},
                                               {"type": "tanh"}, LINEAR2],
                                    "optimizer": {"lr": 30.0, "steps": 60}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steps = NetworkSubject(spec).training()
    assert {str(s.manual) for s in steps} == {"no gradient to step with for 1.weight: it holds non-finite values"}


# --- a described network's update rows --------------------------------------------------------------------------

def test_every_update_row_counts_its_steps_and_carries_the_value_before_it():
    """Parameters and running statistics after steps 1 and 2: steps = k, and before = the value before step k (the
    initial parameters, a batch norm's initial running mean 0 and variance 1; then autograd's after step 1)."""
    subject = NetworkSubject(NORMED_FIRST)
    rows = {s.name: s for s in subject.walk() if " after step " in s.quantity}
    assert list(rows) == [f"{where}: {kind} after step {k}" for k in (1, 2) for where, kind in [
        ("2 linear", "weight"), ("2 linear", "bias"), ("0 batch_norm2d", "weight"), ("0 batch_norm2d", "bias"),
        ("0 batch_norm2d", "running_mean"), ("0 batch_norm2d", "running_var")]]
    initial = subject.params | {"0.running_mean": np.zeros(2), "0.running_var": np.ones(2)}
    for name, row in rows.items():
        k = int(name.rsplit(" ", 1)[1])
        assert row.steps == k, name
        where = row.where.split(" ")[0]
        kind = row.quantity.split(" ")[0]
        expected = initial[f"{where}.{kind}"] if k == 1 else rows[name.replace("step 2", "step 1")].autograd
        np.testing.assert_array_equal(row.before, expected, err_msg=name)


def test_the_updates_of_a_network_with_dropout_follow_its_own_seeds_masks():
    """Seed 1: autograd's parameters after steps 1 and 2 come from the subject's masks (seed 1's, step 0 then
    step 1), as manual's do; every row agrees by the table itself, none excused step by step (which would hide
    autograd's trajectory taken with other masks)."""
    result = check(NetworkSubject(DROPPED, seed=1), train=False)
    assert result.passed and not [r.quantity for r in result.rows if r.result.witnessed]
    assert [r.quantity for r in result.rows][-4:] == [
        "weight after step 1", "bias after step 1", "weight after step 2", "bias after step 2"]


def test_an_optimizer_mistake_behind_a_dropout_is_named_by_replaying_the_steps_own_masks():
    """Adam without bias correction behind a dropout, seed 1: the hypothesis replays autograd's gradients of
    step 1, taken with step 0's mask of seed 1, and names the mistake."""
    d = diagnose(NetworkSubject(DROPPED, seed=1, wrong=inject("adam-no-bias-correction", DROPPED)))
    assert d.first.name == "2 linear: weight after step 1"
    assert (d.classification.kind, d.classification.detail) == (
        "bias-correction", "the moments not bias-corrected: m / (sqrt(v) + eps), the divisions by 1 - beta1^t and "
        "sqrt(1 - beta2^t) left out")


def test_a_first_layer_batch_norms_biased_running_variance_is_named():
    """The running variance's hypothesis reads what the batch norm saw: for the first layer, the network's input."""
    d = diagnose(NetworkSubject(NORMED_FIRST, wrong=inject("batchnorm-biased-running-var", NORMED_FIRST)))
    assert d.first.name == "0 batch_norm2d: running_var after step 1"
    assert (d.classification.kind, d.classification.detail) == (
        "biased-variance", "the running variance updated with the batch's biased variance (divided by M, the "
        "normalization's), where torch keeps the unbiased one (divided by M - 1)")


# --- the slides' network ------------------------------------------------------------------------------------------

def test_the_slides_training_rows_count_the_runs_steps():
    """Step.steps of a training row: the run's steps, for the loss and for W, b and f after it."""
    steps = SeedSubject(SeedCase(steps=3)).training()
    assert [(s.name, s.steps) for s in steps] == [("E at steps 1..3", 3)] + [
        (f"{k} after 3 steps", 3) for k in SEED_UPDATED]


def test_a_filter_as_large_as_a_one_row_input_is_a_valid_case():
    """A 1x5 input with a 1x5 filter: a dimension of 1 is a positive integer and a filter may fill the input (one
    hidden unit); the case is made and every row agrees."""
    case = SeedCase(input_shape=(1, 5), kernel_shape=(1, 5), steps=2)
    assert str(case) == "1x5-k1x5-out1-N4-sum-float64-seed0"
    assert check(SeedSubject(case)).passed
