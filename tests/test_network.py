"""Described networks end to end: manual.network against reference.network, and the slides' description
against the dedicated seed-network code."""

import dataclasses
import pathlib
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from runs import SEED_BASE, network_rows, scaled_at

import netdesc.inputs
import netdesc.seed
from crosscheck.check import scaled_backward
from crosscheck.compare import assert_close
from manual import functional as F
from manual import network as manual_net
from manual import seed_network
from netdesc import InputError
from netdesc.description import load_spec, parse_spec
from reference import network as reference_net

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = {path.stem: load_spec(path) for path in sorted((ROOT / "examples").glob("*.toml"))}
SEEDS = [SEED_BASE, SEED_BASE + 1]


def _id(spec, dtype, seed):
    return f"{spec.name}-{dtype}-seed{seed}"


END_TO_END = [
    pytest.param(spec, dtype, seed, id=_id(spec, dtype, seed))
    for spec in EXAMPLES.values() for dtype in ("float64", "float32") for seed in SEEDS
]


def test_the_examples_are_shipped():
    assert set(EXAMPLES) == {"slides", "lenet5", "small3conv", "small3conv-adam", "residual", "digits-lenet",
                             "digits-resnet", "normalized", "resnet-small", "depthwise-separable", "text-classifier",
                             "transformer-classifier", "lstm-classifier", "char-gru-lm"}


@pytest.mark.parametrize(("spec", "dtype", "seed"), END_TO_END)
def test_example_matches_autograd(spec, dtype, seed):
    """Every output, the loss, every input and parameter gradient, and 20 steps of SGD with momentum."""
    rows = network_rows(spec, seed, dtype)
    failed = [row.result.describe(_id(spec, dtype, seed)) for row in rows if not row.passed]
    assert not failed, "\n".join(failed)
    assert ("loss", f"E at steps 1..{spec.optimizer.steps}") in [(row.where, row.quantity) for row in rows]


FIVE_STEPS = ("digits-resnet", "normalized", "resnet-small", "depthwise-separable")


@pytest.mark.parametrize("spec", EXAMPLES.values(), ids=lambda s: s.name)
def test_examples_train_with_momentum_or_adam_and_weight_decay(spec):
    o = spec.optimizer.settings()
    # five steps where normalization layers amplify float32 rounding over a longer run (examples/normalized.toml)
    assert spec.optimizer.steps == (5 if spec.name in FIVE_STEPS else 20) \
        and o["weight_decay"] > 0
    assert o["momentum"] > 0 if spec.optimizer.type == "sgd" else (o["amsgrad"] and spec.optimizer.scheduler)


def _sequential_parameters(spec):
    net = reference_net.build(spec, netdesc.inputs.init_params(spec))
    return {name: tuple(p.shape) for name, p in net.named_parameters()}


@pytest.mark.parametrize("spec", EXAMPLES.values(), ids=lambda s: s.name)
def test_every_layer_and_parameter_is_checked(spec):
    """The rows cover every layer's output and input gradient, and every parameter of torch's Sequential
    (names and shapes from torch, not from the description), as a gradient and after training."""
    rows = network_rows(spec, steps=1)
    seen = {(row.where, row.quantity): row.result.shape for row in rows}
    for layer in spec.layers:
        assert (f"{layer.index} {layer.type}", "output") in seen
        if layer.type == "embedding":  # integer indices: no gradient, no row
            assert (f"{layer.index} {layer.type}", "dE/dinput") not in seen
            continue
        inputs = [f"dE/dinput[{k}]" for k in range(len(layer.inputs))] if layer.merge else ["dE/dinput"]
        for quantity, shape in zip(inputs, layer.in_shapes, strict=True):
            assert seen[(f"{layer.index} {layer.type}", quantity)] == (spec.batch_size, *shape)
    for name, shape in _sequential_parameters(spec).items():
        index, kind = name.split(".", 1)  # torch's dotted names: "1.self_attn.in_proj_weight"
        where = f"{index} {spec.layers[int(index)].type}"
        assert seen[(where, f"dE/d{kind}")] == shape
        assert seen[(where, f"{kind} after 1 steps")] == shape
    assert ("loss", "E") in seen and ("loss", "E at steps 1..1") in seen
    for layer in spec.layers:  # a batch norm's running statistics, torch's buffers, after every step
        if layer.type.startswith("batch_norm"):
            for name in ("running_mean", "running_var"):
                where = f"{layer.index} {layer.type}"
                assert seen[(where, f"{name} after step 1")] == seen[(where, f"{name} after 1 steps")] \
                    == (layer.in_shape[0],)


# --- the slides' description is the seed network ---------------------------------------------------

def _seed_params(params):
    """The description's parameters in the slides' names: f = conv.weight[0, 0], W = linear.weight^T."""
    return {"f": params["0.weight"][0, 0], "W": params["3.weight"].T, "b": params["3.bias"]}


SLIDES_CASES = [
    pytest.param(reduction, seed, id=f"slides-{reduction}-seed{seed}")
    for reduction in ("sum", "mean") for seed in SEEDS
]


def _slides(reduction):
    spec = EXAMPLES["slides"]
    return dataclasses.replace(spec, loss=dataclasses.replace(spec.loss, reduction=reduction))


@pytest.mark.parametrize(("reduction", "seed"), SLIDES_CASES)
def test_slides_description_gives_the_seed_networks_numbers(reduction, seed):
    spec = _slides(reduction)
    params = netdesc.inputs.init_params(spec, seed=seed)
    x, Y = netdesc.inputs.random_batch(spec, seed=seed)
    general = manual_net.run(spec, params, x, Y)
    seed_params = _seed_params(params)
    values = seed_network.forward(x[:, 0], seed_params, Y, reduction)
    grads = seed_network.backward(x[:, 0], Y, seed_params, values, reduction)
    pairs = {
        "Z1": (general.outputs[0][:, 0], values["Z1"]), "H1": (general.outputs[2], values["H1"]),
        "Z2": (general.outputs[3], values["Z2"]), "O": (general.outputs[4], values["O"]),
        "E": (general.loss, values["E"]), "dE_dO": (general.loss_grad, grads["dE_dO"]),
        "dE_dZ2": (general.input_grads[4], grads["dE_dZ2"]), "dE_dH1": (general.input_grads[3], grads["dE_dH1"]),
        "dE_dZ1": (general.input_grads[1][:, 0], grads["dE_dZ1"]),
        **{f"dE_d{k}": (v, grads[f"dE_d{k}"]) for k, v in _seed_params(general.param_grads).items()},
    }
    for name, (mine, seed_value) in pairs.items():
        assert_close(mine, seed_value, name, f"slides-{reduction}-seed{seed}")


@pytest.mark.parametrize(("reduction", "seed"), SLIDES_CASES)
def test_slides_description_trains_as_the_seed_network(reduction, seed):
    """With plain SGD (no momentum, no weight decay), the seed network's own training loop."""
    spec = _slides(reduction)
    plain = dataclasses.replace(spec.optimizer, options=spec.optimizer.options | {"momentum": 0.0, "weight_decay": 0.0},
                                lr=0.5)
    spec = dataclasses.replace(spec, optimizer=plain)
    params = netdesc.inputs.init_params(spec, seed=seed)
    x, Y = netdesc.inputs.random_batch(spec, seed=seed)
    losses, final = manual_net.train(spec, params, x, Y, steps=10)
    seed_losses, seed_final = seed_network.train(x[:, 0], Y, _seed_params(params), 0.5, 10, reduction)
    assert_close(losses, seed_losses, "E at steps 1..10")
    for name, value in _seed_params(final).items():
        assert_close(value, seed_final[name], f"{name} after 10 steps")


# --- a wrong derivation is caught where it starts ------------------------------------------------------

INJECTIONS = [
    pytest.param(spec, layer.index, dtype, id=f"{spec.name}-layer{layer.index}-{layer.type}-{dtype}")
    for spec in EXAMPLES.values() for layer in spec.layers[::3] for dtype in ("float64", "float32")
]


@pytest.mark.parametrize(("spec", "index", "dtype"), INJECTIONS)
def test_injected_wrong_backward_is_caught_at_its_layer(spec, index, dtype):
    rows = network_rows(spec, dtype=dtype, layer_backward=scaled_at(spec, index, dtype), train=False)
    first = next(i for i, row in enumerate(rows) if not row.passed)
    kind = spec.layers[index].type
    quantity = "dE/dinput[0]" if spec.layers[index].merge else "dE/dweight" if kind == "embedding" else "dE/dinput"
    assert (rows[first].where, rows[first].quantity) == (f"{index} {spec.layers[index].type}", quantity)
    assert all(row.passed for row in rows[:first])


def test_injected_wrong_backward_breaks_training():
    spec = EXAMPLES["lenet5"]
    rows = network_rows(spec, steps=2, layer_backward=scaled_at(spec, 7))
    assert not next(row for row in rows if row.quantity == "weight after 2 steps" and row.where == "7 linear").passed


def test_a_backward_scaled_by_one_plus_1e_minus_6_is_caught_in_float64():
    spec = EXAMPLES["small3conv"]
    scaled = {3: scaled_backward(manual_net.BACKWARD["conv2d"], 1 + 1e-6)}
    assert not all(row.passed for row in network_rows(spec, layer_backward=scaled, train=False))


# --- bad parameters, inputs and targets from a caller -----------------------------------------------

def _inputs(name="small3conv"):
    spec = EXAMPLES[name]
    return spec, netdesc.inputs.init_params(spec), *netdesc.inputs.random_batch(spec)


def _mse(spec):
    return dataclasses.replace(spec, loss=dataclasses.replace(spec.loss, type="mse"))


def _bce(spec):
    return dataclasses.replace(spec, loss=dataclasses.replace(spec.loss, type="binary_cross_entropy"))


BAD_CALLS = [
    ("missing-parameter", lambda s, p, x, t: (s, {k: v for k, v in p.items() if k != "3.bias"}, x, t),
     "params: got ['0.bias', '0.weight', '3.weight', '5.bias', '5.weight', '9.bias', '9.weight'], needs exactly"),
    ("params-not-a-dict", lambda s, p, x, t: (s, list(p.values()), x, t), "params: got list, needs exactly"),
    ("transposed-weight", lambda s, p, x, t: (s, p | {"9.weight": p["9.weight"].T}, x, t),
     "9.weight: got shape (60, 3), needs (3, 60)"),
    ("float32-weight", lambda s, p, x, t: (s, p | {"0.bias": p["0.bias"].astype(np.float32)}, x, t),
     "mixed dtypes"),
    ("int-input", lambda s, p, x, t: (s, p, x.astype(int), t), "x: got dtype int64, needs float32 or float64"),
    ("input-shape", lambda s, p, x, t: (s, p, x[:, :2], t), "x: got shape (3, 2, 16, 12), needs (3, 3, 16, 12)"),
    ("label-out-of-range", lambda s, p, x, t: (s, p, x, np.array([0, 3, 1])),
     "labels[1]: got 3, needs a class in [0, 2]"),
    ("negative-label", lambda s, p, x, t: (s, p, x, np.array([0, 1, -1])),
     "labels[2]: got -1, needs a class in [0, 2]"),
    ("float-labels", lambda s, p, x, t: (s, p, x, t.astype(float)), "labels: got dtype float64, needs a NumPy array"),
    ("labels-list", lambda s, p, x, t: (s, p, x, [0, 1, 2]), "labels: got list, needs a NumPy array"),
    ("labels-shape", lambda s, p, x, t: (s, p, x, t[:2]), "labels: got shape (2,), needs (3,)"),
    ("target-shape", lambda s, p, x, t: (_mse(s), p, x, np.zeros((3, 4))), "target: got shape (3, 4), needs (3, 3)"),
    ("target-dtype", lambda s, p, x, t: (_mse(s), p, x, np.zeros((3, 3), np.float32)), "mixed dtypes"),
    ("bce-target-outside-0-1", lambda s, p, x, t: (_bce(s), p, x, np.full((3, 3), 1.5)),
     "target: got values outside [0, 1] (min 1.5, max 1.5), needs probabilities"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
@pytest.mark.parametrize("boundary", [manual_net.train, netdesc.inputs.check_inputs], ids=["train", "check_inputs"])
def test_bad_call_is_refused_before_any_arithmetic(boundary, case, mutate, message):
    """Checked once, at the boundary: manual train and check_inputs, which the harness's NetworkSubject calls (run
    and the reference take checked inputs)."""
    with pytest.raises(InputError) as info:
        boundary(*mutate(*_inputs()))
    assert message in str(info.value)


def test_training_steps_must_be_positive():
    with pytest.raises(InputError, match="steps: got 0, needs an integer >= 1"):
        manual_net.train(*_inputs(), steps=0)


def test_labels_in_the_description_are_the_labels_used():
    data = tomllib.loads((ROOT / "examples" / "small3conv.toml").read_text())
    data["loss"]["labels"] = [2, 0, 2]
    spec = parse_spec(data)
    _, labels = netdesc.inputs.random_batch(spec, seed=5)
    assert labels.tolist() == [2, 0, 2] and labels.dtype == np.int64
    assert all(row.passed for row in network_rows(spec, seed=5, steps=1))


def test_importing_the_network_builder_does_not_import_torch():
    code = "import sys, manual.network, netdesc.description; assert 'torch' not in sys.modules, 'manual imported torch'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def test_train_hands_its_scheduler_and_running_stats_hooks_to_every_step():
    """train's hooks reach the steps: a scheduler that gives lr 0 leaves every parameter where it started (Adam at
    lr 0 moves nothing), and the running-statistics hook is what updates the batch
    norm's buffers, once per step."""
    spec, params, x, target = _inputs("depthwise-separable")
    norms = sum(layer.type.startswith("batch_norm") for layer in spec.layers)
    assert spec.optimizer.scheduler is not None and norms == 4
    calls = []

    def running_stats(*args, **kwargs):
        calls.append(args[0].shape)
        return F.batch_norm_running_stats(*args, **kwargs)

    _, final = manual_net.train(spec, params, x, target, steps=2, scheduler=lambda lr, epoch, **options: 0.0,
                                running_stats=running_stats)
    for name, value in params.items():
        np.testing.assert_array_equal(final[name], value, err_msg=name)
    assert len(calls) == 2 * norms
    _, moved = manual_net.train(spec, params, x, target, steps=2)
    assert any(not np.array_equal(moved[name], value) for name, value in params.items())  # the default lr moves


def test_training_without_a_buffers_dict_keeps_its_own():
    """manual.network.training called without `buffers` (as crosscheck.train's data-set runs do) keeps the running
    statistics in a dict of its own: its steps are train's, step for step."""
    spec, params, x, target = _inputs("depthwise-separable")
    losses, _ = manual_net.train(spec, params, x, target, steps=2)
    done = list(manual_net.training(spec, params, [(x, target)] * 2))
    np.testing.assert_array_equal([E for E, _, _ in done], losses)


def test_an_embedding_before_a_batch_norm_keeps_the_running_statistics_in_the_tables_dtype():
    """Token indices (int64) into an embedding, then a batch norm: its running statistics start in the embedding
    table's dtype, not the indices' (an InputError "running_mean: got dtype int64" on the first step otherwise),
    and training agrees with autograd row by row, the buffers included."""
    text = tomllib.loads((ROOT / "examples" / "text-classifier.toml").read_text())
    text["layers"] = [text["layers"][0], {"type": "flatten"}, {"type": "batch_norm1d"},
                      {"type": "linear", "out_features": 5}, {"type": "log_softmax"}]
    spec = parse_spec(text | {"name": "embedding-batch-norm"})
    for dtype in ("float32", "float64"):
        rows = network_rows(spec, SEED_BASE, dtype)
        assert {row.quantity for row in rows} >= {"running_mean after step 1", "running_var after step 1"}
        assert [row.result.describe("") for row in rows if not row.passed] == []
