"""The normalization layers beyond the registry: batch norm's running statistics against torch's module buffers
step after step, the bad-input messages of the new layers (asserted whole), and a wrong derivation of each that
the registry's check reports."""

import re

import numpy as np
import pytest
import torch
from layer_cases import LAYER_CASES, batch_norm, layer_norm, softmax

from crosscheck import check_layer
from manual import functional as M
from netdesc import InputError

DTYPES = ["float64", "float32"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("module", "shape"), [
    (torch.nn.BatchNorm2d, (4, 3, 5, 5)), (torch.nn.BatchNorm1d, (6, 5)), (torch.nn.BatchNorm1d, (3, 4, 7)),
    (torch.nn.BatchNorm2d, (1, 2, 3, 3)),
], ids=["2d", "1d-NC", "1d-NCL", "2d-batch1"])
def test_running_statistics_follow_torchs_buffers_step_after_step(module, shape, dtype):
    """Three training-mode batches: after each, the running mean and the running variance (momentum 0.3, the
    UNBIASED batch variance) equal the buffers of torch's module, which start at 0 and 1 as the manual ones do."""
    rng = np.random.default_rng(0)
    C = shape[1]
    bn = module(C, momentum=0.3).to(getattr(torch, dtype)).train()
    mean, var = np.zeros(C, dtype), np.ones(C, dtype)
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + step).astype(dtype)
        bn(torch.from_numpy(x))
        mean, var = M.batch_norm_running_stats(x, mean, var, momentum=0.3)
        assert mean.dtype == var.dtype == dtype
        tol = {"float64": 1e-12, "float32": 1e-6}[dtype]
        np.testing.assert_allclose(mean, bn.running_mean.numpy(), rtol=tol, atol=tol, err_msg=f"step {step + 1}")
        np.testing.assert_allclose(var, bn.running_var.numpy(), rtol=tol, atol=tol, err_msg=f"step {step + 1}")


def test_the_biased_variance_would_not_follow_the_buffers():
    """The check above can fail: the update with the biased variance (divided by M, not M - 1) leaves torch's."""
    x = np.random.default_rng(1).standard_normal((4, 3))
    bn = torch.nn.BatchNorm1d(3).double().train()
    bn(torch.from_numpy(x))
    biased = 0.9 * 1 + 0.1 * x.var(axis=0)
    _, var = M.batch_norm_running_stats(x, np.zeros(3), np.ones(3))
    assert not np.allclose(biased, bn.running_var.numpy(), rtol=1e-6)
    np.testing.assert_allclose(var, bn.running_var.numpy(), rtol=1e-12)


def test_eval_mode_normalizes_with_the_running_statistics_as_torch():
    rng = np.random.default_rng(2)
    x, mean, var = rng.standard_normal((3, 2, 4)), rng.standard_normal(2), rng.uniform(0.5, 2, 2)
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    bn = torch.nn.BatchNorm1d(2).double().eval()
    bn.load_state_dict({"weight": torch.from_numpy(gamma), "bias": torch.from_numpy(beta),
                        "running_mean": torch.from_numpy(mean), "running_var": torch.from_numpy(var),
                        "num_batches_tracked": torch.tensor(5)})
    out, _ = M.batch_norm_forward(x, mean, var, gamma, beta, training=False)
    np.testing.assert_allclose(out, bn(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)


def test_the_registry_covers_the_degenerate_normalization_shapes():
    by = {name: [c for c in LAYER_CASES if c.name == name] for name in ("layer_norm", "group_norm", "batch_norm")}
    for name, cases in by.items():
        assert any(c.shapes[0][0] == 1 for c in cases), f"{name}: no batch of 1"
        assert any(c.shapes[0][1] == 1 for c in cases), f"{name}: no single channel"
        assert any(len(c.shapes) == 1 or len(c.shapes) == 3 and name == "batch_norm" for c in cases), name
    assert {c.options["num_groups"] for c in by["group_norm"]} >= {1, 4}
    assert any(c.options["num_groups"] == c.shapes[0][1] for c in by["group_norm"])  # a group per channel
    bn = {(len(c.shapes[0]), c.options.get("training", True)) for c in by["batch_norm"]}
    assert bn >= {(2, True), (2, False), (3, True), (4, True), (4, False)}  # 1d on (N, C), (N, C, L); 2d
    gelus = {c.options.get("approximate", "none") for c in LAYER_CASES if c.name == "gelu"}
    assert gelus == {"none", "tanh"}
    assert {c.options.get("dim", 0) for c in LAYER_CASES if c.name == "log_softmax"} == {0, 2}


# --- a wrong derivation is reported: the registry's check can fail on these layers ------------------------------

def _batch_norm_no_paths(dout, cache):
    """dx = gamma * dout / std: the paths through the batch mean and variance left out."""
    x_hat, inv_std, gamma, *_ = cache
    dx, *rest = M.batch_norm_backward(dout, cache)
    return dout * gamma.reshape(1, -1, 1, 1) * inv_std, *rest


def _layer_norm_gamma_forgotten(dout, cache):
    _, _, gamma, _, _ = cache
    dx, dgamma, dbeta = M.layer_norm_backward(dout / gamma, cache)  # dout where dout * gamma was meant
    return dx, dgamma * gamma, dbeta * gamma


def _softmax_diagonal(dout, cache):
    s, _ = cache
    return (dout * s * (1 - s),)


@pytest.mark.parametrize(("case", "backward", "wrong"), [
    (batch_norm((4, 3, 5, 5), (3,), (3,), (3,), (3,)), _batch_norm_no_paths, "dx"),
    (layer_norm((2, 3, 4, 5), (4, 5), (4, 5), normalized_shape=(4, 5)), _layer_norm_gamma_forgotten, "dx"),
    (softmax((4, 5)), _softmax_diagonal, "dx"),
], ids=["batch-norm-no-paths", "layer-norm-gamma-forgotten", "softmax-diagonal"])
def test_a_wrong_normalization_backward_is_reported(case, backward, wrong):
    draws = [case.draw[i] if i < len(case.draw) else None for i in range(len(case.shapes))]
    result = check_layer(case.forward, backward, case.torch_fn, case.shapes, seeds=(0,), dtypes=("float32",),
                         kwargs=case.options, differentiable=case.differentiable or None, input_factory=draws)
    assert [row.quantity for row in result.rows if not row.passed] == [wrong], result.report()


# --- bad input: InputError naming the key, what it got and what it needs ----------------------------------------

X = np.zeros((2, 6, 3, 4))
C6 = np.ones(6)
BAD = [
    ("layer-norm-shape", lambda: M.layer_norm_forward(X, normalized_shape=(3, 5)),
     "normalized_shape: got (3, 5), needs the trailing dims of one sample of x (shape (2, 6, 3, 4), the batch axis "
     "first)"),
    ("layer-norm-whole", lambda: M.layer_norm_forward(X, normalized_shape=(2, 6, 3, 4)),
     "normalized_shape: got (2, 6, 3, 4), needs the trailing dims of one sample of x (shape (2, 6, 3, 4), the batch "
     "axis first)"),
    ("layer-norm-gamma", lambda: M.layer_norm_forward(X, np.ones(4), normalized_shape=(3, 4)),
     "gamma: got shape (4,), needs (3, 4) (normalized_shape)"),
    ("layer-norm-eps", lambda: M.layer_norm_forward(X, normalized_shape=4, eps=0),
     "eps: got 0, needs a finite number > 0"),
    ("group-norm-groups", lambda: M.group_norm_forward(X, num_groups=4),
     "num_groups: got 4, needs a divisor of the 6 channels of x (2, 6, 3, 4)"),
    ("group-norm-zero", lambda: M.group_norm_forward(X, num_groups=0), "num_groups: got 0, needs an integer >= 1"),
    ("group-norm-1d", lambda: M.group_norm_forward(np.zeros(3), num_groups=1), "x: got shape (3,), needs (N, C, ...)"),
    ("group-norm-beta", lambda: M.group_norm_forward(X, C6, np.ones(6, np.float32), num_groups=2),
     "mixed dtypes: got x float64, gamma float64, beta float32, needs one dtype (all float32 or all float64)"),
    ("batch-norm-one-value", lambda: M.batch_norm_forward(np.zeros((1, 6)), C6, C6),
     "x: got shape (1, 6) in training mode, needs more than one value per channel (the batch variance of one value "
     "is 0)"),
    ("batch-norm-eval-no-stats", lambda: M.batch_norm_forward(X, training=False),
     "running_mean: got None in eval mode, needs the running statistics to normalize with"),
    ("batch-norm-one-stat", lambda: M.batch_norm_forward(X, C6),
     "running_mean, running_var: got one of them, needs both or neither"),
    ("batch-norm-stat-shape", lambda: M.batch_norm_forward(X, np.ones(3), np.ones(3)),
     "running_mean: got shape (3,), needs (6,) (one per channel of x)"),
    ("batch-norm-negative-var", lambda: M.batch_norm_forward(X, C6, -C6),
     "running_var: got -1.0, needs variances >= 0"),
    ("batch-norm-training", lambda: M.batch_norm_forward(X, training="yes"),
     "training: got 'yes', needs True or False"),
    ("batch-norm-momentum", lambda: M.batch_norm_forward(X, momentum=1.5),
     "momentum: got 1.5, needs a number in [0, 1]"),
    ("batch-norm-5d", lambda: M.batch_norm_forward(np.zeros((2, 2, 2, 2, 2))),
     "x: got 5-D array of shape (2, 2, 2, 2, 2), needs 2-D or 3-D or 4-D"),
    ("running-stats-none", lambda: M.batch_norm_running_stats(X, None, None),
     "running_mean: got None, needs the running statistics to update"),
    ("running-stats-one-value", lambda: M.batch_norm_running_stats(np.zeros((1, 6)), C6, C6),
     "x: got shape (1, 6), needs more than one value per channel (an unbiased variance)"),
    ("running-stats-momentum", lambda: M.batch_norm_running_stats(X, C6, C6, momentum=-0.1),
     "momentum: got -0.1, needs a number in [0, 1]"),
    ("gelu-approximate", lambda: M.gelu_forward(X, approximate="erf"),
     "approximate: got 'erf', needs one of 'none', 'tanh'"),
    ("softmax-dim", lambda: M.softmax_forward(X, dim=3),
     "dim: got 3, needs one of the 3 per-sample axes of x (shape (2, 6, 3, 4), the batch axis first)"),
    ("log-softmax-dim", lambda: M.log_softmax_forward(X, dim=-1), "dim: got -1, needs an integer >= 0"),
    # x itself, and beta, named in each layer's own message
    ("layer-norm-x-list", lambda: M.layer_norm_forward([[1.0, 2.0]], normalized_shape=2),
     "x: got list, needs a NumPy array"),
    ("layer-norm-beta", lambda: M.layer_norm_forward(X, None, np.ones(3), normalized_shape=(3, 4)),
     "beta: got shape (3,), needs (3, 4) (normalized_shape)"),
    ("group-norm-x-int", lambda: M.group_norm_forward(np.zeros((2, 6), int), num_groups=2),
     "x: got dtype int64, needs float32 or float64"),
    ("running-stats-x-1d", lambda: M.batch_norm_running_stats(np.zeros(6), C6, C6),
     "x: got 1-D array of shape (6,), needs 2-D or 3-D or 4-D"),
    ("gelu-x-int", lambda: M.gelu_forward(np.arange(3)), "x: got dtype int64, needs float32 or float64"),
    ("silu-x-list", lambda: M.silu_forward([0.0]), "x: got list, needs a NumPy array"),
    ("softmax-x-nan", lambda: M.softmax_forward(np.array([[0.0, np.nan]])),
     "x: got non-finite value nan at index (0, 1), needs finite values"),
    ("log-softmax-x-int", lambda: M.log_softmax_forward(np.zeros((2, 3), int)),
     "x: got dtype int64, needs float32 or float64"),
]


@pytest.mark.parametrize(("call", "message"), [pytest.param(c, m, id=i) for i, c, m in BAD])
def test_bad_input_is_named(call, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call()


@pytest.mark.parametrize(("forward", "backward", "shape"), [
    (M.gelu_forward, M.gelu_backward, (2, 3)), (M.silu_forward, M.silu_backward, (2, 3)),
    (M.softmax_forward, M.softmax_backward, (2, 3)), (M.log_softmax_forward, M.log_softmax_backward, (2, 3)),
    (lambda x: M.layer_norm_forward(x, normalized_shape=3), M.layer_norm_backward, (2, 3)),
    (lambda x: M.group_norm_forward(x, num_groups=1), M.group_norm_backward, (2, 3)),
    (M.batch_norm_forward, M.batch_norm_backward, (2, 3)),
], ids=["gelu", "silu", "softmax", "log_softmax", "layer_norm", "group_norm", "batch_norm"])
def test_bad_dout_is_named(forward, backward, shape):
    _, cache = forward(np.ones(shape))
    with pytest.raises(InputError, match=r"^dout: got shape \(3, 2\) dtype float64, needs an array of shape \(2, 3\)"):
        backward(np.ones(shape[::-1]), cache)


@pytest.mark.parametrize("shape", [(2, 3), (2, 2, 5, 5)])
def test_float32_statistics_keep_their_digits_where_the_mean_dwarfs_the_spread(shape):
    """Values 1 +- 0.001: x - mean keeps few float32 digits unless the statistics are taken in float64. Manual's
    float32 output is then within float32 rounding of torch's float64 output on the same float32 values (it was
    1.9e-5 away, which sent a random network of batch 2 past the float32 witness)."""
    for seed in range(20):
        x = (1 + 1e-3 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
        out, _ = M.batch_norm_forward(x)
        exact = torch.nn.functional.batch_norm(torch.from_numpy(x.astype(np.float64)), None, None, training=True)
        np.testing.assert_allclose(out, exact.numpy(), rtol=0, atol=4 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (3, 2, 4, 4)], ids=["1d", "1d-length", "2d"])
def test_the_explained_paths_sum_to_the_backward_that_runs(shape):
    """explain --layer batchnorm shows dx as three paths (batch_norm_backward_terms); batch_norm_backward computes
    dx fused from the sums it already has. The paths it shows must add up to the dx it returns, and to torch's."""
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta = rng.uniform(0.5, 1.5, shape[1]), rng.uniform(-0.5, 0.5, shape[1])
    _, cache = M.batch_norm_forward(x, None, None, gamma, beta, training=True)
    terms = M.batch_norm_backward_terms(dout, cache)
    dx = M.batch_norm_backward(dout, cache)[0]
    np.testing.assert_allclose(terms["direct"] + terms["through_mean"] + terms["through_var"], dx, rtol=1e-12,
                               atol=1e-14)
    tx = torch.from_numpy(x).requires_grad_()
    y = torch.nn.functional.batch_norm(tx, None, None, torch.from_numpy(gamma), torch.from_numpy(beta), training=True)
    np.testing.assert_allclose(dx, torch.autograd.grad(y, tx, torch.from_numpy(dout))[0].numpy(), rtol=1e-10,
                               atol=1e-12)
    # without gamma (affine=False): dx_hat is dout itself, and the paths still add up
    _, cache = M.batch_norm_forward(x, training=True)
    terms = M.batch_norm_backward_terms(dout, cache)
    np.testing.assert_array_equal(terms["dx_hat"], dout)
    np.testing.assert_allclose(terms["direct"] + terms["through_mean"] + terms["through_var"],
                               M.batch_norm_backward(dout, cache)[0], rtol=1e-12, atol=1e-14)
