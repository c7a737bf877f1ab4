"""Embedding and NLL beyond the registry rows (tests/layer_cases.py): torch's conventions where there is no
derivative to check (every label ignored under the mean), and bad input named whole."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from manual import functional as M
from netdesc import InputError


def test_every_label_ignored_gives_torchs_nan_and_zero_gradient():
    rng = np.random.default_rng(0)
    log_probs = rng.standard_normal((3, 4))
    labels = np.full(3, -100)
    E, cache = M.nll_forward(log_probs, labels)
    t = torch.from_numpy(log_probs).requires_grad_()
    E_torch = F.nll_loss(t, torch.from_numpy(labels))
    (grad,) = torch.autograd.grad(E_torch, t)
    assert np.isnan(E) and torch.isnan(E_torch)
    np.testing.assert_array_equal(M.nll_backward(1.0, cache)[0], grad.numpy())


def test_repeated_indices_accumulate_and_the_padding_row_gets_nothing():
    """One index three times: its row's gradient is the sum of the three upstream rows, as torch's."""
    weight = np.arange(6.0).reshape(3, 2)
    indices = np.array([[1, 1, 1, 2]])
    dout = np.arange(8.0).reshape(1, 4, 2)
    _, cache = M.embedding_forward(indices, weight, padding_idx=2)
    t = torch.from_numpy(weight).requires_grad_()
    (expected,) = torch.autograd.grad(F.embedding(torch.from_numpy(indices), t, 2), t, torch.from_numpy(dout))
    np.testing.assert_array_equal(M.embedding_backward(dout, cache)[1], expected.numpy())
    assert expected[1].tolist() == [6.0, 9.0] and expected[2].tolist() == [0.0, 0.0]


W = np.zeros((3, 2))
LP = np.zeros((2, 3))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: M.embedding_forward(np.array([[0.0, 1.0]]), W),
     "indices: got dtype float64, needs a NumPy array of integer rows of weight"),
    (lambda: M.embedding_forward(np.array([[0, 3]]), W), "indices[0, 1]: got 3, needs rows of weight in [0, 2]"),
    (lambda: M.embedding_forward(np.array([[0, -1]]), W), "indices[0, 1]: got -1, needs rows of weight in [0, 2]"),
    (lambda: M.embedding_forward(np.array([0]), W, padding_idx=3),
     "padding_idx: got 3, needs None or a row of weight in [0, 2]"),
    (lambda: M.embedding_forward(np.array([0]), np.zeros(3)), "weight: got 1-D array of shape (3,), needs 2-D"),
    (lambda: M.nll_forward(LP, np.array([0, 5])), "labels[1]: got 5, needs class labels in [0, 2] or -100"),
    (lambda: M.nll_forward(LP, np.array([0, 1, 2])),
     "labels: got shape (3,), needs (2,) (one class label per row of log_probs)"),
    (lambda: M.nll_forward(LP, [0, 1]), "labels: got list, needs a NumPy array of integer class labels"),
    (lambda: M.nll_forward(LP, np.array([0, 1]), reduction="avg"),
     "reduction: got 'avg', needs one of mean, sum, none"),
    (lambda: M.nll_forward(LP, np.array([0, 1]), ignore_index=1.5), "ignore_index: got 1.5, needs an integer"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call()


def test_bad_dout_is_named():
    _, cache = M.nll_forward(LP, np.array([0, 1]), reduction="none")
    with pytest.raises(InputError, match=r"^dout: got shape \(\) dtype float64, needs an array of shape \(2,\)"):
        M.nll_backward(np.asarray(1.0), cache)
    _, cache = M.embedding_forward(np.array([[0, 1]]), W)
    with pytest.raises(InputError, match=r"^dout: got shape \(1, 2\) dtype float64, needs an array of shape \(1, 2, 2"):
        M.embedding_backward(np.zeros((1, 2)), cache)
