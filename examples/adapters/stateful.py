"""A fully connected layer in a style common in hand-written NumPy libraries: it keeps every input it is given (a
list that backward pops, so forward may run several times before backward), and backward adds the parameters'
gradients into buffers that the training loop clears with zero_grad() (NumPy only)."""

import numpy as np


class AccumulatingLinear:
    """y = x @ W + b with W (D, H), b (H,) as attributes; backward(dy) adds into self.dW, self.db and returns dx."""

    def __init__(self, d_in=5, d_out=3, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((d_in, d_out)) * 0.1
        self.b = np.zeros(d_out)
        self.inputs = []
        self.zero_grad()

    def zero_grad(self):
        self.dW, self.db = 0.0, 0.0  # Python zeros: the first gradient added in keeps its own dtype

    def forward(self, x):
        self.inputs.append(x)
        return x @ self.W + self.b

    def backward(self, dy):
        x = self.inputs.pop()
        self.dW += x.T @ dy
        self.db += dy.sum(axis=0)
        return dy @ self.W.T
