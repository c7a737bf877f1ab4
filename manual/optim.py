"""torch.optim's optimizers and learning-rate schedulers, step for step (NumPy only).

Stochastic gradient descent as torch.optim.SGD computes it. For each parameter p with gradient g (torch's algorithm,
maximize=False):

    g = g + weight_decay * p                              if weight_decay != 0
    buf = g  (first step)  or  momentum * buf + (1 - dampening) * g (later steps)    if momentum != 0
    g = g + momentum * buf  if nesterov  else  buf        if momentum != 0
    p = p - lr * g

``sgd_step`` is a pure function over dicts of arrays that takes checked inputs; ``SGD`` is a thin holder of
the settings (checked once, at construction) and the momentum buffers over it, and checks the dicts it is given.

Adam, AdamW, RMSprop and Adagrad are pure functions of the same form, ``step(params, grads, state, **settings) ->
(new_params, new_state)``, each with torch's algorithm in its docstring (torch.optim.<name>'s _single_tensor_<name>,
the path torch takes for CPU tensors); their state holds, per parameter, the step count and the buffers under
torch's names. ``OPTIMIZER_STEPS`` names them as descriptions do. The settings are checked once, where they enter
(netdesc.checks.check_optimizer_settings), never on every step.

The schedulers ``step_lr`` and ``cosine_lr`` give the learning rate after `epoch` scheduler steps, the value
torch's StepLR and CosineAnnealingLR hold then; step t of a run (1, 2, ...) uses the rate after t - 1 of them
(torch: ``optimizer.step()`` then ``scheduler.step()``).
"""

import math

import numpy as np

from netdesc.checks import InputError, check_float_array, check_sgd_settings


def _check_dicts(params, grads, state):
    for name, value in (("params", params), ("grads", grads), ("state", state)):
        if not isinstance(value, dict):
            raise InputError(f"{name}: got {type(value).__name__}, needs a dict of arrays by parameter name")
    if sorted(grads) != sorted(params):
        raise InputError(f"grads: got names {sorted(grads)}, needs one gradient per parameter {sorted(params)}")
    if not set(state) <= set(params):
        raise InputError(f"state: got buffers for {sorted(state)}, needs names among the parameters {sorted(params)}")
    for key, p in params.items():
        p = check_float_array(f"params[{key!r}]", p)
        for kind, other in (("grads", grads[key]), ("state", state.get(key, p))):
            other = check_float_array(f"{kind}[{key!r}]", other)
            if other.shape != p.shape or other.dtype != p.dtype:
                raise InputError(
                    f"{kind}[{key!r}]: got shape {other.shape} dtype {other.dtype}, "
                    f"needs the parameter's shape {p.shape} and dtype {p.dtype}"
                )


def sgd_step(params, grads, state, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """One torch.optim.SGD step over every parameter -> (new_params, new_state); the arguments are not changed.

    params, grads: dicts name -> array (same names, shapes, dtypes); state: name -> momentum buffer,
    empty before the first step (a missing buffer means "first step": buf = g).
    Nothing is checked here, on every step: the settings are checked once where they enter (SGD's construction,
    netdesc.description's optimizer table, by check_sgd_settings), the dicts by SGD.step.
    """
    new_params, new_state = {}, dict(state)
    for key, p in params.items():
        g = grads[key]
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            buf = state.get(key)
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            new_state[key] = buf
            g = g + momentum * buf if nesterov else buf
        new_params[key] = p - lr * g
    return new_params, new_state


class SGD:
    """torch.optim.SGD's interface in miniature: settings checked once, momentum buffers kept between steps."""

    def __init__(self, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        self.settings = check_sgd_settings(lr, momentum, dampening, nesterov, weight_decay)
        self.state = {}

    def step(self, params, grads):
        """-> the updated params (a new dict); the buffers are updated in self.state."""
        _check_dicts(params, grads, self.state)
        new_params, self.state = sgd_step(params, grads, self.state, **self.settings)
        return new_params


# --- adaptive optimizers: state[name] is a dict of that parameter's step count and buffers ---------------------

def _adam(params, grads, state, lr, betas, eps, weight_decay, amsgrad, decoupled):
    """Adam and AdamW (decoupled=True): torch.optim.adam's _single_tensor_adam, one parameter at a time."""
    beta1, beta2 = betas
    new_params, new_state = {}, dict(state)
    for key, p in params.items():
        g = grads[key]
        s = state.get(key) or {"step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        s = dict(s, step=s["step"] + 1)
        if weight_decay != 0:
            if decoupled:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        s["exp_avg"] = s["exp_avg"] + (1 - beta1) * (g - s["exp_avg"])  # m = beta1 m + (1 - beta1) g, as torch's lerp
        s["exp_avg_sq"] = beta2 * s["exp_avg_sq"] + (1 - beta2) * g * g
        bias_correction1, bias_correction2 = 1 - beta1 ** s["step"], 1 - beta2 ** s["step"]
        v = s["exp_avg_sq"]
        if amsgrad:
            v = s["max_exp_avg_sq"] = np.maximum(s.get("max_exp_avg_sq", np.zeros_like(p)), v)
        denom = np.sqrt(v) / bias_correction2 ** 0.5 + eps
        new_params[key] = p - (lr / bias_correction1) * (s["exp_avg"] / denom)
        new_state[key] = s
    return new_params, new_state


def adam_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    """One torch.optim.Adam step -> (new_params, new_state); weight decay is L2, added to the gradient.

    state[name]: {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq" (amsgrad)}, missing before the first step.
    For each parameter p with gradient g, at step t (torch's algorithm, maximize=False):

        g = g + weight_decay * p                                        if weight_decay != 0
        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2      (m, v start at 0)
        v_max = max(v_max, v) and v = v_max                             if amsgrad
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """
    return _adam(params, grads, state, lr, betas, eps, weight_decay, amsgrad, decoupled=False)


def adamw_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    """One torch.optim.AdamW step: Adam with the decay decoupled from the gradient, p = p * (1 - lr * weight_decay)
    before the update, g left as it is (the moments never see the decay). State as adam_step's."""
    return _adam(params, grads, state, lr, betas, eps, weight_decay, amsgrad, decoupled=True)


def rmsprop_step(params, grads, state, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
    """One torch.optim.RMSprop step -> (new_params, new_state).

    state[name]: {"step", "square_avg", "grad_avg" (centered), "momentum_buffer" (momentum > 0)}, all starting at 0.

        g = g + weight_decay * p                                        if weight_decay != 0
        v = alpha * v + (1 - alpha) * g^2
        avg = sqrt(v - g_avg^2) + eps, g_avg = alpha g_avg + (1 - alpha) g    if centered, else sqrt(v) + eps
        buf = momentum * buf + g / avg;  p = p - lr * buf               if momentum > 0, else p = p - lr * g / avg
    """
    new_params, new_state = {}, dict(state)
    for key, p in params.items():
        g = grads[key]
        s = dict(state.get(key) or {"step": 0, "square_avg": np.zeros_like(p)})
        s["step"] += 1
        if weight_decay != 0:
            g = g + weight_decay * p
        s["square_avg"] = alpha * s["square_avg"] + (1 - alpha) * g * g
        if centered:
            grad_avg = s.get("grad_avg", np.zeros_like(p))
            s["grad_avg"] = grad_avg + (1 - alpha) * (g - grad_avg)  # as torch's lerp
            avg = np.sqrt(s["square_avg"] - s["grad_avg"] * s["grad_avg"]) + eps
        else:
            avg = np.sqrt(s["square_avg"]) + eps
        if momentum > 0:
            s["momentum_buffer"] = momentum * s.get("momentum_buffer", np.zeros_like(p)) + g / avg
            new_params[key] = p - lr * s["momentum_buffer"]
        else:
            new_params[key] = p - lr * (g / avg)
        new_state[key] = s
    return new_params, new_state


def adagrad_step(params, grads, state, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
    """One torch.optim.Adagrad step -> (new_params, new_state).

    state[name]: {"step", "sum"}, the sum starting at initial_accumulator_value. At step t:

        g = g + weight_decay * p                                        if weight_decay != 0
        sum = sum + g^2
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)
    """
    new_params, new_state = {}, dict(state)
    for key, p in params.items():
        g = grads[key]
        s = dict(state.get(key) or {"step": 0, "sum": np.full_like(p, initial_accumulator_value)})
        s["step"] += 1
        if weight_decay != 0:
            g = g + weight_decay * p
        clr = lr / (1 + (s["step"] - 1) * lr_decay)
        s["sum"] = s["sum"] + g * g
        new_params[key] = p - clr * (g / (np.sqrt(s["sum"]) + eps))
        new_state[key] = s
    return new_params, new_state


OPTIMIZER_STEPS = {"sgd": sgd_step, "adam": adam_step, "adamw": adamw_step, "rmsprop": rmsprop_step,
                   "adagrad": adagrad_step}


# --- learning-rate schedulers: the lr after `epoch` scheduler steps (0: the optimizer's own lr) -----------------

def step_lr(lr, epoch, step_size, gamma=0.1):
    """torch.optim.lr_scheduler.StepLR: lr * gamma^(epoch // step_size), multiplied out one decay at a time as
    torch's get_lr does (not gamma ** k, which can differ in the last bit)."""
    for _ in range(epoch // step_size):
        lr = lr * gamma
    return lr


def cosine_lr(lr, epoch, T_max, eta_min=0.0):
    """torch.optim.lr_scheduler.CosineAnnealingLR by torch's recursion (its get_lr), from epoch 0 up:

        lr_e = eta_min + (lr_{e-1} - eta_min) * (1 + cos(pi e / T_max)) / (1 + cos(pi (e - 1) / T_max))
        lr_e = lr_{e-1} + (lr_0 - eta_min) * (1 - cos(pi / T_max)) / 2      where (e - 1 - T_max) % (2 T_max) == 0

    (the second line steps past the minimum, where the first would divide by zero). It approximates the closed
    form eta_min + (lr_0 - eta_min) (1 + cos(pi e / T_max)) / 2 up to rounding."""
    base, current = lr, lr
    for e in range(1, epoch + 1):
        if (e - 1 - T_max) % (2 * T_max) == 0:
            current = current + (base - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
        else:
            current = ((1 + math.cos(math.pi * e / T_max)) / (1 + math.cos(math.pi * (e - 1) / T_max))
                       * (current - eta_min) + eta_min)
    return current


SCHEDULERS = {"step": step_lr, "cosine": cosine_lr}
