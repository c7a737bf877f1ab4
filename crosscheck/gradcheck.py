"""torch.autograd.gradcheck as a fourth witness: a manual forward/backward pair run inside autograd.

``autograd_function(forward, backward)`` wraps a NumPy pair ``forward(*inputs, **kwargs) -> (out, cache)``,
``backward(dout, cache) -> tuple`` as a ``torch.autograd.Function``: its forward runs the NumPy forward and
keeps the cache on ``ctx``, its backward runs the NumPy backward. ``gradcheck_pair`` hands that function to
``torch.autograd.gradcheck`` in float64, which compares the manual backward against torch's own finite
differences of the manual forward: no torch reference layer and none of this project's comparison code
is involved. Finite differences see a kink (ReLU at 0, a max-pool tie) as a one-sided slope, so inputs
must lie further than ``eps`` (1e-6) from one.
"""

import numpy as np
import torch
from torch.autograd.gradcheck import GradcheckError

from netdesc.checks import InputError, ManualFailure

__all__ = ["GradcheckError", "autograd_function", "gradcheck_pair", "as_gradients"]


def as_gradients(grads, n_inputs, name="backward"):
    """The manual backward's result -> a tuple of exactly `n_inputs` gradients.

    A bare array counts as one gradient; gradients past `n_inputs` must be None (a bias that was left out),
    as ``torch.autograd.Function`` allows. Anything else is an InputError naming `name`.
    """
    if isinstance(grads, np.ndarray):
        grads = (grads,)
    if not isinstance(grads, (tuple, list)):
        raise InputError(f"{name}: returned {type(grads).__name__}, needs a tuple with one gradient per forward input")
    grads = tuple(grads)
    if len(grads) < n_inputs or any(g is not None for g in grads[n_inputs:]):
        raise InputError(
            f"{name}: returned {len(grads)} gradient(s), needs {n_inputs}, one per forward input "
            f"(None for an input without a gradient; extra entries only as None)"
        )
    return grads[:n_inputs]


def _to_numpy(value):
    """A tensor -> a private NumPy copy (the manual code may keep or modify it); anything else unchanged."""
    return value.detach().numpy().copy() if isinstance(value, torch.Tensor) else value


def _to_tensor(array):
    # A copy: the manual side may return a read-only view, or an array it keeps in its cache.
    return torch.from_numpy(np.array(array, copy=True))


def autograd_function(forward, backward, kwargs=None):
    """A function on tensors, (*inputs) -> out, whose forward and backward are the NumPy pair.

    Inputs that are not tensors (None for a missing bias) pass through unchanged; inputs that need no
    gradient get None whatever the manual backward returns for them. A gradient whose shape differs from
    its input's raises GradcheckError, so gradcheck reports it as a failure, not a crash.
    """
    kwargs = dict(kwargs or {})

    class ManualPair(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            out, ctx.cache = forward(*(_to_numpy(x) for x in inputs), **kwargs)
            ctx.shapes = [tuple(x.shape) if isinstance(x, torch.Tensor) else None for x in inputs]
            return _to_tensor(out)

        @staticmethod
        def backward(ctx, dout):
            grads = as_gradients(backward(_to_numpy(dout), ctx.cache), len(ctx.shapes))
            result = []
            for i, (grad, shape) in enumerate(zip(grads, ctx.shapes, strict=True)):
                if not ctx.needs_input_grad[i] or grad is None:
                    result.append(None)  # None for a differentiable input: autograd reads zeros, gradcheck fails
                    continue
                if isinstance(grad, ManualFailure):  # an adapter's finding (crosscheck.adapters): a failure
                    raise GradcheckError(f"backward: gradient {i}: {grad}")
                if np.shape(grad) != shape:
                    raise GradcheckError(f"backward: gradient {i} has shape {np.shape(grad)}, its input {shape}")
                result.append(_to_tensor(grad))
            return tuple(result)

    ManualPair.__name__ = ManualPair.__qualname__ = f"Manual[{getattr(forward, '__name__', type(forward).__name__)}]"
    return ManualPair.apply


def gradcheck_pair(forward, backward, inputs, *, kwargs=None, differentiable=None, fast_mode=False,
                   raise_exception=True, **options):
    """Run torch.autograd.gradcheck on the manual pair at `inputs` (NumPy arrays, floats in float64).

    differentiable: per input, whether gradcheck differentiates it (default: every floating input).
    options: passed to gradcheck (eps, atol, rtol, ...). -> True, or False / GradcheckError on a mismatch.
    """
    differentiable = differentiable or [np.issubdtype(np.asarray(x).dtype, np.floating) for x in inputs]
    if len(differentiable) != len(inputs):
        raise InputError(f"differentiable: got {len(differentiable)} entries, needs one per input ({len(inputs)})")
    tensors = []
    for i, (x, wanted) in enumerate(zip(inputs, differentiable, strict=True)):
        x = np.asarray(x)
        if wanted and x.dtype != np.float64:
            raise InputError(f"inputs[{i}]: got dtype {x.dtype}, needs float64 (gradcheck's finite differences)")
        tensors.append(torch.from_numpy(x.copy()).requires_grad_(bool(wanted)))
    fn = autograd_function(forward, backward, kwargs)
    return torch.autograd.gradcheck(fn, tuple(tensors), fast_mode=fast_mode, raise_exception=raise_exception,
                                    **options)
