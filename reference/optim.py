"""torch.optim.SGD's update through its functional form ``torch.optim.sgd.sgd``, without the optimizer object.

``torch.optim.SGD`` imports ``torch._dynamo`` (and through it sympy and torch._inductor, ~1.2 s) on its first
use: its constructor calls ``add_param_group`` and ``step`` is wrapped in ``_use_grad_for_differentiable``, both
of which import it unconditionally. ``SGD.step`` itself only collects the parameters that have a gradient and
their momentum buffers, calls ``torch.optim.sgd.sgd`` with the group's settings under ``torch.no_grad()`` and
stores the buffers back; ``sgd`` (in ``torch.optim.sgd.__all__``) calls the same ``_single_tensor_sgd`` that
``SGD.step`` reaches for CPU tensors, and imports nothing when not compiling. This class does exactly that, so
the parameters it leaves are those of ``torch.optim.SGD`` bit for bit (tests/test_reference_startup.py).
"""

import torch
from torch.optim.sgd import sgd


class SGD:
    """torch.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov) for dense CPU parameters;
    ``step(grads)`` takes the gradients (from torch.autograd.grad) instead of reading ``.grad``."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid SGD settings lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.params = list(params)
        self.settings = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                         "nesterov": nesterov, "maximize": False}
        self.momentum_buffers = [None] * len(self.params)

    @torch.no_grad()
    def step(self, grads):
        """One update of every parameter by its gradient in `grads` (same order as params)."""
        sgd(self.params, list(grads), self.momentum_buffers, **self.settings)  # fills the buffers on the first step
