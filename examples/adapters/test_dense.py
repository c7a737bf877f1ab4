"""Dense (dense.py), parameters on the object, against torch: the input gradient and both parameter gradients."""
from dense import Dense

from crosscheck import assert_layer_matches, params_layer


def test_dense_matches_torch():  # the inputs are x and then the parameters, in params' order
    assert_layer_matches(params_layer(Dense, ["W", "b"]), torch_fn=lambda x, W, b: x @ W + b,
                         shapes=[(4, 5), (5, 3), (3,)])
