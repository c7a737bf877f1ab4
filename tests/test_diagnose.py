"""Localization and classification, hypothesis by hypothesis, on constructed arrays and small networks."""

import json
import pathlib

import numpy as np
import pytest
import torch
from runs import diagnose_entry, diagnose_network, diagnose_seed, scaled_at

from crosscheck import diagnose
from crosscheck.catalogue import find
from crosscheck.check import inject, overrides
from crosscheck.compare import ManualFailure
from crosscheck.hypotheses import batch_scales, classify, optimizer_hypotheses
from crosscheck.render import diagnosis_text
from crosscheck.subjects import NetworkSubject, SeedCase, SeedSubject, Step
from manual import functional as F
from manual import network as manual_net
from manual import optim
from netdesc.description import load_spec, parse_spec
from netdesc.inputs import init_params, random_batch

ROOT = pathlib.Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
A = RNG.standard_normal((2, 3, 4, 4))


class Constructed:
    """A subject whose walk is given: steps built by hand."""

    title, dtype, wrong = "constructed", "float64", None

    def __init__(self, steps):
        self.steps = steps

    def walk(self):
        return iter(self.steps)

    def witnesses(self):  # no float64 witness: the table alone judges
        return {}


def _kind(manual, autograd, step=None, dtype="float64", **flags):
    return classify(step or Step("", "q", manual, autograd), manual, autograd, dtype, **flags).kind


def _padded(a, p):
    m = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))
    m[..., :p, :] = RNG.standard_normal(m[..., :p, :].shape)  # what the padding ring collected
    return m


def _shifted(a, dy, dx):
    m = RNG.standard_normal(a.shape)
    m[..., dy:, dx:] = a[..., :a.shape[-2] - dy, :a.shape[-1] - dx]
    return m


B = A[0, 0, :2]  # (2, 4)


@pytest.mark.parametrize(("manual", "autograd", "kind"), [
    (-A, A, "sign"),
    (B.T, B, "transposed"),
    (np.ascontiguousarray(B.T).reshape(B.shape), B, "transposed"),  # the values laid out transposed
    (A.swapaxes(-1, -2), A, "transposed"),
    (A[..., ::-1, ::-1], A, "kernel-flipped"),
    (_padded(A, 1), A, "padding"),
    (_shifted(A, 1, 1), A, "padding"),
    (3 * A, A, "scaled"),
    (RNG.standard_normal(A.shape), A, "unclassified"),
    (RNG.standard_normal(5), A, "unclassified"),
], ids=["sign", "transposed", "transposed-layout", "swapped-axes", "flipped", "not-cropped", "shifted", "scaled",
        "random", "other-shape"])
def test_generic_hypotheses(manual, autograd, kind):
    assert _kind(manual, autograd) == kind


def test_scales_read_against_the_batch_size():
    scales = batch_scales(4)
    step = Step("", "dE/dO", None, A, scales=scales)
    assert classify(step, 4 * A, A, "float64").kind == "batch-reduction"
    result = classify(step, A / 4, A, "float32")
    assert result.kind == "batch-reduction" and result.constant == pytest.approx(0.25) and "1/N" in result.detail
    assert classify(step, 3 * A, A, "float64").constant == pytest.approx(3.0)
    assert batch_scales(1) == ()


def test_a_zero_gradient_has_no_scale():
    assert _kind(RNG.standard_normal(3), np.zeros(3)) == "unclassified"


def test_kinked_differences_classify_what_nothing_else_explains():
    assert _kind(RNG.standard_normal(A.shape), A, kinked=True) == "kink"
    assert _kind(-A, A, kinked=True) == "sign"  # an array hypothesis that fits comes first


def test_a_manual_failure_is_unclassified():
    result = classify(Step("", "q", None, A), ManualFailure("sgd_step raised"), A, "float64")
    assert result.kind == "unclassified" and "sgd_step raised" in result.detail


@pytest.mark.parametrize(("manual", "kind"), [
    (lambda before, after: 2 * before - after, "update-sign"),
    (lambda before, after: before + 0.5 * (after - before), "scaled"),
    (lambda before, after: after + RNG.standard_normal(after.shape), "unclassified"),
])
def test_update_hypotheses(manual, kind):
    before = RNG.standard_normal((3, 2))
    after = before - 0.1 * RNG.standard_normal((3, 2))
    step = Step("", "W after step 1", None, after, before=before)
    assert classify(step, manual(before, after), after, "float64").kind == kind


def test_a_dtype_mismatch_is_reported_not_classified():
    step = Step("", "dE/db", np.ones(3, np.float32), np.ones(3))
    result = diagnose.diagnose(Constructed([step]))
    assert result.classification.kind == "unclassified" and "dtype mismatch" in result.classification.detail


def test_nan_elements_come_first_and_leave_json_valid():
    step = Step("", "O", np.array([0.5, np.nan, 0.7]), np.array([0.5, 0.6, 0.75]))
    result = diagnose.diagnose(Constructed([step]))
    assert [e.index for e in result.worst] == [(1,), (2,)]
    assert result.numerical is None and result.worst[0].numerical is None
    d = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert d["worst"][0] == {"index": [1], "manual": None, "autograd": 0.6, "numerical": None, "kink": None}
    assert "n/a" in diagnosis_text(result)


@pytest.mark.parametrize("activation", [{"type": "sigmoid"}, {"type": "tanh"}, {"type": "relu"},
                                        {"type": "leaky_relu", "negative_slope": 0.3}, {"type": "gelu"},
                                        {"type": "gelu", "approximate": "tanh"}, {"type": "silu"}],
                         ids=lambda a: "-".join(map(str, a.values())))
def test_every_activation_of_a_stack_is_tested_for_a_missing_derivative(activation):
    spec = parse_spec({"input_shape": [1, 2, 3], "batch_size": 3, "layers": [
        {"type": "flatten"}, {"type": "linear", "out_features": 4}, activation, {"type": "linear", "out_features": 2}],
        "loss": {"type": "mse"}})
    result = diagnose_network(spec, layer_backward={2: lambda dout, cache: (dout,)})
    assert result.quantity == f"2 {activation['type']}: dE/dinput"
    assert result.classification.kind == "activation-missing"


def test_a_large_quantity_is_probed_in_random_directions_and_at_its_worst_elements():
    spec = load_spec(ROOT / "examples" / "small3conv.toml")
    result = diagnose_network(spec, layer_backward=scaled_at(spec, 0))
    assert result.quantity == "0 conv2d: dE/dinput" and result.first.shape == (3, 3, 16, 12)
    assert result.classification.kind == "scaled" and result.classification.constant == pytest.approx(1 + 1e-8)
    assert result.numerical.mode == "directions" and "random directions" in diagnosis_text(result)
    for e in result.worst:
        assert e.numerical == pytest.approx(e.autograd, rel=1e-6, abs=1e-9)


def test_a_seed_walk_goes_on_to_an_update_the_manual_side_cannot_make():
    steps = list(SeedSubject(SeedCase(), find("transposed-dE_dW")).walk())
    update = next(s for s in steps if s.name == "W after step 1")
    assert isinstance(update.manual, ManualFailure)
    assert "no gradient to step with for dE_dW: got shape (1, 36)" in update.manual
    assert classify(update, update.manual, update.autograd, "float64").kind == "unclassified"
    assert [s.name for s in steps[-3:]] == ["W after step 1", "b after step 1", "f after step 1"]


def test_the_report_of_a_correct_network():
    result = diagnose_seed(SeedCase(batch=1))
    assert not result.wrong and result.quantity is None
    assert diagnosis_text(result).endswith(f"no diagnosis: all {len(result.checked)} quantities agree with autograd "
                                    "(forward, backward from the loss, updates)")
    d = result.as_dict()
    assert d["wrong"] is False and d["comparison"] is None and d["class"] is None and d["worst"] == []
    assert d["checked"][:6] == ["Z1", "H1", "Z2", "O", "E", "dE/dO"] and d["checked"][-1] == "f after step 1"


def test_a_shape_mismatch_is_reported_without_elements():
    report = diagnosis_text(diagnose_entry(find("transposed-dE_dW")))
    assert "shape mismatch: manual (1, 36), autograd (36, 1); manual equals autograd transposed" in report
    assert "manual   vs finite differences: differs (manual side failed: shape (1, 36)" in report
    assert "worst" not in report


def test_the_report_at_a_kink_leaves_out_the_comparisons():
    report = diagnosis_text(diagnose_entry(find("relu-ge-instead-of-gt")))
    assert "finite differences unreliable here" in report and "vs finite differences" not in report
    assert "probes straddle a kink" in report and " kink\n" in report


def _conv_dw_with_flipped_upstream(dout, cache):
    x, w, o = cache
    _, backward = F.conv2d_forward(x, w, None, o["stride"], o["padding"], o["dilation"])
    dx, dw, _ = F.conv2d_backward(dout, backward)
    _, dw_flipped, _ = F.conv2d_backward(np.ascontiguousarray(dout[..., ::-1, ::-1]), backward)
    return dx, dw_flipped, dout.sum(axis=(0, 2, 3))


def test_a_stack_conv_sliding_its_upstream_gradient_flipped():
    spec = parse_spec({"input_shape": [2, 6, 5], "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": [3, 2], "padding": 1}, {"type": "tanh"},
        {"type": "flatten"}, {"type": "linear", "out_features": 2}], "loss": {"type": "mse"}})

    def forward(x, p, o):
        out, _ = F.conv2d_forward(x, p["weight"], p["bias"], o["stride"], o["padding"], o["dilation"])
        return out, (x, p["weight"], o)
    result = diagnose.diagnose(NetworkSubject(spec, wrong=overrides({0: _conv_dw_with_flipped_upstream},
                                                                    {0: forward})))
    assert result.quantity == "0 conv2d: dE/dweight" and result.classification.kind == "kernel-flipped"
    assert "flipped over the input" in result.classification.detail


def test_an_update_that_no_sgd_variant_explains_is_read_as_a_scaled_step():
    spec = parse_spec({"input_shape": [1, 3, 3], "layers": [{"type": "flatten"}, {"type": "linear",
                       "out_features": 2}], "loss": {"type": "mse"},
                       "optimizer": {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01}})

    def double_lr(params, grads, state, **settings):
        return optim.sgd_step(params, grads, state, **(settings | {"lr": 2 * settings["lr"]}))
    result = diagnose.diagnose(NetworkSubject(spec, wrong=overrides(optimizer_step=double_lr)))
    assert result.quantity == "1 linear: weight after step 1"
    assert result.classification.kind == "scaled" and result.classification.constant == pytest.approx(2.0)


# --- normalization layers, softmax and gelu: the new classes on every layer they belong to ---------------------

NORMS = {
    "layer_norm": ({"type": "layer_norm", "normalized_shape": [2, 3, 3]}, "1 layer_norm"),
    "group_norm": ({"type": "group_norm", "num_groups": 2}, "1 group_norm"),
    "batch_norm2d": ({"type": "batch_norm2d"}, "1 batch_norm2d"),
    "batch_norm1d": ({"type": "batch_norm1d"}, "1 batch_norm1d"),
}


def _norm_spec(layer, affine=True):
    flat = layer["type"] == "batch_norm1d"
    key = "elementwise_affine" if layer["type"] == "layer_norm" else "affine"
    first = {"type": "linear", "out_features": 6} if flat else {"type": "conv2d", "out_channels": 2,
                                                                 "kernel_size": 2, "padding": 1}
    layers = ([{"type": "flatten"}] if flat else []) + [first, layer | {key: affine}, {"type": "tanh"}]
    layers += [{"type": "flatten"}] * (not flat) + [{"type": "linear", "out_features": 2}]
    return parse_spec({"input_shape": [1, 2, 2], "batch_size": 4, "layers": layers, "loss": {"type": "mse"}})


def _direct_only(norm):
    """dx = gamma * dout * inv_std: each layer's inv_std from its own cache, a group norm's per (sample, group)."""
    def dx(dout, cache):
        _, inv_std, gamma = cache[:3]
        if gamma is not None:
            dout = dout * (gamma if norm == "layer_norm" else gamma.reshape(F._channels(dout)))
        if norm == "group_norm":
            return (dout.reshape(*inv_std.shape[:2], -1) * inv_std).reshape(dout.shape)
        return dout * inv_std
    return dx


def _gamma_forgotten(backward):
    def wrong(dout, cache):
        dx = backward(dout, (*cache[:2], None, *cache[3:]))[0]  # the normalization's dx, dout as dx_hat
        return dx, *backward(dout, cache)[1:]
    return wrong


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("norm", NORMS)
def test_a_normalization_with_only_its_direct_path_is_named(norm, affine):
    layer, where = NORMS[norm]
    spec = _norm_spec(layer, affine)
    index = int(where.split()[0]) + (norm == "batch_norm1d")
    backward = manual_net.BACKWARD[spec.layers[index].type]
    direct = _direct_only(norm)
    result = diagnose_network(spec, layer_backward={index: lambda dout, cache: (direct(dout, cache),
                                                                                *backward(dout, cache)[1:])})
    assert result.quantity == f"{index} {norm}: dE/dinput", diagnosis_text(result)
    assert result.classification.kind == "normalization-paths", diagnosis_text(result)


@pytest.mark.parametrize("eps", [1e-5, 0.1], ids=["default-eps", "eps-0.1"])
@pytest.mark.parametrize("norm", NORMS)
def test_a_normalization_that_forgets_gamma_in_dx_is_named(norm, eps):
    """eps 0.1, far from torch's default 1e-5 at these variances: the hypothesis normalizes with the layer's own."""
    layer, where = NORMS[norm]
    spec = _norm_spec(layer | {"eps": eps})
    index = int(where.split()[0]) + (norm == "batch_norm1d")
    wrong = _gamma_forgotten(F.batch_norm_backward if norm.startswith("batch") else manual_net.BACKWARD[norm])
    if norm.startswith("batch"):  # the network's batch norm backward returns (dx, dgamma, dbeta)
        wrong = (lambda w: lambda dout, cache: (lambda g: (g[0], g[3], g[4]))(w(dout, cache)))(wrong)
    result = diagnose_network(spec, layer_backward={index: wrong})
    assert result.quantity == f"{index} {norm}: dE/dinput", diagnosis_text(result)
    assert result.classification.kind == "normalization-gamma", diagnosis_text(result)


def test_a_gelu_tanh_layer_given_the_exact_derivative_is_named():
    spec = parse_spec({"input_shape": [1, 2, 3], "batch_size": 3, "layers": [
        {"type": "flatten"}, {"type": "linear", "out_features": 5}, {"type": "gelu", "approximate": "tanh"},
        {"type": "linear", "out_features": 2}], "loss": {"type": "mse"}})

    def exact(dout, cache):
        return F.gelu_backward(dout, F.gelu_forward(cache[0], "none")[1])
    result = diagnose_network(spec, layer_backward={2: exact})
    assert result.quantity == "2 gelu: dE/dinput" and result.classification.kind == "approximation"
    assert "the exact gelu, where the layer is gelu's tanh approximation" in result.classification.detail


def test_a_softmax_over_another_axis_is_given_the_diagonal_class_only_when_it_fits():
    spec = parse_spec({"input_shape": [2, 2, 3], "batch_size": 2, "layers": [
        {"type": "softmax", "dim": 2}, {"type": "flatten"}, {"type": "linear", "out_features": 2}],
        "loss": {"type": "mse"}})

    def diagonal(dout, cache):
        s, _ = cache
        return (dout * s * (1 - s),)
    result = diagnose_network(spec, layer_backward={0: diagonal})
    assert result.quantity == "0 softmax: dE/dinput" and result.classification.kind == "softmax-diagonal"
    result = diagnose_network(spec, layer_backward={0: lambda dout, cache: (1.01 * diagonal(dout, cache)[0],)})
    assert result.classification.kind != "softmax-diagonal"


def _mean_held(norm):
    """A normalization whose dx is autograd's with the mean in x_hat's numerator held constant (detached in torch):
    its path through the mean left out, derived apart from the hypothesis's formula. The forward keeps x."""
    def forward(x, p, o):
        out, cache = manual_net.FORWARD[norm](x, p, o)
        return out, (cache, x, p.get("weight"), o)

    def backward(dout, kept):
        cache, x, gamma, o = kept
        t = torch.from_numpy(x).requires_grad_()
        if norm == "layer_norm":
            groups, axes = t, tuple(range(t.dim() - len(o["normalized_shape"]), t.dim()))
        elif norm == "group_norm":
            groups, axes = t.reshape(t.shape[0], o["num_groups"], -1), (2,)
        else:
            groups, axes = t, (0, *range(2, t.dim()))
        var = groups.var(axes, unbiased=False, keepdim=True)
        x_hat = ((groups - groups.mean(axes, keepdim=True).detach()) / torch.sqrt(var + o["eps"])).reshape(t.shape)
        upstream = dout if gamma is None else dout * (gamma if norm == "layer_norm" else
                                                      gamma.reshape(F._channels(dout)))
        (dx,) = torch.autograd.grad(x_hat, t, torch.from_numpy(upstream))
        return (dx.numpy(), *manual_net.BACKWARD[norm](dout, cache)[1:])
    return forward, backward


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("norm", NORMS)
def test_a_normalization_without_its_mean_path_is_named(norm, affine):
    layer, where = NORMS[norm]
    spec = _norm_spec(layer, affine)
    index = int(where.split()[0]) + (norm == "batch_norm1d")
    forward, backward = _mean_held(norm)
    result = diagnose.diagnose(NetworkSubject(spec, wrong=overrides({index: backward}, {index: forward})))
    assert result.quantity == f"{index} {norm}: dE/dinput", diagnosis_text(result)
    assert result.classification.kind == "normalization-mean-path", diagnosis_text(result)


# --- catalogued mistakes moved to layers with other options: each hypothesis reads the layer's own options ------

CONV3 = {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1}


def _moved(name, layers, input_shape, batch_size=2):
    """The catalogued mistake `name` moved (crosscheck verify --inject) to a network of these layers -> diagnosis."""
    spec = parse_spec({"input_shape": input_shape, "batch_size": batch_size, "layers": layers,
                       "loss": {"type": "mse"}})
    return diagnose.diagnose(NetworkSubject(spec, wrong=inject(name, spec)))


@pytest.mark.parametrize("padding", [[1, 1], [1, 0], [0, 1]], ids=["both-axes", "rows-only", "columns-only"])
def test_overlapping_windows_assigned_are_named_on_a_padded_pool(padding):
    """The catalogue's pool is unpadded: here 3x3 windows at stride 2 overlap both ways on a padded, non-square
    input, so the hypothesis must take the windows (and torch's argmax) where the padding puts them."""
    layers = [CONV3, {"type": "tanh"}, {"type": "max_pool2d", "kernel_size": 3, "stride": 2, "padding": padding},
              {"type": "flatten"}, {"type": "linear", "out_features": 3}]
    result = _moved("maxpool-overlap-assign", layers, [1, 9, 8])
    assert result.quantity == "2 max_pool2d: dE/dinput", diagnosis_text(result)
    assert result.classification.kind == "overlap-assign", diagnosis_text(result)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_a_group_norm_over_interleaved_channels_is_named_with_its_own_eps_and_without_affine(affine):
    """eps = 0.1, not torch's default 1e-5: at the variance of the conv's output the two differ far beyond
    the tolerance, so the hypothesis must normalize with the layer's eps; without affine there is no gamma or beta."""
    layers = [CONV3 | {"out_channels": 4}, {"type": "group_norm", "num_groups": 2, "affine": affine, "eps": 0.1},
              {"type": "tanh"}, {"type": "flatten"}, {"type": "linear", "out_features": 3}]
    result = _moved("groupnorm-wrong-axes", layers, [1, 5, 5])
    assert result.quantity == "1 group_norm: output", diagnosis_text(result)
    assert result.classification.kind == "normalization-axes", diagnosis_text(result)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_a_layer_norm_over_the_batch_axis_is_named_with_and_without_affine(affine):
    layers = [{"type": "flatten"}, {"type": "linear", "out_features": 5},
              {"type": "layer_norm", "elementwise_affine": affine, "eps": 0.1}, {"type": "tanh"},
              {"type": "linear", "out_features": 2}]
    result = _moved("layernorm-wrong-axes", layers, [1, 2, 3], batch_size=4)
    assert result.quantity == "2 layer_norm: output", diagnosis_text(result)
    assert result.classification.kind == "normalization-axes", diagnosis_text(result)


def _rmsprop_eps_inside_by_hand(p, grads, lr, alpha, eps, weight_decay, momentum, centered):
    """torch's RMSprop (docs' algorithm) over the gradients `grads` of steps 1, 2, ..., with eps moved inside the
    root: g / sqrt(v - centered * g_avg^2 + eps) -> the parameter after the last step."""
    v = g_avg = buf = 0.0
    for g in grads:
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        g_avg = alpha * g_avg + (1 - alpha) * g
        buf = momentum * buf + g / np.sqrt(v - centered * g_avg * g_avg + eps)
        p = p - lr * buf
    return p


@pytest.mark.parametrize(("momentum", "weight_decay", "centered"), [(0.9, 0.1, False), (0.5, 0.3, True),
                                                                    (0.0, 0.1, True)])
def test_the_eps_inside_hypothesis_replays_three_steps_of_the_described_rmsprop(momentum, weight_decay, centered):
    """The candidate at step 3 carries the eps-inside momentum buffer and the weight decay from step to step (at
    step 1, with every buffer at zero, momentum could not show)."""
    optimizer = {"type": "rmsprop", "lr": 0.05, "alpha": 0.9, "eps": 0.01, "momentum": momentum,
                 "weight_decay": weight_decay, "centered": centered}
    spec = parse_spec({"input_shape": [1, 3, 3], "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}],
                       "loss": {"type": "mse"}, "optimizer": optimizer})
    rng = np.random.default_rng(3)
    params = {"1.weight": rng.standard_normal((2, 9)), "1.bias": rng.standard_normal(2)}
    grads = {j: {k: rng.standard_normal(v.shape) for k, v in params.items()} for j in (1, 2, 3)}
    (epsilon,) = [h for h in optimizer_hypotheses(spec, grads.get, params, 3, "1.weight") if h.kind == "epsilon"]
    [(_, candidate)] = epsilon.pairs(None, None)
    settings = {k: optimizer[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")}
    expected = _rmsprop_eps_inside_by_hand(params["1.weight"], [grads[j]["1.weight"] for j in (1, 2, 3)],
                                           **settings)
    np.testing.assert_allclose(candidate, expected, rtol=1e-12, atol=0)


# --- attention's hypotheses: without the causal mask, without biases, at large scores ---------------------------

ATTENTION_MISTAKES = {"attention-softmax-no-row-sum": "softmax-diagonal",
                      "attention-scale-forgotten": "attention-scale", "attention-heads-merged-wrong": "heads-order"}


def _attention_spec(**options):
    """The catalogue's attention network (T 5, E 4, 2 heads of d = 2) with other options."""
    return parse_spec({"input_shape": [5, 4], "batch_size": 2, "layers": [
        {"type": "multihead_attention", "num_heads": 2} | options, {"type": "flatten"},
        {"type": "linear", "out_features": 3}], "loss": {"type": "mse"}})


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("name", ATTENTION_MISTAKES)
def test_an_attention_mistake_is_named_on_a_layer_without_mask_or_biases(name, bias):
    """The catalogue's layer is causal with biases: here every key is attended (no mask at all) and, without
    biases, the layer has no in_proj_bias or out_proj.bias for the hypotheses to read."""
    spec = _attention_spec(bias=bias)
    result = diagnose.diagnose(NetworkSubject(spec, wrong=inject(name, spec)))
    assert result.quantity == "0 multihead_attention: dE/dinput", diagnosis_text(result)
    assert result.classification.kind == ATTENTION_MISTAKES[name], diagnosis_text(result)


@pytest.mark.parametrize("name", ATTENTION_MISTAKES)
def test_an_attention_mistake_is_named_where_a_querys_scores_share_a_large_offset(name):
    """A key bias b_k adds q_i . b_k / sqrt(d) to every score of query i: the softmax is blind to it, so are torch
    and the manual side, and so must the hypotheses be. Here the offsets reach past 709 / 2 and span more than 745,
    so exp of the scores overflows (or underflows to 0 for a whole row) unless each row's own maximum is
    subtracted."""
    spec = _attention_spec(causal=True)
    params, (x, target) = init_params(spec, np.float64, 0), random_batch(spec, np.float64, 0)
    W, b = params["0.in_proj_weight"], params["0.in_proj_bias"]
    b[4:8] = [400, 400, -400, 400]  # the key bias, heads (0, 1)
    q = x @ W[:4].T + b[:4]
    offsets = np.stack([q[..., :2] @ b[4:6], q[..., 2:] @ b[6:8]]) / np.sqrt(2)  # (head, N, T)
    assert offsets.max() > 709 / 2 and offsets.max() - offsets.min() > 745
    result = diagnose.diagnose(NetworkSubject(spec, wrong=inject(name, spec), data=(x, target, params)))
    assert result.quantity == "0 multihead_attention: dE/dinput", diagnosis_text(result)
    assert result.classification.kind == ATTENTION_MISTAKES[name], diagnosis_text(result)


def test_the_heads_that_differ_inside_an_attention_are_listed_in_one_line():
    result = diagnose_entry(find("attention-scale-forgotten"))
    assert result.inside["heads"] == [0, 1]
    assert diagnose.inside_text(result.inside) == (
        "inside the attention: dq (projections) is the first of its intermediates to leave autograd, in head 0 of 2 "
        "(heads 0, 1 differ)")
