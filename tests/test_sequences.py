"""Sequences through descriptions: a sample (T, F) of floats or [T] token ids, a linear on every step, sequence_pool,
and the classification losses over every step with labels (N, T) and ignore_index; the registry
(tests/layer_cases.py) holds the layers' own rows, this file the descriptions end to end and their mistakes named."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from runs import SEED_BASE, diagnose_network, network_rows, scaled_at

from crosscheck import cli
from crosscheck.catalogue import layers
from crosscheck.render import diagnosis_text
from manual import functional as M
from netdesc import InputError
from netdesc.description import parse_spec
from netdesc.inputs import check_inputs, init_params, random_batch
from reference import network as reference_net

# token ids [T] -> embedding (T, E) -> a linear on every step (T, classes), a label per step, some ignored
TAGGER = {
    "name": "tagger",
    "input_shape": [5],
    "batch_size": 3,
    "layers": [{"type": "embedding", "num_embeddings": 7, "embedding_dim": 4, "padding_idx": 0},
               {"type": "linear", "out_features": 6}, {"type": "tanh"}, {"type": "linear", "out_features": 3}],
    "loss": {"type": "softmax_cross_entropy", "ignore_index": -100},
    "optimizer": {"type": "adam", "lr": 0.01, "steps": 5},
}
# floats (T, F) -> a linear on every step -> layer norm over each step's features -> gelu -> pooled -> classes
POOLED = {
    "name": "pooled",
    "input_shape": [4, 3],
    "batch_size": 2,
    "layers": [{"type": "linear", "out_features": 5}, {"type": "layer_norm", "normalized_shape": 5},
               {"type": "gelu"}, {"type": "sequence_pool", "mode": "mean"}, {"type": "linear", "out_features": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"lr": 0.1, "momentum": 0.9, "steps": 5},
}


def _with(data, **changes):
    return json.loads(json.dumps(data)) | changes


def _last(data, mode):
    layers = [dict(layer) for layer in data["layers"]]
    layers[3]["mode"] = mode
    return _with(data, name=f"{data['name']}-{mode}", layers=layers)


# a log_softmax over each step's classes (per-sample dim 1) and nll with a class as ignore_index
TAGGER_NLL = _with(TAGGER, name="tagger-nll", layers=[*TAGGER["layers"], {"type": "log_softmax", "dim": 1}],
                   loss={"type": "nll", "ignore_index": 2, "reduction": "sum"})
# torch's default -100 never drawn: no ignore_index given, every step counted
TAGGER_ALL_COUNTED = _with(TAGGER, name="tagger-all-counted", loss={"type": "softmax_cross_entropy"})
# T = 1, and a long sequence (T = 50)
SHORT = _with(POOLED, name="pooled-T1", input_shape=[1, 3])
LONG = _with(TAGGER, name="tagger-T50", input_shape=[50], batch_size=2)
# flat logits with an ignore_index given to softmax_cross_entropy: a class (1 of the 4 labels drawn set to it)
POOLED_IGNORED = _with(POOLED, name="pooled-ignored", batch_size=4,
                       loss={"type": "softmax_cross_entropy", "ignore_index": 0})
# a linear on an image's last axis (C, H, W) -> (C, H, out), as torch's nn.Linear
IMAGE_ROWS = {"name": "image-rows", "input_shape": [2, 3, 4], "layers": [
    {"type": "linear", "out_features": 5}, {"type": "tanh"}, {"type": "flatten"},
    {"type": "linear", "out_features": 2}], "loss": {"type": "mse"}, "optimizer": {"steps": 3}}
DESCRIPTIONS = [TAGGER, TAGGER_NLL, TAGGER_ALL_COUNTED, POOLED, _last(POOLED, "last"), SHORT, LONG, POOLED_IGNORED,
                IMAGE_ROWS]


def test_a_sequence_keeps_its_steps_through_every_layer():
    """[T] token ids give (T, E) into the next layers, a linear maps the last axis, sequence_pool drops the steps;
    the parameters are named and shaped as torch's modules hold them."""
    tagger, pooled = parse_spec(TAGGER), parse_spec(POOLED)
    assert [layer.out_shape for layer in tagger.layers] == [(5, 4), (5, 6), (5, 6), (5, 3)]
    assert [layer.out_shape for layer in pooled.layers] == [(4, 5), (4, 5), (4, 5), (5,), (3,)]
    assert tagger.label_shape == (5,) and pooled.label_shape == ()
    for spec in (tagger, pooled):
        torch_shapes = {name: tuple(p.shape) for name, p in reference_net.build(spec, init_params(spec))
                        .named_parameters()}
        assert spec.param_shapes() == torch_shapes
    assert pooled.param_shapes()["0.weight"] == (5, 3) and pooled.param_shapes()["4.weight"] == (3, 5)


def test_the_labels_are_drawn_per_step_with_a_quarter_ignored():
    spec = parse_spec(TAGGER)
    x, labels = random_batch(spec, np.float32, seed=3)
    assert x.shape == (3, 5) and labels.shape == (3, 5) and labels.dtype == np.int64
    assert (labels == -100).sum() == 15 // 4 and ((labels >= 0) & (labels < 3)).sum() == 15 - 15 // 4
    _, counted = random_batch(parse_spec(TAGGER_ALL_COUNTED), seed=3)
    assert counted.shape == (3, 5) and counted.min() >= 0
    check_inputs(spec, init_params(spec), x, labels)


def test_a_given_ignore_index_is_drawn_for_flat_logits_too():
    spec = parse_spec(POOLED_IGNORED)
    assert spec.loss.ignore_index == 0 and parse_spec(POOLED).loss.ignore_index is None
    assert (random_batch(spec)[1] == 0).sum() >= 1


@pytest.mark.parametrize(("description", "ignored"), [(POOLED_IGNORED, 1), (TAGGER_NLL, 15 // 4)],
                         ids=["pooled-ignored", "tagger-nll"])
def test_an_ignore_index_that_is_a_class_is_drawn_only_where_a_quarter_is_ignored(description, ignored):
    """ignore_index 0 (or 2) is one of the classes: the counted labels are drawn from the others, so a batch never
    has every label ignored (torch's mean is then NaN: fresh seed base 990454 drew four 0s of four)."""
    spec = parse_spec(description)
    classes = spec.output_shape[-1]
    for seed in range(200):
        labels = random_batch(spec, seed=seed)[1]
        assert (labels == spec.loss.ignore_index).sum() == ignored
        assert set(np.unique(labels)) <= set(range(classes))
    assert set(np.unique(np.concatenate([random_batch(spec, seed=s)[1].ravel() for s in range(20)]))) == \
        set(range(classes))  # every class is drawn
    assert parse_spec(IMAGE_ROWS).layers[0].out_shape == (2, 3, 5)


def test_described_labels_give_one_per_step():
    labels = [[0, 1, 2, -100, 0], [2, 2, -100, 1, 0], [1, 0, 0, 0, 2]]
    spec = parse_spec(_with(TAGGER, loss=TAGGER["loss"] | {"labels": labels}))
    assert spec.loss.labels == tuple(map(tuple, labels))
    np.testing.assert_array_equal(random_batch(spec)[1], np.array(labels))


@pytest.mark.parametrize(("target", "message"), [
    (np.zeros(3, np.int64), "labels: got shape (3,), needs (3, 5) (one class label per step of each sample)"),
    (np.full((3, 5), 3), "labels[0, 0]: got 3, needs a class in [0, 2] or ignore_index -100"),
])
def test_bad_labels_of_a_sequence_are_named(target, message):
    spec = parse_spec(TAGGER)
    x, _ = random_batch(spec)
    with pytest.raises(InputError) as info:
        check_inputs(spec, init_params(spec), x, target)
    assert str(info.value) == message


@pytest.mark.parametrize("data", DESCRIPTIONS, ids=lambda d: d["name"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_sequence_description_matches_autograd(data, dtype):
    """Every output, the loss, every input and parameter gradient, and the optimizer's steps, in both dtypes."""
    spec = parse_spec(data)
    rows = network_rows(spec, SEED_BASE, dtype)
    failed = [row.result.describe(spec.name) for row in rows if not row.passed]
    assert not failed, "\n".join(failed)
    seen = {(row.where, row.quantity) for row in rows}
    assert all((f"{layer.index} {layer.type}", "output") in seen for layer in spec.layers)
    assert ("loss", f"E at steps 1..{spec.optimizer.steps}") in seen


@pytest.mark.parametrize("index", [1, 3])
def test_a_wrong_backward_in_a_sequence_is_flagged(index):
    """A linear's backward scaled by 1 + 100 rtol, on every step or before the pool: the row of its input breaks."""
    spec = parse_spec(TAGGER if index == 1 else POOLED)
    rows = network_rows(spec, SEED_BASE, layer_backward=scaled_at(spec, index))
    layer = spec.layers[index]
    assert [row.passed for row in rows if row.where == f"{index} {layer.type}" and row.quantity == "dE/dinput"] \
        == [False]


def test_the_loss_over_every_step_is_torchs_on_classes_first():
    """E over (N, T, C) equals torch's cross_entropy on (N, C, T), the mean over the 4 labels kept of 6."""
    rng = np.random.default_rng(SEED_BASE)
    logits, labels = rng.standard_normal((2, 3, 4)), np.array([[0, -100, 3], [1, 2, -100]])
    E, cache = M.softmax_cross_entropy_forward(logits, labels)
    t = torch.from_numpy(logits).requires_grad_()
    E_torch = F.cross_entropy(t.permute(0, 2, 1), torch.from_numpy(labels))
    (grad,) = torch.autograd.grad(E_torch, t)
    np.testing.assert_allclose(E, E_torch.item(), rtol=1e-12)
    np.testing.assert_allclose(M.softmax_cross_entropy_backward(1.0, cache)[0], grad.numpy(), rtol=1e-12, atol=1e-15)
    assert not grad[0, 1].any() and not grad[1, 2].any()  # an ignored step gets no gradient


def test_every_label_ignored_gives_torchs_nan_and_zero_gradient():
    logits, labels = np.ones((2, 3, 4)), np.full((2, 3), 1)
    E, cache = M.softmax_cross_entropy_forward(logits, labels, ignore_index=1)
    t = torch.from_numpy(logits).requires_grad_()
    E_torch = F.cross_entropy(t.permute(0, 2, 1), torch.from_numpy(labels), ignore_index=1)
    assert np.isnan(E) and torch.isnan(E_torch)
    np.testing.assert_array_equal(M.softmax_cross_entropy_backward(1.0, cache)[0], torch.autograd.grad(E_torch, t)[0])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: M.sequence_pool_forward(np.zeros((2, 3))), "x: got 2-D array of shape (2, 3), needs 3-D"),
    (lambda: M.sequence_pool_forward(np.zeros((2, 3, 4)), "first"), "mode: got 'first', needs one of last, mean"),
    (lambda: M.sequence_pool_forward(np.zeros((2, 0, 4))), "x: got shape (2, 0, 4), needs at least one step (T >= 1)"),
    (lambda: M.sequence_pool_backward(np.zeros((2, 3)), M.sequence_pool_forward(np.zeros((2, 5, 4)))[1]),
     "dout: got shape (2, 3) dtype float64, needs an array of shape (2, 4) and dtype float64 (the forward output's)"),
    (lambda: M.softmax_cross_entropy_forward(np.zeros((2, 3, 4)), np.zeros(2, np.int64)),
     "labels: got shape (2,), needs (2, 3) (one class label per row of logits)"),
    (lambda: M.softmax_cross_entropy_forward(np.zeros((2, 4)), np.zeros(2, np.int64), ignore_index="x"),
     "ignore_index: got 'x', needs an integer"),
    (lambda: M.softmax_cross_entropy_forward(np.zeros((2, 3, 4, 5)), np.zeros((2, 3, 4), np.int64)),
     "logits: got 4-D array of shape (2, 3, 4, 5), needs 2-D or 3-D"),
    (lambda: M.nll_forward(np.zeros((2, 3, 4)), np.zeros((2, 4), np.int64)),
     "labels: got shape (2, 4), needs (2, 3) (one class label per row of log_probs)"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(InputError) as info:
        call()
    assert str(info.value) == message


def test_verify_checks_a_sequence_description_end_to_end(tmp_path, capsys):
    """crosscheck verify --spec on token ids -> embedding -> linear per step -> cross-entropy over the steps: exit 0,
    every row ok; the same with a linear's backward scaled (--inject 1): exit 1."""
    path = tmp_path / "tagger.json"
    path.write_text(json.dumps(TAGGER))
    assert cli.main(["verify", "--spec", str(path), "--steps", "2", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "input (5,) per sample, batch 3, 4 layers, loss softmax_cross_entropy (mean)" in out
    assert "1 linear" in out and "dE/dinput" in out and out.rstrip().endswith("quantities agree")
    assert cli.main(["verify", "--spec", str(path), "--steps", "2", "--inject", "1"]) == 1


@pytest.mark.parametrize(("wrong", "kind", "constant"), [
    (layers._cross_entropy_onehot_forgotten, "one-hot", None),
    (layers._cross_entropy_mean_forgotten, "batch-reduction", 12),  # 15 labels, 3 ignored: a sum over the 12 kept
    (layers._cross_entropy_mean_over_all, "batch-reduction", 12 / 15),
], ids=["onehot-forgotten", "mean-forgotten", "ignored-counted"])
def test_a_wrong_loss_over_every_step_is_classified(wrong, kind, constant):
    """The catalogue's cross-entropy mistakes on the tagger: a label per step, some ignored; the diagnosis names the
    loss's gradient and the class, the constant the number of labels kept (never the batch size 3)."""
    result = diagnose_network(parse_spec(TAGGER), SEED_BASE, layer_backward={"loss": wrong})
    assert result.quantity == "loss: dE/dinput", diagnosis_text(result)
    assert result.classification.kind == kind, diagnosis_text(result)
    if constant is not None:
        assert result.classification.constant == pytest.approx(constant)
