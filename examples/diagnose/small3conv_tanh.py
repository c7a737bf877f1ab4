"""A hand-written layer in a described network, for
``crosscheck diagnose --module examples/diagnose/small3conv_tanh.py``.

Layer 6 of small3conv.toml is a tanh. This forward caches its output y; the backward uses 1 - tanh(y)^2,
the derivative at the output, where 1 - y^2 (the derivative at the input, written with the output) was meant.
"""

import numpy as np

from manual import functional as F


def tanh_forward(x, params, options):
    """(out, cache) as manual.network's forwards: x of any shape -> y = tanh(x), cached."""
    y, _ = F.tanh_forward(x)
    return y, y


def tanh_backward(dout, y):
    return (dout * (1 - np.tanh(y) ** 2),)


SPEC = "../small3conv.toml"  # relative to this file
LAYER_FORWARD = {6: tanh_forward}
LAYER_BACKWARD = {6: tanh_backward}
