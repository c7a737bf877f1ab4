"""The slides' network, by hand, one line per slide equation (NumPy only).

    Input = X    Z1 = conv(X, f)    H1 = sigmoid(Z1)    Z2 = W^T . H1 + b    O = sigmoid(Z2)    E = (Y - O)^2 / 2

Shapes (N samples, one channel):
    X (N, H, W)         f (KH, KW)            Z1 (N, OH, OW), OH = H-KH+1, OW = W-KW+1
    H1 (N, n_hidden)    n_hidden = OH*OW      (sigmoid(Z1) flattened row-major)
    W (n_hidden, n_out) b (n_out,)            Z2, O, Y (N, n_out)        E: scalar
E sums over the batch ("sum") or averages over it ("mean").

``backward`` is the slides' chain rule: each equation is a small function of EQUATIONS, named as the slides
name the factor it gives (``dE_dO`` reads dE/dO), and each factor it returns is the very one multiplied
further down the chain. Each ``dE_d*`` equals what autograd stores in ``.grad``. A wrong derivation
(crosscheck.catalogue.seed) is this backward with one equation swapped through ``wrong=``.
The named operations conv, sigmoid, filter_gradient and patches are in manual/kernels.py, each with a plain
twin; the inputs are validated once, at the boundary, by netdesc.seed.check_inputs.
"""

import itertools

import numpy as np

from manual import kernels
from netdesc.checks import (
    InputError,
    check_float_array,
    check_learning_rate,
    check_positive_int,
    check_reduction,
    check_shape,
)
from netdesc.seed import PARAM_NAMES, check_inputs


def forward(X, params, Y, reduction="sum"):
    """Z1, H1, Z2, O and E -> dict of them, shapes as in the module docstring.

    X (N, H, W), Y (N, n_out) and params {"f", "W", "b"} as netdesc.seed.check_inputs returns and checks them:
    forward does not check them again.
    """
    f, W, b = params["f"], params["W"], params["b"]
    Z1 = kernels.conv(X, f)                          # Z1 = conv(X, f)
    H1 = kernels.sigmoid(Z1).reshape(len(X), -1)     # H1 = sigmoid(Z1), flattened
    Z2 = H1 @ W + b                                  # Z2 = W^T . H1 + b, one row per sample
    O = kernels.sigmoid(Z2)                          # O = sigmoid(Z2)
    E = ((Y - O) ** 2).sum() / 2 / n_of(X, reduction)  # E = (y - O)^2 / 2
    return {"Z1": Z1, "H1": H1, "Z2": Z2, "O": O, "E": np.asarray(E, O.dtype)}


def n_of(X, reduction):
    """What E is divided by: the batch size N for "mean", 1 for "sum" (InputError naming reduction otherwise)."""
    return len(X) if check_reduction(reduction) == "mean" else 1


# --- the equations of the backward pass, as the slides write them --------------------------------------------

def dE_dO(O, Y, n):
    """dE/dO = 2 (Y - O)(-1) / 2 = O - Y, divided by n = N under the mean."""
    return (O - Y) / n


def dO_dZ2(O):
    """dO/dZ2 = sigma(Z2)(1 - sigma(Z2)) = O (1 - O)."""
    return O * (1 - O)


def dE_dZ2(dE_dO, dO_dZ2):
    """dE/dZ2 = dE/dO * dO/dZ2."""
    return dE_dO * dO_dZ2


def dZ2_dW(H1):
    """dZ2/dW = H1."""
    return H1


def dE_dW(dE_dZ2, dZ2_dW):
    """dE/dW = dE/dO * dO/dZ2 * dZ2/dW = (O - Y) * O(1 - O) * H1, summed over samples: H1^T . dE/dZ2."""
    return np.dot(dZ2_dW.T, dE_dZ2)


def dE_db(dE_dZ2):
    """dE/db = dE/dO * dO/dZ2 * dZ2/db = (O - Y) * O(1 - O), with dZ2/db = 1, summed over samples."""
    return dE_dZ2.sum(axis=0)


def dZ2_dH1(W):
    """dZ2/dH1 = W^T."""
    return W.T


def dE_dH1(dE_dZ2, dZ2_dH1):
    """dE/dH1 = dE/dZ2 * dZ2/dH1 = dE/dZ2 . W^T."""
    return np.dot(dE_dZ2, dZ2_dH1)


def dH1_dZ1(H1, Z1):
    """dH1/dZ1 = sigma(Z1)(1 - sigma(Z1)) = H1 (1 - H1), in Z1's shape."""
    H1 = H1.reshape(Z1.shape)
    return H1 * (1 - H1)


def dE_dZ1(dE_dH1, dH1_dZ1):
    """dE/dZ1 = dE/dH1 * dH1/dZ1 (dE/dH1 unflattened to Z1's shape)."""
    return dE_dH1.reshape(dH1_dZ1.shape) * dH1_dZ1


def dZ1_df(X, f):
    """dZ1/df = X: dZ1[n, i, j]/df[p, q] = X[n, i+p, j+q], the KH x KW patches of X."""
    return kernels.patches(X, f.shape)


def dE_df(X, dE_dZ1):
    """dE/df = dE/dZ1 * dZ1/df = conv(X, dE/dZ1): each patch of X weighted by dE/dZ1 there, summed."""
    return kernels.filter_gradient(X, dE_dZ1)


EQUATIONS = {
    "dE_dO": dE_dO, "dO_dZ2": dO_dZ2, "dE_dZ2": dE_dZ2, "dZ2_dW": dZ2_dW, "dE_dW": dE_dW, "dE_db": dE_db,
    "dZ2_dH1": dZ2_dH1, "dE_dH1": dE_dH1, "dH1_dZ1": dH1_dZ1, "dE_dZ1": dE_dZ1, "dZ1_df": dZ1_df, "dE_df": dE_df,
}


def backward(X, Y, params, values, reduction="sum", wrong=None):
    """The slides' chain rule, from E back to f -> dict of every factor and the three gradients.

    Factors: dE_dO, dO_dZ2, dE_dZ2 (N, n_out); dZ2_dW = H1 (N, n_hidden); dZ2_dH1 = W^T (n_out, n_hidden);
    dE_dH1 (N, n_hidden); dH1_dZ1, dE_dZ1 (N, OH, OW); dZ1_df (N, OH, OW, KH, KW), a read-only view of X.
    Gradients: dE_dW (n_hidden, n_out), dE_db (n_out,), dE_df (KH, KW).
    ``wrong`` maps names of EQUATIONS to replacement functions of the same arguments.
    """
    eq = EQUATIONS | (wrong or {})
    f, W = params["f"], params["W"]
    Z1, H1, O = values["Z1"], values["H1"], values["O"]
    g = {}
    g["dE_dO"] = eq["dE_dO"](O, Y, n_of(X, reduction))  # dE/dO = 2 (Y - O)(-1) / 2
    g["dO_dZ2"] = eq["dO_dZ2"](O)                           # dO/dZ2 = sigma(Z2)(1 - sigma(Z2))
    g["dE_dZ2"] = eq["dE_dZ2"](g["dE_dO"], g["dO_dZ2"])     # dE/dZ2 = dE/dO * dO/dZ2
    g["dZ2_dW"] = eq["dZ2_dW"](H1)                          # dZ2/dW = H1
    g["dE_dW"] = eq["dE_dW"](g["dE_dZ2"], g["dZ2_dW"])      # dE/dW = dE/dO * dO/dZ2 * dZ2/dW
    g["dE_db"] = eq["dE_db"](g["dE_dZ2"])                   # dE/db = dE/dO * dO/dZ2 * dZ2/db
    g["dZ2_dH1"] = eq["dZ2_dH1"](W)                         # dZ2/dH1 = W^T
    g["dE_dH1"] = eq["dE_dH1"](g["dE_dZ2"], g["dZ2_dH1"])   # dE/dH1 = dE/dO * dO/dZ2 * dZ2/dH1
    g["dH1_dZ1"] = eq["dH1_dZ1"](H1, Z1)                    # dH1/dZ1 = sigma(Z1)(1 - sigma(Z1))
    g["dE_dZ1"] = eq["dE_dZ1"](g["dE_dH1"], g["dH1_dZ1"])   # dE/dZ1 = dE/dH1 * dH1/dZ1
    g["dZ1_df"] = eq["dZ1_df"](X, f)                        # dZ1/df = X
    g["dE_df"] = eq["dE_df"](X, g["dE_dZ1"])                # dE/df = ... * dH1/dZ1 * dZ1/df = conv(X, dE/dZ1)
    return g


def sgd_step(params, grads, lr):
    """w <- w - alpha * dE/dw for f, W and b -> new params (inputs untouched, dtypes kept). Each gradient must be
    finite and have its parameter's shape and dtype (InputError otherwise: a gradient of another shape would
    broadcast into a wrong update, an int or float64 one change the parameter's dtype). lr is not checked here,
    on every step: train checks it once."""
    for name in PARAM_NAMES:
        grad = check_float_array(f"dE_d{name}", grads[f"dE_d{name}"])
        check_shape(f"dE_d{name}", grad, params[name].shape, f"the shape of {name}")
        if grad.dtype != params[name].dtype:
            raise InputError(f"dE_d{name}: got dtype {grad.dtype}, needs {params[name].dtype}, the dtype of {name}")
    return {name: params[name] - params[name].dtype.type(lr) * grads[f"dE_d{name}"] for name in PARAM_NAMES}


def train(X, Y, params, lr, steps, reduction="sum", wrong=None, step=None):
    """`steps` steps on one fixed batch -> (E before each step, shape (steps,), final params).

    X, Y and params are checked here, once (X may be one image (H, W)); ``wrong`` is backward's, ``step``
    replaces sgd_step (same signature).
    """
    X, Y = check_inputs(X, Y, params, reduction)
    steps = check_positive_int("steps", steps)
    lr = check_learning_rate(lr)
    done = list(training(itertools.repeat((X, Y), steps), params, lr, reduction, wrong, step))
    return np.stack([E for E, _, _ in done]), done[-1][2]


def training(batches, params, lr, reduction="sum", wrong=None, step=None):
    """One SGD step per (X, Y) of `batches` -> yields (E before the step, its gradients, the params after it).
    Nothing is checked here, on every step: train checks its batch once, crosscheck.train its data set."""
    step = step or sgd_step
    for X, Y in batches:
        values = forward(X, params, Y, reduction)
        grads = backward(X, Y, params, values, reduction, wrong)
        params = step(params, grads, lr)
        yield values["E"], grads, params
