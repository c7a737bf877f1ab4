"""Edges of manual.recurrent's sequence layers (and leaky_relu's sign of zero) that the broader suites pass by:
the trace a plain backward leaves on the cache for a diagnosis, the input's own shape kept on the cache, the
bad-input messages that name h0, w_hh_l0, w_hh_l1 and a cell's w_hh (a non-array, a wrong number of axes), a
sequence without samples or without features, the weight count's message without a bias, a second layer whose
hidden size is not the first's, and leaky_relu's sign of zero under a negative slope. Every expectation comes from
torch (autograd, torch.nn.functional) or is a whole InputError message."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from layer_cases import recurrent_shapes

from manual import functional as M
from manual import recurrent as R
from netdesc import InputError
from reference.recurrent import QUANTITIES, unrolled

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
SEQUENCES = {"rnn": (R.rnn_forward, R.rnn_backward), "lstm": (R.lstm_forward, R.lstm_backward),
             "gru": (R.gru_forward, R.gru_backward)}


def _arrays(kind, T=4, N=2, F=3, H=2, num_layers=2, bias=True, batch_first=False, seed=0):
    rng = np.random.default_rng(seed)
    shapes = recurrent_shapes(GATES[kind], T, N, F, H, num_layers, bias, batch_first, kind == "lstm")
    return [rng.standard_normal(s) * (0.6 if i > 1 else 1) for i, s in enumerate(shapes)]


def _message(call):
    with pytest.raises(InputError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_the_plain_backward_leaves_the_trace_on_the_cache(kind):
    """<layer>_backward (not the _with_trace one) leaves every layer's per-step trace on cache.trace, where a
    diagnosis reads it: each quantity at each step is autograd's gradient of it in the unrolled torch steps."""
    arrays = _arrays(kind)
    states = 2 if kind == "lstm" else 1
    forward, backward = SEQUENCES[kind]
    out, cache = forward(*arrays)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    backward(dout, cache)

    tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]
    t_out, _, steps = unrolled(kind, tensors[0], tensors[1:1 + states], tensors[1 + states:])
    t_out.backward(torch.from_numpy(dout))
    assert cache.trace is not None and len(cache.trace) == 2
    for l in range(2):
        assert set(cache.trace[l]) == {f"d{q}" for q in QUANTITIES[kind]}
        for q in QUANTITIES[kind]:
            autograd = torch.stack([v.grad for v in steps[l][q]]).numpy()
            np.testing.assert_allclose(cache.trace[l][f"d{q}"], autograd, rtol=1e-10, atol=1e-12, err_msg=f"{l} d{q}")


@pytest.mark.parametrize("batch_first", [False, True])
def test_the_cache_keeps_the_shape_of_x_as_given(batch_first):
    """cache.x_shape is x's shape in the layout the caller gave, (N, T, F) with batch_first: a backward written
    against the cache (tests/test_recurrent.py's untraced one) sizes dx by it, as torch's x.grad has x's shape."""
    arrays = _arrays("gru", T=4, N=2, F=3, batch_first=batch_first)
    out, cache = R.gru_forward(*arrays, batch_first=batch_first)
    tx = torch.from_numpy(arrays[0]).requires_grad_()
    layer = torch.nn.GRU(3, 2, 2, batch_first=batch_first).double()
    layer(tx)[0].sum().backward()
    assert cache.x_shape == tuple(tx.grad.shape) == ((2, 4, 3) if batch_first else (4, 2, 3))


def test_a_bad_initial_state_is_named_h0():
    """h0 not an array, or (N, H) without the layers' axis: the message names h0 and says what it got."""
    x, h0, *weights = _arrays("rnn", T=3, N=2, F=3, H=2, num_layers=1)
    assert _message(lambda: R.rnn_forward(x, h0.tolist(), *weights)) == "h0: got list, needs a NumPy array"
    assert _message(lambda: R.rnn_forward(x, h0[0], *weights)) == "h0: got 2-D array of shape (2, 2), needs 3-D"
    x, h0, c0, *weights = _arrays("lstm", T=3, N=2, F=3, H=2, num_layers=1)
    assert _message(lambda: R.lstm_forward(x, h0, c0[0, 0], *weights)) == "c0: got 1-D array of shape (2,), needs 3-D"


def test_a_bad_first_hidden_weight_is_named_w_hh_l0():
    """w_hh_l0, from which the hidden size is read, not an array or not 2-D: the message names w_hh_l0."""
    x, h0, w_ih, w_hh, b_ih, b_hh = _arrays("gru", T=3, N=2, F=3, H=2, num_layers=1)
    assert _message(lambda: R.gru_forward(x, h0, w_ih, w_hh.tolist(), b_ih, b_hh)) == ("w_hh_l0: got list, needs a "
                                                                                        "NumPy array")
    assert _message(lambda: R.gru_forward(x, h0, w_ih, w_hh.ravel(), b_ih, b_hh)) == ("w_hh_l0: got 1-D array of "
                                                                                       "shape (12,), needs 2-D")
    assert _message(lambda: R.gru_forward(x, h0, w_ih, w_hh[None], b_ih, b_hh)) == ("w_hh_l0: got 3-D array of "
                                                                                     "shape (1, 6, 2), needs 2-D")


def test_a_bad_hidden_weight_of_a_second_layer_or_of_a_cell_is_named():
    """w_hh_l1 not an array names w_hh_l1; a cell's w_hh not an array names w_hh."""
    x, h0, c0, *weights = _arrays("lstm", T=3, N=2, F=3, H=2, num_layers=2)
    weights[5] = weights[5].tolist()
    assert _message(lambda: R.lstm_forward(x, h0, c0, *weights)) == "w_hh_l1: got list, needs a NumPy array"
    rng = np.random.default_rng(2)
    x, w_ih, w_hh = rng.standard_normal((2, 3)), rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    assert _message(lambda: R.gru_cell_forward(x, None, w_ih, w_hh.tolist())) == "w_hh: got list, needs a NumPy array"


@pytest.mark.parametrize("shape", [(3, 0, 2), (3, 2, 0)], ids=["no-sample", "no-feature"])
def test_a_sequence_without_samples_or_features_is_refused(shape):
    """x (T, 0, F) or (T, N, 0): refused by manual's contract, naming x's shape, before any weight is read (torch
    refuses input_size 0 too, but returns an empty output for an empty batch)."""
    x = np.zeros(shape)
    w_ih, w_hh = np.zeros((2, shape[2])), np.zeros((2, 2))
    assert _message(lambda: R.rnn_forward(x, None, w_ih, w_hh, bias=False)) == (
        f"x: got shape {shape}, needs at least one time step, one sample and one feature")


def test_the_weight_count_without_a_bias_asks_for_two_arrays_per_layer():
    """bias=False: torch's flat list is w_ih, w_hh per layer; three arrays are refused with that list, no biases."""
    x, h0, w_ih, w_hh = _arrays("gru", T=3, N=2, F=3, H=2, num_layers=1, bias=False)
    assert _message(lambda: R.gru_forward(x, h0, w_ih, w_hh, w_ih, bias=False)) == (
        "weights: got 3 arrays, needs 2 per layer (w_ih, w_hh, torch's order) for one or more layers")


def test_a_second_layer_of_another_hidden_size_is_refused():
    """torch.nn.RNN has one hidden size H for every layer, read from w_hh_l0: a second layer with weights of
    another size (w_ih_l1 (H', H), w_hh_l1 (H', H')) is refused, naming w_hh_l1; torch refuses such weights too."""
    rng = np.random.default_rng(3)
    x, w_ih0, w_hh0 = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 2))
    w_ih1, w_hh1 = rng.standard_normal((3, 2)), rng.standard_normal((3, 3))
    layer = torch.nn.RNN(4, 2, 2, bias=False).double()
    params = dict(zip(["weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"],
                      map(torch.from_numpy, (w_ih0, w_hh0, w_ih1, w_hh1)), strict=True))
    with pytest.raises(RuntimeError):
        torch.func.functional_call(layer, params, (torch.from_numpy(x),))
    assert _message(lambda: R.rnn_forward(x, None, w_ih0, w_hh0, w_ih1, w_hh1, bias=False)) == (
        "w_hh_l1: got shape (3, 3), needs (2, 2) (1 gate block of H = 2 rows, torch's weight_hh_l1)")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_leaky_relu_gives_torchs_sign_of_zero_under_a_negative_slope(dtype):
    """x = +0 and -0 are not > 0: both take x * negative_slope, as torch's leaky_relu, so a negative slope flips
    their signs (+0 -> -0, -0 -> +0); positive values pass unchanged."""
    x = np.array([0.0, -0.0, 1.5, -2.0], dtype)
    out, _ = M.leaky_relu_forward(x, -1.5)
    expected = TF.leaky_relu(torch.from_numpy(x), -1.5).numpy()
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expected))
    assert np.signbit(expected).tolist() == [True, False, False, False]
