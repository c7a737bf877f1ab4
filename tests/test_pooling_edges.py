"""Edges of max_pool2d and avg_pool2d's argument checks that the rest of the suite leaves open: a negative padding
and a padding of three values are named "padding" in the message, the half-kernel rule is checked per axis (a
height padding above half the kernel height is rejected even when the width padding is 0), and a width padding up to
half a kernel wider than it is tall (and the transpose) is accepted and pools as torch does. Messages are asserted
whole: they are the product."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from manual import functional as F
from netdesc import InputError

POOLS = [pytest.param(F.max_pool2d_forward, F.max_pool2d_backward, TF.max_pool2d, id="max"),
         pytest.param(F.avg_pool2d_forward, F.avg_pool2d_backward, TF.avg_pool2d, id="avg")]
FORWARDS = [pytest.param(F.max_pool2d_forward, TF.max_pool2d, id="max"),
            pytest.param(F.avg_pool2d_forward, TF.avg_pool2d, id="avg")]


def _rejected_by_both(forward, torch_pool, message, kernel, padding):
    """torch refuses the call (a RuntimeError) and manual gives an InputError with exactly `message`."""
    x = np.zeros((1, 2, 4, 5))
    with pytest.raises(RuntimeError):
        torch_pool(torch.from_numpy(x), kernel, 1, padding)
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        forward(x, kernel, 1, padding)


@pytest.mark.parametrize(("forward", "torch_pool"), FORWARDS)
@pytest.mark.parametrize(("padding", "message"), [
    (-1, "padding: got -1, needs an integer >= 0"),
    ((0, -1), "padding: got -1, needs an integer >= 0"),
    ((1, 1, 1), "padding: got (1, 1, 1), needs an int or an (h, w) pair of ints >= 0"),
], ids=["negative", "negative-width", "three-values"])
def test_pooling_names_padding_when_it_is_no_pair_of_non_negative_ints(forward, torch_pool, padding, message):
    """A padding torch refuses as no pair of non-negative ints is named "padding" in the message."""
    _rejected_by_both(forward, torch_pool, message, (2, 2), padding)


@pytest.mark.parametrize(("forward", "torch_pool"), FORWARDS)
def test_pooling_checks_the_height_padding_against_the_kernel_height(forward, torch_pool):
    """Kernel (2, 4), padding (2, 0): the height padding 2 exceeds 2 // 2 though the width padding is 0 and 2 is
    within 4 // 2; torch refuses it."""
    _rejected_by_both(forward, torch_pool,
                      "padding: got (2, 0), needs at most half the kernel size (2, 4) (torch's rule)", (2, 4), (2, 0))


@pytest.mark.parametrize(("forward", "backward", "torch_pool"), POOLS)
@pytest.mark.parametrize(("kernel", "padding"), [((1, 4), (0, 2)), ((4, 1), (2, 0))], ids=["wide", "tall"])
def test_pooling_accepts_a_padding_of_half_the_kernel_on_its_own_axis(forward, backward, torch_pool, kernel, padding):
    """Kernel (1, 4) with padding (0, 2) (and the transpose) is within torch's rule on each axis, though the padding
    exceeds half the kernel's other side: forward and backward match torch's autograd."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6))
    out, cache = forward(x, kernel, 1, padding)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch_pool(tx, kernel, 1, padding)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    expected.backward(torch.from_numpy(dout))
    (dx,) = backward(dout, cache)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
