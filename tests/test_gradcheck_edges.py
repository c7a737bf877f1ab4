"""Edges of crosscheck.gradcheck that test_gradcheck.py leaves open: the wrapper hands torch private, writable
copies of what the manual side returns (a read-only output or gradient, a NumPy scalar), gradcheck_pair passes its
options (atol) on to torch.autograd.gradcheck, and the wrapped Function is named after the manual forward (its
__name__, or its type's name for a callable without one)."""

import functools
import warnings

import numpy as np
import torch

from crosscheck.gradcheck import autograd_function, gradcheck_pair
from manual import functional as M


def _read_only_tanh_forward(x):
    out = np.tanh(x)
    out.flags.writeable = False  # the manual side keeps its output as its cache and guards it
    return out, out


def _tanh_forward(x):
    out = np.tanh(x)
    return out, out  # the output is also the cache


def _tanh_backward(dout, out):
    return dout * (1 - out**2)


def _sum_forward(x):
    return x.sum(), x.shape  # a NumPy scalar, not an array


def _broadcast_backward(dout, shape):
    return np.broadcast_to(dout, shape)  # a read-only view


def test_a_read_only_output_and_gradient_reach_torch_as_writable_copies():
    """torch.from_numpy warns on a non-writable array; the wrapper copies first, so neither a read-only output nor
    a read-only gradient (a broadcast view) warns, and gradcheck passes both correct pairs."""
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradcheck_pair(_read_only_tanh_forward, _tanh_backward, [x])
        assert gradcheck_pair(_sum_forward, _broadcast_backward, [x])


def test_an_output_changed_in_place_leaves_the_manual_cache_alone():
    """The output tensor is a copy: scaling it in place does not change the cache the manual backward reads, so
    the gradient is still 1 - tanh(x)^2 (times the upstream 2 of the in-place scaling)."""
    x = np.array([0.5, -0.25])
    tx = torch.from_numpy(x.copy()).requires_grad_()
    out = autograd_function(_tanh_forward, _tanh_backward)(tx)
    out.mul_(2.0)
    (dx,) = torch.autograd.grad(out.sum(), tx)
    np.testing.assert_allclose(dx.numpy(), 2.0 * (1 - np.tanh(x) ** 2), rtol=1e-12)


def test_gradcheck_pair_passes_its_options_to_torch_gradcheck():
    """A backward 1% off: tanh' <= 1, so the error is at most 0.01 -- within atol=0.1 (gradcheck's test is
    |analytical - numerical| <= atol + rtol |numerical|), outside the default atol=1e-5."""
    x = np.array([0.1, -0.4, 0.7])

    def off_by_one_percent(dout, cache):
        return tuple(g * 1.01 for g in M.tanh_backward(dout, cache))

    assert gradcheck_pair(M.tanh_forward, off_by_one_percent, [x], atol=0.1)
    assert gradcheck_pair(M.tanh_forward, off_by_one_percent, [x], raise_exception=False) is False


def test_the_function_is_named_after_the_manual_forward():
    """Manual[<forward's __name__>], or the type's name for a callable that has none (a functools.partial)."""
    fn = autograd_function(M.tanh_forward, M.tanh_backward)
    assert fn.__self__.__name__ == fn.__self__.__qualname__ == "Manual[tanh_forward]"
    partial = functools.partial(M.leaky_relu_forward, negative_slope=0.1)
    assert not hasattr(partial, "__name__")
    assert autograd_function(partial, M.leaky_relu_backward).__self__.__name__ == "Manual[partial]"
