"""Stochastic gradient descent as torch.optim.SGD computes it, step for step (NumPy only).

For each parameter p with gradient g (torch's algorithm, maximize=False):

    g = g + weight_decay * p                              if weight_decay != 0
    buf = g  (first step)  or  momentum * buf + (1 - dampening) * g (later steps)    if momentum != 0
    g = g + momentum * buf  if nesterov  else  buf        if momentum != 0
    p = p - lr * g

``sgd_step`` is a pure function over dicts of arrays that takes checked inputs; ``SGD`` is a thin holder of
the settings (checked once, at construction) and the momentum buffers over it, and checks the dicts it is given.
"""


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
