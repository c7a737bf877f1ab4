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

import numpy as np

from manual import layers
from netdesc.checks import check_learning_rate, check_positive_int, check_shape
from netdesc.seed import PARAM_NAMES, check_inputs

# One backward per forward step, keyed by the quantity the step produces. A wrong derivation
# (crosscheck.catalogue.seed) is tested by swapping one entry, never by editing these functions.
LAYER_BACKWARD = {
    "E": layers.half_squared_error_backward,
    "O": layers.sigmoid_backward,
    "Z2": layers.linear_backward,
    "H1": layers.sigmoid_backward,
    "Z1": layers.conv_backward,
}


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
