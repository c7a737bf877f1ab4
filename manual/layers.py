"""Layer functions of the slides' network, as forward/backward pairs (NumPy only).

Contract (the same as ``torch.autograd.Function``):
``<op>_forward(*inputs) -> (out, cache)`` and ``<op>_backward(dout, cache) -> tuple``
with one gradient per forward input, in order, always a tuple. ``dout`` is the
gradient of the error with respect to ``out``; the backward multiplies by it.
Every function keeps the dtype it is given (float32 or float64).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# --- conv: Z1 = conv(X, f), the valid 2-D cross-correlation --------------------------------

def conv_forward(X, f):
    """Valid cross-correlation of each image with one filter.

    X: (N, H, W), f: (KH, KW) -> Z1: (N, H-KH+1, W-KW+1), with
    Z1[n, i, j] = sum_{p,q} X[n, i+p, j+q] * f[p, q].
    """
    N, H, W = X.shape
    KH, KW = f.shape
    OH, OW = H - KH + 1, W - KW + 1
    # X laid out as (H, N, W): image row h of every sample side by side, one row of R = N*W values.
    # shifted[h, q] is that row shifted left by q (its last q values run into the next row: finite values
    # that only reach thrown-away outputs j >= OW). Output row i needs shifted[i+p, q] for every tap (p, q),
    # and as shifted is contiguous those KH*KW rows are evenly spaced in memory: a (KH*KW, R) matrix, a
    # strided view overlapping the next output row's. Z1 is then f.flat @ taps, one matrix-vector product
    # per output row, looped over in C by numpy's matmul. Memory traffic, not arithmetic, is what a
    # one-channel convolution costs: this copies X KW times, where the classic (N*OH*OW, KH*KW) im2col, or
    # a shifted copy per tap, copies it KH*KW times; it was the fastest of those measured.
    R = N * W
    rows = np.empty(H * R + KW - 1, X.dtype)  # padded, so that the last shift stays inside
    np.copyto(rows[:H * R].reshape(H, N, W), X.transpose(1, 0, 2))
    rows[H * R:] = 0
    step = X.itemsize
    shifted = np.empty((H, KW, R), X.dtype)
    np.copyto(shifted, _view(rows, (H, KW, R), (R * step, step, step)))
    taps = _view(shifted, (OH, KH * KW, R), (KW * R * step, R * step, step))
    out = np.matmul(f.reshape(-1), taps)  # (OH, R): row i holds Z1[:, i, :] and W - OW thrown-away places
    return out.reshape(OH, N, W)[:, :, :OW].transpose(1, 0, 2).copy(), (taps, X, f)


def conv_backward(dZ1, cache, input_grad=True):
    """Gradients of conv_forward -> (dX, df).

    df[p, q] = sum_{n,i,j} X[n, i+p, j+q] * dZ1[n, i, j]  (the slides' conv(dE/dZ1, X)).
    dX is the full cross-correlation of dZ1 with the flipped filter; pass
    ``input_grad=False`` to skip it (returned as None) when X is data, as torch does.
    """
    taps, X, f = cache
    N, H, W = X.shape
    KH, KW = f.shape
    OH, OW = H - KH + 1, W - KW + 1
    # dZ1 in conv_forward's row layout, zero at the thrown-away places j >= OW; then every output row's
    # tap matrix times its row of dZ1 gives that row's share of df.
    grad = np.empty((OH, N, W), dZ1.dtype)
    grad[:, :, :OW] = dZ1.transpose(1, 0, 2)
    grad[:, :, OW:] = 0
    df = np.matmul(taps, grad.reshape(OH, N * W, 1)).sum(axis=0).reshape(KH, KW)
    if not input_grad:
        return None, df
    # dX[n, a, b] = sum_{p,q} dZ1[n, a-p, b-q] * f[p, q]: pad dZ1 by (K-1) on each side and
    # cross-correlate with f flipped in both directions.
    padded = np.pad(dZ1, ((0, 0), (KH - 1, KH - 1), (KW - 1, KW - 1)))
    windows = sliding_window_view(padded, (KH, KW), axis=(1, 2))  # (N, H, W, KH, KW)
    dX = np.einsum("nhwpq,pq->nhw", windows, f[::-1, ::-1], optimize=True)
    return dX, df


def conv_patches(cache):
    """The local derivative dZ1/df: dZ1[n, i, j]/df[p, q] = X[n, i+p, j+q] -> (N, OH, OW, KH, KW).

    A read-only view of X, not a copy: the patches overlap, a copy would be KH*KW times the size of X.
    """
    _, X, f = cache
    N, H, W = X.shape
    KH, KW = f.shape
    X = np.ascontiguousarray(X)  # X itself, unless it was handed in non-contiguous
    return _view(X, (N, H - KH + 1, W - KW + 1, KH, KW), X.strides + X.strides[1:])


def _view(base, shape, strides):
    """A read-only view of the contiguous array `base` with the given shape and byte strides (as
    numpy.lib.stride_tricks.as_strided, at a tenth of its call cost). The caller keeps it inside `base`."""
    view = np.ndarray(shape, base.dtype, base, 0, strides)
    view.flags.writeable = False
    return view


# --- sigmoid: H1 = sigmoid(Z1) and O = sigmoid(Z2) -------------------------------------------

# By itemsize (float16, float32, float64): the integer type of the same size, and its sign bit alone.
_SIGN_BIT = {size: (bits, np.iinfo(bits).min) for size, bits in ((2, np.int16), (4, np.int32), (8, np.int64))}


def sigmoid(z):
    """Logistic function that never overflows: exp is only taken of -|z| <= 0."""
    z = np.asarray(z)
    # 1 / (1 + e) where z >= 0 and e / (1 + e) where z < 0, with e = exp(-|z|), in a few in-place passes
    # (np.where alone, on mixed signs, costs more than all of them). -|z| is z with its sign bit set: one
    # integer pass instead of abs and negate.
    bits, sign = _SIGN_BIT[z.itemsize]
    e = np.empty_like(z)
    np.bitwise_or(z.view(bits), sign, out=e.view(bits))
    with np.errstate(under="ignore"):  # exp(-|z|) -> 0 for |z| > ~745 is the right answer, not an error
        np.exp(e, out=e)
    denominator = np.add(e, 1, out=np.empty_like(z))
    np.maximum(e, z >= 0, out=e)  # the numerator: 1 where z >= 0 (as e <= 1), e where z < 0 (as e >= 0)
    return np.divide(e, denominator, out=denominator)


def sigmoid_forward(z):
    """out = 1 / (1 + exp(-z)), any shape."""
    out = sigmoid(z)
    return out, out


def sigmoid_derivative(out):
    """The local derivative d sigmoid(z)/dz = sigmoid(z) (1 - sigmoid(z)), from the output."""
    derivative = 1 - out
    derivative *= out
    return derivative


def sigmoid_backward(dout, cache):
    """dz = dout * out * (1 - out) -> (dz,)."""
    return (dout * sigmoid_derivative(cache),)


# --- flatten: the conv map to a vector, row-major ----------------------------------------------

def flatten_forward(x):
    """(N, ...) -> (N, prod(...)), row-major, as torch.flatten(x, 1)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    return (dout.reshape(cache),)


# --- fully connected: Z2 = W^T . H1 + b, per sample ---------------------------------------------

def linear_forward(H1, W, b):
    """The slides' layout: H1 (N, n_hidden), W (n_hidden, n_out), b (n_out,) -> Z2 (N, n_out) = H1 @ W + b."""
    return H1 @ W + b, (H1, W)


def linear_backward(dZ2, cache):
    """-> (dH1 = dZ2 @ W^T, dW = H1^T @ dZ2, db = sum_n dZ2)."""
    H1, W = cache
    # np.dot, not @: where the inner dimension is 1 (n_out = 1, or N = 1) matmul is up to 10x slower.
    return np.dot(dZ2, W.T), np.dot(H1.T, dZ2), dZ2.sum(axis=0)


# --- error: E = (Y - O)^2 / 2, summed over outputs -----------------------------------------------

def half_squared_error_forward(O, Y, reduction="sum"):
    """E = sum (Y - O)^2 / 2 over outputs and batch; "mean" divides by the batch size N.

    O, Y: (N, n_out) -> E: 0-d array of O's dtype.
    """
    scale = O.shape[0] if reduction == "mean" else 1
    diff = O - Y
    E = (diff * diff).sum() / (2 * scale)
    return np.asarray(E, dtype=O.dtype), (diff, scale)


def half_squared_error_backward(dE, cache):
    """dE/dO = (O - Y) * dE / scale; Y is data and gets no gradient -> (dO, None)."""
    diff, scale = cache
    return (diff * (np.asarray(dE, dtype=diff.dtype) / scale), None)
