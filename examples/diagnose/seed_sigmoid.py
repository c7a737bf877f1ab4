"""A hand-derived equation of the slides' network: ``crosscheck diagnose --module examples/diagnose/seed_sigmoid.py``.

The output sigmoid's local derivative dO/dZ2, written as sigmoid(z)(1 - sigmoid(z)) and fed the output O where
Z2 was meant. Equations are named as in manual.seed_network.EQUATIONS (dE_dO, dO_dZ2, ..., dE_df) and take the
same arguments as the real ones.
"""

import numpy as np


def dO_dZ2(O):
    """dO/dZ2 = sigmoid'(Z2); but only O = sigmoid(Z2) is at hand."""
    s = 1 / (1 + np.exp(-O))
    return s * (1 - s)


LAYER_BACKWARD = {"dO_dZ2": dO_dZ2}
CASE = {"input_shape": [6, 6], "kernel_shape": [3, 3], "batch": 2}
