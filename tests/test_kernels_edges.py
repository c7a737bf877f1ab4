"""Edges of manual/kernels.py that tests/test_kernels.py passes by: erf under a caller's np.errstate that raises on
underflow (far out, exp(-y^2) underflows to 0 and erf is +-1, its limit: no error), erf of a 0-d array giving a 0-d
array, not a NumPy scalar (as its twin), and col2im on a one-pixel-wide input with a stride above 1 in height (the
columns' row width RW = OW then equals the padded width Wp without im2col's whole-row layout). Every expectation
comes from torch or math.erf."""

import math

import numpy as np
import pytest
import torch

from manual import functional as F
from manual import kernels

DTYPES = {"float64": np.float64, "float32": np.float32}


@pytest.mark.parametrize("dtype", DTYPES)
def test_erf_raises_no_underflow_when_the_caller_raises_on_every_floating_point_error(dtype):
    """Under np.errstate(all="raise") erf still returns math.erf's values: exp(-y^2) underflowing to 0 far out, and
    x^2 underflowing for a tiny x, are the limits the approximations need, not errors."""
    x = np.array([1e-30, -1e-30, 1e-20, 0.3, -1.5, 3.0, 10.0, -27.0, 40.0], DTYPES[dtype])
    with np.errstate(all="raise"):
        out = kernels.erf(x)
    expected = np.array([math.erf(v) for v in x.astype(np.float64)]).astype(dtype)
    assert out.dtype == x.dtype
    np.testing.assert_allclose(out, expected, rtol=2e-15 if dtype == "float64" else 1e-6, atol=0)
    np.testing.assert_allclose(out, torch.erf(torch.from_numpy(x)).numpy(), rtol=2e-15 if dtype == "float64" else 1e-6,
                               atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_erf_of_a_0d_array_is_a_0d_array_as_its_twins(dtype):
    """A 0-d x gives an ndarray of shape (), as erf_plain (its docstring) and torch.erf give a 0-d tensor: not a NumPy
    scalar, which a ufunc returns for 0-d inputs unless it writes into an array it is given."""
    for value in (0.25, -2.0, 9.0):  # the three ranges
        x = np.array(value, DTYPES[dtype])
        out, plain = kernels.erf(x), kernels.erf_plain(x)
        assert type(out) is type(plain) is np.ndarray and out.shape == () and out.dtype == x.dtype
        np.testing.assert_allclose(out, torch.erf(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_input_grad_of_a_one_pixel_wide_input_with_stride_2_in_height_matches_torch(dtype):
    """x (2, 3, 7, 1), a (3, 1) kernel, stride (2, 1), padding (1, 0): dx goes through col2im with RW = OW = Wp = 1,
    but the outputs' windows start two rows apart, so no tap reads one contiguous run of the padded image.
    conv2d_backward's dx, col2im's and its twin's all match torch (autograd, and fold for col2im)."""
    rng = np.random.default_rng(5)
    dt = DTYPES[dtype]
    x, w = rng.normal(size=(2, 3, 7, 1)).astype(dt), rng.normal(size=(4, 3, 3, 1)).astype(dt)
    out, cache = F.conv2d_forward(x, w, stride=(2, 1), padding=(1, 0))
    dout = rng.normal(size=out.shape).astype(dt)
    dx, _, _ = F.conv2d_backward(dout, cache)
    xt = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, torch.from_numpy(w), None, (2, 1), (1, 0))
    (expected,) = torch.autograd.grad(y, xt, torch.from_numpy(dout))
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(dx, expected.numpy(), rtol=tol, atol=tol)

    dcols = rng.normal(size=(2, 3 * 3, out.shape[2])).astype(dt)  # (N, C*KH*KW, OH*OW)
    args = (x.shape, (3, 1), (2, 1), (1, 0), (1, 1), out.shape[2:])
    folded = torch.nn.functional.fold(torch.from_numpy(dcols), (7, 1), (3, 1), 1, (1, 0), (2, 1)).numpy()
    np.testing.assert_allclose(kernels.col2im(dcols, *args), folded, rtol=tol, atol=tol)
    np.testing.assert_allclose(kernels.col2im_plain(dcols, *args), folded, rtol=tol, atol=tol)


def test_erf_in_float16_is_math_erf_rounded_on_every_finite_value():
    """float16 (max 65504) cannot hold the middle range's polynomials (inf / inf was NaN for 2.7 <= |x| <= 4 and
    1.0 from 1.74): erf computes it in float32, so every finite float16 is within one float16 ulp of math.erf
    rounded to float16 (torch.erf's float16 on CPU is further off: 1,324 normal values by more than an ulp)."""
    bits = np.arange(2 ** 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    x = bits[np.isfinite(bits)]
    got = kernels.erf(x)
    want = np.array([math.erf(v) for v in x.astype(np.float64)]).astype(np.float16)
    assert got.dtype == np.float16 and np.isfinite(got).all()
    ulp = np.spacing(np.abs(want)).astype(np.float64)
    assert (np.abs(got.astype(np.float64) - want.astype(np.float64)) <= ulp).all()
    np.testing.assert_array_equal(np.signbit(got), np.signbit(x))  # erf is odd, -0.0 included
