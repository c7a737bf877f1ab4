"""A fully connected layer that keeps its parameters and gradients on the object (NumPy only)."""

import numpy as np


class Dense:
    """y = x @ W + b with W (D, H), b (H,); backward(dy) fills self.grads and returns dx."""

    def __init__(self, d_in=5, d_out=3, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.standard_normal((d_in, d_out)) * 0.1, "b": np.zeros(d_out)}
        self.grads = {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy):
        self.grads["W"] = self.x.T @ dy
        self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T
