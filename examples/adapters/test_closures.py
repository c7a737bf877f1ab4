"""softplus (closures.py), in the forward -> (Y, backprop) style, against torch."""
import torch.nn.functional as F
from closures import softplus

from crosscheck import assert_layer_matches, closure_layer


def test_softplus_matches_torch():
    assert_layer_matches(closure_layer(softplus), torch_fn=F.softplus, shapes=[(4, 6)], gradcheck=True)
