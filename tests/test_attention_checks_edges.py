"""Bad-input corners of manual/attention.py that tests/test_attention.py passes by: a parameter that is not a float
NumPy array (a list, integers, a nan) is named by its own name in both multihead_attention_forward and
transformer_encoder_layer_forward, for every parameter; and the encoder layer rejects an x of fewer than 3 axes
itself, as an InputError naming x, before its layer norm reads x's last axis (a 0-D x has none). The messages are
asserted whole."""

import re

import numpy as np
import pytest
from layer_cases import encoder_shapes

from manual import attention as A
from netdesc import InputError

MHA_NAMES = ["in_proj_weight", "out_proj_weight", "in_proj_bias", "out_proj_bias"]
ENCODER_NAMES = ["in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias", "linear1_weight",
                 "linear1_bias", "linear2_weight", "linear2_bias", "norm1_weight", "norm1_bias", "norm2_weight",
                 "norm2_bias"]


def _raises(message, call, *args, **kwargs):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call(*args, **kwargs)


def _mha_params():
    E = 6
    return dict(zip(MHA_NAMES, (np.zeros((3 * E, E)), np.zeros((E, E)), np.zeros(3 * E), np.zeros(E)), strict=True))


def _encoder_inputs():
    x, *params = (np.zeros(s) for s in encoder_shapes(2, 4))
    return x, dict(zip(ENCODER_NAMES, params, strict=True))


BAD_VALUES = [
    ("list", lambda a: a.tolist(), "got list, needs a NumPy array"),
    ("int", lambda a: a.astype(np.int64), "got dtype int64, needs float32 or float64"),
    ("nan", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 1, np.nan, a),
     "got non-finite value nan at index {index}, needs finite values"),
]


def _message(name, template, shape):
    index = (1,) if len(shape) == 1 else (0, 1)
    return f"{name}: {template.format(index=index)}"


@pytest.mark.parametrize(("bad", "template"), [(b[1], b[2]) for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
@pytest.mark.parametrize("name", MHA_NAMES)
def test_multihead_attention_names_the_parameter_that_is_not_a_float_array(name, bad, template):
    """Each of the four parameters, given as a list, as integers or with a nan, is an InputError that starts with
    that parameter's name: never a nameless one."""
    params = _mha_params()
    shape = params[name].shape
    params[name] = bad(params[name])
    _raises(_message(name, template, shape), A.multihead_attention_forward, np.zeros((2, 4, 6)),
            params.pop("in_proj_weight"), params.pop("out_proj_weight"), **params, num_heads=2)


@pytest.mark.parametrize(("bad", "template"), [(b[1], b[2]) for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_encoder_layer_names_the_parameter_that_is_not_a_float_array(name, bad, template):
    """Each of the encoder layer's 12 parameters, given as a list, as integers or with a nan, is an InputError
    that starts with its state_dict name (dots as underscores, self_attn. left out)."""
    x, params = _encoder_inputs()
    shape = params[name].shape
    params[name] = bad(params[name])
    _raises(_message(name, template, shape), A.transformer_encoder_layer_forward, x, *params.values(), num_heads=2)


@pytest.mark.parametrize(("shape", "message"), [
    ((), "x: got 0-D array of shape (), needs 3-D"),
    ((4,), "x: got 1-D array of shape (4,), needs 3-D"),
    ((2, 4), "x: got 2-D array of shape (2, 4), needs 3-D"),
], ids=["0d", "1d", "2d"])
def test_encoder_layer_rejects_an_x_of_fewer_than_three_axes_first(shape, message):
    """x must be (N, T, E), torch.nn.TransformerEncoderLayer(batch_first=True)'s layout: a 0-D, 1-D or 2-D x is an
    InputError naming x and its shape, not an IndexError from reading its features nor a layer norm's complaint."""
    _, params = _encoder_inputs()
    _raises(message, A.transformer_encoder_layer_forward, np.zeros(shape), *params.values(), num_heads=2)


@pytest.mark.parametrize(("x", "w_in", "w_out"), [((0, 4, 6), (18, 6), (6, 6)), ((2, 0, 6), (18, 6), (6, 6)),
                                                  ((2, 4, 0), (0, 0), (0, 0))], ids=["no-sample", "no-position",
                                                                                     "no-feature"])
def test_attention_over_nothing_is_refused_with_x_named(x, w_in, w_out):
    """A zero-size x (no sample, no position or no feature) is an InputError naming x, as the recurrent layers'
    is, in the attention and in the encoder layer that calls it: not a reshape's ValueError nor a division by zero.
    """
    message = f"x: got shape {x}, needs at least one sample, one position and one feature"
    _raises(message, A.multihead_attention_forward, np.zeros(x), np.zeros(w_in), np.zeros(w_out), num_heads=2)
    if x[2]:  # the encoder's parameters are sized by its own E: the same empty axis on its x
        full, params = _encoder_inputs()
        empty = tuple(0 if n == 0 else m for n, m in zip(x, full.shape, strict=True))
        _raises(f"x: got shape {empty}, needs at least one sample, one position and one feature",
                A.transformer_encoder_layer_forward, np.zeros(empty), *params.values(), num_heads=2)


def test_attention_without_keys_is_refused_and_without_queries_is_empty():
    """No keys (S = 0): the softmax over them has no value (torch returns zeros), an InputError naming k; no
    queries (T = 0): an empty output of q's shape, as torch's."""
    none, three = np.zeros((2, 1, 0, 3)), np.ones((2, 1, 3, 3))
    _raises("k: got shape (2, 1, 0, 3), needs at least one key (S >= 1)", A.scaled_dot_product_attention_forward,
            three, none, none)
    out, _ = A.scaled_dot_product_attention_forward(none, three, three)
    assert out.shape == (2, 1, 0, 3)
