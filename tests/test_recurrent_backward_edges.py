"""Edges of manual.recurrent's sequence backward that the broader suites pass by: a layer given one of its biases
and None for the other (the forward accepts None for either bias, and the backward owes one gradient per forward
input, None for the missing bias), so each bias's gradient stands on its own and the gradients' order follows the
list the forward took. Every expectation comes from torch."""

import numpy as np
import pytest
import torch

from manual import recurrent as R

CASES = [("rnn-tanh", torch.nn.RNN, 1, 1, R.rnn_forward, R.rnn_backward, {"nonlinearity": "tanh"}),
         ("lstm", torch.nn.LSTM, 4, 2, R.lstm_forward, R.lstm_backward, {}),
         ("gru", torch.nn.GRU, 3, 1, R.gru_forward, R.gru_backward, {})]


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("missing", ["bias_hh", "bias_ih"])
@pytest.mark.parametrize(("module", "gates", "states", "forward", "backward", "options"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_layer_without_one_bias_gives_none_for_it_and_the_rest_as_torch(module, gates, states, forward, backward,
                                                                          options, missing):
    """Two layers, each given None for one bias (b_hh, or b_ih: before the fix the first gave no bias gradients at
    all and the second crashed in the RNN and LSTM backward): the output and (dx, dh0[, dc0], then per layer dw_ih,
    dw_hh, db_ih, db_hh with None for the missing one) are those of torch's module with that bias fixed at zero, as
    autograd finds them."""
    T, N, F, H, L = 4, 3, 2, 3, 2
    rng = np.random.default_rng(11)
    layer = module(F, H, L, **options).double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(_t(0.6 * rng.standard_normal(tuple(p.shape)) * (not name.startswith(missing))))
    x = rng.standard_normal((T, N, F))
    s0 = [rng.standard_normal((L, N, H)) for _ in range(states)]
    dout = rng.standard_normal((T, N, H))
    weights = []
    for l in range(L):
        weights += [None if name == missing else getattr(layer, f"{name}_l{l}").detach().numpy().copy()
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    out, cache = forward(x, *s0, *weights)
    grads = backward(dout, cache)

    tx, ts0 = _t(x, grad=True), [_t(s, grad=True) for s in s0]
    tout, _ = layer(tx, tuple(ts0) if states == 2 else ts0[0])
    tout.backward(_t(dout))
    expected = [tx.grad, *(s.grad for s in ts0)]
    for l in range(L):
        expected += [None if name == missing else getattr(layer, f"{name}_l{l}").grad
                     for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert len(grads) == len(expected) == 1 + states + 4 * L
    for got, want in zip(grads, expected, strict=True):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)
