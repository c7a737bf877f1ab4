"""Corners of manual.recurrent and manual.network that the broader suites pass by: a step function's default
nonlinearity, relu's derivative exactly at a = 0, and the network's recurrent backward without the initial states'
gradients (built at test time, not read from the table filled at import). Every expectation comes from torch.
(A weight decay of exactly 1 in every optimizer: tests/test_optim_normalize_edges.py.)"""

import numpy as np
import pytest
import torch

from manual import network
from manual import recurrent as R


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def test_rnn_step_forward_defaults_to_tanh():
    """rnn_step_forward with no nonlinearity given is torch.nn.RNNCell's default, tanh: a negative pre-activation
    stays negative (relu would clip it to 0)."""
    rng = np.random.default_rng(0)
    xw, h_prev = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    w_hh, b_hh = rng.standard_normal((2, 2)), rng.standard_normal(2)
    h, _ = R.rnn_step_forward(xw, h_prev, w_hh, b_hh)
    expected = torch.tanh(_t(xw) + _t(h_prev) @ _t(w_hh).T + _t(b_hh)).numpy()
    assert (expected < 0).any()
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-12)


def test_relu_rnn_cell_gives_no_gradient_where_the_pre_activation_is_exactly_zero():
    """relu'(0) = 0 as torch's: a sample whose x is all zeros (no bias, h = 0) has a = 0 exactly, and sends no
    gradient back to x; the other samples do, as torch.nn.RNNCell's autograd finds."""
    x = np.array([[0.0, 0.0, 0.0], [0.5, -1.0, 2.0], [1.0, 1.0, -0.5]])
    w_ih = np.array([[0.3, -0.2, 0.4], [-0.5, 0.1, 0.2]])
    w_hh = np.array([[0.1, 0.2], [-0.3, 0.4]])
    h, cache = R.rnn_cell_forward(x, None, w_ih, w_hh, nonlinearity="relu")
    dout = np.ones_like(h)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = R.rnn_cell_backward(dout, cache)

    cell = torch.nn.RNNCell(3, 2, bias=False, nonlinearity="relu").double()
    with torch.no_grad():
        cell.weight_ih.copy_(_t(w_ih))
        cell.weight_hh.copy_(_t(w_hh))
    tx = _t(x, grad=True)
    out = cell(tx)
    out.backward(_t(dout))
    np.testing.assert_allclose(h, out.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(dx[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw_ih, cell.weight_ih.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert dh is None and db_ih is None and db_hh is None


def test_relu_rnn_step_backward_at_zero_is_zero():
    """rnn_step_backward itself: da = dh where a > 0, 0 where a <= 0 (a = 0 included, torch's relu')."""
    a = np.array([[-1.0, 0.0, 2.0]])
    ta = _t(a, grad=True)
    torch.relu(ta).backward(torch.ones_like(ta))
    d = R.rnn_step_backward(np.ones((1, 3)), (a, np.maximum(a, 0), "relu"), np.eye(3))
    np.testing.assert_array_equal(d["da"], ta.grad.numpy())
    np.testing.assert_array_equal(d["da"], [[0.0, 0.0, 1.0]])


CASES = [("rnn", 1, torch.nn.RNN, R.rnn_forward, R.rnn_backward),
         ("lstm", 2, torch.nn.LSTM, R.lstm_forward, R.lstm_backward),
         ("gru", 1, torch.nn.GRU, R.gru_forward, R.gru_backward)]


@pytest.mark.parametrize(("kind", "states", "module", "forward", "backward"), CASES, ids=[c[0] for c in CASES])
def test_without_states_gives_dx_and_the_weights_gradients_as_torch(kind, states, module, forward, backward):
    """network.without_states(backward, states): the layer's backward less the initial states' gradients,
    (dx, dweight_ih_l0, dweight_hh_l0, dbias_ih_l0, dbias_hh_l0), as autograd finds them for torch's module on
    (N, T, F) with zero initial states."""
    N, T, F, H = 2, 3, 3, 2
    layer = module(F, H, batch_first=True).double()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, T, F))
    dout = rng.standard_normal((N, T, H))
    weights = [p.detach().numpy().copy() for p in layer.parameters()]
    out, cache = forward(x, *([None] * states), *weights, batch_first=True)

    grads = network.without_states(backward, states)(dout, cache)

    tx = _t(x, grad=True)
    tout, _ = layer(tx)
    tout.backward(_t(dout))
    expected = [tx.grad.numpy(), *(p.grad.numpy() for p in layer.parameters())]
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert len(grads) == len(expected) == 5
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

