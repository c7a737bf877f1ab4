"""The slides' network, by hand: X -> Z1 = conv(X, f) -> H1 = sigmoid(Z1) -> Z2 = W^T.H1 + b
-> O = sigmoid(Z2) -> E = (Y - O)^2 / 2.

Shapes (N samples, one channel):
    X (N, H, W)         f (KH, KW)            Z1 (N, OH, OW), OH = H-KH+1, OW = W-KW+1
    H1 (N, n_hidden)    n_hidden = OH*OW      (sigmoid(Z1) flattened row-major)
    W (n_hidden, n_out) b (n_out,)            Z2, O, Y (N, n_out)        E: scalar
A single image X (H, W) is taken as N = 1 (then Y may be (n_out,)).

``backward`` returns every chain-rule factor of the slides under its slide name
(``dE_dO`` reads dE/dO) and the three parameter gradients dE_df, dE_dW, dE_db.
Each ``dE_d*`` equals what autograd stores in ``.grad`` of that quantity.
"""

import math

import numpy as np

from manual import layers
from manual.validation import (
    FLOAT_DTYPES,
    InputError,
    check_float_array,
    check_learning_rate,
    check_positive_int,
    check_reduction,
    check_same_dtype,
    check_shape,
)

PARAM_NAMES = ("f", "W", "b")

# One backward per forward step, keyed by the quantity the step produces. A wrong derivation
# (manual.wrong) is tested by swapping one entry, never by editing these functions.
LAYER_BACKWARD = {
    "E": layers.half_squared_error_backward,
    "O": layers.sigmoid_backward,
    "Z2": layers.linear_backward,
    "H1": layers.sigmoid_backward,
    "Z1": layers.conv_backward,
}


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


def _surely_valid(X, Y, f, W, b):
    """Whether the five arrays pass check_float_array and check_same_dtype, tested cheaply: NumPy arrays
    of one float dtype with the right numbers of dimensions, and a finite sum of squares (one BLAS dot
    per array, which a NaN or an inf makes non-finite). A sum that overflows only sends the arrays to the
    precise checks; this spares each call an isfinite pass and a boolean temporary per array."""
    arrays = (X, Y, f, W, b)
    if not (
        all(isinstance(a, np.ndarray) for a in arrays)
        and X.dtype.type in FLOAT_DTYPES
        and all(a.dtype == X.dtype for a in arrays)
        and X.ndim in (2, 3) and f.ndim == 2 and W.ndim == 2 and b.ndim == 1
        and (Y.ndim == 2 or Y.ndim == 1 and X.ndim == 2)
    ):
        return False
    return math.isfinite(sum(float(np.vdot(a, a)) for a in arrays))  # Python floats: inf, not a warning


def check_inputs(X, Y, params, reduction="sum"):
    """Validate the network's inputs; return X as (N, H, W) and Y as (N, n_out).

    Raises InputError naming the argument, what it got and what it needs.
    """
    if not isinstance(params, dict) or set(params) != set(PARAM_NAMES):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise InputError(f"params: got {got}, needs a dict with exactly the keys f, W, b")
    f, W, b = params["f"], params["W"], params["b"]
    if not _surely_valid(X, Y, f, W, b):  # the precise checks, which name what is wrong
        X = check_float_array("X", X, ndim=(2, 3))
        f = check_float_array("f", f, ndim=2)
        W = check_float_array("W", W, ndim=2)
        b = check_float_array("b", b, ndim=1)
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


def forward(X, params, Y, reduction="sum"):
    """Run the network; return (values, cache).

    values: {"Z1", "H1", "Z2", "O", "E"} with the shapes in the module docstring.
    """
    X, Y = check_inputs(X, Y, params, reduction)
    Z1, conv_cache = layers.conv_forward(X, params["f"])
    S1, sig1_cache = layers.sigmoid_forward(Z1)
    H1, flat_cache = layers.flatten_forward(S1)
    Z2, lin_cache = layers.linear_forward(H1, params["W"], params["b"])
    O, sig2_cache = layers.sigmoid_forward(Z2)
    E, err_cache = layers.half_squared_error_forward(O, Y, reduction)
    values = {"Z1": Z1, "H1": H1, "Z2": Z2, "O": O, "E": E}
    cache = {
        "Z1": conv_cache, "H1": (sig1_cache, flat_cache),
        "Z2": lin_cache, "O": sig2_cache, "E": err_cache, "W": params["W"],
    }
    return values, cache


def backward(cache, layer_backward=None):
    """The slides' chain rule, factor by factor -> dict of named arrays.

    Factors: dE_dO (N, n_out); dO_dZ2 (N, n_out); dE_dZ2 = dE_dO * dO_dZ2;
    dZ2_dW = H1 (N, n_hidden); dZ2_dH1 = W^T (n_out, n_hidden); dE_dH1 = dE_dZ2 . W^T (N, n_hidden);
    dH1_dZ1 = H1 (1 - H1) (N, OH, OW); dE_dZ1 = dE_dH1 * dH1_dZ1 (N, OH, OW);
    dZ1_df = X's patches (N, OH, OW, KH, KW).
    Gradients: dE_dW (n_hidden, n_out), dE_db (n_out,), dE_df (KH, KW).
    ``layer_backward`` maps a step ("E", "O", "Z2", "H1", "Z1") to a replacement backward.
    """
    step = {**LAYER_BACKWARD, **(layer_backward or {})}
    sig1_cache, flat_cache = cache["H1"]
    H1, _ = cache["Z2"]
    g = {}
    (g["dE_dO"], _) = step["E"](1.0, cache["E"])
    g["dO_dZ2"] = layers.sigmoid_derivative(cache["O"])
    (g["dE_dZ2"],) = step["O"](g["dE_dO"], cache["O"])
    g["dZ2_dW"] = H1
    g["dZ2_dH1"] = cache["W"].T
    g["dE_dH1"], g["dE_dW"], g["dE_db"] = step["Z2"](g["dE_dZ2"], cache["Z2"])
    g["dH1_dZ1"] = layers.sigmoid_derivative(sig1_cache)
    (dE_dS1,) = layers.flatten_backward(g["dE_dH1"], flat_cache)
    if step["H1"] is layers.sigmoid_backward:
        # What sigmoid_backward computes (dout * sigmoid_derivative(out)), without deriving dH1/dZ1 twice.
        g["dE_dZ1"] = dE_dS1 * g["dH1_dZ1"]
    else:
        (g["dE_dZ1"],) = step["H1"](dE_dS1, sig1_cache)
    g["dZ1_df"] = layers.conv_patches(cache["Z1"])
    _, g["dE_df"] = step["Z1"](g["dE_dZ1"], cache["Z1"], input_grad=False)
    return g


def sgd_step(params, grads, lr):
    """Plain SGD, w <- w - lr * dE/dw for f, W and b -> new params (inputs untouched)."""
    lr = check_learning_rate(lr)
    for name in PARAM_NAMES:  # a gradient of another shape would broadcast into a wrong update
        check_shape(f"dE_d{name}", grads[f"dE_d{name}"], params[name].shape, f"the shape of {name}")
    return {name: params[name] - params[name].dtype.type(lr) * grads[f"dE_d{name}"] for name in PARAM_NAMES}


def train(X, Y, params, lr, steps, reduction="sum", layer_backward=None):
    """`steps` SGD steps on one fixed batch -> (E before each step, shape (steps,), final params)."""
    steps = check_positive_int("steps", steps)
    lr = check_learning_rate(lr)
    errors = []
    for _ in range(steps):
        values, cache = forward(X, params, Y, reduction)
        errors.append(values["E"])
        params = sgd_step(params, backward(cache, layer_backward), lr)
    return np.stack(errors), params
