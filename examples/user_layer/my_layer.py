"""A user's own layer: swish with a learned beta per feature, y = x * sigmoid(beta * x) (NumPy only)."""

import numpy as np


def swish_forward(x, beta):
    """x (N, D), beta (D,) -> y (N, D) = x * s with s = sigmoid(beta * x)."""
    s = 1 / (1 + np.exp(-beta * x))
    return x * s, (x, beta, s)


def swish_backward(dy, cache):
    """-> (dx = dy * (s + beta * x * s * (1 - s)), dbeta = sum over the batch of dy * x^2 * s * (1 - s))."""
    x, beta, s = cache
    dz = dy * x * s * (1 - s)  # the gradient at z = beta * x
    return dy * s + dz * beta, (dz * x).sum(axis=0)
