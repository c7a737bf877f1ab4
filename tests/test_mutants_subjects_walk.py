"""What a described network's subject hands the judges (crosscheck.subjects), pinned where the other tests left it
open: its draws (parameters, dropout masks, title) come from its seed; the walk's gradients are step 1's, with step
1's dropout masks; both sides' training steps use the subject's masks; every gradient row's ``own`` is autograd
taken at manual's own forward values and its ``nudged`` autograd at inputs nudged by one rounding (token ids left
as they are, the dropout masks kept); a float32 walk's hypotheses read autograd's values in float64; a pool's
gradient scaled by its window is read as the window size; the memory estimate counts every array; a gradient that
is nothing cannot be stepped with; the float64 witness trains autograd alone; and the lockstep and the own values
judge at the subject's dtype."""

import numpy as np
import pytest

from crosscheck.check import overrides, scaled_backward
from crosscheck.diagnose import diagnose
from crosscheck.subjects import (
    NetworkSubject,
    SeedCase,
    SeedSubject,
    memory_budget,
    network_elements,
)
from crosscheck.tolerances import crossed_a_jump
from manual import functional as F
from manual import network as manual_net
from manual import seed_network as manual_seed
from netdesc import InputError
from netdesc.description import parse_spec
from netdesc.inputs import dropout_masks, init_params
from reference import network as reference_net

# tanh and dropout only (no max, no ReLU): a one-rounding nudge moves autograd by rounding, never across a jump.
# Layer 4 adds layer 3's output to layer 1's: a merge layer, and a fan-out of layer 1.
DROPOUT_ADD = {"name": "dropout-add", "input_shape": [2, 5], "batch_size": 4, "loss": {"type": "mse"},
               "optimizer": {"type": "sgd", "lr": 0.1},
               "layers": [{"type": "linear", "out_features": 6}, {"type": "tanh"}, {"type": "dropout", "p": 0.5},
                          {"type": "linear", "out_features": 6}, {"type": "add", "inputs": [3, 1]},
                          {"type": "linear", "out_features": 2}]}
TOKENS = {"name": "tokens", "input_shape": [4], "batch_size": 3, "loss": {"type": "mse"},
          "layers": [{"type": "embedding", "num_embeddings": 5, "embedding_dim": 3}, {"type": "tanh"},
                     {"type": "flatten"}, {"type": "linear", "out_features": 2}]}


def _gradients(subject):
    return [step for step in subject.walk() if "dE/d" in step.quantity]


def _value_at(run, step):
    """The value of reference_net.run's dict `run` that a gradient row compares."""
    if step.where == "loss":
        return run["loss_grad"]
    index, kind = int(step.where.split()[0]), step.quantity.removeprefix("dE/d")
    if kind.startswith("input["):
        return run["input_grads"][index][int(kind[6:-1])]
    return run["input_grads"][index] if kind == "input" else run["param_grads"][f"{index}.{kind}"]


# --- the subject's draws ---------------------------------------------------------------------------------------

def test_a_described_subject_draws_its_parameters_and_dropout_masks_from_its_seed_and_names_it():
    spec = parse_spec(DROPOUT_ADD)
    plain, three = NetworkSubject(spec), NetworkSubject(spec, 3)
    assert (plain.seed, plain.title) == (0, "network dropout-add, seed 0")
    assert (three.seed, three.title) == (3, "network dropout-add, seed 3")
    drawn = init_params(spec, np.float64, 3)
    assert sorted(three.params) == sorted(drawn)
    for name, value in drawn.items():
        np.testing.assert_array_equal(three.params[name], value)
        assert not np.array_equal(plain.params[name], value)
    np.testing.assert_array_equal(three.masks(0, 4)[2], dropout_masks(spec, 4, 3, 0)[2])
    np.testing.assert_array_equal(three.masks(1, 4)[2], dropout_masks(spec, 4, 3, 1)[2])
    assert not np.array_equal(three.masks(0, 4)[2], plain.masks(0, 4)[2])


# --- the walk: step 1's gradients, own and nudged runs ---------------------------------------------------------

def test_the_walks_gradients_are_step_ones_with_its_dropout_masks():
    """Plain SGD at lr 0.1: each parameter after step 1 is the parameter less 0.1 times the walk's gradient, so
    the walk took its gradients with the masks of the step the update took (step 1's), not another step's."""
    subject = NetworkSubject(parse_spec(DROPOUT_ADD), 2)
    walk = {step.name: step for step in subject.walk()}
    names = [name for name in subject.params if name.endswith(".weight") or name.endswith(".bias")]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    for name in names:
        index, kind = name.split(".")
        where = f"{index} {subject.spec.layers[int(index)].type}"
        gradient, after = walk[f"{where}: dE/d{kind}"], walk[f"{where}: {kind} after step 1"]
        for side in ("manual", "autograd"):
            np.testing.assert_allclose(getattr(after, side), subject.params[name] - 0.1 * getattr(gradient, side),
                                       rtol=1e-12, atol=1e-15, err_msg=f"{name} ({side})")


def test_both_sides_training_steps_use_the_subjects_dropout_masks():
    """manual_steps and reference_steps (crosscheck.train's lockstep run) step with the masks of the subject's
    seed: at seed 3 the same losses and gradients on both sides, step by step."""
    subject = NetworkSubject(parse_spec(DROPOUT_ADD), 3)
    batches = [(subject.x, subject.target)] * 2
    manual, autograd = list(subject.manual_steps(batches)), list(subject.reference_steps(batches))
    assert len(manual) == len(autograd) == 2
    for (E, grads, params), (ref_E, ref_grads, ref_params) in zip(manual, autograd, strict=True):
        np.testing.assert_allclose(E, ref_E, rtol=1e-12)
        for name in subject.params:
            np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
            np.testing.assert_allclose(params[name], ref_params[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_every_gradient_rows_own_value_is_autograd_at_manuals_forward_values():
    """own() of the loss's row, a merge layer's input rows and every layer's rows: autograd's run taken at the
    forward values the manual side computed (the walk's output rows), with step 1's dropout masks."""
    subject = NetworkSubject(parse_spec(DROPOUT_ADD), 1)
    walk = list(subject.walk())
    outputs = [step.manual for step in walk if step.quantity == "output"]
    assert len(outputs) == len(subject.spec.layers)
    run = reference_net.run(subject.spec, subject.params, subject.x, subject.target, subject.masks(0, 4),
                            values=outputs)
    gradients = _gradients(subject)
    assert [step.name for step in gradients] == [
        "loss: dE/dinput", "5 linear: dE/dinput", "5 linear: dE/dweight", "5 linear: dE/dbias",
        "4 add: dE/dinput[0]", "4 add: dE/dinput[1]", "3 linear: dE/dinput", "3 linear: dE/dweight",
        "3 linear: dE/dbias", "2 dropout: dE/dinput", "1 tanh: dE/dinput", "0 linear: dE/dinput",
        "0 linear: dE/dweight", "0 linear: dE/dbias"]
    for step in gradients:
        assert step.own is not None, step.name
        np.testing.assert_allclose(step.own(), _value_at(run, step), rtol=1e-13, atol=0, err_msg=step.name)


def test_every_float64_gradient_rows_nudged_value_moves_autograd_by_rounding_only():
    """nudged(j) is autograd with the inputs and parameters moved by one rounding, the dropout masks kept: on a
    smooth network it stays within float32's tolerance of autograd's own value (no jump crossed), yet moves."""
    subject = NetworkSubject(parse_spec(DROPOUT_ADD), 1)
    gradients = _gradients(subject)
    moved = []
    for step in gradients:
        assert step.nudged is not None, step.name
        nudged = step.nudged(0)
        assert np.shape(nudged) == np.shape(step.autograd), step.name
        assert not crossed_a_jump(step.autograd, nudged), step.name
        moved.append(not np.array_equal(nudged, step.autograd))
    assert moved[0] and sum(moved) > len(moved) // 2  # the loss's row among them


def test_a_nudged_run_leaves_token_ids_as_they_are():
    """An embedding reads integer indices: the nudge moves its table and the other parameters, never the ids."""
    subject = NetworkSubject(parse_spec(TOKENS), 2)
    assert subject.x.dtype.kind == "i" and np.count_nonzero(subject.x) > 6
    gradients = _gradients(subject)
    assert [step.name for step in gradients][:1] == ["loss: dE/dinput"]
    assert "0 embedding: dE/dweight" in [step.name for step in gradients]
    for step in gradients:
        assert not crossed_a_jump(step.autograd, step.nudged(0)), step.name
        assert not crossed_a_jump(step.autograd, step.nudged(1)), step.name


def test_a_float32_walks_normalization_hypotheses_read_autograds_values_in_float64():
    """A layer norm without gamma in float32: its input gradient's hypotheses take autograd's input and
    dE/d(output) in float64 (exact copies of the float32 values), so the direct path dE/d(output) / std and the
    path through the mean, mean(dE/d(output)) / std, are the float64 values, not float32 statistics."""
    spec = parse_spec({"name": "norm", "input_shape": [2, 5], "batch_size": 4, "loss": {"type": "mse"},
                       "layers": [{"type": "linear", "out_features": 6},
                                  {"type": "layer_norm", "elementwise_affine": False}]})
    walk = {step.name: step for step in NetworkSubject(spec, 0, "float32").walk()}
    x, up = walk["0 linear: output"].autograd, walk["loss: dE/dinput"].autograd
    assert x.dtype == up.dtype == np.float32
    x, up = x.astype(np.float64), up.astype(np.float64)
    options = spec.layers[1].options
    axes = tuple(range(-len(options["normalized_shape"]), 0))  # (2, 6): each sample's whole output
    inv_std = 1 / np.sqrt(x.var(axes, keepdims=True) + options["eps"])
    hypotheses = {h.kind: h for h in walk["1 layer_norm: dE/dinput"].hypotheses}
    assert sorted(hypotheses) == ["normalization-mean-path", "normalization-paths"]
    zero = np.zeros_like(x)
    [(_, direct)] = hypotheses["normalization-paths"].pairs(zero, zero)
    [(_, without_mean)] = hypotheses["normalization-mean-path"].pairs(zero, zero)  # 0 less the mean's path
    np.testing.assert_allclose(direct, up * inv_std, rtol=1e-12, atol=0)
    np.testing.assert_allclose(without_mean, np.broadcast_to(up.mean(axes, keepdims=True) * inv_std, up.shape),
                               rtol=1e-12, atol=0)


# --- a pool's window as a scale ----------------------------------------------------------------------------------

POOLED = {"input_shape": [1, 6, 6], "batch_size": 2, "loss": {"type": "mse"},
          "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1}, {"type": "tanh"},
                     {"type": "POOL", "kernel_size": [2, 3]}, {"type": "flatten"},
                     {"type": "linear", "out_features": 3}]}


@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
def test_a_pools_input_gradient_scaled_by_its_window_is_read_as_the_window_size(pool):
    spec = parse_spec({**POOLED, "name": pool, "layers": [
        {**layer, "type": pool} if layer["type"] == "POOL" else layer for layer in POOLED["layers"]]})
    wrong = overrides(backward={2: scaled_backward(manual_net.BACKWARD[pool], 6)})
    result = diagnose(NetworkSubject(spec, wrong=wrong))
    assert result.quantity == f"2 {pool}: dE/dinput"
    assert (result.classification.kind, result.classification.detail) == (
        "scaled", "manual = c * autograd with c = 6, the window size KH*KW of the pool")


# --- what a run may allocate ---------------------------------------------------------------------------------------

def test_a_described_networks_arrays_are_counted_value_by_value():
    """Batch 3 of (2, 5, 6) inputs: a conv2d of 4 filters 2x3 (output 4x4x4, each position unfolded into 2*2*3
    input values), tanh, flatten, a linear layer of 2."""
    spec = parse_spec({"name": "counted", "input_shape": [2, 5, 6], "batch_size": 3, "loss": {"type": "mse"},
                       "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": [2, 3]}, {"type": "tanh"},
                                  {"type": "flatten"}, {"type": "linear", "out_features": 2}]})
    conv = 3 * 64 * (1 + 2 * 2 * 3) + (4 * 2 * 2 * 3 + 4)  # output with its unfolded input, weight and bias
    tanh = flatten = 3 * 64
    linear = 3 * 2 + (2 * 64 + 2)
    elements = conv + tanh + flatten + linear + 3 * 2 * 5 * 6  # and the input
    assert network_elements(spec) == elements == 3248
    with pytest.raises(InputError) as info:
        NetworkSubject(spec, max_memory=1000)
    assert str(info.value) == ("memory: network 'counted' with batch 3 needs about 208 kB, more than the budget of "
                               "1 kB (--max-memory SIZE sets it)")


def test_the_default_budget_is_a_whole_number_of_bytes():
    assert isinstance(memory_budget(), int)


# --- a gradient that is nothing ------------------------------------------------------------------------------------

def test_a_gradient_given_as_nothing_cannot_be_stepped_with():
    """A hand-written backward that gives an empty list for the bias: numbers to NumPy, no gradient to step with."""
    spec = parse_spec({"name": "mlp", "input_shape": [1, 4], "batch_size": 2, "loss": {"type": "mse"},
                       "layers": [{"type": "linear", "out_features": 3}, {"type": "tanh"},
                                  {"type": "linear", "out_features": 2}]})

    def empty_bias(dout, cache):
        dx, dw, _ = F.linear_backward(dout, cache)
        return dx, dw, []

    subject = NetworkSubject(spec, wrong=overrides(backward={2: empty_bias}))
    updates = [step for step in subject.walk() if "after step" in step.quantity]
    assert updates and {str(step.manual) for step in updates} == {
        "no gradient to step with for 2.bias: got nothing, needs shape (2,)"}


# --- the float64 witness -----------------------------------------------------------------------------------------

def test_the_float64_witness_trains_autograd_alone(monkeypatch):
    """The witness's training rows are autograd's run; the manual side of the float64 twin is never trained."""
    trained = []
    train = manual_seed.train
    monkeypatch.setattr(manual_seed, "train", lambda *args, **kwargs: trained.append(1) or train(*args, **kwargs))
    subject = SeedSubject(SeedCase(dtype="float32", steps=3))
    witnesses = subject.witnesses()
    assert trained == []
    assert witnesses["E at steps 1..3"].dtype == np.float64 and witnesses["E at steps 1..3"].shape == (3,)
    assert {"W after 3 steps", "b after 3 steps", "f after 3 steps", "dE/dW", "W after step 1"} <= set(witnesses)


# --- the second judges compare at the subject's dtype ------------------------------------------------------------

def test_a_float32_subject_given_float64_values_is_excused_by_no_second_judge():
    """The lockstep and manual's own forward values judge at the subject's dtype, not at its values': handed
    float64 values, a float32 subject's steps agree with nothing (every row is a dtype mismatch), so the lockstep
    gives no reason and no gradient has autograd's value at manual's own forward values."""
    spec = parse_spec({"name": "mlp", "input_shape": [1, 4], "batch_size": 2, "loss": {"type": "mse"},
                       "layers": [{"type": "linear", "out_features": 3}, {"type": "tanh"},
                                  {"type": "linear", "out_features": 2}]})
    drawn = NetworkSubject(spec, 1)
    subject = NetworkSubject(spec, 1, "float32", data=(drawn.x, drawn.target, drawn.params))
    assert subject.lockstep(1) == "" and subject.lockstep(2) == ""
    gradients = _gradients(subject)
    assert gradients and all(step.own() is None for step in gradients)
