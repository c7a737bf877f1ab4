"""Edges of conv2d's output size, im2col's layout switch and softmax cross-entropy's ignore_index that the broader
suites pass by: the empty-output message of a conv whose padding and dilation differ between height and width (each
number of it per axis, as torch's own refusal gives them), im2col's columns on either side of WHOLE_ROWS_BELOW
(output rows of exactly WHOLE_ROWS_BELOW are copied window by window, RW = OW), and the int64 range of
softmax_cross_entropy_forward's ignore_index (any int64 taken, as torch's; below it refused). Every expectation
comes from torch or is a whole InputError message."""

import re

import numpy as np
import pytest
import torch

from manual import functional as M
from manual import kernels
from netdesc import InputError


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# --- conv2d's empty output -----------------------------------------------------------------------------------------

def test_conv2d_empty_output_message_gives_each_axis_its_own_padding_and_dilation():
    """Padding (1, 2) and dilation (3, 2) on a 4x4 input with a 3x2 kernel: the padded size is (4 + 2*1, 4 + 2*2) and
    the dilated kernel (2*3 + 1, 1*2 + 1), height empty; torch refuses it naming the same two sizes."""
    x, w = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 2))
    with pytest.raises(RuntimeError) as refused:
        torch.nn.functional.conv2d(_t(x), _t(w), padding=(1, 2), dilation=(3, 2))
    sizes = re.search(r"input size per channel: \((\d+) x (\d+)\)\. Kernel size: \((\d+) x (\d+)\)", str(refused.value))
    assert sizes is not None and sizes.groups() == ("6", "8", "7", "3")
    with pytest.raises(InputError) as raised:
        M.conv2d_forward(x, w, padding=(1, 2), dilation=(3, 2))
    assert str(raised.value) == ("x: got spatial size (4, 4) (padded (6, 8)) and an effective kernel of (7, 3), which "
                                 "gives an empty 0x6 output; needs a padded input at least as large as the (dilated) "
                                 "kernel")


# --- im2col at WHOLE_ROWS_BELOW ------------------------------------------------------------------------------------

@pytest.mark.parametrize("below", [1, 0], ids=["one-below", "exactly"])
def test_im2col_switches_to_the_window_copy_at_exactly_whole_rows_below(below):
    """Stride 1 with output rows of WHOLE_ROWS_BELOW - 1 reads whole padded rows (RW = Wp); rows of exactly
    WHOLE_ROWS_BELOW are copied window by window (RW = OW), as im2col's docstring says. Either way the columns
    ow < OW are torch's unfold."""
    OW = kernels.WHOLE_ROWS_BELOW - below
    kernel, padding, dilation = (2, 3), (1, 1), (1, 2)
    W = OW - 2 * padding[1] + dilation[1] * (kernel[1] - 1)  # so that the output rows are OW wide
    x = np.random.default_rng(0).standard_normal((2, 3, 4, W))
    unfolded = torch.nn.functional.unfold(_t(x), kernel, dilation=dilation, padding=padding).numpy()
    OH = unfolded.shape[2] // OW
    assert unfolded.shape[2] == OH * OW
    cols, RW = kernels.im2col(x, kernel, (1, 1), padding, dilation, (OH, OW))
    assert RW == (W + 2 * padding[1] if below else OW)
    assert cols.shape == (2, 3 * 6, OH * RW) and np.isfinite(cols).all()
    np.testing.assert_array_equal(cols.reshape(2, 18, OH, RW)[..., :OW], unfolded.reshape(2, 18, OH, OW))


# --- softmax cross-entropy's ignore_index --------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [False, True], ids=["rows", "steps"])
@pytest.mark.parametrize("ignore_index", [-127, -1000, -(2 ** 63)])
def test_softmax_cross_entropy_takes_any_int64_ignore_index(ignore_index, steps):
    """Any int64 is a valid ignore_index, as torch's, down to -2**63; the label equal to it counts for nothing."""
    rng = np.random.default_rng(0)
    if steps:
        logits, labels = rng.standard_normal((2, 3, 4)), np.array([[0, ignore_index, 3], [ignore_index, 2, 1]])
        expected = torch.nn.functional.cross_entropy(_t(logits).transpose(1, 2), _t(labels), ignore_index=ignore_index)
    else:
        logits, labels = rng.standard_normal((3, 2)), np.array([0, ignore_index, 1])
        expected = torch.nn.functional.cross_entropy(_t(logits), _t(labels), ignore_index=ignore_index)
    out, _ = M.softmax_cross_entropy_forward(logits, labels, ignore_index=ignore_index)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("ignore_index", [-(2 ** 63) - 1, -(2 ** 64)])
def test_softmax_cross_entropy_rejects_an_ignore_index_below_int64(ignore_index):
    """Below int64 torch cannot take the ignore_index either; softmax_cross_entropy_forward says so, whole."""
    logits, labels = np.random.default_rng(0).standard_normal((3, 2)), np.array([0, 1, 1])
    with pytest.raises(ValueError):
        torch.nn.functional.cross_entropy(_t(logits), _t(labels), ignore_index=ignore_index)
    with pytest.raises(InputError) as raised:
        M.softmax_cross_entropy_forward(logits, labels, ignore_index=ignore_index)
    assert str(raised.value) == f"ignore_index: got {ignore_index}, needs an integer"
