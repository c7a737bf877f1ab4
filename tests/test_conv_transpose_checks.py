"""conv_transpose2d_forward's input checks, each message asserted whole: the argument it names, what it got and
what it needs (the output_padding rule checked against torch, which enforces the same one)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from manual import functional as M
from netdesc import InputError

X = np.zeros((2, 3, 4, 5))  # N=2, C=3, H=4, W=5
W = np.zeros((3, 2, 3, 3))  # C=3 input channels first, F=2 output channels, 3x3 taps

BAD_TRANSPOSED = [
    ("x-3d", (X[0], W), {}, "x: got 3-D array of shape (3, 4, 5), needs 4-D"),
    ("mixed-dtypes", (X, W.astype(np.float32)), {},
     "mixed dtypes: got x float64, w float32, needs one dtype (all float32 or all float64)"),
    ("b-shape", (X, W, np.zeros(3)), {}, "b: got shape (3,), needs (2,) (one bias per output channel of w)"),
    ("stride-0", (X, W), {"stride": 0}, "stride: got 0, needs an integer >= 1"),
    ("stride-triple", (X, W), {"stride": (1, 1, 1)},
     "stride: got (1, 1, 1), needs an int or an (h, w) pair of ints >= 1"),
    ("padding-negative", (X, W), {"padding": (0, -1)}, "padding: got -1, needs an integer >= 0"),
    ("dilation-0", (X, W), {"dilation": [1, 0]}, "dilation: got 0, needs an integer >= 1"),
    ("output-padding-negative", (X, W), {"output_padding": -1}, "output_padding: got -1, needs an integer >= 0"),
    # equal to both the stride and the dilation: torch's rule needs it smaller than one of them
    ("output-padding-equal", (X, W), {"output_padding": 1},
     "output_padding: got (1, 1), needs each smaller than the stride (1, 1) or the dilation (1, 1) (torch's rule)"),
    ("output-padding-equal-2", (X, W), {"output_padding": (0, 2), "stride": 2, "dilation": 2},
     "output_padding: got (0, 2), needs each smaller than the stride (2, 2) or the dilation (2, 2) (torch's rule)"),
    # OH = (4 - 1)*1 - 2*3 + 1*(3 - 1) + 0 + 1 = 0 while OW = 4 + 2 + 1 = 7: one empty axis is enough
    ("empty-height", (X, W), {"padding": (3, 0)},
     "padding: got (3, 0), which gives an empty 0x7 output; needs (H - 1)*stride + dilation*(KH - 1) + "
     "output_padding + 1 > 2*padding"),
    # OH = 3 + 2 + 1 = 6 while OW = (5 - 1) - 2*4 + 2 + 1 = -1
    ("empty-width", (X, W), {"padding": (0, 4)},
     "padding: got (0, 4), which gives an empty 6x-1 output; needs (H - 1)*stride + dilation*(KH - 1) + "
     "output_padding + 1 > 2*padding"),
]


@pytest.mark.parametrize(("args", "kwargs", "message"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_TRANSPOSED])
def test_conv_transpose2d_forward_rejects_bad_input_with_its_whole_message(args, kwargs, message):
    with pytest.raises(InputError) as raised:
        M.conv_transpose2d_forward(*args, **kwargs)
    assert str(raised.value) == message


@pytest.mark.parametrize(("output_padding", "stride", "dilation", "accepted"), [
    (1, 1, 1, False), ((0, 2), 2, 2, False), ((1, 0), (1, 2), (2, 1), True), (1, 2, 1, True), (1, 1, 2, True),
])
def test_conv_transpose2d_output_padding_rule_is_torchs(output_padding, stride, dilation, accepted):
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=X.shape), rng.normal(size=W.shape)
    kwargs = {"stride": stride, "output_padding": output_padding, "dilation": dilation}
    try:
        expected = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), **kwargs).numpy()
    except RuntimeError:
        expected = None
    assert (expected is not None) == accepted  # torch agrees with the case's label
    if not accepted:
        with pytest.raises(InputError, match=r"^output_padding: got "):
            M.conv_transpose2d_forward(x, w, **kwargs)
        return
    out, _ = M.conv_transpose2d_forward(x, w, **kwargs)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_forward_names_a_bias_of_the_wrong_length_whole(groups):
    """conv2d_forward's bias check, as conv_transpose2d's: one bias per output channel of w, said in the message;
    torch refuses the same bias."""
    x, w, b = np.zeros((2, 4, 5, 5)), np.zeros((2, 4 // groups, 3, 3)), np.zeros(3)
    with pytest.raises(RuntimeError):
        F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), groups=groups)
    with pytest.raises(InputError) as raised:
        M.conv2d_forward(x, w, b, groups=groups)
    assert str(raised.value) == "b: got shape (3,), needs (2,) (one bias per output channel of w)"
