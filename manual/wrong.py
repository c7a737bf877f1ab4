"""Deliberately wrong derivations, kept apart from the real code.

Each entry replaces one step's backward in ``seed_network.backward`` (through its
``layer_backward`` argument) with a mistake people make when deriving by hand. The
test suite and ``crosscheck --inject NAME`` use them to show that a wrong gradient is
caught; nothing in the real network imports them.
"""

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from manual import layers
from manual.validation import InputError


@dataclass(frozen=True)
class WrongDerivation:
    name: str
    step: str  # the step of seed_network.LAYER_BACKWARD it replaces
    first_wrong: str  # the first quantity of the backward pass it makes wrong
    description: str
    backward: object

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


WRONG_DERIVATIONS = [
    WrongDerivation("scaled-dE_dW", "Z2", "dE_dW", "dE/dW multiplied by 1 + 1e-6", _linear_dW_scaled),
    WrongDerivation("scaled-dE_df", "Z1", "dE_df", "dE/df multiplied by 1 + 1e-6", _conv_df_scaled),
    WrongDerivation(
        "transposed-dE_dW", "Z2", "dE_dW", "dE/dW = dE/dZ2^T . H1, torch's layout instead of the slides'",
        _linear_dW_transposed,
    ),
    WrongDerivation(
        "flipped-kernel-dE_df", "Z1", "dE_df", "dE/df by true (flipped) convolution of X with dE/dZ1",
        _conv_df_true_convolution,
    ),
    WrongDerivation(
        "missing-dH1_dZ1", "H1", "dE_dZ1", "dE/dZ1 = dE/dH1, the sigmoid derivative dH1/dZ1 left out",
        _sigmoid_derivative_missing,
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
