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
    KH, KW = f.shape
    # im2col: one row per output position, one column per filter tap -> (N*OH*OW, KH*KW).
    windows = sliding_window_view(X, (KH, KW), axis=(1, 2))  # (N, OH, OW, KH, KW), a view
    N, OH, OW = windows.shape[:3]
    cols = windows.reshape(N * OH * OW, KH * KW)  # the one copy
    Z1 = (cols @ f.reshape(KH * KW)).reshape(N, OH, OW)
    return Z1, (cols, X, f)


def conv_backward(dZ1, cache, input_grad=True):
    """Gradients of conv_forward -> (dX, df).

    df[p, q] = sum_{n,i,j} X[n, i+p, j+q] * dZ1[n, i, j]  (the slides' conv(dE/dZ1, X)).
    dX is the full cross-correlation of dZ1 with the flipped filter; pass
    ``input_grad=False`` to skip it (returned as None) when X is data, as torch does.
    """
    cols, X, f = cache
    KH, KW = f.shape
    df = (dZ1.reshape(-1) @ cols).reshape(KH, KW)
    if not input_grad:
        return None, df
    # dX[n, a, b] = sum_{p,q} dZ1[n, a-p, b-q] * f[p, q]: pad dZ1 by (K-1) on each side and
    # cross-correlate with f flipped in both directions.
    padded = np.pad(dZ1, ((0, 0), (KH - 1, KH - 1), (KW - 1, KW - 1)))
    windows = sliding_window_view(padded, (KH, KW), axis=(1, 2))  # (N, H, W, KH, KW)
    dX = np.einsum("nhwpq,pq->nhw", windows, f[::-1, ::-1], optimize=True)
    return dX, df


def conv_patches(cache):
    """The local derivative dZ1/df: dZ1[n, i, j]/df[p, q] = X[n, i+p, j+q] -> (N, OH, OW, KH, KW)."""
    cols, X, f = cache
    N, H, W = X.shape
    KH, KW = f.shape
    return cols.reshape(N, H - KH + 1, W - KW + 1, KH, KW)


# --- sigmoid: H1 = sigmoid(Z1) and O = sigmoid(Z2) -------------------------------------------

def sigmoid(z):
    """Logistic function that never overflows: exp is only taken of -|z| <= 0."""
    with np.errstate(under="ignore"):  # exp(-|z|) -> 0 for |z| > ~745 is the right answer, not an error
        e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def sigmoid_forward(z):
    """out = 1 / (1 + exp(-z)), any shape."""
    out = sigmoid(z)
    return out, out


def sigmoid_derivative(out):
    """The local derivative d sigmoid(z)/dz = sigmoid(z) (1 - sigmoid(z)), from the output."""
    return out * (1 - out)


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
    return dZ2 @ W.T, H1.T @ dZ2, dZ2.sum(axis=0)


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
