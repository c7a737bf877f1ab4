"""No false alarms: the real code, localized over 1,200 random cases (seed network shapes, kernels, outputs,
batches, reductions, learning rates; random small stacks with random SGD settings and losses; both dtypes and
many seeds), produces no diagnosis. Each chunk is one test; a failure lists every case that raised an alarm."""

import numpy as np
import pytest
from runs import SEED_BASE, diagnose_network, diagnose_seed

from crosscheck.render import diagnosis_text
from crosscheck.subjects import SeedCase
from netdesc.checks import InputError
from netdesc.description import parse_spec

CHUNKS, PER_CHUNK = 12, 50  # 600 seed-network cases and 600 stacks


def seed_cases(chunk):
    """PER_CHUNK seed-network cases drawn from the chunk's own generator."""
    rng = np.random.default_rng([chunk, 0, SEED_BASE] if SEED_BASE else [chunk, 0])
    cases = []
    for i in range(PER_CHUNK):
        H, W = rng.integers(1, 9, size=2)
        KH, KW = rng.integers(1, H + 1), rng.integers(1, W + 1)
        cases.append(SeedCase(
            input_shape=(int(H), int(W)), kernel_shape=(int(KH), int(KW)), n_out=int(rng.integers(1, 4)),
            batch=int(rng.integers(1, 6)), seed=SEED_BASE + chunk * PER_CHUNK + i, dtype=("float64", "float32")[i % 2],
            reduction=("sum", "mean")[int(rng.integers(2))], lr=float(rng.choice([0.05, 0.5])),
        ))
    return cases


def _layer(rng):
    kind = rng.choice(["conv2d", "pool", "activation"])
    if kind == "conv2d":
        return {"type": "conv2d", "out_channels": int(rng.integers(1, 4)), "kernel_size": int(rng.integers(1, 4)),
                "stride": int(rng.integers(1, 3)), "padding": int(rng.integers(0, 2)),
                "dilation": int(rng.integers(1, 3)), "bias": bool(rng.integers(2))}
    if kind == "pool":
        k = int(rng.integers(1, 3))
        return {"type": str(rng.choice(["max_pool2d", "avg_pool2d"])), "kernel_size": k,
                "stride": int(rng.integers(1, 3)), "padding": int(rng.integers(0, k // 2 + 1))}
    return _activation(rng)


def _activation(rng):
    return [{"type": "relu"}, {"type": "tanh"}, {"type": "sigmoid"},
            {"type": "leaky_relu", "negative_slope": 0.2}][int(rng.integers(4))]


def _description(rng):
    loss = str(rng.choice(["mse", "half_squared_error", "softmax_cross_entropy", "binary_cross_entropy",
                           "binary_cross_entropy_with_logits"]))
    C, H, W = int(rng.integers(1, 4)), int(rng.integers(3, 9)), int(rng.integers(3, 9))
    layers = [_layer(rng) for _ in range(int(rng.integers(0, 4)))] + [{"type": "flatten"}]
    for _ in range(int(rng.integers(1, 3))):
        layers += [{"type": "linear", "out_features": int(rng.integers(1, 5)), "bias": bool(rng.integers(2))},
                   _activation(rng)]
    if loss == "binary_cross_entropy":
        layers[-1] = {"type": "sigmoid"}
    elif loss == "softmax_cross_entropy":
        layers.pop()  # logits
    momentum = float(rng.choice([0.0, 0.9]))
    nesterov = bool(momentum and rng.integers(2))
    optimizer = {"lr": float(rng.choice([0.01, 0.1])), "momentum": momentum, "nesterov": nesterov,
                 "dampening": 0.0 if nesterov else float(rng.choice([0.0, 0.3])),
                 "weight_decay": float(rng.choice([0.0, 1e-3]))}
    return {"input_shape": [C, H, W], "batch_size": int(rng.integers(1, 4)), "layers": layers,
            "loss": {"type": loss, "reduction": str(rng.choice(["mean", "sum"]))}, "optimizer": optimizer}


def stacks(chunk):
    """PER_CHUNK valid random stacks (a draw whose layers do not fit the input is drawn again)."""
    rng = np.random.default_rng([chunk, 1, SEED_BASE] if SEED_BASE else [chunk, 1])
    specs = []
    while len(specs) < PER_CHUNK:
        try:
            specs.append(parse_spec(_description(rng), f"stack{chunk}-{len(specs)}"))
        except InputError:
            continue
    return specs


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_the_real_seed_network_raises_no_alarm(chunk):
    alarms = [diagnosis_text(d) for d in (diagnose_seed(case) for case in seed_cases(chunk)) if d.wrong]
    assert not alarms, "\n\n".join(alarms)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_real_random_stacks_raise_no_alarm(chunk):
    results = [diagnose_network(spec, seed=SEED_BASE + i, dtype=("float64", "float32")[i % 2])
               for i, spec in enumerate(stacks(chunk))]
    alarms = [diagnosis_text(d) for d in results if d.wrong]
    assert not alarms, "\n\n".join(alarms)
    assert all(any(" after step 2" in name for name in d.checked) for d in results)  # the walks reach the updates


def test_the_cases_cover_the_axes():
    seeds = [case for chunk in range(CHUNKS) for case in seed_cases(chunk)]
    specs = [spec for chunk in range(CHUNKS) for spec in stacks(chunk)]
    assert len(seeds) + len(specs) >= 1000
    assert {c.dtype for c in seeds} == {"float32", "float64"} and {c.reduction for c in seeds} == {"sum", "mean"}
    assert {c.batch for c in seeds} >= {1, 5} and any(c.kernel_shape == c.input_shape for c in seeds)
    assert len({c.seed for c in seeds}) == len(seeds)
    types = {layer.type for spec in specs for layer in spec.layers}
    assert types == {"conv2d", "max_pool2d", "avg_pool2d", "relu", "tanh", "sigmoid", "leaky_relu", "flatten",
                     "linear"}
    assert {spec.loss.type for spec in specs} == {"mse", "half_squared_error", "softmax_cross_entropy",
                                                   "binary_cross_entropy", "binary_cross_entropy_with_logits"}
    assert any(s.optimizer.options["nesterov"] for s in specs) and any(s.optimizer.options["dampening"] for s in specs)
