"""More edges of manual/kernels.py that tests/test_kernels.py and tests/test_kernels_edges.py pass by: sigmoid of a
0-d array (or through manual.functional's sigmoid layer) giving a 0-d array, not a NumPy scalar or an error (its
in-place buffers are arrays, which a ufunc without ``out`` would not give for 0-d inputs); filter_gradient doing
float32 arithmetic in float32, as torch's conv does, so products past float32's range overflow there as in autograd
rather than being summed in float64; and conv keeping the images' dtype when the filter is float64, as its plain twin
does. Every expectation comes from torch or from the twins' formulas."""

import numpy as np
import pytest
import torch

from manual import functional as F
from manual import kernels

DTYPES = {"float64": np.float64, "float32": np.float32}


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_of_a_0d_array_is_a_0d_array_with_torchs_value(dtype):
    """A 0-d z gives an ndarray of shape () in z's dtype, as torch.sigmoid gives a 0-d tensor, for kernels.sigmoid
    and for the sigmoid layer built on it (F.sigmoid_forward and its backward); z itself is left as it was."""
    for value in (-1000.0, -2.5, 0.0, 0.75, 40.0):
        z = np.array(value, DTYPES[dtype])
        expected = torch.sigmoid(torch.from_numpy(z)).numpy()
        s = kernels.sigmoid(z)  # exp(1000) overflowing to inf is no error there: 1 / inf = 0 is the answer
        out, cache = F.sigmoid_forward(z)
        for got in (s, out):
            assert type(got) is np.ndarray and got.shape == () and got.dtype == z.dtype
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
        assert z == np.array(value, DTYPES[dtype])
        zt = torch.tensor(z, requires_grad=True)
        (dz_expected,) = torch.autograd.grad(torch.sigmoid(zt), zt, torch.tensor(np.array(0.5, z.dtype)))
        (dz,) = F.sigmoid_backward(np.array(0.5, z.dtype), cache)
        assert dz.shape == () and dz.dtype == z.dtype
        np.testing.assert_allclose(dz, dz_expected.numpy(), rtol=1e-6, atol=1e-30)


def test_filter_gradient_in_float32_overflows_where_torchs_float32_conv_does():
    """X = 2^64 everywhere (1x3) and dE/dZ1 = (2^64, -2^64): each df[0, q] = 2^64*2^64 - 2^64*2^64 is exactly 0,
    but the products, 2^128, are past float32's max (3.4e38 < 2^128), though exact in float64. In float32 torch's
    conv backward and the plain twin overflow to a non-finite df, and so does filter_gradient, whose arithmetic stays
    in X's dtype (summed in float64 and then rounded it would give 0, hiding what autograd shows); in float64 all
    three give the exact 0."""
    for dtype in (np.float32, np.float64):
        X = np.full((1, 1, 3), 2.0 ** 64, dtype)
        dE_dZ1 = np.array([[[2.0 ** 64, -2.0 ** 64]]], dtype)
        f = torch.zeros((1, 1, 1, 2), dtype=torch.from_numpy(X).dtype, requires_grad=True)
        Z1 = torch.nn.functional.conv2d(torch.from_numpy(X)[:, None], f)
        (expected,) = torch.autograd.grad(Z1, f, torch.from_numpy(dE_dZ1)[:, None])
        expected = expected.numpy()[0, 0]
        with np.errstate(over="ignore", invalid="ignore"):
            df, plain = kernels.filter_gradient(X, dE_dZ1), kernels.filter_gradient_plain(X, dE_dZ1)
        assert df.dtype == dtype and df.shape == (1, 2)
        if dtype == np.float32:
            assert not np.isfinite(expected).any() and not np.isfinite(plain).any()
            assert not np.isfinite(df).any(), f"float32 filter_gradient gave {df}, torch {expected}"
        else:
            np.testing.assert_array_equal(expected, np.zeros((1, 2)))
            np.testing.assert_array_equal(plain, np.zeros((1, 2)))
            np.testing.assert_array_equal(df, np.zeros((1, 2)))


def test_conv_keeps_the_images_dtype_under_a_float64_filter_as_its_twin():
    """Z1 has X's dtype ("every function keeps its dtype"): float32 images with a float64 filter give a float32 Z1,
    as conv_plain's Z1 (zeros in X's dtype, added into) does, with torch's float64 values rounded to float32."""
    rng = np.random.default_rng(3)
    X, f = rng.normal(size=(2, 5, 6)).astype(np.float32), rng.normal(size=(2, 3))
    Z1 = kernels.conv(X, f)
    plain = kernels.conv_plain(X, f)
    expected = torch.nn.functional.conv2d(torch.from_numpy(X.astype(np.float64))[:, None],
                                          torch.from_numpy(f)[None, None])[:, 0].numpy()
    assert plain.dtype == np.float32 and Z1.dtype == np.float32 and Z1.shape == (2, 4, 4)
    np.testing.assert_allclose(Z1, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(plain, expected, rtol=1e-5, atol=1e-5)
