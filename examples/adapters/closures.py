"""Layers in the closure style: forward(X) -> (Y, backprop), backprop(dY) -> dX (NumPy only)."""

import numpy as np


def softplus(X):
    """Y = log(1 + exp(X)); dY/dX = sigmoid(X)."""
    Y = np.logaddexp(0.0, X)

    def backprop(dY):
        return dY / (1.0 + np.exp(-X))

    return Y, backprop
