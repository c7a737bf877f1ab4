"""manual/kernels.py: each fast operation equals its plain twin, and matches torch, over shapes and dtypes (1x1
kernels, a kernel as large as the input, a 1x1 input, non-square inputs and kernels, sigmoid at +-1000)."""

import numpy as np
import pytest
import torch

from crosscheck.compare import assert_close
from manual import kernels

DTYPES = {"float64": np.float64, "float32": np.float32}
# (X's shape (N, H, W), the filter's (KH, KW))
SHAPES = [((2, 6, 5), (3, 2)), ((1, 4, 4), (1, 1)), ((3, 4, 7), (4, 7)), ((2, 1, 1), (1, 1)), ((1, 8, 8), (3, 3)),
          ((4, 9, 14), (2, 5)), ((3, 5, 3), (5, 1))]
CASES = [pytest.param(x, k, dtype, seed, id=f"{'x'.join(map(str, x))}-k{'x'.join(map(str, k))}-{dtype}-seed{seed}")
         for x, k in SHAPES for dtype in DTYPES for seed in range(2)]


def _draw(rng, dtype, *shapes):
    return [rng.normal(size=s).astype(DTYPES[dtype]) for s in shapes]


def _out_shape(x, k):
    return (x[0], x[1] - k[0] + 1, x[2] - k[1] + 1)


@pytest.mark.parametrize(("x", "k", "dtype", "seed"), CASES)
def test_conv_equals_its_plain_twin(x, k, dtype, seed):
    X, f = _draw(np.random.default_rng(seed), dtype, x, k)
    Z1 = kernels.conv(X, f)
    assert Z1.dtype == X.dtype and Z1.shape == _out_shape(x, k)
    assert_close(Z1, kernels.conv_plain(X, f), "conv", f"{x}-{k}", dtype)


@pytest.mark.parametrize(("x", "k", "dtype", "seed"), CASES)
def test_filter_gradient_equals_its_plain_twin(x, k, dtype, seed):
    X, dE_dZ1 = _draw(np.random.default_rng(seed), dtype, x, _out_shape(x, k))
    dE_df = kernels.filter_gradient(X, dE_dZ1)
    assert dE_df.dtype == X.dtype and dE_df.shape == k
    assert_close(dE_df, kernels.filter_gradient_plain(X, dE_dZ1), "filter_gradient", f"{x}-{k}", dtype)
    # and it is dZ1/df, the patches, weighted by dE/dZ1 and summed: the chain rule's product, term by term
    assert_close(dE_df, np.tensordot(dE_dZ1, kernels.patches(X, k), 3), "dE/dZ1 . dZ1/df", f"{x}-{k}", dtype)


@pytest.mark.parametrize(("x", "k", "dtype", "seed"), CASES)
def test_patches_equal_their_plain_twin(x, k, dtype, seed):
    (X,) = _draw(np.random.default_rng(seed), dtype, x)
    view = kernels.patches(X, k)
    plain = kernels.patches_plain(X, k)
    np.testing.assert_array_equal(view, plain)
    assert view.dtype == X.dtype and not view.flags.writeable and np.shares_memory(view, X)
    assert plain.dtype == X.dtype  # the twin keeps the dtype too (float32 values compare equal as float64)


def test_patches_of_a_non_contiguous_X():
    X = np.arange(60.0).reshape(3, 4, 5).transpose(0, 2, 1)  # (3, 5, 4), not contiguous
    np.testing.assert_array_equal(kernels.patches(X, (2, 3)), kernels.patches_plain(X, (2, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_equals_its_plain_twin(dtype):
    rng = np.random.default_rng(0)
    z = np.concatenate([[-1000.0, -800.0, -100.0, -1e-8, -0.0, 0.0, 1e-8, 100.0, 800.0, 1000.0],
                        rng.normal(scale=5, size=200)]).astype(DTYPES[dtype])
    # overflow, divide by zero or an invalid value would raise here (underflow to 0 is the right answer)
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        s = kernels.sigmoid(z)
    plain = kernels.sigmoid_plain(z)
    assert s.dtype == z.dtype and plain.dtype == z.dtype
    assert_close(s, plain, "sigmoid", "|z| up to 1000", dtype)
    np.testing.assert_array_equal(s[z >= 0], plain[z >= 0])  # the same formula there
    assert s[0] == 0.0 and s[9] == 1.0 and s[5] == 0.5 and plain[0] == 0.0 and plain[9] == 1.0


# --- the same operations against torch --------------------------------------------------------------------

@pytest.mark.parametrize(("x", "k", "dtype", "seed"), CASES)
def test_conv_and_its_filter_gradient_match_torch(x, k, dtype, seed):
    rng = np.random.default_rng(seed)
    X, f = _draw(rng, dtype, x, k)
    tf = torch.tensor(f, requires_grad=True)
    Z1 = torch.nn.functional.conv2d(torch.from_numpy(X)[:, None], tf[None, None])[:, 0]
    assert_close(kernels.conv(X, f), Z1.detach().numpy(), "conv", f"{x}-{k}", dtype)
    (dE_dZ1,) = _draw(rng, dtype, Z1.shape)  # a random upstream gradient: a forgotten factor cannot pass
    (df,) = torch.autograd.grad(Z1, tf, torch.from_numpy(dE_dZ1))
    assert_close(kernels.filter_gradient(X, dE_dZ1), df.numpy(), "filter_gradient", f"{x}-{k}", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_matches_torch(dtype):
    z = np.random.default_rng(1).normal(scale=10, size=(3, 4, 5)).astype(DTYPES[dtype])
    assert_close(kernels.sigmoid(z), torch.sigmoid(torch.from_numpy(z)).numpy(), "sigmoid", "", dtype)


# --- erf (gelu), scatter_add_rows (embedding), matmul_layout (the recurrent layers) ------------------------------

# the ranges' edges (0.46875 and 4), both signs, -0.0, tiny and huge values, infinities; then draws at several scales
ERF_EDGES = [0.0, -0.0, 1e-300, -1e-300, 1e-8, 0.46875, -0.46875, 0.4687501, 4.0, -4.0, 4.0000001, 5.9, -6.0, 27.0,
             -27.0, 1e300, np.inf, -np.inf]


@pytest.mark.parametrize("dtype", DTYPES)
def test_erf_equals_its_plain_twin(dtype):
    rng = np.random.default_rng(0)
    with np.errstate(over="ignore"):  # 1e300 in float32 is inf, an edge too
        x = np.concatenate([ERF_EDGES, *(rng.normal(scale=s, size=2000) for s in (0.3, 1, 3, 10))]).astype(dtype)
    fast, plain = kernels.erf(x), kernels.erf_plain(x)
    assert fast.dtype == plain.dtype == x.dtype and fast.shape == x.shape
    # Cody's approximations are exact to float64 rounding: a few ulps of math.erf at most (6e-16 measured); float32:
    # the same approximations in float32 arithmetic, a few float32 ulps (3.6e-7 measured)
    np.testing.assert_allclose(fast, plain, rtol=2e-15 if dtype == "float64" else 1e-6, atol=0)
    assert np.array_equal(np.signbit(fast), np.signbit(x))  # erf is odd, -0.0 included
    assert np.isnan(kernels.erf(np.array([np.nan], dtype))).all()
    for erf in kernels.erf, kernels.erf_plain:  # a 0-d array stays one, in its dtype, and the twins agree on it
        half = erf(np.array(0.5, dtype))
        assert half.shape == () and half.dtype == dtype and half == erf(np.array([0.5], dtype))[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_erf_matches_torch(dtype):
    x = np.random.default_rng(1).normal(scale=3, size=(3, 4, 5)).astype(DTYPES[dtype])
    assert_close(kernels.erf(x), torch.erf(torch.from_numpy(x)).numpy(), "erf", "", dtype)


# (indices' shape, rows): repeated indices (few rows), every row once, a sequence batch (N, T), nothing to add
SCATTER_CASES = [((7,), 3), ((5,), 5), ((4, 6), 10), ((0,), 4)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "rows"), SCATTER_CASES)
def test_scatter_add_rows_equals_its_plain_twin_and_torch(shape, rows, dtype):
    rng = np.random.default_rng(2)
    indices = rng.integers(0, rows, size=shape)
    (values,) = _draw(rng, dtype, (*shape, 3))
    out = kernels.scatter_add_rows(indices, values, rows)
    assert out.shape == (rows, 3) and out.dtype == values.dtype
    assert_close(out, kernels.scatter_add_rows_plain(indices, values, rows), "scatter_add_rows", str(shape), dtype)
    expected = torch.zeros(rows, 3, dtype=torch.from_numpy(values).dtype).index_add_(
        0, torch.from_numpy(indices.reshape(-1)), torch.from_numpy(values.reshape(-1, 3)))
    assert_close(out, expected.numpy(), "scatter_add_rows", str(shape), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_layout_equals_its_plain_twin(dtype):
    x, w = _draw(np.random.default_rng(3), dtype, (5, 4), (8, 4))
    laid_out = kernels.matmul_layout(w)
    np.testing.assert_array_equal(laid_out, kernels.matmul_layout_plain(w))
    assert laid_out.shape == w.shape and laid_out.dtype == w.dtype and laid_out.T.flags.c_contiguous
    assert_close(x @ laid_out.T, x @ w.T, "x @ w.T", "", dtype)


# --- conv2d's im2col and col2im (manual/functional.py) -----------------------------------------------------------

# (x's shape (N, C, H, W), kernel (KH, KW), stride, padding, dilation): stride 1 (whole rows where narrow) and above,
# padding 0 and more, dilation, a 1x1 kernel, a kernel as large as the padded input, non-square everything
IM2COL_SHAPES = [((2, 3, 6, 5), (3, 2), (1, 1), (1, 0), (1, 1)), ((1, 1, 4, 4), (1, 1), (1, 1), (0, 0), (1, 1)),
                 ((3, 2, 7, 9), (3, 3), (2, 1), (1, 2), (1, 2)), ((2, 4, 5, 5), (5, 5), (1, 1), (0, 0), (1, 1)),
                 ((2, 2, 8, 6), (1, 1), (2, 2), (0, 0), (1, 1)), ((1, 3, 9, 8), (2, 3), (3, 2), (2, 1), (2, 3)),
                 ((4, 6, 5, 7), (3, 3), (1, 1), (2, 2), (2, 1)), ((2, 1, 3, 3), (3, 3), (1, 1), (1, 1), (1, 1)),
                 ((2, 2, 4, 25), (3, 3), (1, 1), (1, 1), (1, 2))]  # rows of 21 >= WHOLE_ROWS_BELOW: the window copy
IM2COL_CASES = [pytest.param(*case, dtype, id=f"{'x'.join(map(str, case[0]))}-k{'x'.join(map(str, case[1]))}-s"
                             f"{'x'.join(map(str, case[2]))}-p{'x'.join(map(str, case[3]))}-d"
                             f"{'x'.join(map(str, case[4]))}-{dtype}")
                for case in IM2COL_SHAPES for dtype in DTYPES]


def _conv_out(x, kernel, stride, padding, dilation):
    return tuple((size + 2 * p - d * (k - 1) - 1) // s + 1
                 for size, k, s, p, d in zip(x[2:], kernel, stride, padding, dilation, strict=True))


@pytest.mark.parametrize(("x", "kernel", "stride", "padding", "dilation", "dtype"), IM2COL_CASES)
def test_im2col_equals_its_plain_twin(x, kernel, stride, padding, dilation, dtype):
    (X,) = _draw(np.random.default_rng(0), dtype, x)
    OH, OW = out = _conv_out(x, kernel, stride, padding, dilation)
    cols, RW = kernels.im2col(X, kernel, stride, padding, dilation, out)
    plain, plain_RW = kernels.im2col_plain(X, kernel, stride, padding, dilation, out)
    whole_rows = stride == (1, 1) and OW < kernels.WHOLE_ROWS_BELOW
    assert cols.dtype == X.dtype and plain_RW == OW and RW == (x[3] + 2 * padding[1] if whole_rows else OW)
    assert plain.dtype == X.dtype  # the twin keeps the dtype too (float32 values compare equal as float64)
    assert cols.shape == (x[0], x[1] * kernel[0] * kernel[1], OH * RW) and np.isfinite(cols).all()
    # the columns ow < OW are the windows, exactly; the others belong to no output
    np.testing.assert_array_equal(cols.reshape(*cols.shape[:2], OH, RW)[..., :OW], plain.reshape(*plain.shape[:2],
                                                                                                  OH, OW))


@pytest.mark.parametrize(("x", "kernel", "stride", "padding", "dilation", "dtype"), IM2COL_CASES)
def test_col2im_equals_its_plain_twin(x, kernel, stride, padding, dilation, dtype):
    OH, OW = out = _conv_out(x, kernel, stride, padding, dilation)
    K = x[1] * kernel[0] * kernel[1]
    (dcols,) = _draw(np.random.default_rng(1), dtype, (x[0], K, OH * OW))
    plain = kernels.col2im_plain(dcols, x, kernel, stride, padding, dilation, out)
    RW = kernels.im2col(np.zeros(x, DTYPES[dtype]), kernel, stride, padding, dilation, out)[1]
    wide = np.zeros((x[0], K, OH, RW), DTYPES[dtype])  # im2col's layout, 0 in the columns of no output
    wide[..., :OW] = dcols.reshape(x[0], K, OH, OW)
    dx = kernels.col2im(wide.reshape(x[0], K, OH * RW), x, kernel, stride, padding, dilation, out)
    assert dx.shape == plain.shape == x and dx.dtype == plain.dtype == dcols.dtype
    assert_close(dx, plain, "col2im", str(x), dtype)  # the same sums, added in another order
    # the twin's result is the crop of the padded grid (H + 2 ph, W + 2 pw) it added onto, as its docstring says:
    # a view with that grid's strides (a grid padded wider than that gives the same values, other strides)
    grid = (x[0], x[1], x[2] + 2 * padding[0], x[3] + 2 * padding[1])
    assert plain.strides == np.zeros(grid, DTYPES[dtype]).strides


@pytest.mark.parametrize(("x", "kernel", "stride", "padding", "dilation", "dtype"), IM2COL_CASES)
def test_im2col_and_col2im_are_adjoint_and_match_torch(x, kernel, stride, padding, dilation, dtype):
    """torch's unfold is im2col and its fold col2im; <im2col(x), dcols> = <x, col2im(dcols)> as well."""
    rng = np.random.default_rng(2)
    out = _conv_out(x, kernel, stride, padding, dilation)
    (X,) = _draw(rng, dtype, x)
    options = {"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation}
    unfolded = torch.nn.functional.unfold(torch.from_numpy(X), **options).numpy()
    plain = kernels.im2col_plain(X, kernel, stride, padding, dilation, out)[0]
    np.testing.assert_array_equal(plain, unfolded)
    (dcols,) = _draw(rng, dtype, unfolded.shape)
    folded = torch.nn.functional.fold(torch.from_numpy(dcols), x[2:], **options).numpy()
    assert_close(kernels.col2im_plain(dcols, x, kernel, stride, padding, dilation, out), folded, "col2im", "", dtype)
    lhs, rhs = (plain.astype(np.float64) * dcols).sum(), (X.astype(np.float64) * folded).sum()
    assert_close(DTYPES[dtype](lhs), DTYPES[dtype](rhs), "<im2col x, d> = <x, col2im d>", "", dtype)


# (IM2COL_SHAPES' geometry, groups): the convolution path (stride 1, padding <= the kernel's span), col2im's
# (stride above 1, or a padding wider than the kernel's span: 4x6x5x7's 2 > (3-1)*1 columns), depthwise
INPUT_GRAD_CASES = [pytest.param(*case, groups, dtype, id=f"{param.id}-g{groups}")
                    for case, param in zip([c for c in IM2COL_SHAPES for _ in DTYPES], IM2COL_CASES, strict=True)
                    for dtype in [param.values[-1]] for groups in (1, case[0][1]) if groups == 1 or case[0][1] > 1]


@pytest.mark.parametrize(("x", "kernel", "stride", "padding", "dilation", "groups", "dtype"), INPUT_GRAD_CASES)
def test_conv2d_input_grad_equals_its_plain_twin_and_torch(x, kernel, stride, padding, dilation, groups, dtype):
    rng = np.random.default_rng(3)
    out = _conv_out(x, kernel, stride, padding, dilation)
    F = 2 * groups
    wk, dout = _draw(rng, dtype, (F, x[1] // groups, *kernel), (x[0], F, *out))
    dx = kernels.conv2d_input_grad(dout, wk, groups, x, stride, padding, dilation)
    plain = kernels.conv2d_input_grad_plain(dout, wk, groups, x, stride, padding, dilation)
    assert dx.shape == x and dx.dtype == dout.dtype and (stride != (1, 1) or dx.flags.c_contiguous)
    assert_close(dx, plain, "conv2d_input_grad", str(x), dtype)
    xt = torch.zeros(x, dtype=torch.from_numpy(wk).dtype, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, torch.from_numpy(wk), None, stride, padding, dilation, groups)
    (expected,) = torch.autograd.grad(y, xt, torch.from_numpy(dout))
    assert_close(dx, expected.numpy(), "conv2d_input_grad", str(x), dtype)
