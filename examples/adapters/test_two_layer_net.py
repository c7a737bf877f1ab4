"""TwoLayerNet (two_layer_net.py) against the same network in torch, through a parameter-name mapping."""
import numpy as np
import torch.nn.functional as F
from torch import nn
from two_layer_net import TwoLayerNet

from crosscheck import assert_model_matches

MAPPING = {"W1": ("0.weight", np.transpose), "b1": "0.bias", "W2": ("2.weight", np.transpose), "b2": "2.bias"}


def test_two_layer_net_matches_torch():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 6)), rng.integers(0, 4, 8)
    module = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    assert_model_matches(TwoLayerNet(), module, MAPPING, X, y, lambda m, X, y: F.cross_entropy(m(X), y),
                         dtypes=["float64", "float32"])
