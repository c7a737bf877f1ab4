"""Dropout beyond the registry rows (tests/layer_cases.py): the reference applies the harness's mask, since
torch's own random draw cannot be shared with NumPy; these tests pin that doing so is torch's dropout, the
scaling and masking of F.dropout as torch defines them, for the mask torch drew itself."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from layer_cases import torch_dropout

from manual import functional as M
from netdesc import InputError


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.99, 1.0])
def test_torchs_dropout_is_x_times_its_mask_over_1_minus_p(p, dtype):
    """F.dropout under a given generator state, its mask read back from where it zeroed x: the output and the
    gradient are x * mask / (1 - p) and dout * mask / (1 - p), bit for bit (zeros at p = 1), and the manual
    pair given that mask gives the same bits."""
    torch.manual_seed(11)
    x = torch.randn(40, 30, dtype=dtype, requires_grad=True)
    dout = torch.randn(40, 30, dtype=dtype)
    y = F.dropout(x, p, training=True)
    (dx,) = torch.autograd.grad(y, x, dout)
    mask = y.detach() != 0  # x ~ N(0, 1) holds no exact zero
    expected = torch_dropout(x.detach(), mask, p)
    assert torch.equal(y.detach(), expected) and torch.equal(dx, torch_dropout(dout, mask, p))
    out, cache = M.dropout_forward(x.detach().numpy(), mask.numpy(), p)
    np.testing.assert_array_equal(out, y.detach().numpy())
    np.testing.assert_array_equal(M.dropout_backward(dout.numpy(), cache)[0], dx.numpy())
    if 0 < p < 1:
        assert 0 < mask.sum() < mask.numel()  # both kept and dropped elements were compared


def test_eval_mode_is_the_identity_as_torchs():
    x = np.random.default_rng(0).standard_normal((3, 4))
    out, cache = M.dropout_forward(x, None, 0.5)
    np.testing.assert_array_equal(out, F.dropout(torch.from_numpy(x), 0.5, training=False).numpy())
    np.testing.assert_array_equal(M.dropout_backward(x, cache)[0], x)


X = np.zeros((2, 3))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: M.dropout_forward(X, np.ones((2, 3), bool), 1.5), "p: got 1.5, needs a number in [0, 1]"),
    (lambda: M.dropout_forward(X, np.ones((2, 3), bool), -0.1), "p: got -0.1, needs a number in [0, 1]"),
    (lambda: M.dropout_forward(X, np.ones((2, 3)), 0.5),
     "mask: got dtype float64, needs a NumPy array of booleans (or 0 and 1), True where kept"),
    (lambda: M.dropout_forward(X, np.full((2, 3), 2), 0.5),
     "mask: got dtype int64, needs a NumPy array of booleans (or 0 and 1), True where kept"),
    (lambda: M.dropout_forward(X, [[1, 1, 1]], 0.5),
     "mask: got list, needs a NumPy array of booleans (or 0 and 1), True where kept"),
    (lambda: M.dropout_forward(X, np.ones((3, 2), bool), 0.5), "mask: got shape (3, 2), needs (2, 3) (the shape of x)"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call()
