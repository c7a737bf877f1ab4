"""Edges of manual.functional's batch norm that tests/test_normalization.py passes by: the running statistics of the
smallest batch torch accepts (two values per channel, M - 1 = 1), the ends of momentum's range [0, 1] (momentum 1
keeps only the batch's statistics), a running variance of exactly 0 (a constant channel; torch normalizes with
1 / sqrt(eps)), and the bad-input messages of running_var, gamma and beta and of each mixed dtype among x and the
running statistics, asserted whole. Values come from torch.nn.BatchNorm1d / torch.nn.functional.batch_norm."""

import re

import numpy as np
import pytest
import torch

from manual import functional as M
from netdesc import InputError


def _buffers_after(x, mean, var, momentum):
    """torch.nn.BatchNorm1d's running_mean and running_var after one training-mode batch x, starting from mean, var."""
    bn = torch.nn.BatchNorm1d(x.shape[1], momentum=momentum).double().train()
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(mean))
        bn.running_var.copy_(torch.from_numpy(var))
    bn(torch.from_numpy(x))
    return bn.running_mean.numpy(), bn.running_var.numpy()


@pytest.mark.parametrize(("shape", "momentum"), [
    ((2, 3), 0.3), ((1, 3, 2), 0.1), ((2, 3), 1.0), ((5, 2, 3), 1.0), ((4, 3), 0.0), ((2, 3), 1),
], ids=["two-samples", "one-sample-two-positions", "momentum-1", "momentum-1-NCL", "momentum-0", "momentum-int-1"])
def test_running_statistics_at_the_edges_follow_torchs_buffers(shape, momentum):
    """Two values per channel are enough for the unbiased variance (divided by M - 1 = 1), and momentum may be 0
    (the buffers stay) or 1 (they become the batch's mean and unbiased variance): torch's module updates them so."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape) * 2 + 1
    mean, var = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    expected_mean, expected_var = _buffers_after(x, mean, var, float(momentum))
    new_mean, new_var = M.batch_norm_running_stats(x, mean, var, momentum=momentum)
    np.testing.assert_allclose(new_mean, expected_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new_var, expected_var, rtol=1e-12, atol=1e-12)


def test_the_forward_accepts_momentum_1_and_normalizes_as_torch():
    """momentum 1 is within [0, 1] for the forward too (it only checks it): the output is torch's."""
    rng = np.random.default_rng(4)
    x, gamma, beta = rng.standard_normal((4, 3, 5)), rng.standard_normal(3), rng.standard_normal(3)
    out, _ = M.batch_norm_forward(x, None, None, gamma, beta, training=True, momentum=1.0)
    expected = torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma),
                                              torch.from_numpy(beta), training=True, momentum=1.0)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_a_running_variance_of_zero_is_used_as_torch_uses_it():
    """A channel that was constant in every batch has running variance 0 (after a momentum-1 update, exactly): eval
    mode divides by sqrt(0 + eps) there, as torch does, and the next update starts from it; neither is refused."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3)) * 1e-3
    mean, var = rng.standard_normal(3), np.array([0.0, 1.5, 0.0])
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    out, _ = M.batch_norm_forward(x, mean, var, gamma, beta, training=False)
    expected = torch.nn.functional.batch_norm(torch.from_numpy(x), torch.from_numpy(mean), torch.from_numpy(var),
                                              torch.from_numpy(gamma), torch.from_numpy(beta), training=False)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-12, atol=1e-12)
    new_mean, new_var = M.batch_norm_running_stats(x, mean, var, momentum=0.25)
    expected_mean, expected_var = _buffers_after(x, mean, var, 0.25)
    np.testing.assert_allclose(new_mean, expected_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(new_var, expected_var, rtol=1e-12, atol=1e-15)


X = np.zeros((2, 6, 3))
C6 = np.ones(6)
F32 = np.ones(6, np.float32)
BAD = [
    ("running-var-shape", lambda: M.batch_norm_forward(X, C6, np.ones(3)),
     "running_var: got shape (3,), needs (6,) (one per channel of x)"),
    ("running-var-list", lambda: M.batch_norm_running_stats(X, C6, [1.0] * 6),
     "running_var: got list, needs a NumPy array"),
    ("running-mean-list", lambda: M.batch_norm_forward(X, [0.0] * 6, C6, training=False),
     "running_mean: got list, needs a NumPy array"),
    ("running-var-int", lambda: M.batch_norm_forward(X, C6, np.ones(6, int)),
     "running_var: got dtype int64, needs float32 or float64"),
    ("x-float32-stats-float64", lambda: M.batch_norm_forward(X.astype(np.float32), C6, C6),
     "mixed dtypes: got x float32, running_mean float64, running_var float64, needs one dtype (all float32 or all "
     "float64)"),
    ("running-mean-float32", lambda: M.batch_norm_running_stats(X, F32, C6),
     "mixed dtypes: got x float64, running_mean float32, running_var float64, needs one dtype (all float32 or all "
     "float64)"),
    ("running-var-float32", lambda: M.batch_norm_forward(X, C6, F32, training=False),
     "mixed dtypes: got x float64, running_mean float64, running_var float32, needs one dtype (all float32 or all "
     "float64)"),
    ("gamma-shape", lambda: M.batch_norm_forward(X, None, None, np.ones(3)),
     "gamma: got shape (3,), needs (6,) (one per channel of x)"),
    ("gamma-float32", lambda: M.batch_norm_forward(X, None, None, F32),
     "mixed dtypes: got x float64, gamma float32, needs one dtype (all float32 or all float64)"),
    ("gamma-list", lambda: M.batch_norm_forward(X, C6, C6, [1.0] * 6, training=False),
     "gamma: got list, needs a NumPy array"),
    ("beta-shape", lambda: M.batch_norm_forward(X, None, None, C6, np.ones((6, 1))),
     "beta: got shape (6, 1), needs (6,) (one per channel of x)"),
    ("beta-float32", lambda: M.batch_norm_forward(X, C6, C6, None, F32, training=False),
     "mixed dtypes: got x float64, beta float32, needs one dtype (all float32 or all float64)"),
]


@pytest.mark.parametrize(("call", "message"), [pytest.param(c, m, id=i) for i, c, m in BAD])
def test_bad_running_statistics_and_affine_parameters_are_named(call, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call()


def test_no_channel_is_refused_in_training_and_empty_in_eval_as_torch():
    """x with 0 channels: batch statistics over no channel are an InputError naming x (a ZeroDivisionError before);
    in eval mode the output is empty, as torch's F.batch_norm gives it."""
    x, none = np.zeros((2, 0)), np.zeros(0)
    message = "x: got shape (2, 0), needs at least one channel (axis 1) for batch statistics"
    for call in (lambda: M.batch_norm_forward(x), lambda: M.batch_norm_running_stats(x, none, none + 1)):
        with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
            call()
    out, _ = M.batch_norm_forward(x, none, none + 1, training=False)
    expected = torch.nn.functional.batch_norm(torch.from_numpy(x), torch.from_numpy(none), torch.from_numpy(none + 1))
    assert out.shape == tuple(expected.shape) == (2, 0)
