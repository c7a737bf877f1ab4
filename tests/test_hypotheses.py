"""The classifier's rules (crosscheck.hypotheses), pinned where they decide: the words each class is named with in a
diagnosis, the layer options a hypothesis is built from (a pool's window size and overlap, an adaptive pool's
uneven sizes, a transposed conv's dilation, a recurrent layer's nonlinearity, bias and weight, the states a
truncation detaches, a conv's stride, dilation, padding and groups), which hypothesis is tested first, the generic
hypotheses' shapes and shifts (a transpose, padding not cropped, a shift of up to 2 keeping half the mass), a
constant read as a known scale within 10 rtol of it, the optimizer replays (Adam's uncorrected moments, SGD's
momentum variants, the scheduler's step, the running variance) and an update's step, measured from the parameter
before it at the dtype's tolerance. Every expected array is derived here by hand or by torch on the test's own
equations, never by the code under test."""

import numpy as np
import pytest
import torch
from runs import diagnose_entry
from torch.nn import functional as TF

from crosscheck.catalogue import find
from crosscheck.hypotheses import (
    Hypothesis,
    classify,
    layer_hypotheses,
    optimizer_hypotheses,
    running_hypotheses,
    window,
)
from crosscheck.subjects import Step
from netdesc.description import parse_spec
from netdesc.inputs import init_params


def _layer(input_shape, layer, batch_size=2):
    """Layer 0 of a network of `layer`, flattened into the loss."""
    spec = parse_spec(
        {
            "input_shape": input_shape,
            "batch_size": batch_size,
            "layers": [layer, {"type": "flatten"}],
            "loss": {"type": "mse"},
        }
    )
    return spec, spec.layers[0]


def _classified(layer, kind, x, params, upstream, manual, autograd, dtype="float64"):
    """classify on the step of layer's dE/d(kind) with the layer's hypotheses, as a network's walk builds it."""
    hypotheses = layer_hypotheses(layer, kind, x, params, upstream)
    step = Step(f"{layer.index} {layer.type}", f"dE/d{kind}", manual, autograd, hypotheses=hypotheses)
    return classify(step, manual, autograd, dtype)


def _input_grad(fn, x, upstream):
    t = torch.from_numpy(x).requires_grad_()
    (grad,) = torch.autograd.grad(fn(t), t, torch.from_numpy(upstream))
    return grad.numpy()


# --- the words of each class, as a diagnosis of the catalogue's mistakes names them ------------------------------

MESSAGES = {
    "max-pool-every-element": (
        "2 max_pool2d: dE/dinput",
        "window",
        "manual = the gradient of the window's sum: dE/d(output) sent to every element of the "
        "window, not only to its maximum",
    ),
    "maxpool-overlap-assign": (
        "2 max_pool2d: dE/dinput",
        "overlap-assign",
        "manual = each window's one-hot gradient assigned (=) over its window in turn, where "
        "overlapping windows must accumulate (+=): a pixel keeps the last window's share only",
    ),
    # 7x7 into 3x3: windows of 7 // 3 = 2 from i*2
    "adaptive-pool-even-windows": (
        "2 adaptive_avg_pool2d: dE/dinput",
        "adaptive-windows",
        "manual = the input gradient of windows of 2x2 from i*2: the windows taken as if 3x3 "
        "divided 7x7 evenly, not torch's [floor(i*H/OH), ceil((i+1)*H/OH))",
    ),
    "convtranspose-output-padding-ignored": (
        "0 conv_transpose2d: dE/dinput",
        "padding",
        "manual = the input gradient without output_padding (1, 1): dE/d(output) "
        "read as if the output ended before its last rows and columns",
    ),
    "softmax-layer-diag-only": (
        "2 softmax: dE/dinput",
        "softmax-diagonal",
        "manual = dE/d(output) * s (1 - s): only the diagonal of softmax's Jacobian diag(s) - "
        "s s^T, the terms -s_i s_j between outputs left out",
    ),
    "embedding-assign": (
        "0 embedding: dE/dweight",
        "assigned",
        "manual = dE/d(output) assigned row by row (dweight[indices] = dout): a repeated index keeps "
        "one position's gradient instead of their sum",
    ),
    "embedding-padding-gradient": (
        "0 embedding: dE/dweight",
        "padding-index",
        "manual = autograd with the padding_idx row 1 given the sum of its positions' "
        "gradients: torch holds that row at zero",
    ),
    "batchnorm-biased-running-var": (
        "1 batch_norm2d: running_var after step 1",
        "biased-variance",
        "the running variance updated with the batch's biased variance (divided by M, "
        "the normalization's), where torch keeps the unbiased one (divided by M - 1)",
    ),
    "sgd-wrong-sign": (
        "W after step 1",
        "update-sign",
        "manual moved the parameter by +lr * g: its step = -autograd's step",
    ),
    "lstm-cell-future-left-out": (
        "0 lstm: dE/dinput",
        "bptt-cell-future",
        "manual = autograd with each step reading c_{t-1} detached: the cell state's "
        "gradient from c_{t+1} = f c_t + i g left out",
    ),
    "gru-bptt-cut-after-one-step": (
        "0 gru: dE/dinput",
        "bptt-truncated",
        "manual = autograd with each step reading the previous step's state h detached: "
        "no gradient carried back in time",
    ),
    "rnn-layers-not-carried": (
        "0 rnn: dE/dinput",
        "bptt-layers",
        "manual = autograd with each layer above the first reading the output sequence below "
        "it detached: no gradient carried down the stack",
    ),
    "lstm-gate-order-ifog": (
        "0 lstm: dE/dinput",
        "gate-order",
        "manual = autograd with the gradients of gates g and o swapped in every step's backward "
        "(torch's order is i, f, g, o)",
    ),
    "missing-dH1_dZ1": ("dH1/dZ1", "activation-missing", "manual = 1: the local derivative left out"),
    "twice-dH1_dZ1": ("dH1/dZ1", "activation-twice", "manual = autograd^2: the local derivative applied twice"),
    "sigmoid-of-output-dO_dZ2": (
        "dO/dZ2",
        "activation-wrong-point",
        "manual = the derivative taken at the output instead of at the input",
    ),
    # the slides' network under the mean over its N = 4 samples, the division left out
    "mean-forgotten-dE_dO": (
        "dE/dO",
        "batch-reduction",
        "manual = c * autograd with c = 4, the batch size N: a sum where the mean was meant",
    ),
    "conv2d-stride-ignored-dx": (
        "2 conv2d: dE/dinput",
        "stride",
        "manual = the input gradient of a stride-1 conv: the stride (2, 2) left out where dE/d(output) is "
        "scattered back",
    ),
    "conv2d-dilation-ignored-dw": (
        "0 conv2d: dE/dweight",
        "dilation",
        "manual = dE/dweight of the undilated conv: the dilation (2, 2) left out",
    ),
    "grouped-conv-dw-summed-over-groups": (
        "0 conv2d: dE/dweight",
        "groups-summed",
        "manual = autograd's dE/dweight summed over the 2 groups, every group given the sum: the batch and the "
        "groups summed where only the batch was meant",
    ),
    "batchnorm-no-mean-variance-paths": (
        "0 batch_norm2d: dE/dinput",
        "normalization-paths",
        "manual = gamma * dE/d(output) / std: only the direct path, the paths through the mean and the variance "
        "left out",
    ),
    "batchnorm-dy-for-scaled": (
        "1 batch_norm2d: dE/dinput",
        "normalization-gamma",
        "manual = the input gradient of the normalization without gamma: dE/d(output) used where gamma * "
        "dE/d(output) was meant",
    ),
    "layernorm-mean-path-left-out": (
        "1 layer_norm: dE/dinput",
        "normalization-mean-path",
        "manual = autograd less the path through the mean, -mean(gamma * dE/d(output)) / std: the mean held "
        "constant in the backward",
    ),
    "sgd-dampening-first-step": (
        "1 linear: weight after step 1",
        "momentum",
        "the buffer started at zero: step 1 moved by (1 - dampening) g instead of g (torch: buf = g on the first step)",
    ),
    "sgd-nesterov-lookahead-missing": (
        "1 linear: weight after step 1",
        "momentum",
        "Nesterov's look-ahead g + momentum * buf left out: the update used buf, plain momentum",
    ),
    "sgd-buffer-not-kept": (
        "1 linear: weight after step 2",
        "momentum",
        "the momentum buffer not carried from one step to the next",
    ),
    "sgd-weight-decay-forgotten": (
        "1 linear: weight after step 1",
        "weight-decay",
        "the weight decay term left out of the gradient",
    ),
    "adam-no-bias-correction": (
        "1 linear: weight after step 1",
        "bias-correction",
        "the moments not bias-corrected: m / (sqrt(v) + eps), the divisions by 1 - beta1^t and sqrt(1 - beta2^t) "
        "left out",
    ),
    "adamw-coupled-decay": (
        "1 linear: weight after step 1",
        "weight-decay",
        "the decay coupled like L2, added to the gradient (Adam's), not decoupled from it as AdamW's p = p * "
        "(1 - lr * weight_decay)",
    ),
    "rmsprop-eps-inside-sqrt": (
        "1 linear: weight after step 1",
        "epsilon",
        "eps inside the square root: g / sqrt(v + eps), not g / (sqrt(v) + eps)",
    ),
    "scheduler-stepped-early": (
        "1 linear: weight after step 1",
        "schedule",
        "the scheduler stepped before the optimizer: step t used the learning rate meant for step t + 1",
    ),
    "tanh-of-output": (
        "2 tanh: dE/dinput",
        "activation-wrong-point",
        "manual = dE/d(output) * the derivative taken at the output instead of at the input",
    ),
    "attention-mask-after-softmax": (
        "0 multihead_attention: output",
        "mask-after-softmax",
        "manual = attention with the softmax over every key and the masked probabilities then set to 0 (rows no "
        "longer summing to 1), where the masked scores must be -inf before it",
    ),
    "layernorm-wrong-axes": (
        "2 layer_norm: output",
        "normalization-axes",
        "manual = layer norm with the mean and variance over the batch axis (each element across the samples) "
        "instead of over each sample's normalized_shape",
    ),
    "groupnorm-wrong-axes": (
        "1 group_norm: output",
        "normalization-axes",
        "manual = group norm over interleaved channels (group g holding channels g, g + G, ...): the channel axis "
        "split as (C/G, G) instead of (G, C/G)",
    ),
    "cross-entropy-onehot-forgotten": (
        "loss: dE/dinput",
        "one-hot",
        "manual = softmax / N: the one-hot term of softmax - onehot(labels) left out",
    ),
    # 10 labels over the tagger's steps, 2 of them ignored
    "cross-entropy-ignored-counted": (
        "loss: dE/dinput",
        "batch-reduction",
        "manual = c * autograd with c = 0.8, 8/10: the mean over all N = 10 labels, the 2 ignored included, where "
        "torch divides by the 8 kept",
    ),
    "attention-softmax-no-row-sum": (
        "0 multihead_attention: dE/dinput",
        "softmax-diagonal",
        "manual = autograd with attention's softmax normalizer held constant: dscores = P * dP, the softmax's "
        "backward without its row-sum term (only the diagonal of its Jacobian diag(P) - P P^T)",
    ),
    "attention-scale-forgotten": (
        "0 multihead_attention: dE/dinput",
        "attention-scale",
        "manual = autograd with the scores' 1/sqrt(d) held out of the gradient: dq and dk not scaled by 1/sqrt(d) "
        "in the backward",
    ),
    "attention-heads-merged-wrong": (
        "0 multihead_attention: dE/dinput",
        "heads-order",
        "manual = autograd with each head's dq, dk, dv merged as (d, H) instead of (H, d): feature h*d + j of head h "
        "put at j*H + h",
    ),
    "relu-ge-instead-of-gt": (
        "1 relu: dE/dinput",
        "kink",
        "manual and autograd differ only where finite differences find a kink (ReLU at 0, a max-pool tie): a "
        "different convention at a non-differentiable point",
    ),
    "flipped-kernel-dE_df": (
        "dE/df",
        "kernel-flipped",
        "manual slides dE/d(output) flipped over the input: a true convolution instead of the cross-correlation",
    ),
}


@pytest.mark.parametrize("name", MESSAGES)
def test_each_class_is_named_in_its_whole_sentence(name):
    quantity, kind, detail = MESSAGES[name]
    result = diagnose_entry(find(name))
    assert result.quantity == quantity
    assert (result.classification.kind, result.classification.detail) == (kind, detail)


# --- max pool: the window size and the overlap --------------------------------------------------------------------


def test_the_window_hypothesis_sums_a_non_square_window_and_stands_beside_the_overlap():
    """Windows 2x3 at stride (1, 3): rows overlap, columns do not. Every element gets dE/d(output) of each window it
    lies in; the window size is 2 * 3."""
    _, layer = _layer([1, 4, 6], {"type": "max_pool2d", "kernel_size": [2, 3], "stride": [1, 3]})
    assert window(layer) == 6
    rng = np.random.default_rng(1)
    x, up = rng.standard_normal((2, 1, 4, 6)), rng.standard_normal((2, 1, 3, 2))
    autograd = _input_grad(lambda t: TF.max_pool2d(t, (2, 3), (1, 3)), x, up)
    summed = np.zeros_like(x)
    for oh in range(3):
        for ow in range(2):
            summed[:, :, oh : oh + 2, 3 * ow : 3 * ow + 3] += up[:, :, oh, ow, None, None]
    assert [h.kind for h in layer_hypotheses(layer, "input", x, {}, up)] == ["window", "overlap-assign"]
    assert _classified(layer, "input", x, {}, up, summed, autograd).kind == "window"


@pytest.mark.parametrize(("stride", "overlap"), [([2, 3], False), ([1, 3], True), ([2, 2], True), ([3, 4], False)])
def test_overlap_assign_is_a_hypothesis_only_where_a_stride_is_below_its_kernel_size(stride, overlap):
    _, layer = _layer([1, 8, 8], {"type": "max_pool2d", "kernel_size": [2, 3], "stride": stride})
    x, up = np.ones((2, 1, 8, 8)), np.ones((2, *layer.out_shape))
    kinds = [h.kind for h in layer_hypotheses(layer, "input", x, {}, up)]
    assert kinds == ["window", "overlap-assign"] if overlap else kinds == ["window"]


# --- adaptive pool: a hypothesis wherever one axis does not divide ---------------------------------------------


@pytest.mark.parametrize(
    ("size", "out"),
    [((7, 4), (3, 2)), ((4, 7), (2, 3)), ((3, 7), (3, 3)), ((7, 3), (3, 3))],
    ids=["rows-uneven", "columns-uneven", "rows-equal", "columns-equal"],
)
def test_even_windows_are_named_where_only_one_axis_is_uneven(size, out):
    """Even windows: kh x kw = H // OH x W // OW from (i kh, j kw), each element of one getting dE/d(output) / (kh kw);
    an axis whose output size equals its input size has windows of one."""
    _, layer = _layer([1, *size], {"type": "adaptive_avg_pool2d", "output_size": list(out)})
    rng = np.random.default_rng(2)
    x, up = rng.standard_normal((2, 1, *size)), rng.standard_normal((2, 1, *out))
    autograd = _input_grad(lambda t: TF.adaptive_avg_pool2d(t, out), x, up)
    kh, kw = size[0] // out[0], size[1] // out[1]
    even = np.zeros_like(x)
    for i in range(out[0]):
        for j in range(out[1]):
            even[:, :, i * kh : (i + 1) * kh, j * kw : (j + 1) * kw] += up[:, :, i, j, None, None] / (kh * kw)
    assert _classified(layer, "input", x, {}, up, even, autograd).kind == "adaptive-windows"


# --- a transposed conv's output_padding on a dilated layer -------------------------------------------------------


def test_output_padding_ignored_is_named_on_a_dilated_transposed_conv():
    """The input gradient of conv_transpose2d is conv2d of dE/d(output) with the same stride, padding and dilation;
    with output_padding ignored, dE/d(output) is read without its last row and column."""
    o = {"stride": 2, "padding": 1, "dilation": 2}
    _, layer = _layer(
        [2, 3, 3], {"type": "conv_transpose2d", "out_channels": 2, "kernel_size": 3, "output_padding": 1} | o
    )
    rng = np.random.default_rng(3)
    w, x = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 3, 3))
    w_t = torch.from_numpy(w)
    up = rng.standard_normal((2, *layer.out_shape))
    autograd = _input_grad(lambda t: TF.conv_transpose2d(t, w_t, None, output_padding=1, **o), x, up)
    manual = TF.conv2d(torch.from_numpy(up[:, :, :-1, :-1]), w_t, None, **o).numpy()
    assert manual.shape == x.shape
    assert _classified(layer, "input", x, {"0.weight": w}, up, manual, autograd).kind == "padding"


# --- recurrent layers: the nonlinearity, the bias, the weight and the states detached -----------------------------


def _rnn(x, w_ih, w_hh, b, nonlinearity, detach):
    """A one-layer RNN over x (N, T, F) from h = 0, h_t = act(x_t W_ih^T + h_{t-1} W_hh^T (+ b_ih + b_hh))."""
    act = torch.tanh if nonlinearity == "tanh" else torch.relu
    h, out = torch.zeros(x.shape[0], w_hh.shape[0], dtype=torch.float64), []
    for t in range(x.shape[1]):
        a = x[:, t] @ w_ih.T + (h.detach() if detach else h) @ w_hh.T
        h = act(a if b is None else a + b[0] + b[1])
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize(("nonlinearity", "bias"), [("tanh", True), ("relu", False)])
def test_a_truncated_weight_gradient_is_named_with_the_layers_nonlinearity_and_bias(nonlinearity, bias):
    spec, layer = _layer([4, 3], {"type": "rnn", "hidden_size": 3, "nonlinearity": nonlinearity, "bias": bias})
    params = init_params(spec, np.float64, 0)
    rng = np.random.default_rng(4)
    x, up = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    weights = {k: torch.from_numpy(params[f"0.{k}"]).requires_grad_() for k in layer.param_shapes()}
    b = (weights["bias_ih_l0"], weights["bias_hh_l0"]) if bias else None

    def grad_hh(detach):
        out = _rnn(torch.from_numpy(x), weights["weight_ih_l0"], weights["weight_hh_l0"], b, nonlinearity, detach)
        return torch.autograd.grad(out, weights["weight_hh_l0"], torch.from_numpy(up))[0].numpy()

    autograd, truncated = grad_hh(False), grad_hh(True)
    assert np.abs(truncated - autograd).max() > 1e-3
    result = _classified(layer, "weight_hh_l0", x, params, up, truncated, autograd)
    assert result.kind == "bptt-truncated"
    assert result.detail == (
        "manual = autograd with each step reading the previous step's state h detached: no "
        "gradient carried back in time"
    )


@pytest.mark.parametrize(
    ("kind", "layers", "kinds"),
    [
        ("rnn", 1, ["bptt-truncated"]),
        ("rnn", 2, ["bptt-truncated", "bptt-layers"]),
        ("gru", 1, ["bptt-truncated"] + ["gate-order"] * 3),
        ("lstm", 1, ["bptt-cell-future", "bptt-truncated"] + ["gate-order"] * 6),
    ],
)
def test_a_recurrent_layer_has_stack_and_gate_hypotheses_only_where_it_has_a_stack_and_gates(kind, layers, kinds):
    spec, layer = _layer([3, 2], {"type": kind, "hidden_size": 2, "num_layers": layers})
    params = init_params(spec, np.float64, 0)
    x, up = np.ones((2, 3, 2)), np.ones((2, 3, 2))
    assert [h.kind for h in layer_hypotheses(layer, "input", x, params, up)] == kinds


def _lstm(x, weights, detach):
    """A one-layer LSTM over x (N, T, F) from h = c = 0, torch's gate order i, f, g, o; detach: the states each step
    reads detached ("h", "c")."""
    w_ih, w_hh, b_ih, b_hh = weights
    h = c = torch.zeros(x.shape[0], w_hh.shape[1], dtype=torch.float64)
    out = []
    for t in range(x.shape[1]):
        h_prev, c_prev = (h.detach() if "h" in detach else h), (c.detach() if "c" in detach else c)
        i, f, g, o = (x[:, t] @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh).chunk(4, dim=1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out, 1)


def _lstm_case(zero_hh=False):
    spec, layer = _layer([4, 3], {"type": "lstm", "hidden_size": 3})
    params = init_params(spec, np.float64, 0)
    if zero_hh:
        params["0.weight_hh_l0"] = np.zeros_like(params["0.weight_hh_l0"])
    rng = np.random.default_rng(5)
    x, up = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    weights = [torch.from_numpy(params[f"0.{k}"]) for k in layer.param_shapes()]

    def grad_x(detach=()):
        return _input_grad(lambda t: _lstm(t, weights, detach), x, up)

    return layer, params, x, up, grad_x


def test_an_lstm_cut_in_both_states_is_named_truncated_in_both():
    layer, params, x, up, grad_x = _lstm_case()
    autograd, truncated = grad_x(), grad_x(("h", "c"))
    assert np.abs(truncated - grad_x(("h",))).max() > 1e-3  # the cell state's own path shows
    result = _classified(layer, "input", x, params, up, truncated, autograd)
    assert result.kind == "bptt-truncated"
    assert result.detail == (
        "manual = autograd with each step reading the previous step's states (h and c) detached: "
        "no gradient carried back in time"
    )


def test_the_cell_state_alone_is_tested_before_the_whole_truncation():
    """With W_hh = 0 no gradient goes back through h: detaching c alone is detaching both, and the narrower class,
    the cell state's path from the future, is the one named."""
    layer, params, x, up, grad_x = _lstm_case(zero_hh=True)
    autograd, cell_cut = grad_x(), grad_x(("c",))
    np.testing.assert_allclose(cell_cut, grad_x(("h", "c")), rtol=1e-13, atol=1e-15)
    assert np.abs(cell_cut - autograd).max() > 1e-3
    assert _classified(layer, "input", x, params, up, cell_cut, autograd).kind == "bptt-cell-future"


# --- optimizer replays: Adam without bias correction, the running variance ----------------------------------------


def _adam_uncorrected_by_hand(p, grads, lr, betas, eps, weight_decay, amsgrad, decoupled):
    """Adam's (AdamW's) algorithm with m and v used as they are (no 1 - beta^t) -> p after the last gradient."""
    (b1, b2), m, v, v_max = betas, 0.0, 0.0, 0.0
    for g in grads:
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        p = p - lr * m / (np.sqrt(v_max if amsgrad else v) + eps)
    return p


@pytest.mark.parametrize("amsgrad", [False, True], ids=["plain", "amsgrad"])
@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_the_bias_correction_hypothesis_replays_adam_with_its_decay_and_amsgrad(kind, amsgrad):
    """Three steps whose gradients shrink, so that v falls and amsgrad's maximum differs from it."""
    optimizer = {"type": kind, "lr": 0.05, "betas": [0.8, 0.9], "eps": 1e-3, "weight_decay": 0.3, "amsgrad": amsgrad}
    spec = parse_spec(
        {
            "input_shape": [1, 3, 3],
            "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}],
            "loss": {"type": "mse"},
            "optimizer": optimizer,
        }
    )
    rng = np.random.default_rng(6)
    params = {"1.weight": rng.standard_normal((2, 9)), "1.bias": rng.standard_normal(2)}
    grads = {j: {k: rng.standard_normal(v.shape) * 10.0 ** (1 - j) for k, v in params.items()} for j in (1, 2, 3)}
    (hypothesis,) = [
        h for h in optimizer_hypotheses(spec, grads.get, params, 3, "1.weight") if h.kind == "bias-correction"
    ]
    [(_, candidate)] = hypothesis.pairs(None, None)
    expected = _adam_uncorrected_by_hand(
        params["1.weight"],
        [grads[j]["1.weight"] for j in (1, 2, 3)],
        0.05,
        (0.8, 0.9),
        1e-3,
        0.3,
        amsgrad,
        kind == "adamw",
    )
    np.testing.assert_allclose(candidate, expected, rtol=1e-12, atol=0)


def test_the_biased_running_variance_is_replayed_in_float64_over_every_step():
    """torch's running_var = (1 - momentum) running_var + momentum var, from 1, here with the biased variance over
    (N, H, W) of each step's input, taken in float64 from float32 inputs."""
    spec, layer = _layer([2, 3, 3], {"type": "batch_norm2d", "momentum": 0.3})
    rng = np.random.default_rng(7)
    seen = [(3 + rng.standard_normal((4, 2, 3, 3))).astype(np.float32) for _ in range(2)]
    (hypothesis,) = running_hypotheses(layer, "running_var", seen)
    [(_, candidate)] = hypothesis.pairs(None, None)
    var = np.ones(2)
    for x in seen:
        x = x.astype(np.float64)
        biased = ((x - x.mean(axis=(0, 2, 3), keepdims=True)) ** 2).mean(axis=(0, 2, 3))
        var = 0.7 * var + 0.3 * biased
    np.testing.assert_allclose(candidate, var, rtol=1e-13, atol=0)
    assert running_hypotheses(layer, "running_mean", seen) == ()


# --- an update's step ---------------------------------------------------------------------------------------------


def _update(seed=8):
    rng = np.random.default_rng(seed)
    before = rng.standard_normal((3, 4))
    return rng, before, before - 0.1 * rng.standard_normal((3, 4))


def test_a_scaled_step_is_named_with_its_constant_at_the_dtypes_tolerance():
    """manual's step = 2 x autograd's, each element off by up to 1e-6 of itself: within float32's rtol 1e-4, not
    float64's 1e-10."""
    rng, before, after = _update()
    step = Step("1 linear", "weight after step 1", None, after, before=before)
    manual = before + 2 * (after - before) * (1 + 1e-6 * rng.uniform(-1, 1, before.shape))
    result = classify(step, manual, after, "float32")
    assert result.kind == "scaled" and result.constant == pytest.approx(2, rel=1e-5)
    exact = classify(step, before + 2 * (after - before), after, "float64")
    assert (exact.kind, exact.detail) == ("scaled", "manual's step = c * autograd with c = 2")
    unclassified = classify(step, manual, after, "float64")
    assert (unclassified.kind, unclassified.detail) == (
        "unclassified",
        "no hypothesis fits: not the sign of the step, a known optimizer mistake or a scaled step",
    )


def test_an_updates_hypotheses_are_given_autograds_parameter_after_the_step():
    _, before, after = _update()
    halfway = Hypothesis("momentum", "manual = the mean of before and after", lambda m, a: [(m, (before + a) / 2)])
    step = Step("1 linear", "weight after step 1", None, after, before=before, hypotheses=(halfway,))
    assert classify(step, (before + after) / 2, after, "float64").kind == "momentum"


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant, reason="long double is float64 here")
def test_an_update_is_measured_from_the_parameter_before_it_read_in_float64():
    """before given in extended precision, 2^-14 above 2^40 + k: in float64 it is 2^40 + k (the spacing there is
    2^-12), as manual and autograd are read. Measured from there, manual's step is exactly -autograd's."""
    s = np.array([0.5, 1.0, 1.5, 2.0])
    base = 2.0**40 + np.arange(4.0)
    before = base.astype(np.longdouble) + np.longdouble(2.0**-14)
    assert np.all(before != base) and np.all(before.astype(np.float64) == base)
    after = base - s
    step = Step("1 linear", "weight after step 1", None, after, before=before)
    assert classify(step, base + s, after, "float64").kind == "update-sign"


# --- conv2d: which hypotheses a layer's options make, and their arrays on a padded, dilated, non-square conv -------


@pytest.mark.parametrize(
    ("stride", "groups", "input_kinds", "weight_kinds"),
    [
        ([1, 1], 1, [], ["kernel-flipped"]),
        ([2, 1], 1, ["stride"], ["kernel-flipped"]),
        ([1, 2], 1, ["stride"], ["kernel-flipped"]),
        ([1, 1], 2, [], ["kernel-flipped", "groups-summed"]),
    ],
    ids=["stride-1", "stride-2x1", "stride-1x2", "groups-2"],
)
def test_a_conv_has_the_stride_hypothesis_on_its_input_and_the_groups_on_its_weight_only_where_set(
    stride, groups, input_kinds, weight_kinds
):
    conv = {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "stride": stride, "groups": groups}
    _, layer = _layer([2, 6, 6], conv)
    x, w = np.ones((2, 2, 6, 6)), np.ones((2, 2 // groups, 3, 3))
    up = np.ones((2, *layer.out_shape))
    assert [h.kind for h in layer_hypotheses(layer, "input", x, {"0.weight": w}, up)] == input_kinds
    assert [h.kind for h in layer_hypotheses(layer, "weight", x, {"0.weight": w}, up)] == weight_kinds


def _strided_conv_case():
    """conv2d of a 7x10 input, kernel 2x3, stride (2, 3), padding (1, 2), dilation 2: every size differs by axis."""
    o = {"stride": (2, 3), "padding": (1, 2), "dilation": 2}
    _, layer = _layer([2, 7, 10], {"type": "conv2d", "out_channels": 3, "kernel_size": [2, 3]} | o)
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 2, 7, 10)), rng.standard_normal((3, 2, 2, 3))
    up = rng.standard_normal((2, *layer.out_shape))
    return layer, o, x, w, up


def test_the_stride_hypothesis_scatters_a_padded_dilated_conv_as_if_its_windows_were_adjacent():
    """Stride left out: dE/d(output)[oh, ow] * w[i, j] reaches padded position (oh + 2i, ow + 2j), the stride-1
    places, on the grid padded by (1, 2), which is then cropped back to 7x10."""
    layer, o, x, w, up = _strided_conv_case()
    autograd = _input_grad(lambda t: TF.conv2d(t, torch.from_numpy(w), None, **o), x, up)
    OH, OW = up.shape[2:]
    padded = np.zeros((2, 2, 7 + 2, 10 + 4))
    for i in range(2):
        for j in range(3):
            padded[:, :, 2 * i : 2 * i + OH, 2 * j : 2 * j + OW] += np.einsum("nfhw,fc->nchw", up, w[:, :, i, j])
    manual = padded[:, :, 1:8, 2:12]
    assert np.abs(manual - autograd).max() > 1e-3
    result = _classified(layer, "input", x, {"0.weight": w}, up, manual, autograd)
    assert (result.kind, result.detail) == (
        "stride",
        "manual = the input gradient of a stride-1 conv: the stride (2, 3) left out where dE/d(output) is "
        "scattered back",
    )


def test_the_dilation_hypothesis_correlates_adjacent_taps_at_the_layers_stride():
    """Dilation left out: dw[f, c, i, j] = sum over n, oh, ow of dE/d(output)[n, f, oh, ow] * the padded input at
    (2 oh + i, 3 ow + j): taps i, j, not 2i, 2j, at the stride (2, 3)."""
    layer, o, x, w, up = _strided_conv_case()
    w_t = torch.from_numpy(w).requires_grad_()
    (autograd,) = torch.autograd.grad(TF.conv2d(torch.from_numpy(x), w_t, None, **o), w_t, torch.from_numpy(up))
    OH, OW = up.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)))
    manual = np.zeros_like(w)
    for i in range(2):
        for j in range(3):
            manual[:, :, i, j] = np.einsum("nfhw,nchw->fc", up, xp[:, :, i : i + 2 * OH : 2, j : j + 3 * OW : 3])
    assert np.abs(manual - autograd.numpy()).max() > 1e-3
    assert _classified(layer, "weight", x, {"0.weight": w}, up, manual, autograd.numpy()).kind == "dilation"


# --- a normalization's hypotheses: gamma taken in float64 ---------------------------------------------------------


def test_the_direct_path_hypothesis_multiplies_by_gamma_in_float64():
    """Float32 gamma and dE/d(output) (a float32 run's): gamma * dE/d(output) / std, the product of the two exact in
    float64 (24-bit significands), not rounded to float32; std over (N, H, W) with the biased variance."""
    _, layer = _layer([2, 3, 3], {"type": "batch_norm2d"})
    rng = np.random.default_rng(10)
    gamma = (1 + rng.standard_normal(2) / 3).astype(np.float32)
    x = rng.standard_normal((4, 2, 3, 3))
    up = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    hypotheses = layer_hypotheses(layer, "input", x, {"0.weight": gamma, "0.bias": np.zeros(2, np.float32)}, up)
    [(_, candidate)] = hypotheses[0].pairs(None, None)
    var = ((x - x.mean(axis=(0, 2, 3), keepdims=True)) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    expected = up.astype(np.float64) * gamma.astype(np.float64).reshape(1, 2, 1, 1) / np.sqrt(var + 1e-5)
    assert hypotheses[0].kind == "normalization-paths"
    np.testing.assert_allclose(candidate, expected, rtol=1e-13, atol=0)


# --- the generic hypotheses: transposed, padding not cropped, padding at the wrong side ---------------------------


def _generic(manual, autograd, dtype="float64", scales=()):
    """classify on a gradient with no layer hypotheses: the generic ones, then the scales."""
    step = Step("", "dE/dZ1", manual, autograd, scales=scales)
    return classify(step, manual, autograd, dtype)


def test_a_sequence_gradient_with_its_last_two_axes_swapped_is_transposed():
    """(N, T, F) = (2, 3, 4) against (2, 4, 3): a 3-D array's last two axes swapped."""
    a = np.random.default_rng(11).standard_normal((2, 3, 4))
    assert _generic(np.ascontiguousarray(a.swapaxes(1, 2)), a).kind == "transposed"


def test_a_three_dimensional_gradient_on_its_padded_grid_is_padding_not_cropped():
    """(N, H, W) = (2, 4, 6) returned on the grid padded by 1 on every side, (2, 6, 8): its centre is autograd."""
    rng = np.random.default_rng(12)
    a, manual = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 6, 8))
    manual[:, 1:5, 1:7] = a
    result = _generic(manual, a)
    assert (result.kind, result.detail) == (
        "padding",
        "padding not cropped: the centre of manual's padded grid equals autograd",
    )


@pytest.mark.parametrize(("dh", "dw"), [(0, 2), (2, 0), (2, 4)])
def test_padding_not_cropped_is_named_where_one_axis_alone_is_padded(dh, dw):
    rng = np.random.default_rng(13)
    a, manual = rng.standard_normal((1, 2, 4, 5)), rng.standard_normal((1, 2, 4 + dh, 5 + dw))
    manual[:, :, dh // 2 : dh // 2 + 4, dw // 2 : dw // 2 + 5] = a
    assert _generic(manual, a).kind == "padding"


@pytest.mark.parametrize(("dh", "dw"), [(2, 1), (1, 2)])
def test_a_grid_larger_by_an_odd_size_has_no_centre_to_crop(dh, dw):
    """2 rows and 1 column more (or 1 and 2): no padding on both sides gives that, so no padding hypothesis holds,
    even where autograd lies at [dh // 2, dw // 2]."""
    rng = np.random.default_rng(14)
    a, manual = rng.standard_normal((1, 2, 4, 5)), rng.standard_normal((1, 2, 4 + dh, 5 + dw))
    manual[:, :, dh // 2 : dh // 2 + 4, dw // 2 : dw // 2 + 5] = a
    assert _generic(manual, a).kind == "unclassified"


def test_a_gradient_equal_to_autograds_is_a_factor_of_one_not_padding():
    """The same shape and no shift: neither padding hypothesis applies; what fits is the constant c = 1."""
    a = np.random.default_rng(15).standard_normal((2, 2, 4, 4))
    result = _generic(a.copy(), a)
    assert (result.kind, result.detail) == ("scaled", "manual = c * autograd with c = 1")


def _shifted_by(a, dy, dx, rng):
    """manual[..., i + dy, j + dx] = a[..., i, j] where both lie on the grid, random elsewhere."""
    H, W = a.shape[-2:]
    manual = rng.standard_normal(a.shape)
    manual[..., max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = a[
        ..., max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
    ]
    return manual


@pytest.mark.parametrize(
    ("dy", "dx", "kind"),
    [(1, 0, "padding"), (0, 1, "padding"), (-2, 2, "padding"), (2, -2, "padding")]
    + [(-3, 0, "unclassified"), (0, 3, "unclassified"), (3, 0, "unclassified"), (0, -3, "unclassified")],
)
def test_a_shift_is_padding_cropped_at_the_wrong_side_up_to_two_in_each_direction(dy, dx, kind):
    rng = np.random.default_rng(16)
    a = 1 + rng.uniform(size=(1, 2, 10, 10))  # every shift up to 3 keeps 70% of the mass at least
    assert _generic(_shifted_by(a, dy, dx, rng), a).kind == kind


def test_a_shifted_three_dimensional_gradient_is_padding():
    rng = np.random.default_rng(17)
    a = rng.standard_normal((2, 6, 6))
    result = _generic(_shifted_by(a, 1, 1, rng), a)
    assert (result.kind, result.detail) == (
        "padding",
        "manual = autograd shifted: the padding cropped at the wrong side",
    )


@pytest.mark.parametrize(
    ("bottom", "kind"),
    [([3.0, 2.0, 1.0], "padding"), ([3.0, 2.0, 1.5], "unclassified")],
    ids=["exactly-half", "below-half"],
)
def test_a_shift_needs_half_of_autograds_mass_on_the_overlap(bottom, kind):
    """2 rows, manual's bottom row = autograd's top row: a shift by one row, whose overlap (the top row, |.| 6)
    holds exactly half of the mass 12 (a hypothesis), or less than half of 12.5 (none)."""
    a = np.array([[[[1.0, 2.0, 3.0], bottom]]])
    manual = np.array([[[[7.0, -5.0, 11.0], [1.0, 2.0, 3.0]]]])
    assert _generic(manual, a).kind == kind


# --- a constant read against a known scale: within 10 rtol of it ------------------------------------------------

# float32 (rtol 1e-4): 10 rtol * 7.8125 = 2^-7 exactly, and 7.8125 + 2^-7 = 7.8203125 is a float
SCALE = 7.8125


@pytest.mark.parametrize(
    ("c", "kind"),
    [
        (SCALE + 2.0**-7, "batch-reduction"),
        (SCALE * (1 + 9.5e-4), "batch-reduction"),
        (SCALE * (1 + 10.5e-4), "scaled"),
        (SCALE - 2.0**-7, "batch-reduction"),
    ],
    ids=["at-10-rtol", "inside", "outside", "below"],
)
def test_a_constant_is_read_as_a_known_scale_within_ten_times_the_rtol_of_it(c, kind):
    scales = ((SCALE, "batch-reduction", "a known scale"),)
    result = _generic(np.array([c]), np.array([1.0]), "float32", scales)
    assert result.kind == kind and result.constant == c


# --- optimizer replays: SGD's variants, the scheduler's epochs ---------------------------------------------------


def _sgd_spec(**optimizer):
    return parse_spec(
        {
            "input_shape": [1, 3, 3],
            "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}],
            "loss": {"type": "mse"},
            "optimizer": {"type": "sgd", "lr": 0.1} | optimizer,
        }
    )


@pytest.mark.parametrize(
    ("settings", "kinds"),
    [
        ({"dampening": 0.5}, []),
        ({"momentum": 0.9}, ["momentum"]),
        ({"momentum": 0.9, "dampening": 0.5}, ["momentum", "momentum"]),
        ({"momentum": 0.9, "nesterov": True}, ["momentum", "momentum"]),
    ],
    ids=["dampening-alone", "momentum", "dampened-momentum", "nesterov"],
)
def test_sgds_momentum_hypotheses_need_momentum(settings, kinds):
    """Dampening without momentum does nothing (torch keeps no buffer): no buffer mistake to make."""
    params = {"1.weight": np.ones((2, 9)), "1.bias": np.ones(2)}
    assert [h.kind for h in optimizer_hypotheses(_sgd_spec(**settings), None, params, 1, "1.weight")] == kinds


def test_the_replays_take_each_steps_learning_rate_after_the_schedulers_steps_before_it():
    """SGD at lr 0.1 with StepLR(1, 0.5): step j runs at 0.1 * 0.5^(j - 1), 0.1 then 0.05; the scheduler stepped
    early runs it at 0.1 * 0.5^j, 0.05 then 0.025. Weight decay 0.05: g + 0.05 p, or g with the decay left out."""
    spec = _sgd_spec(weight_decay=0.05, scheduler={"type": "step", "step_size": 1, "gamma": 0.5})
    rng = np.random.default_rng(18)
    params = {"1.weight": rng.standard_normal((2, 9)), "1.bias": rng.standard_normal(2)}
    grads = {j: {k: rng.standard_normal(v.shape) for k, v in params.items()} for j in (1, 2)}
    hypotheses = optimizer_hypotheses(spec, grads.get, params, 2, "1.weight")
    assert [h.kind for h in hypotheses] == ["schedule", "weight-decay"]
    (_, early), (_, no_decay) = (h.pairs(None, None)[0] for h in hypotheses)
    p, g1, g2 = params["1.weight"], grads[1]["1.weight"], grads[2]["1.weight"]
    p1 = p - 0.05 * (g1 + 0.05 * p)
    np.testing.assert_allclose(early, p1 - 0.025 * (g2 + 0.05 * p1), rtol=1e-13, atol=0)
    p1 = p - 0.1 * g1
    np.testing.assert_allclose(no_decay, p1 - 0.05 * g2, rtol=1e-13, atol=0)
