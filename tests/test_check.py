"""The one checker (crosscheck.check) on described networks: wrong derivations aimed by name at any description,
the chaos rule that keeps a diverging or chaotic training run from raising a false alarm, and its negative case."""

import warnings

import numpy as np
import pytest

from crosscheck.check import GROWTH, chaos, check, inject, module_subject, overrides
from crosscheck.subjects import NetworkSubject
from netdesc import InputError
from netdesc.description import load_spec, parse_spec

LENET = load_spec("examples/lenet5.toml")  # conv2d at 0 and 3, relu, max_pool2d, linear at 7, 9, 11
SMALL = load_spec("examples/small3conv.toml")  # conv2d at 0, 3, 5; softmax cross-entropy
LINEAR6, LINEAR2 = {"type": "linear", "out_features": 6}, {"type": "linear", "out_features": 2}
MLP = {"input_shape": [1, 3, 3], "batch_size": 4, "loss": {"type": "mse", "reduction": "sum"},
       "layers": [{"type": "flatten"}, LINEAR6, {"type": "tanh"}, LINEAR2]}


def _first_failure(spec, wrong):
    rows = check(NetworkSubject(spec, steps=1, wrong=wrong), train=False).rows
    first = next(row for row in rows if not row.passed)
    return f"{first.where}: {first.quantity}"


@pytest.mark.parametrize(("name", "spec", "first"), [
    ("conv2d-dw-flipped", LENET, "0 conv2d: dE/dweight"),  # the first conv2d of the description
    ("conv2d-dw-flipped@3", LENET, "3 conv2d: dE/dweight"),  # the one named
    ("tanh-of-output", SMALL, "6 tanh: dE/dinput"),
    ("cross-entropy-onehot-forgotten", SMALL, "loss: dE/dinput"),  # the same loss: its functions carried over
    ("scaled@9", LENET, "9 linear: dE/dinput"),
    ("9", LENET, "9 linear: dE/dinput"),  # a layer index alone: scaled
])
def test_a_catalogued_mistake_is_aimed_at_another_description(name, spec, first):
    wrong = inject(name, spec)
    assert _first_failure(spec, wrong) == first
    assert wrong.network == spec.name


@pytest.mark.parametrize(("name", "spec", "message"), [
    ("conv2d-dw-flipped@1", LENET, "--inject: conv2d-dw-flipped changes a conv2d layer; layer 1 is a tanh"),
    ("conv2d-dw-flipped@12", LENET, "--inject: got layer '12', needs a layer index in [0, 11]"),
    ("scaled@x", LENET, "--inject: got layer 'x', needs a layer index in [0, 11]"),
    ("max-pool-every-element", parse_spec(MLP), "--inject: max-pool-every-element changes a max_pool2d layer; the "
     "description has none"),
    ("cross-entropy-onehot-forgotten", parse_spec(MLP), "--inject: cross-entropy-onehot-forgotten changes the "
     "softmax_cross_entropy loss; the description's loss is mse"),
    ("flipped-sign-dE_dO", LENET, "--inject: got 'flipped-sign-dE_dO', a mistake in the slides' network; it needs "
     "crosscheck seed --inject flipped-sign-dE_dO"),
])
def test_a_mistake_that_cannot_be_aimed_is_bad_input(name, spec, message):
    with pytest.raises(InputError) as info:
        inject(name, spec)
    assert str(info.value) == message


def test_a_diverging_run_gives_no_verdict_but_its_one_step_rows_do():
    # lr 1 on a summed loss: the loss grows past 1e100; the one-step rows agree, the 60-step rows cannot judge.
    subject = NetworkSubject(parse_spec(MLP | {"optimizer": {"lr": 1.0, "steps": 60}}))
    result = check(subject)
    assert result.passed and [r.quantity for r in result.unstable] == ["weight after 60 steps", "bias after 60 steps"]
    assert result.unstable[0].result.note.startswith("autograd's own loss grows from 1.024e+00 to ")
    assert all(not r.result.note for r in result.rows if "after 60 steps" not in r.quantity)


def test_a_run_that_overflows_gives_no_verdict():
    subject = NetworkSubject(parse_spec(MLP | {"optimizer": {"lr": 30.0, "steps": 60}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the manual side overflows too: its own warning
        result = check(subject)
    assert result.passed and result.unstable
    assert result.unstable[0].result.note.endswith("to nan: a diverging run amplifies rounding without bound")


def test_a_stable_run_has_no_excuse():
    subject = NetworkSubject(parse_spec(MLP | {"optimizer": {"lr": 0.05, "steps": 60}}))
    assert chaos(subject) is None and GROWTH == 1e3


def test_a_one_step_mismatch_is_never_excused():
    # The same diverging run with a wrong layer: the one-step rows differ, so the training rows stay a mismatch.
    spec = parse_spec(MLP | {"optimizer": {"lr": 1.0, "steps": 60}})
    result = check(NetworkSubject(spec, wrong=inject("1", spec)))
    assert not result.passed and not result.unstable
    assert any(r.quantity == "weight after 60 steps" and not r.passed for r in result.rows)


def test_a_network_without_parameters_has_no_update_or_training_rows():
    spec = parse_spec({"input_shape": [1, 2, 2], "layers": [{"type": "flatten"}, {"type": "tanh"}],
                       "loss": {"type": "mse"}})
    rows = check(NetworkSubject(spec)).rows
    assert [f"{r.where}: {r.quantity}" for r in rows] == [
        "0 flatten: output", "1 tanh: output", "loss: E", "loss: dE/dinput", "1 tanh: dE/dinput",
        "0 flatten: dE/dinput"]


def test_a_non_finite_gradient_cannot_be_stepped_with():
    spec = parse_spec(MLP)

    def nan_bias(dout, cache):
        from manual import functional as F
        dx, dw, db = F.linear_backward(dout, cache)
        return dx, dw, db * float("nan")

    rows = check(NetworkSubject(spec, steps=2, wrong=overrides({3: nan_bias}))).rows
    update = next(r for r in rows if r.quantity == "weight after step 1")
    assert update.result.problem == ("manual side failed: no gradient to step with for 3.bias: it holds non-finite "
                                     "values")


def test_a_gradient_of_another_dtype_cannot_be_stepped_with():
    spec = parse_spec(MLP)

    def float32_weight(dout, cache):
        from manual import functional as F
        dx, dw, db = F.linear_backward(dout, cache)
        return dx, dw.astype(np.float32), db

    rows = check(NetworkSubject(spec, steps=2, wrong=overrides({3: float32_weight}))).rows
    update = next(r for r in rows if r.quantity == "weight after step 1")
    assert update.result.problem == ("manual side failed: no gradient to step with for 3.weight: got dtype float32, "
                                     "needs float64, the parameter's")


def test_an_equation_of_two_arguments_taking_one_is_named_with_both(tmp_path):
    """A user's module replacing dE_dW (two arguments in manual.seed_network) by a function of one: the one line
    names what it must take, the arguments separated as in a signature."""
    path = tmp_path / "one_argument.py"
    path.write_text("def dE_dW(dE_dZ2):\n    return dE_dZ2\nLAYER_BACKWARD = {'dE_dW': dE_dW}\n")
    with pytest.raises(InputError) as info:
        module_subject(path)
    assert str(info.value) == (f"{path}: LAYER_BACKWARD['dE_dW'] is dE_dW(dE_dZ2) ({path}:1), needs to take "
                               "(dE_dZ2, dZ2_dW) as manual.seed_network.dE_dW does")


def test_an_optimizer_step_without_the_described_settings_is_named(tmp_path):
    """OPTIMIZER_STEP takes (params, grads, state) but none of the settings passed to it by keyword (lr, momentum,
    ...): refused before it runs, as one that takes too few positional arguments is."""
    path = tmp_path / "no_settings.py"
    path.write_text("SPEC = {'input_shape': [1, 2, 2], 'layers': [{'type': 'flatten'}, {'type': 'linear', "
                    "'out_features': 2}], 'loss': {'type': 'mse'}}\n"
                    "def step(params, grads, state):\n    return params, state\nOPTIMIZER_STEP = step\n")
    with pytest.raises(InputError) as info:
        module_subject(path)
    assert str(info.value) == (f"{path}: OPTIMIZER_STEP is step(params, grads, state) ({path}:2), needs to take "
                               "(params, grads, state, **settings) as manual.optim.sgd_step does")


def test_a_callable_object_of_the_wrong_signature_is_named_by_its_class(tmp_path):
    """An instance with __call__ has no __name__ and no __code__: the line names its class and no file."""
    path = tmp_path / "callable_object.py"
    path.write_text("class Equation:\n    def __call__(self, O, extra):\n        return O\n"
                    "LAYER_BACKWARD = {'dO_dZ2': Equation()}\n")
    with pytest.raises(InputError) as info:
        module_subject(path)
    assert str(info.value) == (f"{path}: LAYER_BACKWARD['dO_dZ2'] is Equation(O, extra), needs to take (O) as "
                               "manual.seed_network.dO_dZ2 does")


def _module(tmp_path, name, text):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return path


def test_a_seed_module_is_read_into_the_subject_it_names(tmp_path):
    """Its CASE, the seed and dtype given (float64 by default), and a WrongDerivation that says it is a user's
    module for the slides' network, with no expected first quantity or class; a check names it as injected."""
    path = _module(tmp_path, "seed_module", "def dE_dO(O, Y, n):\n    return 2 * (O - Y)\n"
                                            "LAYER_BACKWARD = {'dE_dO': dE_dO}\nCASE = {'batch': 2}\n")
    subject = module_subject(path, seed=3)
    assert (subject.dtype, subject.seed, subject.case.batch) == ("float64", 3, 2)
    wrong = subject.wrong
    assert (wrong.name, wrong.description, wrong.network, wrong.first_wrong, wrong.kind) == (
        str(path), "a user's module", "seed", "", "")
    assert wrong.on_seed and list(wrong.backward) == ["dE_dO"] and wrong.optimizer_step is None
    result = check(subject, train=False)
    assert result.injected == f"{path} (a user's module)" and not result.passed


NETWORK_MODULE = ("SPEC = {'input_shape': [1, 2, 2], 'batch_size': 3, 'layers': [{'type': 'flatten'}, "
                  "{'type': 'linear', 'out_features': 2}], 'loss': {'type': 'mse'}, "
                  "'optimizer': {'lr': 0.1, 'momentum': 0.5}}\n")


def test_a_network_module_overriding_only_the_optimizer_step_is_read_and_its_step_checked(tmp_path):
    """An OPTIMIZER_STEP of (params, grads, state, **settings) is an override on its own; here it doubles lr, so the
    first update differs. The description is named after the module's file, in the dtype given."""
    path = _module(tmp_path, "double_lr", NETWORK_MODULE + (
        "from manual import optim\n"
        "def step(params, grads, state, **settings):\n"
        "    return optim.sgd_step(params, grads, state, **(settings | {'lr': 2 * settings['lr']}))\n"
        "OPTIMIZER_STEP = step\n"))
    subject = module_subject(path, "float32")
    assert (subject.spec.name, subject.dtype, subject.seed) == ("double_lr", "float32", 0)
    wrong = subject.wrong
    assert (wrong.name, wrong.description, wrong.network, wrong.first_wrong, wrong.kind) == (
        str(path), "a user's module", "double_lr", "", "")
    assert not wrong.on_seed and wrong.backward == {} and wrong.forward == {}
    first = next(row for row in check(subject, train=False).rows if not row.passed)
    assert (first.where, first.quantity) == ("1 linear", "weight after step 1")


def test_a_network_module_is_refused_past_the_memory_budget_given(tmp_path):
    path = _module(tmp_path, "small", NETWORK_MODULE + "LAYER_BACKWARD = {1: lambda dout, cache: None}\n")
    with pytest.raises(InputError) as info:
        module_subject(path, max_memory=64)
    assert str(info.value).startswith("memory: network 'small' with batch 3 needs about ")
    assert str(info.value).endswith(", more than the budget of 64 bytes (--max-memory SIZE sets it)")


def test_a_loss_forward_of_the_wrong_signature_is_named_with_the_losss_arguments(tmp_path):
    path = _module(tmp_path, "loss_forward", NETWORK_MODULE + "def mse(pred, target):\n    return pred\n"
                                                            "LAYER_FORWARD = {'loss': mse}\n")
    with pytest.raises(InputError) as info:
        module_subject(path)
    assert str(info.value) == (f"{path}: LAYER_FORWARD['loss'] is mse(pred, target) ({path}:2), needs to take "
                               "(pred, target, reduction)")
