"""The slides' network's inputs, checked once at the boundary (NumPy only): X, Y and the parameters f, W, b."""

import numpy as np

from netdesc.checks import InputError, check_float_array, check_reduction, check_same_dtype, check_shape

PARAM_NAMES = ("f", "W", "b")


def init_params(input_shape, kernel_shape, n_out=1, dtype=np.float64, seed=0):
    """Random f (KH, KW), W (n_hidden, n_out), b (n_out,) for an input of (H, W)."""
    (H, W_), (KH, KW) = input_shape, kernel_shape
    n_hidden = (H - KH + 1) * (W_ - KW + 1)
    rng = np.random.default_rng(seed)
    return {
        "f": rng.normal(0, 1 / np.sqrt(KH * KW), (KH, KW)).astype(dtype),
        "W": rng.normal(0, 1 / np.sqrt(n_hidden), (n_hidden, n_out)).astype(dtype),
        "b": rng.normal(0, 0.1, (n_out,)).astype(dtype),
    }


def check_inputs(X, Y, params, reduction="sum"):
    """Validate the network's inputs; return X as (N, H, W) and Y as (N, n_out).

    Raises InputError naming the argument, what it got and what it needs.
    """
    if not isinstance(params, dict) or set(params) != set(PARAM_NAMES):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise InputError(f"params: got {got}, needs a dict with exactly the keys f, W, b")
    X = check_float_array("X", X, ndim=(2, 3))
    f = check_float_array("f", params["f"], ndim=2)
    W = check_float_array("W", params["W"], ndim=2)
    b = check_float_array("b", params["b"], ndim=1)
    Y = check_float_array("Y", Y, ndim=(1, 2) if X.ndim == 2 else 2)
    check_same_dtype(X=X, Y=Y, f=f, W=W, b=b)
    X = X[None] if X.ndim == 2 else X
    Y = Y[None] if Y.ndim == 1 else Y
    N, H, W_ = X.shape
    if N == 0 or H == 0 or W_ == 0:
        raise InputError(f"X: got shape {X.shape}, needs at least one sample of at least 1x1")
    KH, KW = f.shape
    if KH < 1 or KW < 1 or KH > H or KW > W_:
        raise InputError(
            f"f: got shape {f.shape}, needs 1 <= KH <= {H} and 1 <= KW <= {W_} "
            f"(a valid convolution of the {H}x{W_} input)"
        )
    n_hidden = (H - KH + 1) * (W_ - KW + 1)
    n_out = b.shape[0]
    if n_out < 1:
        raise InputError("b: got shape (0,), needs n_out >= 1 outputs")
    check_shape("W", W, (n_hidden, n_out), "n_hidden = (H-KH+1)*(W-KW+1), n_out = len(b)")
    check_shape("Y", Y, (N, n_out), "one target row per sample, n_out = len(b)")
    check_reduction(reduction)
    return X, Y
