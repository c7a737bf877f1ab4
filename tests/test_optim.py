"""manual/optim.py against torch.optim (SGD, Adam, AdamW, RMSprop, Adagrad) and torch.optim.lr_scheduler (StepLR,
CosineAnnealingLR): the same gradients in, the same parameters and state out, every step."""

import copy
import inspect
import itertools
import math

import numpy as np
import pytest
import torch
from runs import diagnose_entry

from crosscheck.catalogue import WrongDerivation, find
from crosscheck.catalogue import layers as wrong_layers
from crosscheck.check import inject
from crosscheck.compare import assert_close
from manual.optim import OPTIMIZER_STEPS, SCHEDULERS, SGD, cosine_lr, sgd_step
from netdesc import InputError
from netdesc.checks import OPTIMIZER_DEFAULTS, check_optimizer_settings
from netdesc.description import load_spec, parse_spec

SHAPES = {"w": (4, 3, 3, 2), "b": (4,), "fc": (10, 7)}
FLAT = {"type": "flatten"}
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


@pytest.mark.parametrize("which", ["params", "grads", "state"])
def test_a_params_grads_or_state_that_is_no_dict_is_named_whole(which):
    args = {"params": W2, "grads": W2, "state": {}} | {which: [np.zeros(2)]}
    optimizer = SGD(lr=0.1)
    optimizer.state = args["state"]
    with pytest.raises(InputError) as info:
        optimizer.step(args["params"], args["grads"])
    assert str(info.value) == f"{which}: got list, needs a dict of arrays by parameter name"


def test_sgd_class_defaults_are_torchs():
    # SGD(lr) alone steps as torch.optim.SGD(lr) alone: no momentum, dampening, nesterov or weight decay unless asked
    rng = np.random.default_rng(4)
    params = _draw(rng, "float64")
    opt = SGD(lr=0.1)
    t_params = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    t_opt = torch.optim.SGD(list(t_params.values()), lr=0.1)
    for step in range(3):
        grads = _draw(rng, "float64")
        params = opt.step(params, grads)
        for k, p in t_params.items():
            p.grad = torch.from_numpy(grads[k])
        t_opt.step()
        for k, p in t_params.items():
            assert_close(params[k], p.detach().numpy(), k, f"SGD-defaults-step{step}", "float64")
    assert opt.state == {}


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


# --- Adam, AdamW, RMSprop, Adagrad: against torch.optim's objects, parameters and state after every step ---------

TORCH_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop,
                    "adagrad": torch.optim.Adagrad}
ADAPTIVE = [
    ("adam", {}),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("adam", dict(lr=0.01, amsgrad=True)),
    ("adam", dict(lr=0.02, weight_decay=0.1)),
    ("adam", dict(lr=0.02, weight_decay=0.1, amsgrad=True, betas=(0.0, 0.5))),
    ("adamw", {}),
    ("adamw", dict(lr=0.05, weight_decay=0.3)),
    ("adamw", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("adamw", dict(lr=0.01, weight_decay=0.0, betas=(0.5, 0.9), eps=1e-5)),
    ("rmsprop", {}),
    ("rmsprop", dict(lr=0.005, alpha=0.9, eps=1e-4)),
    ("rmsprop", dict(lr=0.005, centered=True)),
    ("rmsprop", dict(lr=0.005, momentum=0.9)),
    ("rmsprop", dict(lr=0.005, centered=True, momentum=0.5, weight_decay=0.1)),
    ("rmsprop", dict(lr=0.005, alpha=0.0, weight_decay=0.05)),
    ("adagrad", {}),
    ("adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("adagrad", dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-3)),
]
# The buffers torch keeps per parameter: every one of them is compared (the step count too).
STATE = {"adam": ("step", "exp_avg", "exp_avg_sq"), "adamw": ("step", "exp_avg", "exp_avg_sq"),
         "rmsprop": ("step", "square_avg"), "adagrad": ("step", "sum")}


def _adaptive_id(case):
    kind, settings = case
    return "-".join([kind, *(f"{k}{v}" for k, v in settings.items())]) if settings else f"{kind}-defaults"


def _state_keys(kind, settings):
    keys = STATE[kind] + (("max_exp_avg_sq",) if settings.get("amsgrad") else ())
    return keys + (("momentum_buffer",) if settings.get("momentum") else ()) + (
        ("grad_avg",) if settings.get("centered") else ())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ADAPTIVE, ids=_adaptive_id)
def test_adaptive_step_matches_torch(case, dtype):
    """25 steps with gradients that depend on the parameters plus fresh noise; after every step the parameters
    and every buffer of torch's state (step, exp_avg, exp_avg_sq, max_exp_avg_sq, square_avg, grad_avg,
    momentum_buffer, sum) are compared."""
    kind, settings = case
    rng = np.random.default_rng(len(_adaptive_id(case)))
    params, state = _draw(rng, dtype), {}
    t_params = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    t_opt = TORCH_OPTIMIZERS[kind](list(t_params.values()), **settings)
    keys = _state_keys(kind, settings)
    for step in range(STEPS):
        grads = {k: (0.5 * params[k] + rng.standard_normal(p.shape)).astype(dtype) for k, p in params.items()}
        params, state = OPTIMIZER_STEPS[kind](params, grads, state, **settings)
        for k, p in t_params.items():
            p.grad = torch.from_numpy(grads[k].copy())
        t_opt.step()
        where = f"{_adaptive_id(case)}-{dtype}-step{step}"
        for k, p in t_params.items():
            assert params[k].dtype == dtype
            assert_close(params[k], p.detach().numpy(), k, where, dtype)
            torch_state = t_opt.state[p]
            assert set(state[k]) == set(torch_state) == set(keys), where
            assert state[k]["step"] == torch_state["step"].item() == step + 1
            for name in keys[1:]:
                assert state[k][name].dtype == dtype
                assert_close(state[k][name], torch_state[name].numpy(), f"{name}[{k}]", where, dtype)


def test_the_adaptive_grid_covers_every_setting():
    for kind in TORCH_OPTIMIZERS:
        given = {key for k, settings in ADAPTIVE if k == kind for key in settings}
        assert given == set(OPTIMIZER_DEFAULTS[kind]), kind


def test_defaults_are_torchs():
    for kind, cls in TORCH_OPTIMIZERS.items():
        torch_defaults = cls([torch.zeros(1, requires_grad=True)]).defaults
        assert {k: torch_defaults[k] for k in OPTIMIZER_DEFAULTS[kind]} == OPTIMIZER_DEFAULTS[kind], kind
        signature = inspect.signature(OPTIMIZER_STEPS[kind]).parameters
        assert {k: signature[k].default for k in OPTIMIZER_DEFAULTS[kind]} == OPTIMIZER_DEFAULTS[kind], kind
    assert torch.optim.SGD([torch.zeros(1, requires_grad=True)]).defaults["momentum"] == 0


@pytest.mark.parametrize("kind", TORCH_OPTIMIZERS)
def test_adaptive_step_changes_none_of_its_arguments(kind):
    rng = np.random.default_rng(1)
    params, grads = _draw(rng, "float64"), _draw(rng, "float64")
    _, state = OPTIMIZER_STEPS[kind](params, grads, {})
    before = copy.deepcopy(params), copy.deepcopy(state)
    new_params, new_state = OPTIMIZER_STEPS[kind](params, grads, state)
    for k in params:
        np.testing.assert_array_equal(params[k], before[0][k])
        assert state[k]["step"] == 1 and new_state[k]["step"] == 2
        for name, value in state[k].items():
            np.testing.assert_array_equal(value, before[1][k][name])
        assert new_params[k] is not params[k]


# --- the schedulers: the learning rate after every scheduler step, against torch's objects ------------------------

SCHEDULES = [
    ("step", dict(step_size=1, gamma=0.5)),
    ("step", dict(step_size=3)),
    ("step", dict(step_size=4, gamma=0.7)),
    ("cosine", dict(T_max=1)),
    ("cosine", dict(T_max=5)),
    ("cosine", dict(T_max=7, eta_min=0.01)),
    ("cosine", dict(T_max=10, eta_min=0.05)),
]
TORCH_SCHEDULERS = {"step": torch.optim.lr_scheduler.StepLR, "cosine": torch.optim.lr_scheduler.CosineAnnealingLR}


@pytest.mark.parametrize("lr", [0.1, 0.37])
@pytest.mark.parametrize("case", SCHEDULES, ids=lambda c: "-".join([c[0], *(f"{k}{v}" for k, v in c[1].items())]))
def test_scheduler_matches_torchs_bit_for_bit(case, lr):
    """50 epochs, past several periods of the cosine (T_max 1 to 10) and its minimum: the same floats as torch's
    recursion, not merely close."""
    kind, options = case
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = TORCH_SCHEDULERS[kind](optimizer, **options)
    for epoch in range(50):
        assert SCHEDULERS[kind](lr, epoch, **options) == scheduler.get_last_lr()[0], f"{kind} epoch {epoch}"
        optimizer.step()
        scheduler.step()


def test_the_cosine_recursion_is_not_the_closed_form():
    # Why cosine_lr follows torch's recursion: the closed form differs from what torch produces in the last bits.
    closed = [0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * e / 7)) / 2 for e in range(50)]
    assert any(c != cosine_lr(0.1, e, 7, 0.01) for e, c in enumerate(closed))
    assert all(abs(c - cosine_lr(0.1, e, 7, 0.01)) < 1e-15 for e, c in enumerate(closed))


# --- bad settings: one line naming the setting, what it got and what it needs ------------------------------------

BAD_ADAPTIVE = [
    ("adam", dict(lr=-0.001), "lr: got -0.001, needs a finite number > 0"),
    ("adam", dict(betas=(0.9, 1.0)), "betas: got (0.9, 1.0), needs two numbers [beta1, beta2], each in [0, 1)"),
    ("adam", dict(betas=(-0.1, 0.9)), "betas: got (-0.1, 0.9), needs two numbers [beta1, beta2], each in [0, 1)"),
    ("adamw", dict(betas=[0.9]), "betas: got [0.9], needs two numbers [beta1, beta2], each in [0, 1)"),
    ("adamw", dict(betas=0.9), "betas: got 0.9, needs two numbers [beta1, beta2], each in [0, 1)"),
    ("adam", dict(betas=(True, 0.9)), "betas: got (True, 0.9), needs two numbers [beta1, beta2], each in [0, 1)"),
    ("adam", dict(eps=0.0), "eps: got 0.0, needs a finite number > 0"),
    ("adamw", dict(eps=-1e-8), "eps: got -1e-08, needs a finite number > 0"),
    ("adam", dict(eps=float("nan")), "eps: got nan, needs a finite number > 0"),
    ("adam", dict(weight_decay=-0.1), "weight_decay: got -0.1, needs a finite number >= 0"),
    ("adam", dict(amsgrad="yes"), "amsgrad: got 'yes', needs True or False"),
    ("rmsprop", dict(alpha=1.5), "alpha: got 1.5, needs a number in [0, 1]"),
    ("rmsprop", dict(alpha=-0.5), "alpha: got -0.5, needs a number in [0, 1]"),
    ("rmsprop", dict(momentum=-0.9), "momentum: got -0.9, needs a finite number >= 0"),
    ("rmsprop", dict(centered=1), "centered: got 1, needs True or False"),
    ("rmsprop", dict(eps=0), "eps: got 0, needs a finite number > 0"),
    ("adagrad", dict(lr_decay=-0.1), "lr_decay: got -0.1, needs a finite number >= 0"),
    ("adagrad", dict(initial_accumulator_value=-1.0),
     "initial_accumulator_value: got -1.0, needs a finite number >= 0"),
    ("adagrad", dict(lr="0.1"), "lr: got str '0.1', needs a positive number"),
]


@pytest.mark.parametrize(("kind", "bad", "message"), BAD_ADAPTIVE, ids=lambda v: str(v))
def test_bad_adaptive_settings_are_named(kind, bad, message):
    with pytest.raises(InputError) as info:
        check_optimizer_settings(kind, OPTIMIZER_DEFAULTS[kind] | bad)
    assert str(info.value) == message
    description = {"input_shape": [1, 2, 2], "layers": [FLAT, {"type": "linear", "out_features": 1}],
                   "loss": {"type": "mse"}, "optimizer": {"type": kind} | bad}
    with pytest.raises(InputError) as info:
        parse_spec(description)
    assert str(info.value) == f"optimizer: {message}"


BAD_SCHEDULERS = [
    ({"type": "step", "step_size": 0}, "step_size: got 0, needs an integer >= 1"),
    ({"type": "step", "step_size": 2.5}, "step_size: got 2.5, needs an integer >= 1"),
    ({"type": "step", "step_size": 2, "gamma": 0}, "gamma: got 0, needs a finite number > 0"),
    ({"type": "cosine", "T_max": 0}, "T_max: got 0, needs an integer >= 1"),
    ({"type": "cosine", "T_max": 5, "eta_min": -0.1}, "eta_min: got -0.1, needs a finite number >= 0"),
    ({"type": "cosine"}, "missing required option 'T_max'"),
    ({"type": "cosine", "T_max": 5, "gamma": 0.5}, "unknown option 'gamma'; known options: T_max, eta_min"),
    ({"step_size": 5}, "type: got None, needs one of step, cosine"),
]


@pytest.mark.parametrize(("scheduler", "message"), BAD_SCHEDULERS, ids=lambda v: str(v))
def test_bad_scheduler_settings_are_named(scheduler, message):
    description = {"input_shape": [1, 2, 2], "layers": [FLAT, {"type": "linear", "out_features": 1}],
                   "loss": {"type": "mse"}, "optimizer": {"scheduler": scheduler}}
    with pytest.raises(InputError) as info:
        parse_spec(description)
    assert str(info.value) == f"optimizer: scheduler: {message}"


def test_torch_refuses_what_it_can_of_the_same():
    # torch takes eps = 0, alpha > 1 and booleans of any type; the rest it refuses as well
    p = [torch.zeros(1, requires_grad=True)]
    for cls, settings in [(torch.optim.Adam, dict(betas=(0.9, 1.0))), (torch.optim.AdamW, dict(eps=-1e-8)),
                          (torch.optim.Adam, dict(weight_decay=-0.1)), (torch.optim.RMSprop, dict(alpha=-0.5)),
                          (torch.optim.RMSprop, dict(momentum=-0.9)), (torch.optim.Adagrad, dict(lr_decay=-0.1)),
                          (torch.optim.Adagrad, dict(initial_accumulator_value=-1.0))]:
        with pytest.raises(ValueError, match="Invalid"):
            cls(p, **settings)


# --- the classic mistakes are caught: each drifts from torch within a few steps -------------------------------

def _run_against_torch(kind, settings, step, steps=5, lr_at=None, scheduler=None):
    """`steps` of a manual `step` beside torch's optimizer (and scheduler) on the same gradients; AssertionError
    from assert_close at the first step where they differ."""
    rng = np.random.default_rng(7)
    params, state = _draw(rng, "float64"), {}
    t_params = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    t_opt = {**TORCH_OPTIMIZERS, "sgd": torch.optim.SGD}[kind](list(t_params.values()), **settings)
    t_scheduler = None if scheduler is None else TORCH_SCHEDULERS[scheduler[0]](t_opt, **scheduler[1])
    for epoch in range(steps):
        grads = {k: 0.5 * params[k] + rng.standard_normal(p.shape) for k, p in params.items()}
        lr = settings["lr"] if lr_at is None else lr_at(settings["lr"], epoch, **scheduler[1])
        params, state = step(params, grads, state, **(settings | {"lr": lr}))
        for k, p in t_params.items():
            p.grad = torch.from_numpy(grads[k].copy())
        t_opt.step()
        if t_scheduler is not None:
            t_scheduler.step()
        for k, p in t_params.items():
            assert_close(params[k], p.detach().numpy(), k, f"{kind}-step{epoch}")


MISTAKES = [
    ("adam-no-bias-correction", "adam", dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False),
     wrong_layers._adam_no_bias_correction, None, None),
    ("adamw-coupled-decay", "adamw", dict(lr=0.01, weight_decay=0.1), wrong_layers._adamw_coupled_decay, None, None),
    ("rmsprop-eps-inside-sqrt", "rmsprop", dict(lr=0.01, alpha=0.99, eps=1e-4, weight_decay=0.0, momentum=0.0,
                                                centered=False), wrong_layers._rmsprop_eps_inside_sqrt, None, None),
    ("scheduler-stepped-early", "sgd", dict(lr=0.1, momentum=0.9), sgd_step, wrong_layers._step_lr_stepped_early,
     ("step", dict(step_size=2, gamma=0.5))),
]


@pytest.mark.parametrize(("name", "kind", "settings", "step", "lr_at", "scheduler"), MISTAKES,
                         ids=[m[0] for m in MISTAKES])
def test_a_classic_mistake_is_caught(name, kind, settings, step, lr_at, scheduler):
    with pytest.raises(AssertionError, match=r"differs"):
        _run_against_torch(kind, settings, step, lr_at=lr_at, scheduler=scheduler)
    # and the real code, in the same run, is not
    real = OPTIMIZER_STEPS[kind]
    _run_against_torch(kind, settings, real, lr_at=None if lr_at is None else SCHEDULERS[scheduler[0]],
                       scheduler=scheduler)


# --- the diagnosis names the class of an optimizer's mistake beyond the catalogue's plain cases ------------------

def _rmsprop_centered_momentum_eps_inside(params, grads, state, lr, alpha, eps, weight_decay, momentum, centered):
    """This test's own wrong RMSprop (centered, with momentum): the step divides by sqrt(v - g_avg^2 + eps)."""
    new_params, new_state = {}, {}
    for key, p in params.items():
        g, zero = grads[key], np.zeros_like(p)
        s = state.get(key, {"square_avg": zero, "grad_avg": zero, "momentum_buffer": zero})
        v = alpha * s["square_avg"] + (1 - alpha) * g * g
        g_avg = alpha * s["grad_avg"] + (1 - alpha) * g
        buf = momentum * s["momentum_buffer"] + g / np.sqrt(v - g_avg * g_avg + eps)
        new_state[key] = {"square_avg": v, "grad_avg": g_avg, "momentum_buffer": buf}
        new_params[key] = p - lr * buf
    return new_params, new_state


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_eps_inside_the_root_is_classified_with_momentum_and_centering(dtype):
    network = {"input_shape": [1, 3, 3], "layers": [FLAT, {"type": "linear", "out_features": 2}],
               "loss": {"type": "mse"},
               "optimizer": {"type": "rmsprop", "lr": 0.01, "eps": 0.01, "momentum": 0.9, "centered": True}}
    entry = WrongDerivation("rmsprop-centered-momentum-eps-inside", "", network, "1 linear: weight after step 1",
                            "epsilon", optimizer_step=_rmsprop_centered_momentum_eps_inside)
    result = diagnose_entry(entry, dtype)
    assert result.wrong and result.quantity == entry.first_wrong
    assert result.classification.kind == "epsilon", result.classification


INJECT_ELSEWHERE = [
    ("adam-no-bias-correction", "examples/lenet5.toml",
     "--inject: adam-no-bias-correction changes the adam optimizer; the description's optimizer is sgd"),
    ("sgd-buffer-not-kept", "examples/small3conv-adam.toml",
     "--inject: sgd-buffer-not-kept changes the sgd optimizer; the description's optimizer is adam"),
    ("scheduler-stepped-early", "examples/lenet5.toml",
     "--inject: scheduler-stepped-early changes the step scheduler; the description has none"),
    ("scheduler-stepped-early", "examples/small3conv-adam.toml",
     "--inject: scheduler-stepped-early changes the step scheduler; the description has a cosine scheduler"),
]


@pytest.mark.parametrize(("name", "path", "message"), INJECT_ELSEWHERE, ids=lambda v: str(v))
def test_an_optimizers_mistake_is_injected_only_where_that_optimizer_runs(name, path, message):
    with pytest.raises(InputError) as info:
        inject(name, load_spec(path))
    assert str(info.value) == message


def test_an_optimizers_mistake_is_injected_where_it_runs():
    spec = parse_spec(find("scheduler-stepped-early").network | {"name": "mine"})
    assert inject("scheduler-stepped-early", spec).scheduler is wrong_layers._step_lr_stepped_early
    assert inject("adam-no-bias-correction", load_spec("examples/small3conv-adam.toml")).optimizer_step \
        is wrong_layers._adam_no_bias_correction
