"""The reference's fast-start paths give torch.optim.SGD's and torch.func's numbers bit for bit.

reference.optim.SGD calls torch.optim.SGD's functional form without the optimizer object (which imports
torch._dynamo), and reference.seed_network takes its local Jacobians with torch.autograd.grad instead of torch.func.
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


def _train(optimizer_class, settings, dtype, steps=7):
    net = _net(dtype)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 2, 6, 6, generator=g, dtype=dtype), torch.randn(5, 2, generator=g, dtype=dtype)
    opt = optimizer_class(net.parameters(), **settings)
    for _ in range(steps):
        E = ((net(x) - y) ** 2).sum()
        if isinstance(opt, optim.SGD):
            opt.step(torch.autograd.grad(E, opt.params))
        else:
            opt.zero_grad()
            E.backward()
            opt.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_sgd_is_torch_optim_sgd_bit_for_bit(settings, dtype):
    ours, torchs = _train(optim.SGD, settings, dtype), _train(torch.optim.SGD, settings, dtype)
    assert all(torch.equal(a, b) for a, b in zip(ours, torchs, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(ours, _net(dtype).parameters(), strict=True))


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
    """One verdict of each kind leaves torch._dynamo, sympy and the JVP decompositions unimported."""
    code = (
        "import sys; from crosscheck.cli import main\n"
        "for argv in ([], ['verify', '--spec', 'examples/lenet5.toml', '--steps', '2'], ['explain'],\n"
        "             ['diagnose', '--wrong', 'flipped-kernel-dE_df']):\n"
        "    main(argv)\n"
        "heavy = ('torch._dynamo', 'sympy', 'torch._decomp.decompositions_for_jvp')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
