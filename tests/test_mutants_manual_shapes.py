"""Edges of the manual group that the rest of the suite leaves open (mutation review M5).

- Pooling's half-kernel padding rule is integer arithmetic, exact for any int: with a kernel of 2**54 + 3 (an odd
  size whose half, 2**53 + 1.5, is not a float; true division rounds it up to 2**53 + 2), a padding of 2**53 + 2
  is one more than kernel // 2 = 2**53 + 1 and is refused, on the height axis and on the width axis.
- conv2d's check that w has C / groups input channels is exact too: x with 2**53 + 1 channels and w with 2**53
  (zero-size arrays, no memory) are refused, though float(2**53 + 1) == 2**53.
- kernels.col2im returns the crop of the padded grid (N, C, H + 2 ph, W + 2 pw) it added onto, as col2im_plain
  does: its values are torch's fold, its strides those of that grid (a grid padded taller or wider gives the same
  values with other strides).
- flatten takes a 2-D input (N, D), as torch.flatten(x, 1) does: it comes back unchanged, and so does its gradient.
"""

import numpy as np
import pytest
import torch

from manual import functional as F
from manual import kernels
from netdesc import InputError

# --- pooling: padding at most kernel // 2, in exact integers ------------------------------------------------------

BIG_KERNEL = 2**54 + 3       # kernel // 2 = 2**53 + 1 exactly
OVER_HALF = 2**53 + 2        # one past it; float(BIG_KERNEL) / 2 == OVER_HALF, so only integer arithmetic refuses it


@pytest.mark.parametrize("forward", [F.max_pool2d_forward, F.avg_pool2d_forward], ids=["max", "avg"])
def test_pooling_refuses_a_row_padding_one_past_half_a_huge_odd_kernel(forward):
    x = np.zeros((1, 1, 1, 1))
    with pytest.raises(InputError, match=r"padding: got \(9007199254740994, 0\), needs at most half the kernel"):
        forward(x, (BIG_KERNEL, 1), padding=(OVER_HALF, 0))


@pytest.mark.parametrize("forward", [F.max_pool2d_forward, F.avg_pool2d_forward], ids=["max", "avg"])
def test_pooling_refuses_a_column_padding_one_past_half_a_huge_odd_kernel(forward):
    x = np.zeros((1, 1, 1, 1))
    with pytest.raises(InputError, match=r"padding: got \(0, 9007199254740994\), needs at most half the kernel"):
        forward(x, (1, BIG_KERNEL), padding=(0, OVER_HALF))


# --- conv2d: the input channels of w, C // groups, in exact integers ------------------------------------------------

def test_conv2d_refuses_a_weight_one_channel_short_of_a_huge_input():
    x = np.empty((0, 2**53 + 1, 1, 1))  # no samples: no memory, however many channels
    w = np.empty((0, 2**53, 1, 1))       # 2**53 != 2**53 + 1, though the float of 2**53 + 1 is 2**53
    with pytest.raises(InputError, match=r"w: got 9007199254740992 input channels .* needs 9007199254740993"):
        F.conv2d_forward(x, w)


# --- flatten: a 2-D input is already flat -----------------------------------------------------------------------

def test_flatten_takes_a_2d_input_and_returns_it_as_torch_does():
    x = np.arange(6.0).reshape(2, 3)
    out, cache = F.flatten_forward(x)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.flatten(tx, 1)
    np.testing.assert_array_equal(out, expected.detach().numpy())
    dout = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.5]])
    expected.backward(torch.tensor(dout))
    (dx,) = F.flatten_backward(dout, cache)
    np.testing.assert_array_equal(dx, tx.grad.numpy())


# --- col2im: the crop of the (H + 2 ph, W + 2 pw) grid ----------------------------------------------------------

def test_col2im_returns_the_crop_of_the_padded_grid_it_added_onto():
    """x (2, 3, 6, 5), kernel (3, 2), stride (2, 1), padding (1, 2): OH = (6 + 2 - 2 - 1) // 2 + 1 = 3,
    OW = (5 + 4 - 1 - 1) // 1 + 1 = 8; the padded grid is (8, 9), so dx[n, c, h, w] sits at
    ((n * 3 + c) * 8 + h + 1) * 9 + w + 2 float64s of it: strides (3*8*9*8, 8*9*8, 9*8, 8) bytes."""
    x_shape, kernel, stride, padding = (2, 3, 6, 5), (3, 2), (2, 1), (1, 2)
    dcols = np.random.default_rng(0).standard_normal((2, 3 * 3 * 2, 3 * 8))
    dx = kernels.col2im(dcols, x_shape, kernel, stride, padding, (1, 1), (3, 8))
    folded = torch.nn.functional.fold(torch.from_numpy(dcols), (6, 5), kernel_size=kernel, stride=stride,
                                      padding=padding).numpy()
    np.testing.assert_allclose(dx, folded, rtol=1e-12, atol=1e-12)
    assert dx.strides == (3 * 8 * 9 * 8, 8 * 9 * 8, 9 * 8, 8)
