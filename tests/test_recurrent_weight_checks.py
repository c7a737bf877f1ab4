"""Edges of manual.recurrent's weight checks that the broader suites pass by: a hidden weight (a cell's w_hh, a second
layer's w_hh_l1) with one axis or three, refused by its axes before its shape is read; an input weight or a bias that
is not an array, not float or has the wrong number of axes, refused naming it (w_ih_l0, w_ih, b_ih_l0, b_hh_l1, ...);
and the RNN's single gate block, named in the singular in w_ih's shape message. Every expectation is a whole
InputError message, the shapes it asks for being those of torch's parameters."""

import numpy as np
import pytest
import torch
from layer_cases import recurrent_shapes

from manual import recurrent as R
from netdesc import InputError

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _arrays(kind, T=3, N=2, F=3, H=2, num_layers=2, seed=0):
    rng = np.random.default_rng(seed)
    shapes = recurrent_shapes(GATES[kind], T, N, F, H, num_layers, True, False, kind == "lstm")
    return [rng.standard_normal(s) * (0.6 if i > 1 else 1) for i, s in enumerate(shapes)]


def _cell(kind, N=2, F=3, H=2, seed=1):
    """x, then a cell's (w_ih, w_hh, b_ih, b_hh) in torch's shapes."""
    rng = np.random.default_rng(seed)
    G = GATES[kind]
    return [rng.standard_normal(s) for s in ((N, F), (G * H, F), (G * H, H), (G * H,), (G * H,))]


def _message(function, *args, **kwargs):
    with pytest.raises(InputError) as info:
        function(*args, **kwargs)
    return str(info.value)


def test_a_cells_hidden_weight_with_one_or_three_axes_is_refused_by_its_axes():
    """A cell reads H from w_hh's second axis, so w_hh is checked to be 2-D first: a 1-D or 3-D w_hh is refused
    by its number of axes (not an IndexError, not a shape message built from a misread H)."""
    x, w_ih, w_hh, b_ih, b_hh = _cell("gru")
    assert tuple(torch.nn.GRUCell(3, 2).weight_hh.shape) == w_hh.shape == (6, 2)
    assert _message(R.gru_cell_forward, x, None, w_ih, w_hh.ravel(), b_ih, b_hh) == (
        "w_hh: got 1-D array of shape (12,), needs 2-D")
    assert _message(R.gru_cell_forward, x, None, w_ih, w_hh[..., None], b_ih, b_hh) == (
        "w_hh: got 3-D array of shape (6, 2, 1), needs 2-D")


def test_a_second_layers_hidden_weight_with_one_or_three_axes_is_refused_by_its_axes():
    """w_hh_l1 (H is read from w_hh_l0) 1-D or 3-D: refused by its number of axes, naming w_hh_l1."""
    x, h0, c0, *weights = _arrays("lstm")
    assert tuple(torch.nn.LSTM(3, 2, 2).weight_hh_l1.shape) == weights[5].shape == (8, 2)
    for bad, message in ((weights[5].ravel(), "w_hh_l1: got 1-D array of shape (16,), needs 2-D"),
                         (weights[5][None], "w_hh_l1: got 3-D array of shape (1, 8, 2), needs 2-D")):
        changed = [*weights[:5], bad, *weights[6:]]
        assert _message(R.lstm_forward, x, h0, c0, *changed) == message


def test_a_bad_input_weight_is_named_w_ih():
    """w_ih_l0 (or a cell's w_ih) not an array, of integers, or not 2-D: the message names it and says what it got;
    a 1-D or 3-D one is refused by its axes, not by a shape message."""
    x, h0, *weights = _arrays("gru", num_layers=1)
    w_ih = weights[0]
    assert tuple(torch.nn.GRU(3, 2).weight_ih_l0.shape) == w_ih.shape == (6, 3)
    for bad, message in ((w_ih.tolist(), "w_ih_l0: got list, needs a NumPy array"),
                         (w_ih.astype(np.int64), "w_ih_l0: got dtype int64, needs float32 or float64"),
                         (w_ih.ravel(), "w_ih_l0: got 1-D array of shape (18,), needs 2-D"),
                         (w_ih[None], "w_ih_l0: got 3-D array of shape (1, 6, 3), needs 2-D")):
        assert _message(R.gru_forward, x, h0, bad, *weights[1:]) == message
    x, w_ih, w_hh, b_ih, b_hh = _cell("rnn")
    assert _message(R.rnn_cell_forward, x, None, w_ih.tolist(), w_hh, b_ih, b_hh) == (
        "w_ih: got list, needs a NumPy array")
    assert _message(R.rnn_cell_forward, x, None, w_ih[..., None], w_hh, b_ih, b_hh) == (
        "w_ih: got 3-D array of shape (2, 3, 1), needs 2-D")


def test_a_bad_bias_is_named_by_its_layer():
    """b_ih_l0, b_hh_l1 (or a cell's b_hh) not an array, non-finite, or not 1-D (a (G*H, 1) column, a 0-D
    scalar): the message names that bias and says what it got, by its axes rather than by its shape."""
    x, h0, c0, *weights = _arrays("lstm")
    assert tuple(torch.nn.LSTM(3, 2, 2).bias_hh_l1.shape) == weights[7].shape == (8,)
    nan = weights[3].copy()
    nan[1] = np.nan
    for at, bad, message in ((2, weights[2].tolist(), "b_ih_l0: got list, needs a NumPy array"),
                             (3, nan, "b_hh_l0: got non-finite value nan at index (1,), needs finite values"),
                             (7, weights[7][:, None], "b_hh_l1: got 2-D array of shape (8, 1), needs 1-D"),
                             (6, weights[6][None], "b_ih_l1: got 2-D array of shape (1, 8), needs 1-D")):
        changed = [*weights[:at], bad, *weights[at + 1:]]
        assert _message(R.lstm_forward, x, h0, c0, *changed) == message
    x, w_ih, w_hh, b_ih, b_hh = _cell("gru")
    assert _message(R.gru_cell_forward, x, None, w_ih, w_hh, b_ih, np.array(0.5)) == (
        "b_hh: got 0-D array of shape (), needs 1-D")
    assert _message(R.gru_cell_forward, x, None, w_ih, w_hh, b_ih.astype(np.int32), b_hh) == (
        "b_ih: got dtype int32, needs float32 or float64")


def test_the_rnns_input_weight_of_a_wrong_shape_is_one_gate_block():
    """The RNN stacks one gate block (torch's weight_ih is (H, F)): a w_ih of another shape is refused with "1 gate
    block", singular, in the sequence layer and in the cell; torch refuses such a weight too."""
    rng = np.random.default_rng(4)
    x, w_ih, w_hh = rng.standard_normal((2, 2, 3)), rng.standard_normal((3, 3)), rng.standard_normal((2, 2))
    layer = torch.nn.RNN(3, 2, bias=False).double()
    assert tuple(layer.weight_ih_l0.shape) == (2, 3)
    params = {"weight_ih_l0": torch.from_numpy(w_ih), "weight_hh_l0": torch.from_numpy(w_hh)}
    with pytest.raises(RuntimeError):
        torch.func.functional_call(layer, params, (torch.from_numpy(x),))
    assert _message(R.rnn_forward, x, None, w_ih, w_hh, bias=False) == (
        "w_ih_l0: got shape (3, 3), needs (2, 3) (1 gate block of H = 2 rows over the 3 input features, torch's "
        "weight_ih_l0)")
    assert tuple(torch.nn.RNNCell(3, 2).weight_ih.shape) == (2, 3)
    assert _message(R.rnn_cell_forward, x[0], None, w_ih, w_hh) == (
        "w_ih: got shape (3, 3), needs (2, 3) (1 gate block of H = 2 rows over the 3 input features, torch's "
        "weight_ih)")
