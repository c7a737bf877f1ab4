"""The slides' network in PyTorch; every derivative comes from autograd.

Mapping between the slides' names and shapes (the manual side) and torch's:

    slides            manual shape           torch                          torch shape
    X                 (N, H, W)              input                          (N, 1, H, W)
    f                 (KH, KW)               conv.weight                    (1, 1, KH, KW)
    W                 (n_hidden, n_out)      fc.weight  (= W^T)             (n_out, n_hidden)
    b                 (n_out,)               fc.bias                        (n_out,)
    Z1                (N, OH, OW)            conv(X)                        (N, 1, OH, OW)
    H1                (N, n_hidden)          sigmoid(Z1).flatten(1)         (N, n_hidden)
    Z2, O, Y          (N, n_out)             fc(H1), sigmoid(Z2), target    (N, n_out)

Gradients come from ``E.backward()`` (intermediates kept with ``retain_grad``), local
Jacobians (dO/dZ2, dZ2/dW, dZ2/dH1, dH1/dZ1, dZ1/df) from ``torch.autograd.grad``, updates from
``torch.optim.SGD``'s functional form (reference.optim). Nothing here is differentiated by hand.
"""

import itertools

import numpy as np
import torch
from torch import nn

from netdesc.seed import PARAM_NAMES
from reference import optim


class SeedNetwork(nn.Module):
    """conv (1 -> 1 channel, no bias) -> sigmoid -> flatten -> linear -> sigmoid."""

    def __init__(self, input_shape, kernel_shape, n_out, dtype=torch.float64):
        super().__init__()
        (H, W), (KH, KW) = input_shape, kernel_shape
        self.conv = nn.Conv2d(1, 1, (KH, KW), bias=False, dtype=dtype)
        self.fc = nn.Linear((H - KH + 1) * (W - KW + 1), n_out, dtype=dtype)

    @classmethod
    def from_manual(cls, params, input_shape):
        """Build the module holding copies of the manual parameters (the mapping above)."""
        f, W, b = (torch.from_numpy(np.array(params[name])) for name in PARAM_NAMES)
        net = cls(input_shape, tuple(f.shape), W.shape[1], dtype=f.dtype)
        with torch.no_grad():
            net.conv.weight.copy_(f[None, None])
            net.fc.weight.copy_(W.T)
            net.fc.bias.copy_(b)
        return net

    def to_manual(self):
        """The parameters back in the slides' names and shapes, as NumPy arrays."""
        return {
            "f": self.conv.weight.detach()[0, 0].numpy().copy(),
            "W": self.fc.weight.detach().T.numpy().copy(),
            "b": self.fc.bias.detach().numpy().copy(),
        }

    def forward(self, X):
        """X (N, H, W) -> {"Z1", "H1", "Z2", "O"} with the slides' shapes."""
        Z1 = self.conv(X[:, None])[:, 0]
        H1 = torch.sigmoid(Z1).flatten(1)
        Z2 = self.fc(H1)
        O = torch.sigmoid(Z2)
        return {"Z1": Z1, "H1": H1, "Z2": Z2, "O": O}


def error(O, Y, reduction="sum"):
    """E = (Y - O)^2 / 2 summed over outputs, then summed or averaged over the batch."""
    per_sample = ((Y - O) ** 2 / 2).sum(dim=1)
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def _tensors(X, Y, params):
    net = SeedNetwork.from_manual(params, X.shape[1:])
    return torch.from_numpy(X), torch.from_numpy(Y), net


def vjp(fn, primal, upstream):
    """upstream^T (d fn / d primal): torch.autograd.grad of the scalar sum(fn(primal) * upstream), whose backward
    hands exactly `upstream` to fn's backward. (torch.func.vjp imports torch._dynamo, ~1.2 s, and an explicit
    grad_outputs makes torch.autograd import sympy through torch.fx.experimental.symbolic_shapes, ~0.8 s.)"""
    primal = primal.detach().requires_grad_()
    return torch.autograd.grad((fn(primal) * upstream).sum(), primal)[0]


def _jacobian(fn, primal):
    """d fn / d primal, shape out.shape + primal.shape: one vjp per output element (what jacrev vmaps over)."""
    out = fn(primal.detach().requires_grad_())
    basis = torch.eye(out.numel(), dtype=out.dtype).reshape(-1, *out.shape)
    return torch.stack([vjp(fn, primal, e) for e in basis]).reshape(*out.shape, *primal.shape)


def _jvp(fn, primal, tangent):
    """(d fn / d primal) tangent by reverse mode twice: the vjp u -> u^T J is linear in u, and its own vjp with
    `tangent` is J tangent. (Forward-mode AD of conv2d loads torch._decomp.decompositions_for_jvp, ~0.3 s.)"""
    primal = primal.detach().requires_grad_()
    out = fn(primal)
    u = torch.zeros_like(out, requires_grad=True)
    (pulled,) = torch.autograd.grad((out * u).sum(), primal, create_graph=True)
    return torch.autograd.grad((pulled * tangent).sum(), u)[0]


def _jacobian_forward(fn, primal):
    """d fn / d primal, one jvp per element of primal (what jacfwd vmaps over): for a small primal."""
    columns = [_jvp(fn, primal, e) for e in torch.eye(primal.numel(), dtype=primal.dtype).reshape(-1, *primal.shape)]
    return torch.stack(columns, dim=-1).reshape(*columns[0].shape, *primal.shape)


def _local_jacobians(net, X, values):
    """The slides' local factors, each by autograd (torch.autograd.grad) of the step it belongs to."""
    Z1, H1, Z2 = (values[k].detach() for k in ("Z1", "H1", "Z2"))
    elementwise = torch.ones_like
    dO_dZ2 = vjp(torch.sigmoid, Z2, elementwise(Z2))
    dH1_dZ1 = vjp(torch.sigmoid, Z1, elementwise(Z1))
    b = net.fc.bias.detach()
    # dZ2[n, j]/dW[i, j] = H1[n, i]: one vjp per sample of output j = 0, read at W's row 0.
    dZ2_dW = _jacobian(lambda W: (H1 @ W.T + b)[:, 0], net.fc.weight.detach())[:, 0, :]
    # dZ2/dH1 for one sample: (n_out, n_hidden); the same for every sample.
    dZ2_dH1 = _jacobian(lambda h: net.fc(h), H1[0])
    conv_f = lambda f: torch.nn.functional.conv2d(X[:, None], f)[:, 0]  # noqa: E731
    dZ1_df = _jacobian_forward(conv_f, net.conv.weight.detach())[:, :, :, 0, 0]
    return {"dO_dZ2": dO_dZ2, "dZ2_dW": dZ2_dW, "dZ2_dH1": dZ2_dH1, "dH1_dZ1": dH1_dZ1, "dZ1_df": dZ1_df}


def run(X, params, Y, reduction="sum"):
    """Forward and backward by autograd -> (values, grads), NumPy dicts named as in manual.seed_network.

    X (N, H, W), Y (N, n_out), params and reduction are not checked here: netdesc.seed.check_inputs checks them
    once, where they enter (crosscheck.subjects.SeedSubject, manual.seed_network.train)."""
    X, Y, net = _tensors(X, Y, params)
    values = net(X)
    for v in values.values():
        v.retain_grad()
    values["E"] = error(values["O"], Y, reduction)
    values["E"].backward()
    grads = {f"dE_d{k}": values[k].grad for k in ("O", "Z2", "H1", "Z1")}
    grads |= {"dE_df": net.conv.weight.grad[0, 0], "dE_dW": net.fc.weight.grad.T, "dE_db": net.fc.bias.grad}
    grads |= _local_jacobians(net, X, values)
    numpy = lambda t: t.detach().numpy()  # noqa: E731
    return {k: numpy(v) for k, v in values.items()}, {k: numpy(v) for k, v in grads.items()}


def train(X, Y, params, lr, steps, reduction="sum"):
    """`steps` steps of torch.optim.SGD on one batch -> (E before each step, final params). The inputs are not
    checked here, as in run; lr and steps are checked where they enter (crosscheck.subjects.SeedCase)."""
    done = list(training(itertools.repeat((X, Y), steps), params, lr, reduction))
    return np.stack([E for E, _, _ in done]), done[-1][2]


def training(batches, params, lr, reduction="sum"):
    """One step of torch.optim.SGD per (X, Y) of `batches`, one optimizer throughout -> yields (E before the step,
    its gradients named as manual.seed_network's dE_df, dE_dW, dE_db, the params after it), NumPy arrays."""
    net = optimizer = None
    for X, Y in batches:
        if net is None:
            net = SeedNetwork.from_manual(params, X.shape[1:])
            optimizer = optim.SGD(net.parameters(), lr=lr)
        E = error(net(torch.from_numpy(X))["O"], torch.from_numpy(Y), reduction)
        df, dW, db = torch.autograd.grad(E, optimizer.params)  # conv.weight, fc.weight, fc.bias
        grads = {"dE_df": df[0, 0].numpy().copy(), "dE_dW": dW.T.numpy().copy(), "dE_db": db.numpy().copy()}
        optimizer.step((df, dW, db))
        yield E.detach().numpy(), grads, net.to_manual()
