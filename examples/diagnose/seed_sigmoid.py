"""A hand-derived step of the slides' network, for ``crosscheck diagnose --module examples/diagnose/seed_sigmoid.py``.

The output sigmoid's backward, O = sigmoid(Z2), with its derivative written as sigmoid(z)(1 - sigmoid(z)) and
fed the cached output O where Z2 was meant. Steps are named by the quantity they produce: E, O, Z2, H1, Z1.
"""

import numpy as np


def sigmoid_backward(dout, O):
    """dZ2 = dout * sigmoid'(Z2); the cache holds O = sigmoid(Z2)."""
    s = 1 / (1 + np.exp(-O))
    return (dout * s * (1 - s),)


LAYER_BACKWARD = {"O": sigmoid_backward}
CASE = {"input_shape": [6, 6], "kernel_shape": [3, 3], "batch": 2}
