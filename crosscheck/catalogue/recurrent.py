"""Deliberately wrong derivations of the recurrent layers (manual.recurrent) on small described sequence networks
(NumPy only): backpropagation through time with one path dropped. Each replaces the recurrent layer's backward
by one built from manual.recurrent's own pieces (``layer_backward`` over the layers, a step's backward) with the
mistake swapped in; ``first_wrong`` and ``kind`` as in crosscheck.catalogue.layers."""

import dataclasses

import numpy as np

from crosscheck.catalogue import WrongDerivation
from crosscheck.catalogue.layers import FLAT, _linear, _stack
from manual import recurrent as R


def _recurrent_backward(step_backward=None, carry_down=True):
    """A described recurrent layer's backward (manual.network's: dx, then the weights' gradients) through
    manual.recurrent's layer_backward, with a wrong step backward, or with the gradient of each layer's input not
    carried down to the layer below (zeros in its place); its per-step trace left on the cache, as manual.recurrent's
    backward leaves it."""
    def backward(dout, cache):
        kind = cache.kind if step_backward is None else dataclasses.replace(cache.kind, step_backward=step_backward)
        dseq, dfinal = R.check_backward(dout, cache, None, None)
        L = len(cache.layers)
        dstates0, weight_grads, cache.trace = [None] * L, [None] * L, [None] * L
        for l in reversed(range(L)):
            dinputs, dstates0[l], weight_grads[l], cache.trace[l] = R.layer_backward(kind, cache.layers[l], dseq,
                                                                                     [d[l] for d in dfinal])
            dseq = dinputs if carry_down or l == 0 else np.zeros_like(dinputs)
        dx, *rest = R.gradients(cache, dseq, dstates0, weight_grads)
        return (dx, *rest[len(kind.states):])
    return backward


def _lstm_step_without_future_cell(dh, dc_next, cache, w_hh):
    """dc = dh * o * (1 - tanh(c)^2) alone: the gradient reaching c_t from c_{t+1} = f c_t + i g left out."""
    return R.lstm_step_backward(dh, np.zeros_like(dc_next), cache, w_hh)


def _lstm_step_gates_ifog(dh, dc_next, cache, w_hh):
    """The gates' pre-activation gradients stacked i, f, o, g, where torch's weight rows are i, f, g, o."""
    d = R.lstm_step_backward(dh, dc_next, cache, w_hh)
    da = np.concatenate([d["da_i"], d["da_f"], d["da_o"], d["da_g"]], axis=1)
    return d | {"da": da, "da_h": da, "dh_prev": da @ w_hh}


def _gru_step_cut(dh, cache, w_hh):
    """The step's gradients with nothing sent back to h_{t-1}: backpropagation through time cut after one step."""
    return R.gru_step_backward(dh, cache, w_hh) | {"dh_prev": np.zeros_like(dh)}


# the wrong LSTM step backwards by entry name: crosscheck explain --layer lstm --inject NAME runs one step with it
LSTM_STEPS = {"lstm-cell-future-left-out": _lstm_step_without_future_cell,
              "lstm-gate-order-ifog": _lstm_step_gates_ifog}

# sequences [T, F] (batch first): T, N, F distinct, so that no transpose of an input gradient keeps its shape
LSTM_SEQUENCE = _stack((6, 3), [{"type": "lstm", "hidden_size": 3}, FLAT, _linear(2)])
GRU_SEQUENCE = _stack((6, 3), [{"type": "gru", "hidden_size": 4}, FLAT, _linear(2)])
RNN_STACKED = _stack((5, 3), [{"type": "rnn", "hidden_size": 4, "num_layers": 2}, FLAT, _linear(2)])

ENTRIES = [
    WrongDerivation("lstm-cell-future-left-out", "lstm: dc_t = dh_t * o * (1 - tanh(c_t)^2) alone, the cell state's "
                    "gradient from the future (through c_{t+1} = f c_t + i g) left out", LSTM_SEQUENCE,
                    "0 lstm: dE/dinput", "bptt-cell-future", {0: _recurrent_backward(_lstm_step_without_future_cell)}),
    WrongDerivation("lstm-gate-order-ifog", "lstm: the backward stacks the gates' pre-activation gradients in the "
                    "order i, f, o, g, where torch's weight rows are i, f, g, o", LSTM_SEQUENCE, "0 lstm: dE/dinput",
                    "gate-order", {0: _recurrent_backward(_lstm_step_gates_ifog)}),
    WrongDerivation("gru-bptt-cut-after-one-step", "gru: each step's backward sends nothing back to h_{t-1}, "
                    "backpropagation through time cut after one step", GRU_SEQUENCE, "0 gru: dE/dinput",
                    "bptt-truncated", {0: _recurrent_backward(_gru_step_cut)}),
    WrongDerivation("rnn-layers-not-carried", "rnn with two layers: the gradient reaching layer 1's input sequence "
                    "not carried down to layer 0's output (zeros in its place)", RNN_STACKED, "0 rnn: dE/dinput",
                    "bptt-layers", {0: _recurrent_backward(carry_down=False)}),
]
