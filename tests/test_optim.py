"""manual/optim.py against torch.optim.SGD: the same gradients in, the same parameters out, every step."""

import itertools

import numpy as np
import pytest
import torch

from crosscheck.compare import assert_close
from manual.optim import SGD, sgd_step
from netdesc import InputError

SHAPES = {"w": (4, 3, 3, 2), "b": (4,), "fc": (10, 7)}
STEPS = 25
SETTINGS = [
    dict(lr=lr, momentum=m, dampening=d, nesterov=n, weight_decay=wd)
    for lr, m, d, n, wd in itertools.product([0.05], [0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 1e-2])
    if not (n and (m == 0 or d != 0))  # torch refuses nesterov without momentum or with dampening
] + [dict(lr=0.5, momentum=0.5, dampening=0.0, nesterov=True, weight_decay=0.1)]


def _settings_id(s):
    return "-".join(f"{k}{v}" for k, v in s.items())


def _draw(rng, dtype):
    return {k: rng.standard_normal(shape).astype(dtype) for k, shape in SHAPES.items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("settings", SETTINGS, ids=_settings_id)
def test_sgd_step_matches_torch(settings, dtype):
    """25 steps with fresh random gradients; parameters and momentum buffers compared after every step."""
    rng = np.random.default_rng(len(_settings_id(settings)))
    params, state = _draw(rng, dtype), {}
    t_params = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    t_opt = torch.optim.SGD(list(t_params.values()), **settings)
    for step in range(STEPS):
        # A gradient that depends on the parameters, as a real one does, plus fresh noise.
        grads = {k: (0.5 * params[k] + rng.standard_normal(p.shape)).astype(dtype) for k, p in params.items()}
        params, state = sgd_step(params, grads, state, **settings)
        for k, p in t_params.items():
            p.grad = torch.from_numpy(grads[k].copy())
        t_opt.step()
        where = f"{_settings_id(settings)}-{dtype}-step{step}"
        for k, p in t_params.items():
            assert_close(params[k], p.detach().numpy(), k, where, dtype)
            if settings["momentum"]:
                assert_close(state[k], t_opt.state[p]["momentum_buffer"].numpy(), f"buf[{k}]", where, dtype)
    assert state == {} or set(state) == set(SHAPES)


def test_the_grid_is_big_enough():
    assert len(SETTINGS) >= 10
    assert {(s["momentum"] > 0, s["dampening"] > 0, s["nesterov"], s["weight_decay"] > 0) for s in SETTINGS} >= {
        (False, False, False, False), (True, False, False, False), (True, True, False, True), (True, False, True, True)
    }


def test_sgd_step_changes_none_of_its_arguments():
    rng = np.random.default_rng(0)
    params, grads = _draw(rng, "float64"), _draw(rng, "float64")
    _, state = sgd_step(params, grads, {}, lr=0.1, momentum=0.9)
    before = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()}
    new_params, new_state = sgd_step(params, grads, state, lr=0.1, momentum=0.9, weight_decay=0.1)
    for k in params:
        np.testing.assert_array_equal(params[k], before[0][k])
        np.testing.assert_array_equal(state[k], before[1][k])
        assert new_params[k] is not params[k] and new_state[k] is not state[k]


def test_plain_sgd_is_p_minus_lr_g_and_keeps_no_state():
    p, g = {"w": np.array([1.0, -2.0])}, {"w": np.array([0.5, 4.0])}
    new_p, state = sgd_step(p, g, {}, lr=0.25)
    np.testing.assert_array_equal(new_p["w"], [0.875, -3.0])
    assert state == {}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sgd_class_matches_torch_and_keeps_the_dtype(dtype):
    rng = np.random.default_rng(3)
    params = _draw(rng, dtype)
    opt = SGD(lr=0.1, momentum=0.8, dampening=0.1, weight_decay=1e-3)
    t_params = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    t_opt = torch.optim.SGD(list(t_params.values()), lr=0.1, momentum=0.8, dampening=0.1, weight_decay=1e-3)
    for step in range(STEPS):
        grads = _draw(rng, dtype)
        params = opt.step(params, grads)
        for k, p in t_params.items():
            p.grad = torch.from_numpy(grads[k])
        t_opt.step()
        for k, p in t_params.items():
            assert params[k].dtype == dtype
            assert_close(params[k], p.detach().numpy(), k, f"SGD-class-{dtype}-step{step}", dtype)


def test_settings_torch_accepts_are_accepted_by_both():
    SGD(lr=1, momentum=0, dampening=-1.0, weight_decay=0)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1, momentum=0, dampening=-1.0, weight_decay=0)


BAD_SETTINGS = [
    ("lr-zero", dict(lr=0.0), r"lr: got 0.0, needs a finite number > 0"),
    ("lr-negative", dict(lr=-0.1), r"lr: got -0.1, needs a finite number > 0"),
    ("lr-str", dict(lr="0.1"), r"lr: got str '0.1', needs a positive number"),
    ("momentum-negative", dict(lr=0.1, momentum=-0.5), r"momentum: got -0.5, needs a finite number >= 0"),
    ("momentum-nan", dict(lr=0.1, momentum=float("nan")), r"momentum: got nan, needs a finite number >= 0"),
    ("momentum-none", dict(lr=0.1, momentum=None), r"momentum: got None, needs a finite number >= 0"),
    ("dampening-inf", dict(lr=0.1, dampening=float("inf")), r"dampening: got inf, needs a finite number"),
    ("weight-decay-negative", dict(lr=0.1, weight_decay=-1e-4),
     r"weight_decay: got -0.0001, needs a finite number >= 0"),
    ("weight-decay-bool", dict(lr=0.1, weight_decay=True), r"weight_decay: got True"),
    ("nesterov-no-momentum", dict(lr=0.1, nesterov=True),
     r"nesterov: got True with momentum=0.0 and dampening=0.0, needs momentum > 0 and dampening = 0"),
    ("nesterov-dampening", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     r"nesterov: got True with momentum=0.9 and dampening=0.1, needs momentum > 0 and dampening = 0"),
    ("nesterov-str", dict(lr=0.1, momentum=0.9, nesterov="yes"), r"nesterov: got 'yes', needs True or False"),
]


@pytest.mark.parametrize(("settings", "message"), [b[1:] for b in BAD_SETTINGS], ids=[b[0] for b in BAD_SETTINGS])
def test_bad_settings_are_named_at_construction(settings, message):
    with pytest.raises(InputError, match=message):
        SGD(**settings)


TORCH_REFUSES_TOO = ["lr-negative", "momentum-negative", "weight-decay-negative", "nesterov-no-momentum",
                     "nesterov-dampening"]


@pytest.mark.parametrize("settings", [b[1] for b in BAD_SETTINGS if b[0] in TORCH_REFUSES_TOO], ids=TORCH_REFUSES_TOO)
def test_torch_refuses_the_same_settings(settings):
    with pytest.raises(ValueError, match="Invalid|Nesterov"):
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], **settings)


W2 = {"w": np.zeros(2)}

BAD_DICTS = [
    ("params-list", ([np.zeros(2)], W2, {}), r"params: got list, needs a dict of arrays by parameter name"),
    ("state-none", (W2, W2, None), r"state: got NoneType, needs a dict"),
    ("grads-missing", ({"w": np.zeros(2), "b": np.zeros(1)}, W2, {}),
     r"grads: got names \['w'\], needs one gradient per parameter \['b', 'w'\]"),
    ("state-unknown", (W2, W2, {"v": np.zeros(2)}), r"state: got buffers for \['v'\], needs names among"),
    ("param-int", ({"w": np.zeros(2, int)}, W2, {}), r"params\['w'\]: got dtype int64, needs float32 or float64"),
    ("grad-nan", (W2, {"w": np.array([0.0, np.nan])}, {}), r"grads\['w'\]: got non-finite value nan at index \(1,\)"),
    ("grad-shape", (W2, {"w": np.zeros(3)}, {}), r"grads\['w'\]: got shape \(3,\) dtype float64, needs the param"),
    ("grad-dtype", (W2, {"w": np.zeros(2, np.float32)}, {}), r"grads\['w'\]: got shape \(2,\) dtype float32"),
    ("buffer-shape", (W2, W2, {"w": np.zeros((2, 1))}), r"state\['w'\]: got shape \(2, 1\) dtype float64, needs"),
]


@pytest.mark.parametrize(("args", "message"), [b[1:] for b in BAD_DICTS], ids=[b[0] for b in BAD_DICTS])
def test_bad_params_grads_state_are_named_by_the_step(args, message):
    params, grads, state = args
    optimizer = SGD(lr=0.1, momentum=0.9)
    optimizer.state = state
    with pytest.raises(InputError, match=message):
        optimizer.step(params, grads)


def test_a_missed_dampening_is_reported():
    # Proof the comparison can fail: forgetting (1 - dampening) drifts away from torch within a few steps.
    rng = np.random.default_rng(0)
    p = {"w": rng.standard_normal(5)}
    t_p = torch.tensor(p["w"], requires_grad=True)
    t_opt = torch.optim.SGD([t_p], lr=0.1, momentum=0.9, dampening=0.1)
    state = {}
    for _ in range(3):
        g = {"w": rng.standard_normal(5)}
        p, state = sgd_step(p, g, state, lr=0.1, momentum=0.9, dampening=0.0)
        t_p.grad = torch.from_numpy(g["w"])
        t_opt.step()
    with pytest.raises(AssertionError, match=r"w differs"):
        assert_close(p["w"], t_p.detach().numpy(), "w", "missed-dampening")
