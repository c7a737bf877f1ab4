"""An L2 weight decay of exactly 1 in SGD (with and without momentum), Adam, AdamW, RMSprop and Adagrad: where a
test of `weight_decay != 0` and one of `weight_decay != 1` part, which the broader suites (decays of 0, 1e-3, 0.01,
0.1, 0.3) pass by. Every expectation comes from torch.optim, the parameters and the state compared after each step."""

import numpy as np
import pytest
import torch

from manual.optim import adagrad_step, adam_step, adamw_step, rmsprop_step, sgd_step


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _steps(step, torch_optimizer, settings, state_keys):
    """Three steps of `step` and of torch's optimizer from the same parameter and gradients, compared each step."""
    rng = np.random.default_rng(11)
    p0 = rng.standard_normal((3, 2))
    grads = [rng.standard_normal((3, 2)) for _ in range(3)]
    tp = _t(p0, grad=True)
    opt = torch_optimizer([tp], **settings)
    params, state = {"w": p0}, {}
    for g in grads:
        params, state = step(params, {"w": g}, state, **settings)
        tp.grad = _t(g)
        opt.step()
        np.testing.assert_allclose(params["w"], tp.detach().numpy(), rtol=1e-12, atol=1e-12)
        for key in state_keys:  # sgd's state is the momentum buffer itself, the others' a dict of buffers
            got = state["w"] if key == "momentum_buffer" else state["w"][key]
            np.testing.assert_allclose(got, opt.state[tp][key].numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9], ids=["plain", "momentum"])
def test_sgd_applies_a_weight_decay_of_exactly_one_as_torch(momentum):
    """sgd_step, weight_decay = 1: g + 1 * p as torch.optim.SGD adds it (and the momentum buffer built from that g)."""
    settings = {"lr": 0.1, "momentum": momentum, "weight_decay": 1.0}
    _steps(sgd_step, torch.optim.SGD, settings, ["momentum_buffer"] if momentum else [])


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_adam_adds_a_weight_decay_of_exactly_one_to_the_gradient_as_torch(amsgrad):
    """adam_step, weight_decay = 1: g + 1 * p enters both moments, as in torch.optim.Adam."""
    settings = {"lr": 0.1, "weight_decay": 1.0, "amsgrad": amsgrad}
    keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    _steps(adam_step, torch.optim.Adam, settings, keys)


def test_adamw_decays_the_parameter_by_exactly_one_times_lr_as_torch():
    """adamw_step, weight_decay = 1: p * (1 - lr * 1) before the update, the moments untouched, as torch.optim.AdamW."""
    _steps(adamw_step, torch.optim.AdamW, {"lr": 0.1, "weight_decay": 1.0}, ["exp_avg", "exp_avg_sq"])


@pytest.mark.parametrize(("step", "torch_optimizer", "settings"), [
    (rmsprop_step, torch.optim.RMSprop, {"lr": 0.1, "weight_decay": 1.0}),
    (rmsprop_step, torch.optim.RMSprop, {"lr": 0.1, "weight_decay": 1.0, "momentum": 0.5}),
    (adagrad_step, torch.optim.Adagrad, {"lr": 0.1, "weight_decay": 1.0}),
], ids=["rmsprop", "rmsprop-momentum", "adagrad"])
def test_rmsprop_and_adagrad_add_a_weight_decay_of_exactly_one_as_torch(step, torch_optimizer, settings):
    """weight_decay = 1 in RMSprop and Adagrad: g + 1 * p, the decay as torch applies it, over three steps."""
    _steps(step, torch_optimizer, settings, ())
