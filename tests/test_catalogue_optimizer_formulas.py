"""The two softmax cross-entropy entries of the catalogue compute exactly the mistake they name on every input their
loss backward can get: logits (N, C) or a sequence's (N, T, C) (``--inject`` moves a loss entry onto any description
with the same loss, a tagger's included), labels with some ignored, and any upstream gradient dout. Each is pinned to
torch's autograd with the one change applied: the one-hot term put back, or the sum reduction for the mean.
"""

import numpy as np
import pytest
import torch

from crosscheck.catalogue import find
from manual import functional as F

IGNORE = -100


def _batch(shape):
    """logits of `shape` (the classes last, 4 of them) and a label per row, every third one ignored."""
    rng = np.random.default_rng(11)
    logits = rng.standard_normal(shape)
    labels = rng.integers(0, shape[-1], shape[:-1])
    labels.reshape(-1)[::3] = IGNORE
    return logits, labels


def _torch_grad(logits, labels, reduction, dout):
    """torch's dlogits of cross_entropy(reduction, ignore_index -100) at upstream gradient dout, in logits' layout."""
    t = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    scores = t if t.ndim == 2 else t.permute(0, 2, 1)  # torch's classes second: (N, C, T)
    loss = torch.nn.functional.cross_entropy(scores, torch.from_numpy(labels), reduction=reduction,
                                             ignore_index=IGNORE)
    loss.backward(torch.tensor(dout, dtype=torch.float64))
    return t.grad.numpy()


def _close(mine, theirs):
    assert mine.shape == theirs.shape
    np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


SHAPES = pytest.mark.parametrize("shape", [(6, 4), (2, 3, 4)], ids=["classifier", "sequence"])


@SHAPES
def test_cross_entropy_without_the_one_hot_is_torchs_mean_gradient_plus_the_one_hot_over_the_labels_kept(shape):
    """dlogits = dout * softmax / K on the K rows kept, 0 on the ignored ones, in the logits' own shape: torch's
    gradient of the mean with dout * onehot / K added back; no second output (labels have no gradient)."""
    logits, labels = _batch(shape)
    kept = labels != IGNORE
    dout = 0.5
    _, cache = F.softmax_cross_entropy_forward(logits, labels, "mean", IGNORE)
    dlogits, none = find("cross-entropy-onehot-forgotten").backward["loss"](dout, cache)
    onehot = np.eye(shape[-1])[np.where(kept, labels, 0)] * kept[..., None]
    _close(dlogits, _torch_grad(logits, labels, "mean", dout) + dout * onehot / kept.sum())
    softmax = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    _close(dlogits, dout * softmax * kept[..., None] / kept.sum())
    assert none is None


@SHAPES
def test_cross_entropy_with_the_mean_forgotten_is_torchs_sum_gradient(shape):
    """Under the mean reduction, dlogits = dout * (softmax - onehot) on the rows kept, 0 on the ignored ones, in the
    logits' own shape: torch's gradient of the sum, K times its gradient of the mean (K the labels kept)."""
    logits, labels = _batch(shape)
    dout = 0.5
    _, cache = F.softmax_cross_entropy_forward(logits, labels, "mean", IGNORE)
    dlogits, none = find("cross-entropy-mean-forgotten").backward["loss"](dout, cache)
    _close(dlogits, _torch_grad(logits, labels, "sum", dout))
    _close(dlogits, (labels != IGNORE).sum() * _torch_grad(logits, labels, "mean", dout))
    assert none is None
