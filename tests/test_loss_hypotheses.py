"""The classifier's activation, output and loss hypotheses (crosscheck.hypotheses), pinned where they decide: the
whole sentence an activation layer's derivative left out or applied twice is named with, the words of the output
hypotheses (attention's mask after the softmax, a layer norm over the batch axis, a group norm's interleaved
channels) and of the loss's (the one-hot term left out, the labels ignored counted), the one-hot hypothesis's
division (by the labels kept under the mean, by nothing under the sum), the label that counts for nothing (torch's
-100 unless the description gives one) and the constants a classification's mean is read against (the K labels
kept, unless K is 0, 1 or N; K / L where some are ignored). Every expected array is derived here by hand or by
torch on the test's own equations, never by the code under test."""

import numpy as np
import pytest
import torch
from torch.nn import functional as TF

from crosscheck.hypotheses import classify, layer_hypotheses, loss_hypotheses, loss_scales
from crosscheck.subjects import Step
from netdesc.description import parse_spec


def _spec(layers, input_shape, loss, batch_size=4):
    return parse_spec({"input_shape": input_shape, "batch_size": batch_size, "layers": layers, "loss": loss})


# --- an activation layer's derivative: left out, or applied twice ---------------------------------------------------


def _tanh_case(seed=3):
    """A tanh layer on (4, 5): its input z, dE/d(output) and autograd's dE/dz = upstream * (1 - tanh(z)^2)."""
    spec = _spec([{"type": "flatten"}, {"type": "tanh"}], (1, 5), {"type": "mse"})
    rng = np.random.default_rng(seed)
    z, upstream = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    local = 1 - np.tanh(z) ** 2
    return spec.layers[1], z, upstream, upstream * local, local


@pytest.mark.parametrize(
    ("mistake", "kind", "detail"),
    [
        ("missing", "activation-missing", "manual = dE/d(output): the local derivative left out"),
        ("twice", "activation-twice", "manual = autograd * the local derivative: applied twice"),
    ],
    ids=["missing", "twice"],
)
def test_an_activation_layers_derivative_left_out_or_applied_twice_is_named_in_its_whole_sentence(
    mistake, kind, detail
):
    layer, z, upstream, autograd, local = _tanh_case()
    manual = upstream if mistake == "missing" else autograd * local
    hypotheses = layer_hypotheses(layer, "input", z, {}, upstream)
    step = Step(f"{layer.index} tanh", "dE/dinput", manual, autograd, hypotheses=hypotheses)
    result = classify(step, manual, autograd, "float64")
    assert (result.kind, result.detail) == (kind, detail)


# --- the words of the output and loss hypotheses, as a diagnosis of the catalogue's mistakes names them -----------



# --- the loss: the one-hot term left out, and the labels that count ----------------------------------------------


def _classifier(reduction="mean", ignore_index=None):
    loss = {"type": "softmax_cross_entropy", "reduction": reduction}
    if ignore_index is not None:
        loss["ignore_index"] = ignore_index
    return _spec([{"type": "flatten"}], (1, 1, 3), loss)


def _loss_classified(spec, logits, target, manual, torch_ignore_index):
    """classify on the loss's dE/dlogits with autograd's from torch's cross_entropy at torch_ignore_index."""
    t = torch.from_numpy(logits).requires_grad_()
    loss = TF.cross_entropy(t, torch.from_numpy(target), ignore_index=torch_ignore_index, reduction=spec.loss.reduction)
    (autograd,) = torch.autograd.grad(loss, t)
    step = Step("loss", "dE/dinput", manual, autograd.numpy(), hypotheses=loss_hypotheses(spec, logits, target))
    return classify(step, manual, autograd.numpy(), "float64")


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_the_one_hot_hypothesis_under_the_sum_divides_by_nothing():
    """Under the sum, dlogits = softmax - onehot: the one-hot term left out is the softmax itself, every row."""
    logits = np.random.default_rng(5).normal(size=(4, 3))
    target = np.array([0, 2, 1, 2])
    result = _loss_classified(_classifier("sum"), logits, target, _softmax(logits), -100)
    assert result.kind == "one-hot"


@pytest.mark.parametrize(
    ("ignore_index", "target"),
    [(None, [0, -100, 1, 2]), (2, [0, 2, 1, 2])],
    ids=["torch-default", "given"],
)
def test_the_one_hot_hypothesis_counts_only_the_labels_not_ignored(ignore_index, target):
    """Under the mean the one-hot term left out is softmax / K on the K kept rows and 0 on the ignored ones; the
    label ignored is torch's -100 where the description gives none (netdesc's loss docs), else the one given."""
    logits = np.random.default_rng(6).normal(size=(4, 3))
    target = np.array(target)
    ignored = -100 if ignore_index is None else ignore_index
    kept = (target != ignored)[:, None]
    manual = _softmax(logits) * kept / kept.sum()
    result = _loss_classified(_classifier(ignore_index=ignore_index), logits, target, manual, ignored)
    assert result.kind == "one-hot"


@pytest.mark.parametrize(
    ("ignore_index", "target", "scales"),
    [
        # 1 label kept of 4: no sum over the kept (c = 1), only the mean over all
        (
            3,
            [3, 0, 3, 3],
            [(1 / 4, "1/4: the mean over all N = 4 labels, the 3 ignored included, where torch divides by the 1 kept")],
        ),
        # 2 kept of 4: both
        (
            3,
            [3, 0, 1, 3],
            [
                (2, "the 2 labels counted: a sum where the mean over them was meant"),
                (
                    2 / 4,
                    "2/4: the mean over all N = 4 labels, the 2 ignored included, where torch divides by the 2 kept",
                ),
            ],
        ),
        # torch's -100 where none is given: 3 kept of 4
        (
            None,
            [0, -100, 1, 2],
            [
                (3, "the 3 labels counted: a sum where the mean over them was meant"),
                (
                    3 / 4,
                    "3/4: the mean over all N = 4 labels, the 1 ignored included, where torch divides by the 3 kept",
                ),
            ],
        ),
        # -100 is a label like any other where 2 is the one ignored: 3 kept of 4
        (
            2,
            [2, -100, 1, 0],
            [
                (3, "the 3 labels counted: a sum where the mean over them was meant"),
                (
                    3 / 4,
                    "3/4: the mean over all N = 4 labels, the 1 ignored included, where torch divides by the 3 kept",
                ),
            ],
        ),
        # all 4 kept: K = N, neither
        (3, [0, 1, 2, 0], []),
    ],
    ids=["one-kept", "two-kept", "torch-default", "given-not-default", "none-ignored"],
)
def test_a_classifications_mean_is_read_against_the_labels_kept(ignore_index, target, scales):
    spec = _classifier(ignore_index=ignore_index)
    assert spec.batch_size == 4
    expected = [(c, "batch-reduction", meaning) for c, meaning in scales]
    assert [(pytest.approx(c), kind, meaning) for c, kind, meaning in loss_scales(spec, np.array(target))] == expected
