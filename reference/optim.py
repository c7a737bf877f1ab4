"""torch.optim's optimizers through their functional forms, without the optimizer objects' machinery.

``torch.optim.SGD`` (and Adam, RMSprop, Adagrad) imports ``torch._dynamo`` (and through it sympy and
torch._inductor, ~1.2 s) on its first use: its constructor calls ``add_param_group`` and ``step`` is wrapped in
``_use_grad_for_differentiable``, both of which import it unconditionally. ``step`` itself only collects the
parameters that have a gradient and their state (created lazily: zeros, the step count a 0-d tensor), calls the
functional form (``torch.optim.sgd.sgd``, ``adam.adam``, ``adamw.adamw``, ``rmsprop.rmsprop``, ``adagrad.adagrad``,
each in its module's ``__all__``) with the group's settings under ``torch.no_grad()``; for CPU tensors that reaches
the same ``_single_tensor_<name>`` and imports nothing when not compiling. The classes here do exactly that, so the
parameters and state they leave are torch.optim's bit for bit (tests/test_reference_startup.py).

Each class is a ``torch.optim.Optimizer`` with one parameter group, ``param_groups[0]``, whose "lr" every step
reads, so that torch's own schedulers (``scheduler``) drive it (they write "lr" and "initial_lr" there); it does not
run ``Optimizer.__init__`` (the import above), and nothing but a scheduler reads what that would have set.
"""

import torch
from torch.optim import lr_scheduler
from torch.optim.adagrad import adagrad
from torch.optim.adam import adam
from torch.optim.adamw import adamw
from torch.optim.rmsprop import rmsprop
from torch.optim.sgd import sgd


class _Functional(torch.optim.Optimizer):
    """One group of dense CPU parameters and its settings; ``step(grads)`` takes the gradients (from
    torch.autograd.grad) in the order of the parameters instead of reading ``.grad``."""

    def __init__(self, params, lr, **settings):  # not Optimizer.__init__: see the module's docstring
        self.params = list(params)
        self.param_groups = [{"lr": lr}]  # the learning rate a scheduler sets
        self.settings = settings  # the others
        self.state = [{} for _ in self.params]  # per parameter, torch's names

    def group(self):
        """The settings of the next step: the others and the group's current lr."""
        return self.settings | {"lr": self.param_groups[0]["lr"]}

    def _buffers(self, name, fill=0.0):
        """Every parameter's state[name], made on the first step as torch's _init_group makes it."""
        for p, state in zip(self.params, self.state, strict=True):
            if name not in state:
                state[name] = torch.tensor(0.0) if name == "step" else torch.full_like(p, fill)
        return [state[name] for state in self.state]


class SGD(_Functional):
    """torch.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov)."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid SGD settings lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                         nesterov=nesterov, maximize=False)
        self.momentum_buffers = [None] * len(self.params)

    @torch.no_grad()
    def step(self, grads):
        """One update of every parameter by its gradient in `grads` (same order as params)."""
        sgd(self.params, list(grads), self.momentum_buffers, **self.group())  # fills the buffers at step 1
        for state, buf in zip(self.state, self.momentum_buffers, strict=True):
            if buf is not None:
                state["momentum_buffer"] = buf


class Adam(_Functional):
    """torch.optim.Adam(params, lr, betas, eps, weight_decay, amsgrad); AdamW's decay with decoupled=True."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    @torch.no_grad()
    def step(self, grads):
        g = self.group()
        beta1, beta2 = g["betas"]
        maxima = self._buffers("max_exp_avg_sq") if g["amsgrad"] else []
        function = adamw if self.decoupled else adam
        function(self.params, list(grads), self._buffers("exp_avg"), self._buffers("exp_avg_sq"), maxima,
                 self._buffers("step"), foreach=False, amsgrad=g["amsgrad"], beta1=beta1, beta2=beta2, lr=g["lr"],
                 weight_decay=g["weight_decay"], eps=g["eps"], maximize=False)


class AdamW(Adam):
    """torch.optim.AdamW: Adam with the weight decay decoupled from the gradient."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(_Functional):
    """torch.optim.RMSprop(params, lr, alpha, eps, weight_decay, momentum, centered)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered)

    @torch.no_grad()
    def step(self, grads):
        g = self.group()
        steps, square_avgs = self._buffers("step"), self._buffers("square_avg")
        buffers = self._buffers("momentum_buffer") if g["momentum"] > 0 else []
        grad_avgs = self._buffers("grad_avg") if g["centered"] else []
        rmsprop(self.params, list(grads), square_avgs, grad_avgs, buffers, steps, foreach=False, **g)


class Adagrad(_Functional):
    """torch.optim.Adagrad(params, lr, lr_decay, weight_decay, initial_accumulator_value, eps)."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps)
        self.initial_accumulator_value = initial_accumulator_value  # the sum's start, not an argument of adagrad

    @torch.no_grad()
    def step(self, grads):
        sums = self._buffers("sum", self.initial_accumulator_value)
        adagrad(self.params, list(grads), sums, self._buffers("step"), foreach=False, maximize=False,
                **self.group())


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}
SCHEDULERS = {"step": lr_scheduler.StepLR, "cosine": lr_scheduler.CosineAnnealingLR}


def scheduler(optimizer, kind, options):
    """torch's scheduler `kind` ("step": StepLR, "cosine": CosineAnnealingLR) over one of the optimizers here."""
    return SCHEDULERS[kind](optimizer, **options)
