"""The recurrent layers unrolled over time in torch operations: autograd's per-step gradients.

torch.nn.RNN, LSTM and GRU run their steps inside one fused operation, so autograd keeps no gradient per time
step. Here each step is written with torch's operations, in torch's layouts and gate orders (the same
equations as torch's modules; tests/test_recurrent.py holds the outputs to theirs), and every per-step quantity
keeps its gradient (``retain_grad``): after a backward, ``steps[l][q][t].grad`` is autograd's gradient of the
quantity q of layer l at step t, the quantities ``manual.recurrent``'s trace names ("dh", "dc", "da_i", ...
without the leading d). No gradient is derived here: autograd computes every one.
"""

import torch

__all__ = ["QUANTITIES", "lstm_step_by_step", "unrolled"]

# the per-step quantities of each layer, as manual.recurrent's trace names them (without the d)
QUANTITIES = {"rnn": ("h", "a"), "lstm": ("h", "c", "a_i", "a_f", "a_g", "a_o"),
              "gru": ("h", "a_r", "a_z", "a_n", "hw_n")}


def _projection(x, w, b):
    return x @ w.T if b is None else x @ w.T + b


def _unchanged(blocks):
    return blocks


def _rnn_step(xw, state, w_hh, b_hh, nonlinearity, blocks=_unchanged):
    (h_prev,) = state
    a = blocks(xw + _projection(h_prev, w_hh, b_hh))
    h = torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)
    return (h,), {"h": h, "a": a}


def _lstm_step(xw, state, w_hh, b_hh, nonlinearity, blocks=_unchanged):
    h_prev, c_prev = state
    a_i, a_f, a_g, a_o = blocks(xw + _projection(h_prev, w_hh, b_hh)).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c = f * c_prev + i * g
    h = o * torch.tanh(c)
    return (h, c), {"h": h, "c": c, "a_i": a_i, "a_f": a_f, "a_g": a_g, "a_o": a_o}


def _gru_step(xw, state, w_hh, b_hh, nonlinearity, blocks=_unchanged):
    (h_prev,) = state
    x_r, x_z, x_n = blocks(xw).chunk(3, dim=1)
    hw_r, hw_z, hw_n = blocks(_projection(h_prev, w_hh, b_hh)).chunk(3, dim=1)
    a_r, a_z = x_r + hw_r, x_z + hw_z
    r, z = torch.sigmoid(a_r), torch.sigmoid(a_z)
    a_n = x_n + r * hw_n
    n = torch.tanh(a_n)
    h = torch.lerp(n, h_prev, z)  # (1 - z) n + z h_prev
    return (h,), {"h": h, "a_r": a_r, "a_z": a_z, "a_n": a_n, "hw_n": hw_n}


STEPS = {"rnn": _rnn_step, "lstm": _lstm_step, "gru": _gru_step}


def unrolled(kind, x, states, weights, *, nonlinearity="tanh", bias=True, batch_first=False, detach=(),
             blocks=_unchanged):
    """kind "rnn", "lstm" or "gru"; x (T, N, F) (or (N, T, F) with batch_first), states (h0,) or (h0, c0), each
    (L, N, H), weights torch's flat list -> (output, final states (h_n[, c_n]), steps): steps[l][q] a list over
    t of layer l's quantity q, each retaining its gradient.

    detach: the paths autograd leaves out, truncated backpropagation through time as torch writes it
    (``.detach()``): "h" (and "c"), the previous step's states as each step reads them; "layers", the output
    sequence of each layer as the layer above reads it. blocks: (stacked gate pre-activations (N, G*H)) -> the
    same values, applied before they are split into the gates (the GRU's input and hidden sides each), where a
    hypothesis reroutes their gradient. The mistakes of crosscheck.hypotheses, by autograd."""
    per = 4 if bias else 2
    layers = len(weights) // per
    inputs = x.transpose(0, 1) if batch_first else x
    finals, steps = [], []
    for l in range(layers):
        w_ih, w_hh, b_ih, b_hh = (*weights[per * l:per * l + per], None, None)[:4]
        xw = _projection(inputs.detach() if l and "layers" in detach else inputs, w_ih, b_ih)
        state = tuple(s[l] for s in states)
        kept = {q: [] for q in QUANTITIES[kind]}
        for t in range(inputs.shape[0]):
            read = tuple(s.detach() if q in detach else s for q, s in zip("hc", state, strict=False))
            state, quantities = STEPS[kind](xw[t], read, w_hh, b_hh, nonlinearity, blocks)
            for q, value in quantities.items():
                if value.requires_grad:  # inputs without a gradient leave nothing to retain
                    value.retain_grad()
                kept[q].append(value)
        finals.append(state)
        steps.append(kept)
        inputs = torch.stack(kept["h"])
    out = inputs.transpose(0, 1) if batch_first else inputs
    return out, tuple(torch.stack(s) for s in zip(*finals, strict=True)), steps


def lstm_step_by_step(x, w_ih, w_hh, b_ih, b_hh, dout):
    """One LSTM layer over x (T, N, F) (time-major) from zero states, E = sum(dout * output) with dout (T, N, H),
    for crosscheck explain --layer lstm: every step written as separate torch ops, every intermediate retaining its
    gradient -> (steps, module): steps[t] {name: (value, gradient)} as NumPy arrays, the names "h_prev", "c_prev"
    (the states step t reads, each its own tensor, a copy of the step before's: their gradients are what step t
    alone sends back), "a" (N, 4H, gates i, f, g, o), "i", "f", "g", "o", "c", "h" (its gradient: what the output
    sends and what step t + 1 sends); module: torch.nn.LSTM's own output and weight gradients on the same values,
    "output", "w_ih", "w_hh", "b_ih", "b_hh". No gradient is derived here: autograd computes every one."""
    x, dout, *weights = (torch.from_numpy(a) for a in (x, dout, w_ih, w_hh, b_ih, b_hh))
    w_ih, w_hh, b_ih, b_hh = (w.clone().requires_grad_() for w in weights)
    T, N, _ = x.shape
    h, c = (torch.zeros(N, w_hh.shape[1], dtype=x.dtype, requires_grad=True) for _ in range(2))
    steps = []
    for t in range(T):
        h_prev, c_prev = h.clone(), c.clone()  # this step's own reading of the states
        a = _projection(x[t], w_ih, b_ih) + _projection(h_prev, w_hh, b_hh)
        a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
        c = f * c_prev + i * g
        h = o * torch.tanh(c)
        named = {"h_prev": h_prev, "c_prev": c_prev, "a": a, "i": i, "f": f, "g": g, "o": o, "c": c, "h": h}
        for value in named.values():
            value.retain_grad()
        steps.append(named)
    (torch.stack([s["h"] for s in steps]) * dout).sum().backward()
    lstm = torch.nn.LSTM(x.shape[2], w_hh.shape[1], dtype=x.dtype)
    with torch.no_grad():
        for name, w in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), weights, strict=True):
            getattr(lstm, name).copy_(w)
    output, _ = lstm(x)
    (output * dout).sum().backward()
    numpy = lambda t: t.detach().numpy()  # noqa: E731
    module = {"output": numpy(output)} | {k: numpy(getattr(lstm, f"{name}_l0").grad) for k, name in (
        ("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh"))}
    return [{k: (numpy(v), numpy(v.grad)) for k, v in s.items()} for s in steps], module
