"""AccumulatingLinear (stateful.py) against torch: params_layer makes a new object for every forward and every
backward, so no gradient is added into one left by another case, and gradcheck's repeated backward calls agree."""
from stateful import AccumulatingLinear

from crosscheck import assert_layer_matches, params_layer


def test_accumulating_linear_matches_torch():  # values="{}": the parameters are layer.W; grads="d{}": layer.dW
    assert_layer_matches(params_layer(AccumulatingLinear, ["W", "b"], values="{}", grads="d{}"),
                         torch_fn=lambda x, W, b: x @ W + b, shapes=[(4, 5), (5, 3), (3,)], gradcheck=True)
