"""Edges of the training run's subjects (crosscheck.train.Slides, crosscheck.subjects) and of the saved run's JSON
(crosscheck.runfile) that other tests leave open: the slides' network's title and case id for a kernel other than
3x3 and a non-square one; an output of exactly 0.5 is the first class, as argmax takes the first of a tie; the
subject of one step is a one-step case that keeps the memory budget; a slides' subject's training run says why the
manual side could not step on every row, and its witness run (manual=False) has autograd's values on both sides;
float64's nudged run of a described network moves the parameters by the seed's signs and the input by seed + 1's;
the JSON beside a saved run is indented two spaces and never holds a bare NaN."""

import json

import numpy as np
import pytest
from run_files import synthetic_run

from crosscheck import runfile
from crosscheck import train as T
from crosscheck.catalogue import find
from crosscheck.subjects import NetworkSubject, SeedCase, SeedSubject
from crosscheck.tolerances import NUDGES, nudge
from netdesc import InputError
from netdesc.checks import ManualFailure
from netdesc.description import parse_spec
from reference import network as reference_net
from reference import seed_network as reference_seed

# --- the slides' network on the digits ----------------------------------------------------------------------------


def test_a_square_kernel_other_than_3x3_is_named_in_the_title_and_once_in_the_case_id():
    """A 5x5 filter: the title names it (the 3x3 title describes the slides' own layers), the id says k5."""
    network = T.Slides(kernel=(5, 5))
    assert network.title == "the slides' network (5x5 filter, n_out 1)"
    assert network.case_id == "slides-digits-k5-out1-float64-seed0"


def test_a_non_square_kernel_is_named_height_by_width_in_the_title_and_the_case_id():
    network = T.Slides(n_out=10, kernel=(2, 3), dtype="float32", seed=4)
    assert network.title == "the slides' network (2x3 filter, n_out 10)"
    assert network.case_id == "slides-digits-k2x3-out10-float32-seed4"


def test_an_output_of_exactly_one_half_is_the_first_class_on_both_sides():
    """W = 0 and b = 0 make Z2 = 0 and O = sigmoid(0) = 0.5 exactly: odd needs O > 0.5, so every image is even
    (class 0), as argmax gives the first of a tie for n_out 10."""
    (images, _), _ = T.digits()
    for n_out in (1, 10):
        network = T.Slides(n_out=n_out)
        params = {name: np.zeros_like(value) for name, value in network.params.items()}
        X, _ = network.arrays(images[:5], np.zeros(5, np.int64))
        assert network.predict_manual(params, X).tolist() == [0] * 5
        assert network.predict_autograd(params, X).tolist() == [0] * 5


def test_the_subject_of_a_step_is_one_step_on_the_given_batch():
    """train compares one step at a time: the subject it makes has a training run of that one step, from the data
    given (autograd's one step from the same values)."""
    network = T.Slides()
    X, Y = network.arrays(*T.digits()[0])
    subject = network.subject(4, (X[:4], Y[:4], network.params))
    assert subject.steps == 1
    steps = subject.training()
    assert [step.name for step in steps] == ["E at steps 1..1", "W after 1 steps", "b after 1 steps", "f after 1 steps"]
    errors, final = reference_seed.train(X[:4], Y[:4], network.params, 2.0, 1, "mean")
    assert np.array_equal(steps[0].autograd, errors) and np.array_equal(steps[3].autograd, final["f"])


def test_training_the_slides_network_keeps_the_memory_budget():
    """The budget is checked before the first step: 32 images of 8x8 with a 3x3 filter hold 32*64*4 + 32*36*10 +
    36*33 = 20900 values of 64 bytes, 1.34 MB."""
    with pytest.raises(InputError) as info:
        T.train(T.Slides(), epochs=1, batch=32, steps=1, max_memory=999)
    assert str(info.value) == ("memory: the slides' network 8x8-k3-out1-N32-mean-float64-seed0 needs about 1.34 MB, "
                               "more than the budget of 999 bytes (--max-memory SIZE sets it)")


# --- a slides' subject's training run -----------------------------------------------------------------------------


def test_a_training_run_the_manual_side_cannot_step_says_why_on_every_row():
    """transposed-dE_dW gives dE/dW of shape (1, 36) for W (36, 1): no step can be taken, and the loss row and
    every parameter's row say so, whole."""
    steps = SeedSubject(SeedCase(steps=2), find("transposed-dE_dW")).training()
    assert [step.name for step in steps] == ["E at steps 1..2", "W after 2 steps", "b after 2 steps", "f after 2 steps"]
    for step in steps:
        assert isinstance(step.manual, ManualFailure)
        assert step.manual == "no gradient to step with for dE_dW: got shape (1, 36), needs shape (36, 1)"


def test_the_witness_run_of_a_slides_subject_has_autograds_values_on_both_sides():
    """training(manual=False): autograd's run alone, the same values on both sides of every row."""
    case = SeedCase(steps=3)
    subject = SeedSubject(case)
    steps = subject.training(manual=False)
    errors, final = reference_seed.train(subject.X, subject.Y, subject.params, case.lr, 3, case.reduction)
    assert len(steps) == 4 and all(step.manual is step.autograd for step in steps)
    assert np.array_equal(steps[0].autograd, errors)
    assert all(np.array_equal(step.autograd, final[name]) for step, name in zip(steps[1:], "Wbf", strict=True))


# --- a described network's nudged run -----------------------------------------------------------------------------

TINY = {"name": "tiny", "input_shape": [1, 4], "batch_size": 3, "layers": [{"type": "linear", "out_features": 2}],
        "loss": {"type": "mse"}}


@pytest.mark.parametrize("j", [0, 3, NUDGES - 1])
def test_nudged_run_j_moves_the_parameters_the_input_and_the_target_by_draws_of_seed_and_j(j):
    """float64's nudged run j is autograd again with every parameter nudged by one rounding (signs from (seed, j,
    0)), the input (from (seed, j, 1)) and a target of values (from (seed, j, 2)): the same run every time, and each
    of the three moves the run (its output, E and gradients)."""
    spec = parse_spec(TINY)
    subject = NetworkSubject(spec, 5)
    step = next(s for s in subject.walk() if s.name == "0 linear: dE/dweight")
    params = nudge(subject.params, (5, j, 0), np.float64)
    x = nudge({"x": subject.x}, (5, j, 1), np.float64)["x"]
    target = nudge({"target": subject.target}, (5, j, 2), np.float64)["target"]
    assert not np.array_equal(x, subject.x) and not np.array_equal(target, subject.target)
    masks = subject.masks(0, len(x))
    expected = reference_net.run(spec, params, x, target, masks)
    assert np.array_equal(step.nudged(j), expected["param_grads"]["0.weight"])

    def values(run):
        grads = (g.ravel() for g in run["param_grads"].values())
        return np.concatenate([run["outputs"][-1].ravel(), [run["loss"]], *grads])
    for unmoved in ((subject.params, x, target), (params, subject.x, target), (params, x, subject.target)):
        assert not np.array_equal(values(expected), values(reference_net.run(spec, *unmoved, masks)))
    assert not np.array_equal(step.nudged(j), step.nudged((j + 1) % NUDGES))  # another draw


def test_a_nudged_run_keeps_labels_as_they_are():
    """Labels are integers: a nudge would turn a label times (1 - eps) into class 0 (its factor cast to an integer);
    in every nudged run they stay."""
    spec = parse_spec(TINY | {"layers": [{"type": "linear", "out_features": 3}],
                              "loss": {"type": "softmax_cross_entropy"}})
    subject = NetworkSubject(spec, 5)
    assert subject.target.dtype.kind == "i" and np.count_nonzero(subject.target) >= 2
    step = next(s for s in subject.walk() if s.name == "0 linear: dE/dweight")
    for j in range(NUDGES):
        params = nudge(subject.params, (5, j, 0), np.float64)
        x = nudge({"x": subject.x}, (5, j, 1), np.float64)["x"]
        expected = reference_net.run(spec, params, x, subject.target, subject.masks(0, len(x)))
        assert np.array_equal(step.nudged(j), expected["param_grads"]["0.weight"]), j


# --- the JSON beside a saved run ------------------------------------------------------------------------------------


def _run():
    run = synthetic_run(steps=3, epochs=2, stopped_at=None, title="t")
    run["loss_manual"] = np.array([3.0, 2.0, 1.5])
    run["loss_autograd"] = np.array([3.0, 2.0, 1.25])
    run["max_rel_diff"] = np.array([0.0, 0.5, 0.25])
    for key, last in (("train_accuracy_manual", 0.75), ("train_accuracy_autograd", 0.5),
                      ("test_accuracy_manual", 0.25), ("test_accuracy_autograd", 0.125)):
        run[key] = np.array([0.0, last])
    return run


def test_the_json_beside_is_indented_two_spaces(tmp_path):
    """As every JSON crosscheck writes: two spaces, the summary's fields first, a newline at the end."""
    _, beside = runfile.save_run(tmp_path / "r.npz", _run())
    document = {"title": "t", "dtype": "float64", "epochs": 2, "steps": 3, "stopped_at": None, "run": "r.npz",
                "rtol": 1e-10, "atol": 1e-12, "epochs_done": 2, "largest_rel_diff": 0.5,
                "loss_manual": 1.5, "loss_autograd": 1.25, "train_accuracy_manual": 0.75,
                "train_accuracy_autograd": 0.5, "test_accuracy_manual": 0.25, "test_accuracy_autograd": 0.125}
    assert beside.read_text() == json.dumps(document, indent=2) + "\n"
    assert beside.read_text().startswith('{\n  "title": "t",\n  "dtype": "float64",\n')


def test_a_summary_holding_nan_is_not_written_as_json_that_is_not_json(tmp_path):
    """JSON has no NaN: a summary field holding one (json.loads reads NaN) is refused, and neither file is written,
    rather than a .json beside that strict readers cannot parse."""
    run = _run()
    run["summary"] = np.array(json.dumps({"title": "t", "dtype": "float64", "epochs": 2, "steps": 3,
                                          "stopped_at": None, "note": float("nan")}))
    with pytest.raises((InputError, ValueError)):
        runfile.save_run(tmp_path / "r.npz", run)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kernel", [(3,), 5, (3, 3, 3)], ids=["one-size", "an-int", "three-sizes"])
def test_a_kernel_that_is_not_two_sizes_is_an_input_error_before_the_title_reads_it(kernel):
    """The title reads kernel[0] and kernel[1]: the kernel is checked first, as crosscheck seed checks it, never an
    IndexError or TypeError from the title."""
    with pytest.raises(InputError) as raised_error:
        T.Slides(kernel=kernel)
    assert str(raised_error.value) == f"kernel_shape: got {kernel!r}, needs two positive integers (height, width)"
