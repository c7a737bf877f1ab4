"""Edges of layer norm's normalized_shape check and of pooling's padding limit that the broader suites pass by: an
empty normalized_shape, a float dim that compares equal to x's own, a dim of 0 on an empty x, and the padding limit
of a non-square pooling kernel, checked per axis against that axis's own kernel size (the random stacks draw square
kernels only). Expectations come from torch; InputError messages are asserted whole."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from manual import functional as F
from netdesc import InputError


def _raises(message, call, *args, **kwargs):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call(*args, **kwargs)


# --- layer norm: normalized_shape ------------------------------------------------------------------------------------

def test_layer_norm_rejects_an_empty_normalized_shape():
    """normalized_shape () names no axis to normalize over: torch refuses it, and so does layer_norm_forward (a
    normalization over no axes would be x - x = 0 everywhere)."""
    x = np.arange(8.0).reshape(2, 4)
    with pytest.raises(RuntimeError, match="at least 1-dimensional"):
        TF.layer_norm(torch.tensor(x), ())
    _raises("normalized_shape: got (), needs the trailing dims of one sample of x (shape (2, 4), the batch axis "
            "first)", F.layer_norm_forward, x, normalized_shape=())


def test_layer_norm_rejects_a_float_dim_even_when_it_equals_xs():
    """(4.0,) == (4,) in Python, so only the integer check tells it from x's trailing dim; torch refuses a float
    element of normalized_shape too."""
    x = np.arange(8.0).reshape(2, 4)
    with pytest.raises(TypeError, match="must be tuple of ints"):
        TF.layer_norm(torch.tensor(x), (4.0,))
    _raises("normalized_shape: got (4.0,), needs the trailing dims of one sample of x (shape (2, 4), the batch axis "
            "first)", F.layer_norm_forward, x, normalized_shape=(4.0,))


def test_layer_norm_rejects_a_dim_of_zero_even_when_x_is_empty_there():
    """A sample of no elements has no mean or variance: normalized_shape needs dims >= 1, also where x's own
    trailing dim is 0 and the shapes would match (x itself may be empty; check_float_array takes it)."""
    x = np.zeros((2, 0))
    _raises("normalized_shape: got (0,), needs the trailing dims of one sample of x (shape (2, 0), the batch axis "
            "first)", F.layer_norm_forward, x, normalized_shape=(0,))


# --- pooling: padding at most half the kernel, per axis --------------------------------------------------------------

POOLS = [(F.max_pool2d_forward, TF.max_pool2d), (F.avg_pool2d_forward, TF.avg_pool2d)]


@pytest.mark.parametrize(("manual", "reference"), POOLS, ids=["max", "avg"])
def test_a_row_padding_up_to_half_the_kernel_height_is_taken_as_torch(manual, reference):
    """kernel (3, 1), padding (1, 0): the row padding 1 is half the kernel height 3, allowed however narrow the
    kernel is; the output is torch's."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    out, _ = manual(x, (3, 1), stride=1, padding=(1, 0))
    expected = reference(torch.tensor(x), (3, 1), stride=1, padding=(1, 0)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("manual", "reference"), POOLS, ids=["max", "avg"])
def test_a_row_padding_over_half_the_kernel_height_is_refused_as_torch(manual, reference):
    """kernel (1, 3), padding (1, 0): the row padding 1 is more than half the kernel height 1, though not more than
    half its width 3; torch refuses it, and so does the manual pool, naming both pairs."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        reference(torch.tensor(x), (1, 3), stride=1, padding=(1, 0))
    _raises("padding: got (1, 0), needs at most half the kernel size (1, 3) (torch's rule)",
            manual, x, (1, 3), stride=1, padding=(1, 0))
