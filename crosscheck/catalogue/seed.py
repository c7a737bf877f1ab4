"""Deliberately wrong derivations, kept apart from the real code.

Each entry of WRONG_DERIVATIONS replaces one step's backward in ``seed_network.backward``
(through its ``layer_backward`` argument) with a mistake people make when deriving by hand,
one that is caught in every case. SEED_CATALOGUE adds the mistakes that need a particular
case (a mean reduction) or replace the SGD update (step "update": sgd_step's signature).
The test suite, ``crosscheck --inject NAME`` and ``crosscheck diagnose --wrong NAME`` use them
to show that a wrong gradient is caught, where and as what (``kind``, a class of
crosscheck.diagnose); nothing in the real network imports them. The general layers' mistakes
are in crosscheck.catalogue.layers.
"""

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from manual import layers
from netdesc.checks import InputError


@dataclass(frozen=True)
class WrongDerivation:
    name: str
    step: str  # the step of seed_network.LAYER_BACKWARD it replaces, or "update" for seed_network.sgd_step
    first_wrong: str  # the first quantity of the backward pass it makes wrong
    description: str
    backward: object
    kind: str = "unclassified"  # the class crosscheck.diagnose should give it
    case: tuple = ()  # (field, value) pairs of crosscheck.seed_check.SeedCase it needs
    dtypes: tuple = ("float64", "float32")  # where the harness can flag it

    def __str__(self):
        return self.name


def _linear_dW_scaled(dZ2, cache):
    dH1, dW, db = layers.linear_backward(dZ2, cache)
    return dH1, dW * (1 + 1e-6), db


def _conv_df_scaled(dZ1, cache, input_grad=True):
    dX, df = layers.conv_backward(dZ1, cache, input_grad)
    return dX, df * (1 + 1e-6)


def _linear_dW_transposed(dZ2, cache):
    # dZ2^T . H1 is torch's (n_out, n_hidden) layout, not the slides' (n_hidden, n_out).
    H1, W = cache
    return dZ2 @ W.T, dZ2.T @ H1, dZ2.sum(axis=0)


def _conv_df_true_convolution(dZ1, cache, input_grad=True):
    # Reading the slides' "conv" as true convolution flips dE/dZ1 before sliding it over X.
    dX, _ = layers.conv_backward(dZ1, cache, input_grad)
    _, X, _ = cache
    windows = sliding_window_view(X, dZ1.shape[1:], axis=(1, 2))  # (N, KH, KW, OH, OW)
    return dX, np.einsum("npqij,nij->pq", windows, dZ1[:, ::-1, ::-1])


def _sigmoid_derivative_missing(dout, cache):
    return (dout,)


def _error_sign_flipped(dE, cache):
    # d/dO (Y - O)^2 / 2 = -(Y - O): the inner minus sign dropped gives Y - O.
    dO, dY = layers.half_squared_error_backward(dE, cache)
    return -dO, dY


def _sigmoid_derivative_of_output(dout, cache):
    # sigmoid'(z) = s(1 - s) with s = sigmoid(z), but fed O = sigmoid(Z2) as if it were Z2.
    return (dout * layers.sigmoid_derivative(layers.sigmoid(cache)),)


def _sigmoid_derivative_twice(dout, cache):
    (dz,) = layers.sigmoid_backward(dout, cache)
    return (dz * layers.sigmoid_derivative(cache),)


def _mean_forgotten(dE, cache):
    # cache = (O - Y, N for "mean" else 1): dE/dO = (O - Y) / N, the division left out.
    diff, _ = cache
    return diff * np.asarray(dE, dtype=diff.dtype), None


def _sgd_step_ascending(params, grads, lr):
    # w <- w + lr * dE/dw: a step up the error surface.
    return {name: params[name] + params[name].dtype.type(lr) * grads[f"dE_d{name}"] for name in params}


FLOAT64_ONLY = ("float64",)  # a change of 1e-6 relative lies inside float32's tolerance (1e-4): not a mismatch there

WRONG_DERIVATIONS = [
    WrongDerivation("scaled-dE_dW", "Z2", "dE_dW", "dE/dW multiplied by 1 + 1e-6", _linear_dW_scaled,
                    kind="scaled", dtypes=FLOAT64_ONLY),
    WrongDerivation("scaled-dE_df", "Z1", "dE_df", "dE/df multiplied by 1 + 1e-6", _conv_df_scaled,
                    kind="scaled", dtypes=FLOAT64_ONLY),
    WrongDerivation(
        "transposed-dE_dW", "Z2", "dE_dW", "dE/dW = dE/dZ2^T . H1, torch's layout instead of the slides'",
        _linear_dW_transposed, kind="transposed",
    ),
    WrongDerivation(
        "flipped-kernel-dE_df", "Z1", "dE_df", "dE/df by true (flipped) convolution of X with dE/dZ1",
        _conv_df_true_convolution, kind="kernel-flipped",
    ),
    WrongDerivation(
        "missing-dH1_dZ1", "H1", "dE_dZ1", "dE/dZ1 = dE/dH1, the sigmoid derivative dH1/dZ1 left out",
        _sigmoid_derivative_missing, kind="activation-missing",
    ),
    WrongDerivation(
        "flipped-sign-dE_dO", "E", "dE_dO", "dE/dO = Y - O, the minus sign of the inner derivative dropped",
        _error_sign_flipped, kind="sign",
    ),
    WrongDerivation(
        "sigmoid-of-output-dO_dZ2", "O", "dE_dZ2", "dO/dZ2 = sigmoid'(O) = sigmoid(O)(1 - sigmoid(O)): O(1 - O) "
        "applied once more, the derivative taken at the output O instead of at Z2",
        _sigmoid_derivative_of_output, kind="activation-wrong-point",
    ),
    WrongDerivation(
        "twice-dH1_dZ1", "H1", "dE_dZ1", "dE/dZ1 = dE/dH1 * H1(1 - H1) * H1(1 - H1), the sigmoid derivative "
        "applied twice", _sigmoid_derivative_twice, kind="activation-twice",
    ),
]

SEED_CATALOGUE = WRONG_DERIVATIONS + [
    WrongDerivation(
        "mean-forgotten-dE_dO", "E", "dE_dO", "dE/dO = O - Y under the mean reduction, the division by N left out",
        _mean_forgotten, kind="batch-reduction", case=(("reduction", "mean"),),
    ),
    WrongDerivation(
        "sgd-wrong-sign", "update", "W after step 1", "w <- w + alpha dE/dw: the update climbs the error",
        _sgd_step_ascending, kind="update-sign",
    ),
]


def scaled_backward(backward, factor):
    """`backward` with every gradient it returns multiplied by `factor`: the smallest wrong derivation, for the
    layers of manual.network (``layer_backward={index: scaled_backward(...)}``)."""
    def wrong_backward(dout, cache):
        return tuple(None if g is None else g * factor for g in backward(dout, cache))
    return wrong_backward


def get(name):
    """The entry called `name`; InputError listing the names otherwise."""
    for entry in WRONG_DERIVATIONS:
        if entry.name == name:
            return entry
    raise InputError(f"wrong derivation: got {name!r}, needs one of {', '.join(e.name for e in WRONG_DERIVATIONS)}")

ENTRIES = SEED_CATALOGUE  # converted to crosscheck.catalogue.WrongDerivation next
