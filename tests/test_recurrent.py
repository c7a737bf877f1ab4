"""Recurrent layers beyond the registry rows (tests/layer_cases.py): the reference's unrolled steps against
torch's modules, manual's per-step trace against autograd's per-step gradients, initial states left out (zeros,
no gradient) as torch's default, and the bad-input checks."""

import json
import re

import numpy as np
import pytest
import torch
from layer_cases import WEIGHT_NAMES, recurrent_shapes
from runs import SEED_BASE, diagnose_entry, diagnose_network, network_rows, scaled_at

import netdesc.inputs
from crosscheck import cli
from crosscheck import hypotheses as H
from crosscheck.catalogue.recurrent import ENTRIES as RECURRENT_ENTRIES
from crosscheck.render import diagnosis_text
from crosscheck.tolerances import tolerance_for
from manual import recurrent as R
from netdesc import InputError
from netdesc.description import parse_spec
from reference import network as reference_net
from reference.recurrent import QUANTITIES, unrolled

MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
FORWARDS = {"rnn": (R.rnn_forward, R.rnn_backward_with_trace), "lstm": (R.lstm_forward, R.lstm_backward_with_trace),
            "gru": (R.gru_forward, R.gru_backward_with_trace)}
CELLS = {"rnn": (torch.nn.RNNCell, R.rnn_cell_forward, R.rnn_cell_backward),
         "lstm": (torch.nn.LSTMCell, R.lstm_cell_forward, R.lstm_cell_backward),
         "gru": (torch.nn.GRUCell, R.gru_cell_forward, R.gru_cell_backward)}
VARIANTS = [("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}), ("gru", {})]


def _inputs(kind, rng, T=6, N=3, F=2, H=3, num_layers=2, bias=True, batch_first=False, dtype=np.float64):
    shapes = recurrent_shapes(GATES[kind], T, N, F, H, num_layers, bias, batch_first, kind == "lstm")
    return [rng.standard_normal(s).astype(dtype) * (0.6 if i > 1 else 1) for i, s in enumerate(shapes)]


def _module(kind, arrays, bias, batch_first, options):
    states = 2 if kind == "lstm" else 1
    weights = arrays[1 + states:]
    per = 4 if bias else 2
    layer = MODULES[kind](weights[0].shape[1], weights[1].shape[1], len(weights) // per, bias=bias,
                          batch_first=batch_first, **options).double()
    names = [f"{name}_l{l}" for l in range(len(weights) // per) for name in WEIGHT_NAMES[:per]]
    return layer, dict(zip(names, weights, strict=True))


@pytest.mark.parametrize(("kind", "options"), VARIANTS, ids=lambda v: v if isinstance(v, str) else "-".join(v.values()))
@pytest.mark.parametrize(("bias", "batch_first"), [(True, False), (False, True)])
def test_the_unrolled_steps_are_torchs_modules(kind, options, bias, batch_first):
    """The reference's step-by-step torch equals torch.nn.RNN/LSTM/GRU, output and final states: the per-step
    gradients it keeps are autograd's of torch's own layer."""
    arrays = [torch.from_numpy(a) for a in _inputs(kind, np.random.default_rng(1), bias=bias,
                                                    batch_first=batch_first)]
    states = 2 if kind == "lstm" else 1
    layer, params = _module(kind, arrays, bias, batch_first, options)
    out, final = torch.func.functional_call(layer, params, (arrays[0], tuple(arrays[1:1 + states])
                                                            if states == 2 else arrays[1]))
    u_out, u_final, steps = unrolled(kind, arrays[0], arrays[1:1 + states], arrays[1 + states:],
                                     bias=bias, batch_first=batch_first, **options)
    torch.testing.assert_close(u_out, out)
    torch.testing.assert_close(u_final, final if states == 2 else (final,))
    assert len(steps) == 2 and set(steps[0]) == set(QUANTITIES[kind]) and len(steps[1]["h"]) == 6


@pytest.mark.parametrize(("kind", "options"), VARIANTS, ids=lambda v: v if isinstance(v, str) else "-".join(v.values()))
@pytest.mark.parametrize("batch_first", [False, True])
def test_the_trace_holds_autograds_per_step_gradients(kind, options, batch_first):
    """Every quantity of manual's trace, at every layer and time step, equals autograd's gradient of it in the
    unrolled torch steps, with gradients flowing in from the output and the final states at once."""
    rng = np.random.default_rng(2)
    arrays = _inputs(kind, rng, batch_first=batch_first)
    states = 2 if kind == "lstm" else 1
    forward, backward = FORWARDS[kind]
    out, cache = forward(*arrays, batch_first=batch_first, **options)
    dout = rng.standard_normal(out.shape)
    dfinal = [rng.standard_normal(cache.h_n.shape) for _ in range(states)]
    grads, trace = backward(dout, cache, *dfinal)

    tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]
    t_out, t_final, steps = unrolled(kind, tensors[0], tensors[1:1 + states], tensors[1 + states:],
                                     batch_first=batch_first, **options)
    total = (t_out * torch.from_numpy(dout)).sum() + sum((f * torch.from_numpy(d)).sum()
                                                         for f, d in zip(t_final, dfinal, strict=True))
    total.backward()
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(grads, tensors, strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for l in range(2):
        assert set(trace[l]) == {f"d{q}" for q in QUANTITIES[kind]} and len(trace[l]) == len(QUANTITIES[kind])
        assert trace[l]["dh"] is trace[l]["dh"]  # stacked over time once, when first read
        for q in QUANTITIES[kind]:
            autograd = torch.stack([v.grad for v in steps[l][q]]).numpy()
            np.testing.assert_allclose(trace[l][f"d{q}"], autograd, rtol=1e-10, atol=1e-12, err_msg=f"{l} d{q}")


@pytest.mark.parametrize(("kind", "options"), VARIANTS, ids=lambda v: v if isinstance(v, str) else "-".join(v.values()))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_initial_states_left_out_are_zeros_without_a_gradient(kind, options, dtype):
    """h0 (and c0) None: zeros, as torch's default when the module is called without them; their gradients None."""
    arrays = _inputs(kind, np.random.default_rng(3), dtype=dtype)
    states = 2 if kind == "lstm" else 1
    forward, backward = FORWARDS[kind]
    out, cache = forward(arrays[0], *[None] * states, *arrays[1 + states:], **options)
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    grads, _ = backward(dout, cache)
    assert grads[1:1 + states] == (None,) * states
    tensors = [torch.from_numpy(a).double().requires_grad_() for a in arrays]
    layer, params = _module(kind, tensors, True, False, options)
    t_out, _ = torch.func.functional_call(layer, params, (tensors[0],))
    t_grads = torch.autograd.grad(t_out, [tensors[0], *tensors[1 + states:]], torch.from_numpy(dout).double())
    tol = {"float64": 1e-10, "float32": 1e-4}[dtype]
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=tol, atol=tol)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads if g is not None)
    for g, t in zip((grads[0], *grads[1 + states:]), t_grads, strict=True):
        np.testing.assert_allclose(g, t.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_cell_without_its_state_starts_from_zeros(kind):
    module, forward, backward = CELLS[kind]
    rng = np.random.default_rng(5)
    G, H = GATES[kind], 3
    x, w_ih, w_hh, b_ih, b_hh = (rng.standard_normal(s) for s in ((2, 4), (G * H, 4), (G * H, H), (G * H,),
                                                                  (G * H,)))
    states = 2 if kind == "lstm" else 1
    out, cache = forward(x, *[None] * states, w_ih, w_hh, b_ih, b_hh)
    tensors = [torch.from_numpy(a).requires_grad_() for a in (x, w_ih, w_hh, b_ih, b_hh)]
    t_out = torch.func.functional_call(module(4, H).double(), dict(zip(WEIGHT_NAMES, tensors[1:], strict=True)),
                                       (tensors[0],))
    t_out = torch.stack(t_out) if states == 2 else t_out
    dout = rng.standard_normal(t_out.shape)
    grads = backward(dout, cache)
    assert grads[1:1 + states] == (None,) * states
    np.testing.assert_allclose(np.asarray(out), t_out.detach().numpy(), rtol=1e-12)
    for g, t in zip((grads[0], *grads[1 + states:]), torch.autograd.grad(t_out, tensors, torch.from_numpy(dout)),
                    strict=True):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-10, atol=1e-12)


def test_the_lstm_cell_takes_its_two_gradients_as_a_pair_or_one_array():
    rng = np.random.default_rng(6)
    x, h, c, w_ih, w_hh = (rng.standard_normal(s) for s in ((2, 3), (2, 2), (2, 2), (8, 3), (8, 2)))
    _, cache = R.lstm_cell_forward(x, h, c, w_ih, w_hh)
    dh, dc = rng.standard_normal((2, 2, 2))
    for a, b in zip(R.lstm_cell_backward((dh, dc), cache), R.lstm_cell_backward(np.stack([dh, dc]), cache),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match=r"^dout: got 3 gradients, needs two, \(dh', dc'\)$"):
        R.lstm_cell_backward((dh, dc, dc), cache)


# --- bad input: one InputError naming the argument ---------------------------------------------------------

def _lstm(**changes):
    rng = np.random.default_rng(7)
    arrays = dict(zip(["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"],
                      _inputs("lstm", rng, T=3, N=2, F=2, H=3, num_layers=1), strict=True))
    options = {k: changes.pop(k) for k in ("bias", "batch_first") if k in changes}
    arrays.update(changes)
    values = list(arrays.values())
    return R.lstm_forward(*[v for v in values if not isinstance(v, str)], **options)


@pytest.mark.parametrize(("changes", "message"), [
    ({"bias": 1}, "bias: got 1, needs True or False"),
    ({"batch_first": "yes"}, "batch_first: got 'yes', needs True or False"),
    ({"x": np.zeros((3, 2))}, "x: got 2-D array of shape (3, 2), needs 3-D"),
    ({"x": np.zeros((0, 2, 2))}, "x: got shape (0, 2, 2), needs at least one time step, one sample and one feature"),
    ({"b_hh": "left out"}, "weights: got 3 arrays, needs 4 per layer (w_ih, w_hh, b_ih, b_hh, torch's order) for "
                           "one or more layers"),
    ({"w_hh": np.zeros((12, 2))}, "w_hh_l0: got shape (12, 2), needs (8, 2) (4 gate blocks of H = 2 rows, torch's "
                                  "weight_hh_l0)"),
    ({"w_ih": np.zeros((12, 3))}, "w_ih_l0: got shape (12, 3), needs (12, 2) (4 gate blocks of H = 3 rows over the 2 "
                                  "input features, torch's weight_ih_l0)"),
    ({"b_ih": np.zeros(3)}, "b_ih_l0: got shape (3,), needs (12,) (one bias per gate row, torch's bias_ih_l0)"),
    ({"b_ih": np.zeros(12, np.float32)}, "mixed dtypes: got x float64, w_ih_l0 float64, w_hh_l0 float64, b_ih_l0 "
                                         "float32, b_hh_l0 float64, needs one dtype (all float32 or all float64)"),
    ({"c0": np.zeros((2, 2, 3))}, "c0: got shape (2, 2, 3), needs (1, 2, 3) ((num_layers, N, H), torch's layout)"),
    ({"h0": np.zeros((1, 2, 3), np.float32)}, "mixed dtypes: got x float64, h0 float32, needs one dtype"),
])
def test_bad_sequence_input_names_the_argument(changes, message):
    with pytest.raises(InputError, match="^" + re.escape(message)):
        _lstm(**changes)


def test_bad_input_of_the_rnn_and_the_backward_names_the_argument():
    rng = np.random.default_rng(8)
    x, h0, w_ih, w_hh = _inputs("rnn", rng, T=2, N=1, F=2, H=2, num_layers=1, bias=False)
    with pytest.raises(InputError, match=r"^nonlinearity: got 'sigmoid', needs one of 'tanh', 'relu'$"):
        R.rnn_forward(x, h0, w_ih, w_hh, nonlinearity="sigmoid", bias=False)
    with pytest.raises(InputError, match=r"^w_hh: got shape \(3, 2\), needs \(2, 2\) \(1 gate block of H = 2 rows"):
        R.rnn_cell_forward(x[0], h0[0], w_ih, np.zeros((3, 2)))
    with pytest.raises(InputError, match=r"^h: got shape \(1, 3\), needs \(1, 2\) \(\(N, H\), one state per sample\)$"):
        R.rnn_cell_forward(x[0], np.zeros((1, 3)), w_ih, w_hh)
    out, cache = R.rnn_forward(x, h0, w_ih, w_hh, bias=False)
    with pytest.raises(InputError, match=r"^dout: got shape \(1, 2, 2\) dtype float64, needs an array of shape "
                                         r"\(2, 1, 2\) and dtype float64 \(the forward output's\)$"):
        R.rnn_backward(out.swapaxes(0, 1), cache)
    with pytest.raises(InputError, match=r"^dh_n: got list, needs an array of shape \(1, 1, 2\)"):
        R.rnn_backward(out, cache, dh_n=[0.0, 0.0])
    h, cell = R.rnn_cell_forward(x[0], h0[0], w_ih, w_hh)
    with pytest.raises(InputError, match=r"^dh: got shape \(1, 2\) dtype float32"):
        R.rnn_cell_backward(h.astype(np.float32), cell)


def test_bad_input_of_the_lstm_and_of_a_cell_names_the_argument():
    rng = np.random.default_rng(9)
    x, h0, c0, w_ih, w_hh = _inputs("lstm", rng, T=2, N=1, F=2, H=2, num_layers=1, bias=False)
    out, cache = R.lstm_forward(x, h0, c0, w_ih, w_hh, bias=False)
    with pytest.raises(InputError) as info:
        R.lstm_backward(out, cache, dh_n=np.zeros((1, 1, 2)), dc_n=np.zeros((1, 2)))
    assert str(info.value) == ("dc_n: got shape (1, 2) dtype float64, needs an array of shape (1, 1, 2) and dtype "
                               "float64 (the forward output's)")
    (h, c), cell = R.lstm_cell_forward(x[0], h0[0], c0[0], w_ih, w_hh)
    with pytest.raises(InputError) as info:
        R.lstm_cell_backward((h, c.astype(np.float32)), cell)
    assert str(info.value) == ("dc: got shape (1, 2) dtype float32, needs an array of shape (1, 2) and dtype float64 "
                               "(the forward output's)")
    with pytest.raises(InputError) as info:
        R.gru_cell_forward(x[0].tolist(), None, np.zeros((6, 2)), np.zeros((6, 2)))
    assert str(info.value) == "x: got list, needs a NumPy array"
    with pytest.raises(InputError) as info:
        R.gru_cell_forward(x, None, np.zeros((6, 2)), np.zeros((6, 2)))  # the whole sequence, (T, N, F)
    assert str(info.value) == "x: got 3-D array of shape (2, 1, 2), needs 2-D"


# --- descriptions: rnn, lstm and gru layers in a described network ----------------------------------------

def _description(kind, num_layers=1, dtype_steps=5, **options):
    return {
        "name": f"seq-{kind}-{num_layers}", "input_shape": [7, 3], "batch_size": 3,
        "layers": [{"type": kind, "hidden_size": 4, "num_layers": num_layers, **options},
                   {"type": "flatten"}, {"type": "linear", "out_features": 2}],
        "loss": {"type": "mse"}, "optimizer": {"type": "adam", "lr": 0.01, "steps": dtype_steps},
    }


DESCRIBED = [("rnn", 1, {}), ("rnn", 2, {"nonlinearity": "relu"}), ("lstm", 1, {}), ("lstm", 2, {"bias": False}),
             ("gru", 1, {"bias": False}), ("gru", 2, {})]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("kind", "num_layers", "options"), DESCRIBED,
                         ids=[f"{k}-{n}{''.join(f'-{v}' for v in o.values())}" for k, n, o in DESCRIBED])
def test_a_described_recurrent_network_matches_autograd_through_adam_steps(kind, num_layers, options, dtype):
    """[T, F] -> rnn / lstm / gru -> flatten -> linear, mse: every output, gradient (torch's parameter names) and
    five Adam steps against torch's modules."""
    spec = parse_spec(_description(kind, num_layers, **options))
    rows = network_rows(spec, SEED_BASE, dtype)
    failed = [row.result.describe(spec.name) for row in rows if not row.passed]
    assert not failed, "\n".join(failed)
    seen = {(row.where, row.quantity) for row in rows}
    for l in range(num_layers):
        for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if options.get("bias", True) else ()):
            assert (f"0 {kind}", f"dE/d{name}_l{l}") in seen and (f"0 {kind}", f"{name}_l{l} after 5 steps") in seen
    assert (f"0 {kind}", "dE/dinput") in seen and ("loss", "E at steps 1..5") in seen


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_the_descriptions_parameters_are_torchs_by_name_shape_and_law(kind):
    """param_shapes against the module torch builds (names and shapes from torch); every parameter drawn from
    torch's law U(-1/sqrt(H), 1/sqrt(H))."""
    spec = parse_spec(_description(kind, 2))
    module = MODULES[kind](3, 4, 2, batch_first=True)
    assert {f"0.{name}": tuple(p.shape) for name, p in module.named_parameters()} == {
        k: v for k, v in spec.param_shapes().items() if k.startswith("0.")}
    params = netdesc.inputs.init_params(spec, np.float64, seed=0)
    recurrent = np.concatenate([p.ravel() for k, p in params.items() if k.startswith("0.")])
    assert np.abs(recurrent).max() <= 0.5 and np.abs(recurrent).max() > 0.45 and recurrent.min() < -0.45  # 1/sqrt(4)
    assert spec.layers[0].out_shape == (7, 4) and spec.layers[1].out_shape == (28,)


def test_an_embedding_feeds_an_lstm_classifier():
    """[T] token ids -> embedding -> lstm -> flatten -> linear, softmax cross-entropy, in float32 and float64."""
    spec = parse_spec({"name": "tokens", "input_shape": [6], "batch_size": 4,
                       "layers": [{"type": "embedding", "num_embeddings": 9, "embedding_dim": 3},
                                  {"type": "lstm", "hidden_size": 3, "num_layers": 2}, {"type": "flatten"},
                                  {"type": "linear", "out_features": 5}],
                       "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.05,
                                                                                "steps": 4}})
    for dtype in ("float64", "float32"):
        rows = network_rows(spec, SEED_BASE, dtype)
        assert all(row.passed for row in rows), [row.result.describe(dtype) for row in rows if not row.passed]


def test_verify_checks_a_described_lstm_and_exits_0(capsys):
    text = json.dumps(_description("lstm", 2))
    assert cli.main(["verify", "--spec-json", text, "--steps", "2", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "0 lstm" in out and "dE/dweight_hh_l1" in out and "weight_ih_l0 after 2 steps" in out
    assert out.rstrip().endswith("quantities agree")


# --- the truncated graphs the catalogue's hypotheses stand on -------------------------------------------------

def _last_step_gradients(kind, detach, num_layers=1):
    """Autograd's gradients of the unrolled layer (T = 5) for an upstream gradient at the last step only."""
    arrays = [torch.from_numpy(a).requires_grad_() for a in _inputs(kind, np.random.default_rng(9), T=5,
                                                                       num_layers=num_layers)]
    states = 2 if kind == "lstm" else 1
    out, _, _ = unrolled(kind, arrays[0], arrays[1:1 + states], arrays[1 + states:], detach=detach)
    upstream = torch.zeros_like(out)
    upstream[-1] = torch.from_numpy(np.random.default_rng(10).standard_normal(out.shape[1:]))
    return [g.numpy() for g in torch.autograd.grad(out, arrays, upstream, allow_unused=True, materialize_grads=True)]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_detaching_the_states_leaves_each_step_its_own_gradient(kind):
    """Every step reading its previous states detached: an upstream gradient at the last step reaches the last
    step's input only; with the states attached it reaches the first step's too."""
    full, cut = _last_step_gradients(kind, ()), _last_step_gradients(kind, ("h", "c"))
    assert np.all(cut[0][:-1] == 0) and np.abs(cut[0][-1]).min() > 0 and np.abs(full[0][0]).max() > 1e-8
    assert np.all(cut[1] == 0)  # nor the initial state h0


def test_detaching_the_cell_state_alone_keeps_the_hidden_path():
    full, cell_cut, cut = (_last_step_gradients("lstm", d) for d in ((), ("c",), ("h", "c")))
    assert np.abs(cell_cut[0][0]).max() > 1e-8  # the path through h still reaches the first step
    assert np.abs(cell_cut[0] - full[0]).max() > 1e-8 and np.all(cell_cut[2] == 0)  # but not c0


def test_detaching_the_layers_leaves_the_first_layer_without_a_gradient():
    full, cut = _last_step_gradients("gru", (), 2), _last_step_gradients("gru", ("layers",), 2)
    assert np.all(cut[0] == 0) and all(np.all(g == 0) for g in cut[2:6])  # x and layer 0's weights
    for a, b in zip(cut[6:], full[6:], strict=True):  # layer 1's weights as in the full graph
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("entry", RECURRENT_ENTRIES, ids=str)
def test_the_recurrent_hypotheses_reject_a_right_gradient(entry):
    """On autograd's own (right) gradients of the catalogue's networks, no recurrent hypothesis fits: a right
    derivation is never given a mistake's class."""
    spec = parse_spec(entry.network)
    params = netdesc.inputs.init_params(spec, np.float64, seed=0)
    x, target = netdesc.inputs.random_batch(spec, np.float64, seed=0)
    a = reference_net.run(spec, params, x, target)
    layer = spec.layers[0]
    tol = tolerance_for("float64")
    for kind, grad in [("input", a["input_grads"][0])] + [(k, a["param_grads"][f"0.{k}"])
                                                          for k in layer.param_shapes()]:
        hypotheses = H.layer_hypotheses(layer, kind, x, params, a["output_grads"][0])
        assert {h.kind for h in hypotheses} >= {"bptt-truncated"}
        for h in hypotheses:
            if h.kind == "bptt-layers" and kind.endswith("_l1"):  # the top layer's weights: no layer above it
                continue
            pairs = h.pairs(np.asarray(grad), np.asarray(grad))
            assert pairs and not any(H._agree(m, c, tol) for m, c in pairs), (kind, h.kind)


# --- a diagnosis in a recurrent layer names the time step and the quantity --------------------------------------

# Where each mistake first shows, walking as the gradient flows (the top of the stack first, from the last step):
# at the last step no gradient comes from the future yet, so a path from the future left out shows one step
# earlier, in the quantity it feeds (the cell state's gradient, or h's); a gradient not carried down the stack
# leaves the layer below wrong from its last step on; gates stacked in the wrong order are each right by name at
# the last step, and send h_{t-1} a wrong gradient through W_hh.
TIME_STEPS = {"lstm-cell-future-left-out": (0, 1, "dc"), "gru-bptt-cut-after-one-step": (0, 1, "dh"),
              "lstm-gate-order-ifog": (0, 1, "dh"),
              "rnn-layers-not-carried": (0, 0, "dh")}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("entry", RECURRENT_ENTRIES, ids=str)
def test_a_diagnosis_names_the_time_step_and_the_quantity(entry, dtype):
    d = diagnose_entry(entry, dtype)
    place = d.time_step
    assert (place["stack_layer"], place["from_end"], place["quantity"]) == TIME_STEPS[entry.name]
    assert place["step"] == place["steps"] - 1 - place["from_end"] and place["layer"] == 0
    text = diagnosis_text(d)
    assert f"step t = {place['step']} of {place['steps']}" in text and f"{place['quantity']} is the first" in text
    assert ("(the last step," in text) == (place["from_end"] == 0)
    assert d.as_dict()["time_step"] == place


def test_no_time_step_where_the_recurrent_layer_is_right_or_leaves_no_trace():
    spec = parse_spec(RECURRENT_ENTRIES[0].network)
    # a wrong linear layer above: the lstm is never reached
    assert diagnose_network(spec, layer_backward={2: scaled_at(spec, 2)[2]}).time_step is None
    # the lstm's backward scaled by 1 + 100 rtol: its trace (left by the right backward inside) agrees at every step
    scaled = diagnose_network(spec, layer_backward=scaled_at(spec, 0))
    assert scaled.quantity == "0 lstm: dE/dinput" and scaled.time_step is None

    def untraced(dout, cache):  # a backward of its own (zeros), with no trace on the cache
        weights = [w for _, layer_weights, _, _ in cache.layers for w in layer_weights if w is not None]
        return (np.zeros(cache.x_shape), *map(np.zeros_like, weights))
    cache_free = diagnose_network(spec, layer_backward={0: untraced})
    assert cache_free.quantity == "0 lstm: dE/dinput" and cache_free.time_step is None
