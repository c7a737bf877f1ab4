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
Jacobians (dO/dZ2, dZ2/dW, dZ2/dH1, dH1/dZ1, dZ1/df) from ``torch.func``, updates from
``torch.optim.SGD``. Nothing here is differentiated by hand.
"""

import numpy as np
import torch
from torch import nn

from netdesc.checks import check_learning_rate, check_positive_int
from netdesc.seed import PARAM_NAMES, check_inputs


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


def _tensors(X, Y, params, reduction):
    X, Y = check_inputs(X, Y, params, reduction)
    net = SeedNetwork.from_manual(params, X.shape[1:])
    return torch.from_numpy(X), torch.from_numpy(Y), net


def _local_jacobians(net, X, values):
    """The slides' local factors, each by autograd (torch.func) of the step it belongs to."""
    Z1, H1, Z2 = (values[k].detach() for k in ("Z1", "H1", "Z2"))
    elementwise = torch.ones_like
    dO_dZ2 = torch.func.vjp(torch.sigmoid, Z2)[1](elementwise(Z2))[0]
    dH1_dZ1 = torch.func.vjp(torch.sigmoid, Z1)[1](elementwise(Z1))[0]
    fc_W = lambda W: H1 @ W.T + net.fc.bias.detach()  # noqa: E731
    # dZ2[n, j]/dW[i, j] = H1[n, i]: the diagonal j = 0 block of the full Jacobian.
    dZ2_dW = torch.func.jacrev(fc_W)(net.fc.weight.detach())[:, 0, 0, :]
    # dZ2/dH1 for one sample: (n_out, n_hidden); the same for every sample.
    dZ2_dH1 = torch.func.jacrev(lambda h: net.fc(h))(H1[0])
    conv_f = lambda f: torch.nn.functional.conv2d(X[:, None], f)[:, 0]  # noqa: E731
    dZ1_df = torch.func.jacfwd(conv_f)(net.conv.weight.detach())[:, :, :, 0, 0]
    return {"dO_dZ2": dO_dZ2, "dZ2_dW": dZ2_dW, "dZ2_dH1": dZ2_dH1, "dH1_dZ1": dH1_dZ1, "dZ1_df": dZ1_df}


def run(X, params, Y, reduction="sum"):
    """Forward and backward by autograd -> (values, grads), NumPy dicts named as in manual.seed_network."""
    X, Y, net = _tensors(X, Y, params, reduction)
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
    """`steps` steps of torch.optim.SGD on one batch -> (E before each step, final params)."""
    steps = check_positive_int("steps", steps)
    lr = check_learning_rate(lr)
    X, Y, net = _tensors(X, Y, params, reduction)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    errors = []
    for _ in range(steps):
        optimizer.zero_grad()
        E = error(net(X)["O"], Y, reduction)
        E.backward()
        optimizer.step()
        errors.append(E.detach().numpy())
    return np.stack(errors), net.to_manual()
