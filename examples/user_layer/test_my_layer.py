"""My swish layer (my_layer.py) against torch autograd; run with `pytest examples/user_layer`."""
import torch
from my_layer import swish_backward, swish_forward

from crosscheck import assert_layer_matches


def test_swish_matches_torch():  # torch runs the same forward; autograd derives the gradients
    assert_layer_matches(swish_forward, swish_backward, lambda x, beta: x * torch.sigmoid(beta * x),
                         shapes=[(4, 5), (5,)], gradcheck=True)
