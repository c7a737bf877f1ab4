"""The sequence layers' wrong derivations compute exactly the mistake their descriptions name, every named gradient
included: attention's softmax without its row-sum term (the layer's gradients and the terms the diagnosis localizes
with, dscores among them), one LSTM step with its gate gradients stacked i, f, o, g (da, the hidden side's da_h,
dh_prev), and the two-layer RNN whose layer 1 sends nothing down to layer 0. Each is pinned to torch's autograd of
the network with that one change applied (a softmax whose backward is diag(P), a hook that reorders the gate
gradients, layer 1's input detached)."""

import numpy as np
import torch
from test_catalogue_formulas import _attention_autograd

from crosscheck.catalogue import find
from crosscheck.catalogue import recurrent as wrong_recurrent
from manual import attention as A
from manual import recurrent as R


def _t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def _close(mine, theirs):
    assert mine is not None and np.asarray(mine).shape == np.asarray(theirs).shape
    np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


# --- attention: dscores = P * dP ------------------------------------------------------------------------------

N_, T_, E_, H_ = 2, 5, 4, 2


def _softmax_with_backward_diag_p(scores, later):
    S = torch.softmax(scores.masked_fill(later, -np.inf), dim=-1).detach()
    return S + S * (scores - scores.detach())  # the value S; d/dscores: S * dP, no - S * sum(dP * S)


def test_the_softmax_without_its_row_sum_is_autograd_of_a_softmax_whose_backward_is_diag_p():
    """Causal 2-head self-attention whose softmax sends back P * dP (its value P, its Jacobian diag(P) alone):
    the entry's layer gradients and every term it names (dP, dscores, dq, dk, dv, dheads, dqkv) torch's."""
    arrays, dout, _, t = _attention_autograd(False, seed=11, probabilities=_softmax_with_backward_diag_p)
    P, scores, q, k, v, heads, merged = (t[name] for name in ("P", "scores", "q", "k", "v", "heads", "merged"))
    S = P.detach()

    entry = find("attention-softmax-no-row-sum")
    p = {name: a for name, a in arrays.items() if name != "x"}
    _, cache = A.multihead_attention_forward(arrays["x"], p["in_proj_weight"], p["out_proj.weight"],
                                             p["in_proj_bias"], p["out_proj.bias"], num_heads=H_, causal=True)
    backward = entry.backward[0]
    for mine, name in zip(backward(dout, cache), ["x", "in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                  "out_proj.bias"], strict=True):
        _close(mine, t[name].grad.numpy())
    g = backward.terms(dout, cache)
    _close(g["dscores"], (S * P.grad).numpy())
    for name, a in {"dP": P, "dscores": scores, "dq": q, "dk": k, "dv": v, "dheads": heads, "dmerged": merged,
                    "dx": t["x"]}.items():
        _close(g[name], a.grad.numpy())
    qkv_grad = torch.cat([a.grad.transpose(1, 2).reshape(N_, T_, E_) for a in (q, k, v)], dim=-1)
    _close(g["dqkv"], qkv_grad.numpy())
    # the row-sum term is what is missing: the true dscores differs from it
    true = A.scaled_dot_product_attention_backward_terms(g["dheads"], cache["attention"])["dscores"]
    assert not np.allclose(true, g["dscores"])


# --- lstm: the gate gradients stacked i, f, o, g --------------------------------------------------------------

def test_one_lstm_step_with_gates_ifog_is_autograd_with_the_g_and_o_gradients_swapped():
    """One LSTM step (gates i, f, g, o in torch's rows) whose pre-activation gradient has its g and o blocks
    swapped on the way back: da and the hidden side's da_h both that reordered gradient, dh_prev = da W_hh,
    dc_prev and each gate's own gradient torch's (the reordering comes after them)."""
    rng = np.random.default_rng(12)
    N, H = 3, 2
    xw, h_prev, c_prev = rng.standard_normal((N, 4 * H)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    w_hh, b_hh = rng.standard_normal((4 * H, H)), rng.standard_normal(4 * H)
    dh, dc_next = rng.standard_normal((N, H)), rng.standard_normal((N, H))

    def step(swap):
        """torch's step from fresh leaves, its pre-activation gradient reordered i, f, o, g when `swap`."""
        xw_t, h_t, c_t, w_t, b_t = (_t(a) for a in (xw, h_prev, c_prev, w_hh, b_hh))
        a = xw_t + h_t @ w_t.T + b_t
        if swap:
            a.register_hook(lambda grad: torch.cat([grad[:, :2 * H], grad[:, 3 * H:], grad[:, 2 * H:3 * H]], dim=1))
        i, f, o = (torch.sigmoid(a[:, n * H:(n + 1) * H]) for n in (0, 1, 3))
        c = f * c_t + i * torch.tanh(a[:, 2 * H:3 * H])
        h = o * torch.tanh(c)
        ((h * torch.from_numpy(dh)).sum() + (c * torch.from_numpy(dc_next)).sum()).backward()
        return xw_t.grad.numpy(), h_t.grad.numpy(), c_t.grad.numpy()  # xw's: the gradient a sends back

    wrong, dh_prev, dc_prev = step(swap=True)
    true = step(swap=False)[0]
    assert not np.allclose(wrong, true)

    (_, _), cache = R.lstm_step_forward(xw, h_prev, c_prev, w_hh, b_hh)
    d = wrong_recurrent.LSTM_STEPS["lstm-gate-order-ifog"](dh, dc_next, cache, w_hh)
    _close(d["da"], wrong)
    _close(d["da_h"], wrong)
    _close(d["dh_prev"], dh_prev)
    _close(d["dc_prev"], dc_prev)
    for n, gate in enumerate(("da_i", "da_f", "da_g", "da_o")):
        _close(d[gate], true[:, n * H:(n + 1) * H])


# --- rnn: layer 1's input gradient not carried down -----------------------------------------------------------

def test_the_rnn_layers_not_carried_is_autograd_with_layer_1s_input_detached():
    """Two tanh RNN layers (batch first, N 2, T 5, F 3, H 4): the entry's gradients are torch's with layer 0's
    output detached before layer 1 reads it: dx and every weight of layer 0 zero, layer 1's its true gradients,
    where the real backward gives layer 0 gradients that are not zero."""
    rng = np.random.default_rng(13)
    N, T, F, H = 2, 5, 3, 4
    x, dout = rng.standard_normal((N, T, F)), rng.standard_normal((N, T, H))
    weights = [rng.uniform(-0.5, 0.5, shape) for l in range(2) for shape in ((H, F if l == 0 else H), (H, H), (H,),
                                                                              (H,))]
    ts = [_t(w) for w in weights]

    def layer(inputs, w_ih, w_hh, b_ih, b_hh):
        h, outs = torch.zeros(N, H, dtype=torch.float64), []
        for step in range(T):
            h = torch.tanh(inputs[:, step] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
            outs.append(h)
        return torch.stack(outs, dim=1)

    xt = _t(x)
    out0 = layer(xt, *ts[:4])
    layer(out0.detach(), *ts[4:]).backward(torch.from_numpy(dout))

    entry = find("rnn-layers-not-carried")
    assert entry.network["layers"][0]["num_layers"] == 2
    out, cache = R.rnn_forward(x, None, *weights, batch_first=True)
    grads = entry.backward[0](dout, cache)
    assert len(grads) == 9
    _close(grads[0], np.zeros_like(x))
    assert xt.grad is None
    for mine, w in zip(grads[1:5], weights[:4], strict=True):
        _close(mine, np.zeros_like(w))
    for mine, w in zip(grads[5:], ts[4:], strict=True):
        _close(mine, w.grad.numpy())
    real = R.rnn_backward(dout, R.rnn_forward(x, None, *weights, batch_first=True)[1])
    assert all(np.abs(g).max() > 1e-3 for g in (real[0], *real[2:6]))
