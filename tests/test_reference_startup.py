"""The reference's fast-start paths give torch.optim's and torch.func's numbers bit for bit.

reference.optim's SGD, Adam, AdamW, RMSprop and Adagrad call torch.optim's functional forms without the optimizer
objects (which import torch._dynamo), driven by torch's own schedulers, and reference.seed_network takes its local
Jacobians with torch.autograd.grad instead of torch.func.
"""

import subprocess
import sys

import pytest
import torch

from reference import optim, seed_network

SETTINGS = [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01},
    {"lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
]


def _net(dtype):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 4 * 4, 2)).to(dtype)


def _train(optimizer_class, settings, dtype, steps=7, scheduler=None):
    net = _net(dtype)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 2, 6, 6, generator=g, dtype=dtype), torch.randn(5, 2, generator=g, dtype=dtype)
    opt = optimizer_class(net.parameters(), **settings)
    ours = isinstance(opt, tuple(optim.OPTIMIZERS.values()))
    lr_scheduler = None if scheduler is None else optim.SCHEDULERS[scheduler[0]](opt, **scheduler[1])
    for _ in range(steps):
        E = ((net(x) - y) ** 2).sum()
        if ours:
            opt.step(torch.autograd.grad(E, opt.params))
        else:
            opt.zero_grad()
            E.backward()
            opt.step()
        if lr_scheduler is not None:
            lr_scheduler.step()
    state = opt.state if ours else [opt.state[p] for p in net.parameters()]
    return [p.detach().clone() for p in net.parameters()], state


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_sgd_is_torch_optim_sgd_bit_for_bit(settings, dtype):
    (ours, _), (torchs, _) = _train(optim.SGD, settings, dtype), _train(torch.optim.SGD, settings, dtype)
    assert all(torch.equal(a, b) for a, b in zip(ours, torchs, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(ours, _net(dtype).parameters(), strict=True))


ADAPTIVE = [
    ("adam", {"lr": 0.01}, None),
    ("adam", {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}, None),
    ("adamw", {"lr": 0.01}, ("cosine", {"T_max": 3, "eta_min": 0.001})),
    ("adamw", {"lr": 0.02, "weight_decay": 0.2, "amsgrad": True}, ("step", {"step_size": 2, "gamma": 0.5})),
    ("rmsprop", {"lr": 0.005}, None),
    ("rmsprop", {"lr": 0.005, "alpha": 0.9, "centered": True, "momentum": 0.8, "weight_decay": 0.1},
     ("cosine", {"T_max": 4})),
    ("adagrad", {"lr": 0.05}, ("step", {"step_size": 3})),
    ("adagrad", {"lr": 0.05, "lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.3, "eps": 1e-6},
     None),
    ("sgd", {"lr": 0.05, "momentum": 0.9}, ("cosine", {"T_max": 2})),
]
TORCH_CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                 "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("kind", "settings", "scheduler"), ADAPTIVE, ids=lambda v: str(v))
def test_optimizers_and_schedulers_are_torch_optims_bit_for_bit(kind, settings, scheduler, dtype):
    """Parameters and every buffer of the state, after 7 steps, equal torch.optim's objects' (torch's scheduler
    over each) to the last bit."""
    ours, our_state = _train(optim.OPTIMIZERS[kind], settings, dtype, scheduler=scheduler)
    torchs, torch_state = _train(TORCH_CLASSES[kind], settings, dtype, scheduler=scheduler)
    assert all(torch.equal(a, b) for a, b in zip(ours, torchs, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(ours, _net(dtype).parameters(), strict=True))
    for mine, theirs in zip(our_state, torch_state, strict=True):
        assert set(mine) == set(theirs) and mine
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), kind


def test_a_scheduler_changes_the_run():
    plain, _ = _train(optim.Adam, {"lr": 0.01}, torch.float64)
    scheduled, _ = _train(optim.Adam, {"lr": 0.01}, torch.float64, scheduler=("step", {"step_size": 1}))
    assert not all(torch.equal(a, b) for a, b in zip(plain, scheduled, strict=True))


def test_sgd_rejects_what_torch_rejects():
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="invalid"):
        optim.SGD([], lr=-1.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shapes", [((8, 8), (3, 3), 1, 4), ((5, 7), (2, 3), 3, 2), ((4, 4), (2, 2), 1, 1)])
def test_local_jacobians_are_torch_func_bit_for_bit(shapes, dtype):
    (H, W), (KH, KW), n_out, N = shapes
    g = torch.Generator().manual_seed(2)
    net = seed_network.SeedNetwork((H, W), (KH, KW), n_out, dtype=dtype)
    X = torch.randn(N, H, W, generator=g, dtype=dtype)
    values = net(X)
    ours = seed_network._local_jacobians(net, X, values)
    Z1, H1, Z2 = (values[k].detach() for k in ("Z1", "H1", "Z2"))
    func = {
        "dO_dZ2": torch.func.vjp(torch.sigmoid, Z2)[1](torch.ones_like(Z2))[0],
        "dH1_dZ1": torch.func.vjp(torch.sigmoid, Z1)[1](torch.ones_like(Z1))[0],
        "dZ2_dW": torch.func.jacrev(lambda w: H1 @ w.T + net.fc.bias.detach())(net.fc.weight.detach())[:, 0, 0, :],
        "dZ2_dH1": torch.func.jacrev(lambda h: net.fc(h))(H1[0]),
        "dZ1_df": torch.func.jacfwd(lambda f: torch.nn.functional.conv2d(X[:, None], f)[:, 0])(
            net.conv.weight.detach())[:, :, :, 0, 0],
    }
    assert ours.keys() == func.keys()
    for name, value in func.items():
        assert ours[name].shape == value.shape, name
        assert torch.equal(ours[name].detach(), value.detach()), name


def test_cli_runs_without_the_compiler_stack():
    """One verdict of each kind (Adam and its cosine scheduler too) leaves torch._dynamo, sympy and the JVP
    decompositions unimported."""
    code = (
        "import sys; from crosscheck.cli import main\n"
        "for argv in ([], ['verify', '--spec', 'examples/lenet5.toml', '--steps', '2'], ['explain'],\n"
        "             ['verify', '--spec', 'examples/small3conv-adam.toml', '--steps', '2'],\n"
        "             ['diagnose', '--wrong', 'flipped-kernel-dE_df']):\n"
        "    main(argv)\n"
        "heavy = ('torch._dynamo', 'sympy', 'torch._decomp.decompositions_for_jvp')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
