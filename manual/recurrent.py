"""Recurrent layers by hand: RNN (tanh or relu), LSTM and GRU over T steps with backpropagation through time,
and their single-step cells, in torch's layouts and gate orders (NumPy only).

Layouts (torch's): a sequence x (T, N, F), or (N, T, F) with ``batch_first``; initial states h0, c0 (L, N, H)
for L layers; layer l has weight_ih (G*H, F_l) (F_0 = F, then H), weight_hh (G*H, H), bias_ih and bias_hh
(G*H,), with G gate blocks stacked in torch's order: RNN one; LSTM four, i, f, g, o; GRU three, r, z, n. The
sequence forwards take torch's flat weight list ``w_ih_l0, w_hh_l0, b_ih_l0, b_hh_l0, w_ih_l1, ...`` (two per
layer when bias=False); the number of layers is its length over 4 (or 2).

The equations (torch's), with a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh split into its gate blocks:
    RNN:  h_t = tanh(a) (or relu(a))
    LSTM: i, f, g, o = sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)
          c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    GRU:  r, z = sigmoid(a_r), sigmoid(a_z)
          n = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

Backpropagation through time: the gradient reaching h_t is what the output sends (dout[t]) plus what step
t + 1 sends back through h_{t-1} W_hh^T (and for the LSTM, the cell state's gradient also flows in from
c_{t+1} = f_{t+1} * c_t + ...). Each step's backward is its own small function (``lstm_step_backward``, ...)
in the words of the equations; the sequence backward runs it from t = T - 1 down to 0, then gives the
weights' gradients with one matmul each over all steps. ``<layer>_backward_with_trace`` also returns the
per-step gradients it computed (the trace), for localizing a wrong derivation to a time step and a gate; the
backward also leaves it on the cache (``cache.trace``), where a diagnosis finds it.

Contract: ``<op>_forward(...) -> (out, cache)`` and ``<op>_backward(dout, cache) -> tuple`` with one gradient
per forward input (None for an initial state given as None, a missing bias). The sequence layers' out is the
last layer's output sequence; their final states are ``cache.h_n`` (and ``cache.c_n``), and the backward takes
their gradients as ``dh_n=`` (``dc_n=``). A cell's out is its new state: h' for the RNN and GRU cells, the pair
(h', c') for the LSTM cell (its backward takes the pair (dh', dc'), or one (2, N, H) array).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from manual.functional import _check_dout
from manual.kernels import matmul_layout, sigmoid
from netdesc.checks import InputError, check_flag, check_float_array, check_same_dtype, check_shape

__all__ = [
    "NONLINEARITIES", "gru_backward", "gru_backward_with_trace", "gru_cell_backward", "gru_cell_forward",
    "gru_forward", "gru_step_backward", "gru_step_forward", "lstm_backward", "lstm_backward_with_trace",
    "lstm_cell_backward", "lstm_cell_forward", "lstm_forward", "lstm_step_backward", "lstm_step_forward",
    "rnn_backward", "rnn_backward_with_trace", "rnn_cell_backward", "rnn_cell_forward", "rnn_forward",
    "rnn_step_backward", "rnn_step_forward",
]

NONLINEARITIES = ("tanh", "relu")


def _affine(x, w, b):
    """x @ w^T + b (b may be None): one projection of x, (..., in) -> (..., out), as one 2-D product over the
    leading axes (a batched product over T is slower)."""
    y = x @ w.T if x.ndim == 2 else (x.reshape(-1, x.shape[-1]) @ w.T).reshape(*x.shape[:-1], w.shape[0])
    if b is not None:
        y += b
    return y


# --- one step of each layer: the equations, forward and backward -----------------------------------------------
# A step takes xw = x_t W_ih^T + b_ih (every step's input projection is computed at once, before the loop) and
# returns its new state and what its backward needs. A step's backward returns a dict of named gradients: "da"
# (the gradient of the gate pre-activations on the input side, (N, G*H)), "da_h" (on the hidden side, the same
# for RNN and LSTM), "dh_prev" (and "dc_prev") for the step before, and the gate-by-gate quantities for the trace
# (the LSTM's also the gates' own, "do", "di", "df", "dg", which crosscheck explain --layer lstm shows).


def rnn_step_forward(xw, h_prev, w_hh, b_hh, nonlinearity="tanh"):
    """h = act(xw + h_prev W_hh^T + b_hh); xw, h_prev (N, H) -> (h, cache)."""
    a = xw + _affine(h_prev, w_hh, b_hh)
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return h, (a, h, nonlinearity)


def rnn_step_backward(dh, cache, w_hh):
    """da = dh * act'(a) (tanh' = 1 - h^2, relu' = [a > 0], 0 at a = 0 as torch's), dh_prev = da W_hh."""
    a, h, nonlinearity = cache
    da = dh * (1 - h * h) if nonlinearity == "tanh" else dh * (a > 0)
    return {"da": da, "da_h": da, "dh_prev": da @ w_hh}


def lstm_step_forward(xw, h_prev, c_prev, w_hh, b_hh):
    """Gates i, f, g, o from a = xw + h_prev W_hh^T + b_hh (N, 4H); c = f c_prev + i g; h = o tanh(c)
    -> ((h, c), cache)."""
    H = h_prev.shape[1]
    a = _affine(h_prev, w_hh, b_hh)
    a += xw
    s = sigmoid(a)  # the sigmoid gates i, f, o: one call over the four blocks
    i, f, o = s[:, :H], s[:, H:2 * H], s[:, 3 * H:]
    g = np.tanh(a[:, 2 * H:3 * H])
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return (h, c), (c_prev, i, f, g, o, tanh_c)


def lstm_step_backward(dh, dc_next, cache, w_hh):
    """dh: the gradient reaching h_t (output and future), dc_next: the gradient reaching c_t from c_{t+1}."""
    c_prev, i, f, g, o, tanh_c = cache
    do = dh * tanh_c  # h = o tanh(c)
    dc = dc_next + dh * o * (1 - tanh_c * tanh_c)  # the cell state: from the future, and through h = o tanh(c)
    di, df, dg = dc * g, dc * c_prev, dc * i  # c = f c_prev + i g
    dc_prev = dc * f
    da_i, da_f, da_g, da_o = di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # torch's gate order: i, f, g, o
    return {"da": da, "da_h": da, "dh_prev": da @ w_hh, "dc_prev": dc_prev, "dc": dc, "do": do, "di": di, "df": df,
            "dg": dg, "da_i": da_i, "da_f": da_f, "da_g": da_g, "da_o": da_o}


def gru_step_forward(xw, h_prev, w_hh, b_hh):
    """r, z = sigmoid(xw_rz + hw_rz), n = tanh(xw_n + r * hw_n) with hw = h_prev W_hh^T + b_hh (N, 3H);
    h = (1 - z) n + z h_prev -> (h, cache)."""
    H = h_prev.shape[1]
    hw = _affine(h_prev, w_hh, b_hh)
    r, z = np.split(sigmoid(xw[:, :2 * H] + hw[:, :2 * H]), 2, axis=1)  # the blocks r, z: one sigmoid call
    h_n = hw[:, 2 * H:]
    n = np.tanh(xw[:, 2 * H:] + r * h_n)
    h = (1 - z) * n + z * h_prev
    return h, (h_prev, r, z, n, h_n)


def gru_step_backward(dh, cache, w_hh):
    """The n gate's hidden-side pre-activation is multiplied by r: its gradient is da_n * r on the hidden side."""
    h_prev, r, z, n, h_n = cache
    dn, dz = dh * (1 - z), dh * (h_prev - n)  # h = (1 - z) n + z h_prev
    da_n = dn * (1 - n * n)  # n = tanh(x_n + r h_n)
    dr = da_n * h_n
    da_r, da_z = dr * r * (1 - r), dz * z * (1 - z)
    dhw_n = da_n * r
    da = np.concatenate([da_r, da_z, da_n], axis=1)  # torch's gate order: r, z, n
    da_h = np.concatenate([da_r, da_z, dhw_n], axis=1)
    return {"da": da, "da_h": da_h, "dh_prev": dh * z + da_h @ w_hh, "da_r": da_r, "da_z": da_z, "da_n": da_n,
            "dhw_n": dhw_n}


# --- the layers' kinds: gates, steps, states ----------------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    name: str
    gates: int  # G, the gate blocks stacked in the weights
    step_forward: object  # (xw, *state, w_hh, b_hh) -> (h, cache), or ((h, c), cache) with a cell state
    step_backward: object  # (dh[, dc_next], cache, w_hh) -> the named gradients
    trace: tuple  # the quantities a step's backward names, kept per step in the trace
    cell_state: bool = False

    @property
    def states(self):
        return ("h0", "c0") if self.cell_state else ("h0",)


def _kind(name, nonlinearity="tanh"):
    if name == "rnn":
        if nonlinearity not in NONLINEARITIES:
            raise InputError(f"nonlinearity: got {nonlinearity!r}, needs one of {', '.join(map(repr, NONLINEARITIES))}")
        return _Kind("rnn", 1, partial(rnn_step_forward, nonlinearity=nonlinearity), rnn_step_backward, ("da",))
    if name == "lstm":
        return _Kind("lstm", 4, lstm_step_forward, lstm_step_backward, ("dc", "da_i", "da_f", "da_g", "da_o"),
                     cell_state=True)
    return _Kind("gru", 3, gru_step_forward, gru_step_backward, ("da_r", "da_z", "da_n", "dhw_n"))


def _check_weights(kind, suffix, w_ih, w_hh, b_ih, b_hh, features, dtype, H=None):
    """One layer's (or a cell's) weights, checked against the features it reads -> (w_ih, w_hh, b_ih, b_hh);
    suffix: "_l0", "_l1", ... for a layer of a sequence, "" for a cell."""
    w_hh = check_float_array(f"w_hh{suffix}", w_hh, ndim=2)
    H = w_hh.shape[1] if H is None else H
    G = kind.gates
    check_shape(f"w_hh{suffix}", w_hh, (G * H, H), f"{G} gate block{'s' * (G > 1)} of H = {H} rows, torch's "
                f"weight_hh{suffix}")
    w_ih = check_float_array(f"w_ih{suffix}", w_ih, ndim=2)
    check_shape(f"w_ih{suffix}", w_ih, (G * H, features), f"{G} gate block{'s' * (G > 1)} of H = {H} rows over "
                f"the {features} input features, torch's weight_ih{suffix}")
    weights = {f"w_ih{suffix}": w_ih, f"w_hh{suffix}": w_hh}
    for name, b in ((f"b_ih{suffix}", b_ih), (f"b_hh{suffix}", b_hh)):
        if b is not None:
            b = check_float_array(name, b, ndim=1)
            check_shape(name, b, (G * H,), f"one bias per gate row, torch's {name.replace('b_', 'bias_')}")
        weights[name] = b
    check_same_dtype(x=np.empty(0, dtype), **{k: v for k, v in weights.items() if v is not None})
    return tuple(weights.values())


def _check_state(name, state, shape, dtype, meaning):
    """An initial state or None (zeros, as torch's default) -> (the array, whether it was given)."""
    if state is None:
        return np.zeros(shape, dtype), False
    state = check_float_array(name, state, ndim=len(shape))
    check_shape(name, state, shape, meaning)
    check_same_dtype(**{"x": np.empty(0, dtype), name: state})
    return state, True


# --- a sequence layer: the steps over time, layer after layer -------------------------------------------------

class StackedOverTime(Mapping):
    """A backward's trace: each quantity's per-step arrays by name, stacked into one (T, N, H) array when first
    read, so that a backward nobody diagnoses does not pay for the copies."""

    def __init__(self, per_step):
        self._per_step, self._stacked = per_step, {}

    def __getitem__(self, name):
        if name not in self._stacked:
            self._stacked[name] = np.stack(self._per_step[name])
        return self._stacked[name]

    def __iter__(self):
        return iter(self._per_step)

    def __len__(self):
        return len(self._per_step)


@dataclass
class SequenceCache:
    """What a sequence layer's backward needs, and its final states h_n (and c_n), (L, N, H) each."""

    kind: _Kind
    batch_first: bool
    given: tuple  # per initial state (h0[, c0]): whether the call gave it (else zeros, and no gradient)
    layers: list  # per layer: (inputs (T, N, F_l), (w_ih, w_hh, b_ih, b_hh), h_prev (T, N, H), [step cache per t])
    h_n: np.ndarray
    c_n: np.ndarray | None = None
    x_shape: tuple = field(default=())
    bias: bool = True  # the forward's bias flag: four weights per layer (a bias may be None), else two
    trace: list | None = None  # the last backward's trace, left here for a diagnosis (crosscheck.diagnose)


def _sequence_forward(kind, x, states, weights, bias, batch_first):
    """The layers over the time steps -> (output sequence of the last layer, SequenceCache)."""
    bias, batch_first = check_flag("bias", bias), check_flag("batch_first", batch_first)
    x = check_float_array("x", x, ndim=3)
    seq = np.ascontiguousarray(x.swapaxes(0, 1) if batch_first else x)  # time-major (T, N, F) from here on
    T, N, F = seq.shape
    if min(T, N, F) == 0:
        raise InputError(f"x: got shape {x.shape}, needs at least one time step, one sample and one feature")
    per = 4 if bias else 2
    if not weights or len(weights) % per:
        raise InputError(f"weights: got {len(weights)} arrays, needs {per} per layer (w_ih, w_hh"
                         f"{', b_ih, b_hh' if bias else ''}, torch's order) for one or more layers")
    L = len(weights) // per
    H = check_float_array("w_hh_l0", weights[1], ndim=2).shape[1]
    layers = [_check_weights(kind, f"_l{l}", *weights[per * l:per * l + 2], *(weights[per * l + 2:per * l + 4]
                                                                             if bias else (None, None)),
                             F if l == 0 else H, x.dtype, H) for l in range(L)]
    checked = [_check_state(name, s, (L, N, H), x.dtype, "(num_layers, N, H), torch's layout")
               for name, s in zip(kind.states, states, strict=True)]
    states0 = [s for s, _ in checked]
    cache = SequenceCache(kind, batch_first, tuple(g for _, g in checked), [], None, x_shape=x.shape, bias=bias)
    finals = []
    inputs = seq
    for l, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        xw = _affine(inputs, w_ih, b_ih)  # (T, N, G*H): every step's input projection in one matmul
        state = tuple(s[l] for s in states0)
        outputs, steps = np.empty((T, N, H), x.dtype), []
        w_hh_steps = matmul_layout(w_hh)  # the same matrix, laid out once for the T products h_{t-1} W_hh^T
        for t in range(T):
            new, step = kind.step_forward(xw[t], *state, w_hh_steps, b_hh)
            state = new if kind.cell_state else (new,)
            outputs[t] = state[0]
            steps.append(step)
        h_prev = np.concatenate([states0[0][l][None], outputs[:-1]])  # the h_{t-1} each step read
        cache.layers.append((inputs, (w_ih, w_hh, b_ih, b_hh), h_prev, steps))
        finals.append(state)
        inputs = outputs  # layer l + 1 reads layer l's output sequence
    cache.h_n = np.stack([s[0] for s in finals])
    cache.c_n = np.stack([s[1] for s in finals]) if kind.cell_state else None
    return np.ascontiguousarray(inputs.swapaxes(0, 1)) if batch_first else inputs, cache


def layer_backward(kind, layer, dseq, dnext):
    """Backpropagation through time in one layer, from its last step to its first. layer: one entry of
    SequenceCache.layers; dseq (T, N, H): the gradient reaching its output sequence (from the loss, or from the
    layer above); dnext: the gradients from beyond its last step, [dh_n] or [dh_n, dc_n], (N, H) each
    -> (dinputs (T, N, F_l), [dh0] or [dh0, dc0], (dw_ih, dw_hh, db_ih, db_hh), its trace)."""
    inputs, (w_ih, w_hh, b_ih, b_hh), h_prev, steps = layer
    T, N, H = h_prev.shape
    G_H = w_hh.shape[0]
    # each step's gradients, stacked over time after the loop; the hidden side's da_h differs only in the GRU
    per_step = {q: [None] * T for q in ("da", "da_h", "dh", *kind.trace)}
    for t in reversed(range(T)):
        dh = dseq[t] + dnext[0]  # what the output at t sends, and what the future sends through h_t
        d = kind.step_backward(dh, *dnext[1:], steps[t], w_hh)
        dnext = [d["dh_prev"], d["dc_prev"]] if kind.cell_state else [d["dh_prev"]]
        for q, values in per_step.items():
            values[t] = dh if q == "dh" else d[q]
    da = np.stack(per_step["da"])
    da_h = np.stack(per_step["da_h"]) if kind.name == "gru" else da
    # the weights: summed over every step and sample, one matmul each; either bias may be None (no gradient)
    db_ih = None if b_ih is None else da.sum(axis=(0, 1))
    db_hh = None if b_hh is None else da_h.sum(axis=(0, 1))
    weight_grads = (da.reshape(-1, G_H).T @ inputs.reshape(T * N, -1), da_h.reshape(-1, G_H).T @ h_prev.reshape(-1, H),
                    db_ih, db_hh)
    trace = StackedOverTime({q: per_step[q] for q in ("dh", *kind.trace)})
    return da @ w_ih, dnext, weight_grads, trace


def check_backward(dout, cache, dh_n, dc_n):
    """A sequence backward's arguments, checked -> (dout time-major (T, N, H), the final states' gradients
    [dh_n] or [dh_n, dc_n], (L, N, H) each, zeros where not given)."""
    L, N, H = cache.h_n.shape
    T = cache.layers[0][0].shape[0]
    dtype = cache.h_n.dtype
    dseq = _check_dout(dout, (N, T, H) if cache.batch_first else (T, N, H), dtype)
    dfinal = [np.zeros((L, N, H), dtype) if d is None else _check_dout(d, (L, N, H), dtype, name)
              for name, d in (("dh_n", dh_n), ("dc_n", dc_n))[:len(cache.kind.states)]]
    return (dseq.swapaxes(0, 1) if cache.batch_first else dseq), dfinal


def gradients(cache, dseq, dstates0, weight_grads):
    """The gradients in the forward's order: (dx, dh0[, dc0], *dweights) -> one tuple, dx in the input's layout,
    None for an initial state not given and a bias left out."""
    dx = np.ascontiguousarray(dseq.swapaxes(0, 1)) if cache.batch_first else dseq
    flat = [g for layer in weight_grads for g in (layer if cache.bias else layer[:2])]
    dstates = [np.stack(d) if given else None for d, given in zip(zip(*dstates0, strict=True), cache.given,
                                                                  strict=True)]
    return (dx, *dstates, *flat)


def _sequence_backward(dout, cache, dh_n, dc_n):
    """Backpropagation through time, the last layer first -> (gradients in the forward's order, trace)."""
    dseq, dfinal = check_backward(dout, cache, dh_n, dc_n)
    L = len(cache.layers)
    dstates0, weight_grads, trace = [None] * L, [None] * L, [None] * L
    for l in reversed(range(L)):
        # dseq becomes the gradient reaching layer l's input: layer l - 1's output sequence
        dseq, dstates0[l], weight_grads[l], trace[l] = layer_backward(cache.kind, cache.layers[l], dseq,
                                                                      [d[l] for d in dfinal])
    cache.trace = trace
    return gradients(cache, dseq, dstates0, weight_grads), trace


def rnn_forward(x, h0, *weights, nonlinearity="tanh", bias=True, batch_first=False):
    """torch.nn.RNN: x (T, N, F) (or (N, T, F) with batch_first), h0 (L, N, H) or None, weights torch's flat
    list (module docstring) -> (output (T, N, H) or (N, T, H), cache); cache.h_n (L, N, H)."""
    return _sequence_forward(_kind("rnn", nonlinearity), x, (h0,), weights, bias, batch_first)


def rnn_backward_with_trace(dout, cache, dh_n=None):
    """-> ((dx, dh0, *dweights), trace): trace[l] per layer, time-major (T, N, H) arrays: "dh" the gradient
    reaching h_t (from the output and the future), "da" the pre-activation's."""
    return _sequence_backward(dout, cache, dh_n, None)


def rnn_backward(dout, cache, dh_n=None):
    """-> (dx, dh0 (None where h0 was), then one gradient per weight in the forward's order)."""
    return rnn_backward_with_trace(dout, cache, dh_n)[0]


def lstm_forward(x, h0, c0, *weights, bias=True, batch_first=False):
    """torch.nn.LSTM: x (T, N, F) (or (N, T, F) with batch_first), h0, c0 (L, N, H) or None, weights torch's
    flat list, gates i, f, g, o -> (output (T, N, H) or (N, T, H), cache); cache.h_n, cache.c_n (L, N, H)."""
    return _sequence_forward(_kind("lstm"), x, (h0, c0), weights, bias, batch_first)


def lstm_backward_with_trace(dout, cache, dh_n=None, dc_n=None):
    """-> ((dx, dh0, dc0, *dweights), trace): trace[l] per layer, time-major (T, N, H) arrays: "dh" reaching h_t,
    "dc" reaching c_t (from the future and through h_t), "da_i", "da_f", "da_g", "da_o" the gates'
    pre-activations'."""
    return _sequence_backward(dout, cache, dh_n, dc_n)


def lstm_backward(dout, cache, dh_n=None, dc_n=None):
    """-> (dx, dh0, dc0 (None where not given), then one gradient per weight in the forward's order)."""
    return lstm_backward_with_trace(dout, cache, dh_n, dc_n)[0]


def gru_forward(x, h0, *weights, bias=True, batch_first=False):
    """torch.nn.GRU: x (T, N, F) (or (N, T, F) with batch_first), h0 (L, N, H) or None, weights torch's flat
    list, gates r, z, n -> (output (T, N, H) or (N, T, H), cache); cache.h_n (L, N, H)."""
    return _sequence_forward(_kind("gru"), x, (h0,), weights, bias, batch_first)


def gru_backward_with_trace(dout, cache, dh_n=None):
    """-> ((dx, dh0, *dweights), trace): trace[l] per layer, time-major (T, N, H) arrays: "dh" reaching h_t,
    "da_r", "da_z", "da_n" the gates' pre-activations' (n's input side), "dhw_n" n's hidden side's,
    h_{t-1} W_hn^T + b_hn."""
    return _sequence_backward(dout, cache, dh_n, None)


def gru_backward(dout, cache, dh_n=None):
    """-> (dx, dh0 (None where h0 was), then one gradient per weight in the forward's order)."""
    return gru_backward_with_trace(dout, cache, dh_n)[0]


# --- the cells: one step, as torch.nn.RNNCell, LSTMCell and GRUCell -------------------------------------------

def _cell_forward(kind, x, states, w_ih, w_hh, b_ih, b_hh):
    x = check_float_array("x", x, ndim=2)
    N, F = x.shape
    w_ih, w_hh, b_ih, b_hh = _check_weights(kind, "", w_ih, w_hh, b_ih, b_hh, F, x.dtype)
    H = w_hh.shape[1]
    checked = [_check_state(name[0], s, (N, H), x.dtype, "(N, H), one state per sample")
               for name, s in zip(kind.states, states, strict=True)]
    new, step = kind.step_forward(_affine(x, w_ih, b_ih), *(s for s, _ in checked), w_hh, b_hh)
    return new, (kind, x, checked, (w_ih, w_hh, b_ih, b_hh), step)


def _cell_backward(dnext, cache):
    kind, x, checked, (w_ih, w_hh, b_ih, b_hh), step = cache
    N, H = checked[0][0].shape
    dnext = [_check_dout(d, (N, H), x.dtype, name) for name, d in zip(("dh", "dc")[:len(dnext)], dnext, strict=True)]
    d = kind.step_backward(*dnext, step, w_hh)
    dstates = [d["dh_prev"], d.get("dc_prev")][:len(checked)]
    return (d["da"] @ w_ih, *(ds if given else None for ds, (_, given) in zip(dstates, checked, strict=True)),
            d["da"].T @ x, d["da_h"].T @ checked[0][0], None if b_ih is None else d["da"].sum(axis=0),
            None if b_hh is None else d["da_h"].sum(axis=0))


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """torch.nn.RNNCell: x (N, F), h (N, H) or None, w_ih (H, F), w_hh (H, H), b_ih, b_hh (H,) or None
    -> (h' (N, H), cache)."""
    return _cell_forward(_kind("rnn", nonlinearity), x, (h,), w_ih, w_hh, b_ih, b_hh)


def rnn_cell_backward(dout, cache):
    """-> (dx, dh, dw_ih, dw_hh, db_ih, db_hh)."""
    return _cell_backward((dout,), cache)


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """torch.nn.LSTMCell: x (N, F), h, c (N, H) or None, w_ih (4H, F), w_hh (4H, H), b_ih, b_hh (4H,) or None,
    gates i, f, g, o -> ((h', c'), cache)."""
    return _cell_forward(_kind("lstm"), x, (h, c), w_ih, w_hh, b_ih, b_hh)


def lstm_cell_backward(dout, cache):
    """dout: (dh', dc'), a pair or a (2, N, H) array -> (dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh)."""
    if len(dout) != 2:
        raise InputError(f"dout: got {len(dout)} gradients, needs two, (dh', dc')")
    return _cell_backward(tuple(dout), cache)


def gru_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """torch.nn.GRUCell: x (N, F), h (N, H) or None, w_ih (3H, F), w_hh (3H, H), b_ih, b_hh (3H,) or None,
    gates r, z, n -> (h' (N, H), cache)."""
    return _cell_forward(_kind("gru"), x, (h,), w_ih, w_hh, b_ih, b_hh)


def gru_cell_backward(dout, cache):
    """-> (dx, dh, dw_ih, dw_hh, db_ih, db_hh)."""
    return _cell_backward((dout,), cache)
