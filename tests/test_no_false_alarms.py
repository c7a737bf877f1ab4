"""No false alarms: the real code, localized over 1,200 random cases (seed network shapes, kernels, outputs,
batches, reductions, learning rates; random small stacks of conv (grouped and depthwise among them), transposed conv
(stride, padding, output_padding, dilation), pools and adaptive average pooling, activations (GELU both ways, SiLU,
softmax, log-softmax among them) and normalizations (batch norm 1d and 2d in training mode with their running
statistics, layer norm, group norm), dropout in training mode (p 0, 0.25, 0.5, 0.9; the harness draws the masks),
stacks that start with an embedding of integer indices (a padding_idx or none), with a random optimizer (SGD, Adam
and AMSGrad, AdamW, RMSprop centered or with momentum, Adagrad), a StepLR or cosine scheduler or none, and random
losses (nll after a log_softmax among them); both dtypes and many seeds), and over 100 random recurrent stacks
(sequences or token ids through rnn, lstm and gru layers), produces no diagnosis. Each chunk is one test; a failure
lists every case that raised an alarm."""

import math

import numpy as np
import pytest
from runs import SEED_BASE, diagnose_network, diagnose_seed
from test_random_stacks import CONV_AXES, _conv_axes

from crosscheck.render import diagnosis_text
from crosscheck.subjects import SeedCase
from netdesc.checks import InputError
from netdesc.description import BATCH_NORMS, NORMALIZATIONS, parse_spec

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


def _image_layer(rng, shape, batch):
    kind = rng.choice(["conv2d", "conv_transpose2d", "pool", "activation", "normalization", "dropout"],
                      p=[0.22, 0.08, 0.2, 0.22, 0.2, 0.08])
    if kind == "dropout":
        return _dropout(rng)
    if kind == "conv2d":  # groups a divisor of the channels (all of them: depthwise), out_channels a multiple
        groups = int(rng.choice([g for g in range(1, shape[0] + 1) if shape[0] % g == 0]))
        return {"type": "conv2d", "out_channels": groups * int(rng.integers(1, max(1, 3 // groups) + 1)),
                "kernel_size": int(rng.integers(1, 4)), "stride": int(rng.integers(1, 3)),
                "padding": int(rng.integers(0, 2)), "dilation": int(rng.integers(1, 3)), "bias": bool(rng.integers(2)),
                "groups": groups}
    if kind == "conv_transpose2d":
        return _conv_transpose2d(rng, shape)
    if kind == "pool":
        if rng.integers(3) == 0:  # torch's floor/ceil windows, at most 4x4 and at most its input's size here: a
            # larger output copies values, and a normalization over copies of one value has variance 0, its input
            # gradient 0 but float32 rounding times 1/sqrt(eps) (test_random_stacks draws larger ones, in float64)
            return {"type": "adaptive_avg_pool2d", "output_size": [int(rng.integers(1, min(n, 4) + 1))
                                                                   for n in shape[1:]]}
        k = int(rng.integers(1, 3))
        return {"type": str(rng.choice(["max_pool2d", "avg_pool2d"])), "kernel_size": k,
                "stride": int(rng.integers(1, 3)), "padding": int(rng.integers(0, k // 2 + 1))}
    if kind == "normalization":
        return _normalization(rng, shape, batch)
    return _activation(rng, shape)


def _conv_transpose2d(rng, shape):
    """A transposed conv whose output is not empty (its padding at most what the input spreads to), output_padding
    below the stride or the dilation (torch's rule); on inputs above 4x4 stride 1, dilation 1 and kernels of at most 2
    (the output grows by one at most)."""
    small = max(shape[1:]) <= 4
    stride, dilation = int(rng.integers(1, 2 + small)), int(rng.integers(1, 2 + small))
    kernel = int(rng.integers(1, 3 + small))
    output_padding = int(rng.integers(0, max(stride, dilation)))
    spread = (min(shape[1:]) - 1) * stride + dilation * (kernel - 1) + output_padding
    return {"type": "conv_transpose2d", "out_channels": int(rng.integers(1, 4)), "kernel_size": kernel,
            "stride": stride, "padding": int(rng.integers(0, min(1, spread // 2) + 1)),
            "output_padding": output_padding, "dilation": dilation, "bias": bool(rng.integers(2))}


def _normalization(rng, shape, batch):
    """A normalization that fits `shape` per sample, each of its statistics over three values or more: over one,
    its output is beta and every gradient before it is 0 but rounding; over two, x_hat is +-1 whatever they are, up
    to eps, so the gradient before it is eps / var, the size of the rounding of its large terms (past float64's atol
    1e-12 on a batch norm's gradient rows), and where the two values lie within a few sqrt(eps) of each other it
    turns on their rounding: a layer norm over 2 features at values 0.0121 and 0.0241 took manual's float32 input one
    rounding away from autograd's to 15 times autograd's own float32 error (fresh seed base 658085; manual is exact on
    its own values, docs/tolerances.md). Batch norm, layer norm over all or the trailing dims, group norm with a
    divisor of the channels as its groups; an activation where none fits."""
    C, affine, spread = shape[0], bool(rng.integers(2)), math.prod(shape[1:])
    choices = [{"type": "layer_norm", "elementwise_affine": affine}] if math.prod(shape) >= 3 else []
    if spread >= 3:
        choices.append({"type": "layer_norm", "normalized_shape": list(shape[1:])})
    if len(shape) == 3:
        divisors = [g for g in range(1, C + 1) if C % g == 0 and C // g * spread >= 3]
        if divisors:
            choices.append({"type": "group_norm", "num_groups": int(rng.choice(divisors)), "affine": affine})
    if batch * spread >= 3:
        bn = "batch_norm2d" if len(shape) == 3 else "batch_norm1d"
        choices += [{"type": bn}, {"type": bn, "momentum": float(rng.choice([0.1, 0.5])), "affine": affine}]
    return choices[int(rng.integers(len(choices)))] if choices else _activation(rng, shape)


def _dropout(rng):
    return {"type": "dropout", "p": float(rng.choice([0.0, 0.25, 0.5, 0.9]))}


def _activation(rng, shape):
    choices = [{"type": "relu"}, {"type": "tanh"}, {"type": "sigmoid"}, {"type": "leaky_relu", "negative_slope": 0.2},
               {"type": "gelu"}, {"type": "gelu", "approximate": "tanh"}, {"type": "silu"},
               {"type": "softmax", "dim": int(rng.integers(len(shape)))},
               {"type": "log_softmax", "dim": int(rng.integers(len(shape)))}]
    return choices[int(rng.integers(len(choices)))]


def _out_shape(description, layers):
    """The shape per sample after `layers` (InputError where they do not fit the input)."""
    return parse_spec(description | {"layers": layers, "loss": {"type": "mse"}}).output_shape


def _optimizer(rng):
    """One of the optimizers with its options drawn (SGD's momentum, nesterov and dampening; Adam's amsgrad;
    RMSprop's centered and momentum; Adagrad's lr_decay and initial accumulator), and a scheduler or none."""
    kind = str(rng.choice(["sgd", "adam", "adamw", "rmsprop", "adagrad"]))
    decay = float(rng.choice([0.0, 1e-3]))
    if kind == "sgd":
        momentum = float(rng.choice([0.0, 0.9]))
        nesterov = bool(momentum and rng.integers(2))
        optimizer = {"lr": float(rng.choice([0.01, 0.1])), "momentum": momentum, "nesterov": nesterov,
                     "dampening": 0.0 if nesterov else float(rng.choice([0.0, 0.3])), "weight_decay": decay}
    elif kind in ("adam", "adamw"):
        optimizer = {"lr": float(rng.choice([1e-3, 1e-2])), "amsgrad": bool(rng.integers(2)),
                     "betas": [float(rng.choice([0.8, 0.9])), 0.999], "weight_decay": decay if kind == "adam"
                     else float(rng.choice([0.0, 1e-2]))}
    elif kind == "rmsprop":
        optimizer = {"lr": float(rng.choice([1e-3, 1e-2])), "alpha": float(rng.choice([0.9, 0.99])),
                     "centered": bool(rng.integers(2)), "momentum": float(rng.choice([0.0, 0.9])),
                     "weight_decay": decay}
    else:
        optimizer = {"lr": float(rng.choice([1e-2, 1e-1])), "lr_decay": float(rng.choice([0.0, 0.1])),
                     "initial_accumulator_value": float(rng.choice([0.0, 0.1])), "weight_decay": decay}
    scheduler = [None, {"type": "step", "step_size": int(rng.integers(1, 4)), "gamma": 0.5},
                 {"type": "cosine", "T_max": int(rng.integers(2, 6)), "eta_min": float(rng.choice([0.0, 1e-4]))}][
        int(rng.integers(3))]
    return {"type": kind, **optimizer} | ({} if scheduler is None else {"scheduler": scheduler})


def _embedding_start(rng):
    """One stack in six: integer indices [L] into an embedding (a padding_idx or none), its (L, embedding_dim)
    output flattened for the head; else an image (C, H, W) and 0 to 3 image layers."""
    if rng.integers(6) == 0:
        vocabulary = int(rng.integers(1, 9))
        description = {"input_shape": [int(rng.integers(1, 7))], "batch_size": int(rng.integers(1, 4))}
        return description, [{"type": "embedding", "num_embeddings": vocabulary,
                              "embedding_dim": int(rng.integers(1, 5)),
                              "padding_idx": None if rng.integers(2) else int(rng.integers(vocabulary))}]
    C, H, W = int(rng.integers(1, 4)), int(rng.integers(3, 9)), int(rng.integers(3, 9))
    description = {"input_shape": [C, H, W], "batch_size": int(rng.integers(1, 4))}
    layers, shape = [], (C, H, W)
    for _ in range(int(rng.integers(0, 4))):
        layers.append(_image_layer(rng, shape, description["batch_size"]))
        shape = _out_shape(description, layers)
    return description, layers


def _description(rng):
    loss = str(rng.choice(["mse", "half_squared_error", "softmax_cross_entropy", "binary_cross_entropy",
                           "binary_cross_entropy_with_logits", "nll"]))
    description, layers = _embedding_start(rng)
    # after indices no batch norm: they repeat (a table of one row repeats them all), so samples can coincide and its
    # statistics be over copies of one value, variance 0, every gradient before it 0 but float32 rounding times
    # 1/sqrt(eps) (stack0-37 at seed base 0: num_embeddings 1, batch_norm1d after the first linear)
    batch = 1 if len(description["input_shape"]) == 1 else description["batch_size"]
    layers.append({"type": "flatten"})
    for _ in range(int(rng.integers(1, 3))):
        layers.append({"type": "linear", "out_features": int(rng.integers(1, 5)), "bias": bool(rng.integers(2))})
        shape = _out_shape(description, layers)
        if rng.integers(4) == 0:
            layers.append(_normalization(rng, shape, batch))
        if rng.integers(5) == 0:
            layers.append(_dropout(rng))
        layers.append(_activation(rng, shape))
    if loss == "binary_cross_entropy":
        layers[-1] = {"type": "sigmoid"}
    elif loss == "nll":
        layers[-1] = {"type": "log_softmax", "dim": 0}
    elif loss == "softmax_cross_entropy":
        layers.pop()  # logits
    _unbiased_before_normalizations(layers)
    _no_collapse_before_normalizations(description, layers)
    # nll's ignore_index: torch's (-100) or another outside the classes (one of them could be every label of a batch,
    # and a mean over no label is nan on both sides)
    ignore_index = [None, -1, 99][int(rng.integers(3))] if loss == "nll" else None
    return description | {"layers": layers, "loss": {"type": loss, "reduction": str(rng.choice(["mean", "sum"]))} | (
        {} if ignore_index is None else {"ignore_index": ignore_index}), "optimizer": _optimizer(rng)}


SHIFT_LINEAR = ("conv2d", "conv_transpose2d", "linear", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "flatten",
                "relu", "leaky_relu")


def _no_collapse_before_normalizations(description, layers):
    """No layer before a normalization that makes its statistics over copies of one value, variance 0: the gradients
    before it are then sums of terms near 1/sqrt(eps) that cancel, 0 in exact arithmetic but float32 rounding, which
    torch may round to exactly 0, leaving the float64 witness no error of autograd's own to allow for
    (docs/tolerances.md, the blind spot). tests/test_random_stacks.py (float64) draws dropouts before batch norms.

    - A dropout before a batch norm keeps every value (p = 0): its mask can zero a layer for every sample of the batch
      (p ** (samples * width): 0.73 at p = 0.9 over three samples of one feature), and the batch reaches the batch
      norm as copies of one value (fresh seed base 508362: linear to one feature, dropout 0.9, gelu, linear,
      batch_norm1d over three samples, manual 2.5e-6 against 0).
    - A softmax or log_softmax over an axis of size 1 is the constant 1 (or 0) whatever its input, for every sample
      and every position, so a normalization after it can see copies of one value: it is taken over the largest axis
      instead, or becomes a tanh where every axis has size 1 (fresh seed base 529586: linear to one feature, softmax,
      linear to three, batch_norm1d over three samples; the last linear's weight gradient is a sum over the batch
      that cancels, manual 7.63e-6 = 2^-17, one float32 rounding of terms between 64 and 128, against torch's 0)."""
    for i, layer in enumerate(layers):
        if layer["type"] == "dropout" and any(after["type"] in BATCH_NORMS for after in layers[i + 1:]):
            layer["p"] = 0.0
        elif layer["type"] in ("softmax", "log_softmax") and any(after["type"] in NORMALIZATIONS
                                                                  for after in layers[i + 1:]):
            shape = _out_shape(description, layers[:i]) if i else tuple(description["input_shape"])
            if shape[layer["dim"]] == 1:
                layers[i] = {"type": "tanh"} if max(shape) == 1 else layer | {"dim": shape.index(max(shape))}


def _unbiased_before_normalizations(layers):
    """No bias (conv, linear) and no affine normalization on the way into a normalization through layers that carry
    a shift through (SHIFT_LINEAR: linear maps, pools, a relu where it is active), nor into a softmax over an image's
    rows or columns (a conv's bias is constant along them): the mean the normalization subtracts takes such a shift
    away, so its gradient is exactly 0 but for rounding. Where the normalization's 1 / std is large, that rounding
    passes float32's atol on the gradient row itself, and torch often lands on exactly 0, leaving the float64 witness
    no error of autograd's own to allow for (fresh seed base 807657: a linear's bias before a batch norm over three
    samples, manual -3.8e-6 against 0). The optimizers' amplification of such gradients, which the lockstep judges,
    is drawn by tests/test_random_stacks.py (float64) and pinned in tests/test_judges.py. A smooth activation
    (tanh, sigmoid, gelu, silu, softmax) stops the walk: it bends a shift differently for every sample."""
    for i, layer in enumerate(layers):
        if layer["type"] not in NORMALIZATIONS and not (layer["type"] in ("softmax", "log_softmax") and layer["dim"]):
            continue
        for before in reversed(layers[:i]):
            if before["type"] in ("conv2d", "conv_transpose2d", "linear"):
                before["bias"] = False
            elif before["type"] in NORMALIZATIONS:
                before["elementwise_affine" if before["type"] == "layer_norm" else "affine"] = False
            if before["type"] not in SHIFT_LINEAR:
                break


def stacks(chunk, base=SEED_BASE):
    """PER_CHUNK valid random stacks (a draw whose layers do not fit the input is drawn again)."""
    rng = np.random.default_rng([chunk, 1, base] if base else [chunk, 1])
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


def diagnosed_without_alarm(specs):
    """Each description diagnosed at its own seed, float64 and float32 in turn -> the diagnoses; fails with the
    text of every alarm raised."""
    results = [diagnose_network(spec, seed=SEED_BASE + i, dtype=("float64", "float32")[i % 2])
               for i, spec in enumerate(specs)]
    alarms = [diagnosis_text(d) for d in results if d.wrong]
    assert not alarms, "\n\n".join(alarms)
    return results


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_real_random_stacks_raise_no_alarm(chunk):
    results = diagnosed_without_alarm(stacks(chunk))
    assert all(any(" after step 2" in name for name in d.checked) for d in results)  # the walks reach the updates


@pytest.mark.parametrize("base", sorted({SEED_BASE, 508362, 529586}))
def test_no_layer_before_a_normalization_can_make_it_normalize_copies_of_one_value(base):
    """The stacks at this run's seed base and at the two fresh seed bases that found a route (508362: a dropout,
    529586: a softmax over one feature) have no dropout that drops before a batch norm and no softmax over an axis of
    size 1 before a normalization."""
    found = [f"{spec.name}: {layer}" for chunk in range(CHUNKS) for spec in stacks(chunk, base)
             for i, layer in enumerate(spec.layers)
             if layer.type == "dropout" and layer.options["p"] > 0
             and any(after.type in BATCH_NORMS for after in spec.layers[i + 1:])
             or layer.type in ("softmax", "log_softmax") and layer.in_shape[layer.options["dim"]] == 1
             and any(after.type in NORMALIZATIONS for after in spec.layers[i + 1:])]
    assert not found, found


def test_the_cases_cover_the_axes():
    seeds = [case for chunk in range(CHUNKS) for case in seed_cases(chunk)]
    specs = [spec for chunk in range(CHUNKS) for spec in stacks(chunk)]
    assert len(seeds) + len(specs) >= 1000
    assert {c.dtype for c in seeds} == {"float32", "float64"} and {c.reduction for c in seeds} == {"sum", "mean"}
    assert {c.batch for c in seeds} >= {1, 5} and any(c.kernel_shape == c.input_shape for c in seeds)
    assert len({c.seed for c in seeds}) == len(seeds)
    types = {layer.type for spec in specs for layer in spec.layers}
    assert types == {"conv2d", "max_pool2d", "avg_pool2d", "relu", "tanh", "sigmoid", "leaky_relu", "flatten",
                     "linear", "gelu", "silu", "softmax", "log_softmax", "batch_norm1d", "batch_norm2d", "layer_norm",
                     "group_norm", "conv_transpose2d", "adaptive_avg_pool2d", "dropout", "embedding"}
    assert {axis for spec in specs for layer in spec.layers for axis in _conv_axes(layer)} == \
        CONV_AXES - {"adaptive_avg_pool2d upsampling"}
    options = [(layer.type, layer.options) for spec in specs for layer in spec.layers]
    assert {o["approximate"] for kind, o in options if kind == "gelu"} == {"none", "tanh"}
    assert any(kind == "group_norm" and 1 < o["num_groups"] for kind, o in options)
    assert {o["p"] for kind, o in options if kind == "dropout"} == {0.0, 0.25, 0.5, 0.9}
    assert {o["padding_idx"] is None for kind, o in options if kind == "embedding"} == {True, False}
    assert {s.loss.ignore_index for s in specs if s.loss.type == "nll"} == {-100, -1, 99}
    assert {spec.loss.type for spec in specs} == {"mse", "half_squared_error", "softmax_cross_entropy",
                                                   "binary_cross_entropy", "binary_cross_entropy_with_logits", "nll"}
    optimizers = [(s.optimizer.type, s.optimizer.options) for s in specs]
    assert {kind for kind, _ in optimizers} == {"sgd", "adam", "adamw", "rmsprop", "adagrad"}
    assert any(o["nesterov"] for kind, o in optimizers if kind == "sgd")
    assert any(o["dampening"] for kind, o in optimizers if kind == "sgd")
    assert any(o["amsgrad"] for kind, o in optimizers if kind == "adam")
    assert any(o["centered"] and o["momentum"] for kind, o in optimizers if kind == "rmsprop")
    assert any(o["lr_decay"] and o["initial_accumulator_value"] for kind, o in optimizers if kind == "adagrad")
    assert {s.optimizer.scheduler and s.optimizer.scheduler.type for s in specs} == {None, "step", "cosine"}


# --- recurrent stacks (issue 10): sequences through rnn, lstm and gru layers ----------------------------------

RECURRENT_CHUNKS = 4  # of PER_CHUNK // 2 stacks each: 100 more cases, drawn from a generator of their own


def _recurrent_layer(rng):
    kind = str(rng.choice(["rnn", "lstm", "gru"]))
    layer = {"type": kind, "hidden_size": int(rng.integers(1, 5)), "num_layers": int(rng.integers(1, 3)),
             "bias": bool(rng.integers(2))}
    return layer | ({"nonlinearity": str(rng.choice(["tanh", "relu"]))} if kind == "rnn" else {})


def _recurrent_description(rng):
    """A sequence [T, F] (T at most 8), or one in three token ids [T] through an embedding; one or two recurrent
    layers (rnn tanh or relu, lstm, gru; one or two layers each, a bias or none); flatten, one or two linears with an
    activation between; a loss on the logits or values, a random optimizer."""
    T, batch = int(rng.integers(1, 9)), int(rng.integers(1, 4))
    if rng.integers(3) == 0:
        vocabulary = int(rng.integers(1, 9))
        description = {"input_shape": [T], "batch_size": batch}
        layers = [{"type": "embedding", "num_embeddings": vocabulary, "embedding_dim": int(rng.integers(1, 4)),
                   "padding_idx": None if rng.integers(2) else int(rng.integers(vocabulary))}]
    else:
        description, layers = {"input_shape": [T, int(rng.integers(1, 4))], "batch_size": batch}, []
    layers += [_recurrent_layer(rng) for _ in range(int(rng.integers(1, 3)))]
    layers.append({"type": "flatten"})
    for k in range(int(rng.integers(1, 3))):
        if k:
            layers.append(_activation(rng, _out_shape(description, layers)))
        layers.append({"type": "linear", "out_features": int(rng.integers(1, 5)), "bias": bool(rng.integers(2))})
    loss = str(rng.choice(["mse", "half_squared_error", "softmax_cross_entropy", "binary_cross_entropy_with_logits"]))
    return description | {"layers": layers, "loss": {"type": loss, "reduction": str(rng.choice(["mean", "sum"]))},
                          "optimizer": _optimizer(rng)}


def recurrent_stacks(chunk):
    rng = np.random.default_rng([chunk, 2, SEED_BASE] if SEED_BASE else [chunk, 2])
    return [parse_spec(_recurrent_description(rng), f"recurrent{chunk}-{i}") for i in range(PER_CHUNK // 2)]


@pytest.mark.parametrize("chunk", range(RECURRENT_CHUNKS))
def test_real_recurrent_stacks_raise_no_alarm(chunk):
    diagnosed_without_alarm(recurrent_stacks(chunk))


def test_the_recurrent_cases_cover_the_kinds():
    specs = [spec for chunk in range(RECURRENT_CHUNKS) for spec in recurrent_stacks(chunk)]
    kinds = {f"{layer.type} {layer.options.get('nonlinearity', '')}".strip() for spec in specs
             for layer in spec.layers}
    assert kinds >= {"rnn tanh", "rnn relu", "lstm", "gru", "embedding"}
    recurrent = [layer for spec in specs for layer in spec.layers if layer.type in ("rnn", "lstm", "gru")]
    assert {layer.options["num_layers"] for layer in recurrent} == {1, 2}
    assert {layer.options["bias"] for layer in recurrent} == {True, False}
