"""Finite differences, the third witness: they agree with every real layer, the seed network and described
networks; the kink detector fires on a constructed tie or an exact zero and stays silent on random inputs;
the verdict names the side they support."""

import pathlib

import numpy as np
import pytest
import torch
from layer_cases import LAYER_CASES
from runs import gradients_by_site

import netdesc.description
import netdesc.inputs
import netdesc.seed
from crosscheck import numerical as nm
from crosscheck.compare import ManualFailure
from crosscheck.subjects import SeedCase
from manual import functional as M
from manual import seed_network as manual_seed
from netdesc.description import load_spec
from reference import seed_network as reference_seed

ROOT = pathlib.Path(__file__).resolve().parents[1]
BATCHWISE = {"conv2d", "max_pool2d", "avg_pool2d", "tanh", "relu", "leaky_relu", "sigmoid", "flatten", "linear",
             "layer_norm", "group_norm", "gelu", "silu", "softmax", "log_softmax"}  # each sample on its own
KINK_TAGS = {"zeros", "ties"}  # documented in layer_cases.py: inputs on ReLU's kink, pooling windows with ties


def projected(dout):
    """reduce for a layer: the outputs (P, *out) contracted with a fixed upstream gradient dout -> (P,)."""
    return lambda outs: np.tensordot(outs, dout, axes=dout.ndim)


# --- every layer of the registry, in float64 ---------------------------------------------------------------

def _layer_site(case, inputs, i, dout):
    """E = <dout, layer(inputs)> as a function of input i: folded into the batch axis (input 0 of a
    batch-independent layer), into the output channels (conv / linear parameters), else one call per point."""
    def out(*args):
        return case.forward(*args, **case.derivative_options)[0]
    before, after = inputs[:i], inputs[i + 1:]
    if i == 0 and case.name in BATCHWISE:
        value = nm.batch_folded(lambda xs: out(xs, *after), projected(dout))
    # stacked filters keep one group; a linear's outputs are axis 1 on (N, in) only (on (N, T, in) the last axis)
    elif (case.name == "conv2d" and case.options.get("groups", 1) == 1) or (case.name == "linear"
                                                                           and len(case.shapes[0]) == 2):
        def stacked(ps):
            P = len(ps) // len(inputs[i])
            tiled = [np.concatenate([a] * P) if a is not None else None for a in inputs[1:]]
            tiled[i - 1] = ps
            return out(inputs[0], *tiled)
        value = nm.channel_folded(stacked, projected(dout))
    else:
        value = nm.looped(lambda v: float(np.vdot(dout, out(*before, v, *after))))
    return nm.Site(f"{case}: d{case.input_names[i]}", inputs[i], value)


def _torch_grads(case, inputs, dout):
    tensors = [torch.from_numpy(a).requires_grad_(case.wants_grad(i)) for i, a in enumerate(inputs)]
    wanted = [t for i, t in enumerate(tensors) if case.wants_grad(i)]
    grads = torch.autograd.grad(case.torch_fn(*tensors, **case.derivative_options), wanted, torch.from_numpy(dout))
    return [g.numpy() for g in grads]


@pytest.mark.parametrize("case", LAYER_CASES, ids=str)
def test_finite_differences_agree_with_every_layer(case):
    rng = np.random.default_rng(0)
    inputs = case.inputs(rng, np.float64)
    out, cache = case.forward(*inputs, **case.derivative_options)
    dout = rng.standard_normal(np.shape(out))
    manual = case.backward(dout, cache)
    autograd = iter(_torch_grads(case, inputs, dout))
    for i in range(len(inputs)):
        if not case.wants_grad(i):
            continue
        site = _layer_site(case, inputs, i, dout)
        diffs = nm.differences(site)
        kinks = diffs.kinks
        if case.tag in KINK_TAGS and i == 0:
            assert kinks.any(), f"{site.name}: the documented kink case shows no kink"
        else:
            assert not kinks.any(), f"{site.name}: a kink on smooth input at probes {np.flatnonzero(kinks)}"
        for side, grad in (("manual", manual[i]), ("autograd", next(autograd))):
            result = nm.against(diffs, f"{site.name} ({side})", grad, "float64", keep=~kinks)
            assert result.passed, result.describe()


# --- the seed network and described networks -------------------------------------------------------------

SEED_CASES = [
    SeedCase(),
    SeedCase(input_shape=(9, 14), kernel_shape=(2, 2), n_out=3, batch=16, seed=3, reduction="mean"),
    SeedCase(input_shape=(5, 3), kernel_shape=(3, 2), batch=1, seed=1),
    SeedCase(input_shape=(4, 4), kernel_shape=(4, 4), n_out=2, batch=2, seed=2, dtype="float32"),
]


def test_the_seed_network_is_differenced_as_the_slides_draw_it():
    # X (N, H, W) -> conv with one (KH, KW) filter f, no bias -> Z1 (N, H - KH + 1, W - KW + 1) -> sigmoid -> H1
    # flattened -> Z2 = W^T H1 + b (N, n_out) -> sigmoid -> O
    spec = nm.seed_spec((9, 14), (2, 3), 3, 16, "mean")
    assert [layer.type for layer in spec.layers] == ["conv2d", "sigmoid", "flatten", "linear", "sigmoid"]
    assert [(layer.in_shape, layer.out_shape) for layer in spec.layers] == [
        ((1, 9, 14), (1, 8, 12)), ((1, 8, 12), (1, 8, 12)), ((1, 8, 12), (96,)), ((96,), (3,)), ((3,), (3,))]
    assert spec.layers[0].param_shapes() == {"weight": (1, 1, 2, 3)}
    assert (spec.name, spec.batch_size, spec.loss.type, spec.loss.reduction) == ("slides", 16, "half_squared_error",
                                                                                 "mean")


def test_a_mapped_site_keeps_the_name_and_the_cost_of_the_site_it_maps():
    site = nm.Site("q", np.arange(6.0).reshape(2, 3), lambda xs: (xs[:, 0] * xs[:, 1]).sum(axis=1), cost=7)
    seen = nm.mapped(site, np.arange(6, dtype=np.float32).reshape(3, 2), lambda xs: xs.transpose(0, 2, 1))
    assert (seen.name, seen.cost, seen.x.dtype) == ("q", 7, np.float64)
    assert seen.value(seen.x[None]).tolist() == [0 * 1 + 2 * 3 + 4 * 5]


@pytest.mark.parametrize("case", SEED_CASES, ids=str)
def test_finite_differences_agree_with_the_seed_network(case):
    X, Y, params = case.inputs()
    values = manual_seed.forward(X, params, Y, case.reduction)
    manual = manual_seed.backward(X, Y, params, values, case.reduction)
    _, autograd = reference_seed.run(X, params, Y, case.reduction)
    sites = nm.seed_sites(X, Y, params, case.reduction)
    assert set(sites) == {"dE_dO", "dE_dZ2", "dE_dH1", "dE_dZ1", "dE_dW", "dE_db", "dE_df", "dO_dZ2", "dH1_dZ1"}
    for name, site in sites.items():
        diffs = nm.differences(site)
        assert diffs.site == name and not diffs.kinks.any(), name  # differenced under the slides' names
        for grads in (manual, autograd):
            result = nm.against(diffs, name, grads[name], case.dtype)
            assert result.passed, result.describe()


ALL_KINKS = {"slides": set(), "small3conv": {"2 max_pool2d: dE/dinput"}, "lenet5": {"5 max_pool2d: dE/dinput"},
             "normalized": set(), "text-classifier": set(), "lstm-classifier": set(), "char-gru-lm": set()}
SMALL = ("slides", "text-classifier", "lstm-classifier", "char-gru-lm")  # few enough values for every element


@pytest.mark.parametrize("example", ["slides", "small3conv", "lenet5", "normalized", "text-classifier",
                                     "lstm-classifier", "char-gru-lm"])
def test_finite_differences_agree_with_described_networks(example):
    spec = load_spec(ROOT / "examples" / f"{example}.toml")
    params = netdesc.inputs.init_params(spec, np.float64, seed=0)
    x, target = netdesc.inputs.random_batch(spec, np.float64, seed=0)
    grads, sites = gradients_by_site(spec, params, x, target)
    assert set(sites) == set(grads)
    modes, all_kinks = set(), set()
    for name, site in sites.items():
        diffs = nm.differences(site)
        modes.add(diffs.mode)
        if diffs.kinks.all():  # nothing to compare away from the kinks: no evidence either way, so none claimed
            all_kinks.add(name)
            continue
        for grad in grads[name]:
            result = nm.against(diffs, name, grad, "float64", keep=~diffs.kinks)
            assert result.passed and result.compared == (~diffs.kinks).sum(), result.describe()
    assert modes == ({"elements"} if example in SMALL else {"elements", "directions"})
    # Every random direction through a max-pool whose inputs come from a ReLU crosses a tie (0 = 0 in a window):
    # those sites are the ones finite differences cannot judge, and no others.
    assert all_kinks == ALL_KINKS[example]


def test_chunks_give_the_values_of_one_call(monkeypatch):
    spec = load_spec(ROOT / "examples" / "slides.toml")
    params = netdesc.inputs.init_params(spec, np.float64, seed=1)
    x, target = netdesc.inputs.random_batch(spec, np.float64, seed=1)
    site = nm.network_sites(spec, params, x, target)["0 conv2d: dE/dweight"]
    whole = nm.element_differences(site)
    monkeypatch.setattr(nm, "CHUNK_ELEMENTS", 1)  # one point per forward call
    piecewise = nm.element_differences(site)
    # The same sums in another BLAS blocking: equal to rounding (a difference of 1e-16 |E| / EPS).
    np.testing.assert_allclose(whole.central, piecewise.central, rtol=0, atol=1e-9)


def _calls(monkeypatch, layer_type):
    """The number of times manual.network's forward of layer_type is called, from now on."""
    from manual import network as manual_net
    calls, forward = [], manual_net.FORWARD[layer_type]
    monkeypatch.setitem(manual_net.FORWARD, layer_type,
                        lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs))
    return calls


@pytest.mark.parametrize(("layers", "site", "calls"), [
    # a flat linear's and an ungrouped conv's parameters: every point stacked along the output channels, one call
    ([{"type": "flatten"}, {"type": "linear", "out_features": 3}], "1 linear: dE/dweight", 1),
    ([{"type": "conv2d", "out_channels": 2, "kernel_size": 2}, {"type": "flatten"}], "0 conv2d: dE/dweight", 1),
    ([{"type": "conv2d", "out_channels": 2, "kernel_size": 2}, {"type": "flatten"}], "0 conv2d: dE/dbias", 1),
    # a grouped conv, a linear over (T, F) features, a batch norm's coupled samples: one call per point
    ([{"type": "conv2d", "out_channels": 2, "kernel_size": 2, "groups": 2}, {"type": "flatten"}],
     "0 conv2d: dE/dweight", 5),
    ([{"type": "linear", "out_features": 3}, {"type": "flatten"}], "0 linear: dE/dweight", 5),
    ([{"type": "conv2d", "out_channels": 2, "kernel_size": 2}, {"type": "batch_norm2d"}, {"type": "flatten"}],
     "0 conv2d: dE/dweight", 5),
    # an input: every point's samples in one batch, unless a batch norm couples them
    ([{"type": "flatten"}, {"type": "linear", "out_features": 3}], "1 linear: dE/dinput", 1),
    ([{"type": "conv2d", "out_channels": 2, "kernel_size": 2}, {"type": "batch_norm2d"}, {"type": "flatten"}],
     "0 conv2d: dE/dinput", 5),
])
def test_parameter_points_go_through_one_forward_where_they_fold_into_the_output_channels(monkeypatch, layers, site,
                                                                                          calls):
    spec = netdesc.description.parse_spec({"input_shape": [2, 3, 3], "batch_size": 2, "layers": layers,
                                           "loss": {"type": "mse"}})
    params = netdesc.inputs.init_params(spec, np.float64, seed=1)
    x, target = netdesc.inputs.random_batch(spec, np.float64, seed=1)
    sites = nm.network_sites(spec, params, x, target)
    assert all(s.name == name for name, s in sites.items())
    # cost: the elements a point computes, N times the output sizes of the layer and every layer after it
    sizes = [int(np.prod(layer.out_shape)) for layer in spec.layers]
    assert {name: s.cost for name, s in sites.items()} == {
        name: 2 * sum(sizes[int(name.split(" ")[0]):]) if name[0].isdigit() else 0 for name in sites}
    s = sites[site]
    points = s.x[None] + np.random.default_rng(2).standard_normal((5, *s.x.shape))
    kind = site.split(" ")[1].rstrip(":")
    counted = _calls(monkeypatch, kind)
    values = s.value(points)
    assert len(counted) == calls
    one_by_one = np.concatenate([s.value(p[None]) for p in points])
    np.testing.assert_allclose(values, one_by_one, rtol=1e-12)


def test_the_loss_site_is_the_descriptions_loss_with_its_ignore_index():
    spec = netdesc.description.parse_spec({
        "input_shape": [1, 2, 2], "batch_size": 6,
        "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 3}],
        "loss": {"type": "softmax_cross_entropy", "ignore_index": 1}})
    params = netdesc.inputs.init_params(spec, np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 1, 2, 2))
    labels = np.array([0, 1, 2, 1, 0, 2])
    site = nm.network_sites(spec, params, x, labels)["loss: dE/dinput"]
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(site.x), torch.from_numpy(labels), ignore_index=1)
    assert site.value(site.x[None])[0] == pytest.approx(expected.item(), rel=1e-12)


def test_folding_and_looping_give_the_same_differences():
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    folded = nm.Site("tanh", x, nm.batch_folded(np.tanh, projected(dout)))
    one_by_one = nm.Site("tanh", x, nm.looped(lambda v: float(np.vdot(dout, np.tanh(v)))))
    np.testing.assert_allclose(nm.element_differences(folded).central, nm.element_differences(one_by_one).central,
                               rtol=1e-9)
    np.testing.assert_allclose(nm.element_differences(folded).central, (dout * (1 - np.tanh(x) ** 2)).reshape(-1),
                               rtol=1e-8)


def test_the_fast_mode_compares_directional_derivatives():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(nm.FULL_LIMIT + 1)
    site = nm.Site("sum of cubes", x, lambda xs: (xs ** 3).sum(axis=1))
    diffs = nm.differences(site)
    assert diffs.mode == "directions" and diffs.directions.shape == (nm.DIRECTIONS, x.size)
    np.testing.assert_allclose(np.linalg.norm(diffs.directions, axis=1), 1.0)
    np.testing.assert_allclose(diffs.central, diffs.directions @ (3 * x ** 2), rtol=1e-8)
    assert nm.against(diffs, "exact", 3 * x ** 2, "float64").passed
    assert not nm.against(diffs, "off by 1e-3", 3 * x ** 2 * (1 + 1e-3), "float64").passed


# --- the kink detector ------------------------------------------------------------------------------------

def _relu_site(x):
    return nm.Site("relu", x, nm.batch_folded(lambda h: M.relu_forward(h)[0], projected(np.ones_like(x))))


def test_kink_detector_fires_on_an_exact_zero_of_relu():
    diffs = nm.element_differences(_relu_site(np.array([[-1.0, 0.0, 2.0, -0.0]])))
    np.testing.assert_array_equal(diffs.kinks, [False, True, False, True])
    np.testing.assert_allclose(diffs.forward[1], 1.0) and np.testing.assert_allclose(diffs.backward[1], 0.0)


def test_kink_detector_fires_near_zero_within_the_step():
    diffs = nm.element_differences(_relu_site(np.array([[3e-7, -5e-7, 1e-3]])))
    np.testing.assert_array_equal(diffs.kinks, [True, True, False])


def test_kink_detector_fires_on_a_max_pool_tie():
    x = np.array([[[[3.0, 3.0], [1.0, 2.0]]]])  # one 2x2 window, two equal maxima
    site = nm.Site("max_pool", x, nm.batch_folded(lambda h: M.max_pool2d_forward(h, 2)[0],
                                                  projected(np.array([[[[1.5]]]]))))
    diffs = nm.element_differences(site)
    np.testing.assert_array_equal(diffs.kinks, [True, True, False, False])


@pytest.mark.parametrize("seed", range(5))
def test_kink_detector_is_silent_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((2, 3, 3, 3))
    layers = {
        "relu": (lambda h: M.relu_forward(h)[0], rng.standard_normal(x.shape)),
        "leaky_relu": (lambda h: M.leaky_relu_forward(h, 0.1)[0], rng.standard_normal(x.shape)),
        "max_pool": (lambda h: M.max_pool2d_forward(h, 2)[0], dout),
    }
    for name, (fn, d) in layers.items():
        diffs = nm.element_differences(nm.Site(name, x, nm.batch_folded(fn, projected(d))))
        assert not diffs.kinks.any(), name


# --- the verdict ------------------------------------------------------------------------------------------

def _square_site(x):
    return nm.Site("sum of squares", x, lambda xs: (xs ** 2).reshape(len(xs), -1).sum(axis=1))


@pytest.mark.parametrize(("manual", "autograd", "supports"), [
    (lambda g: -g, lambda g: g, "autograd"),
    (lambda g: g, lambda g: 2 * g, "manual"),
    (lambda g: g * (1 + 1e-9), lambda g: g, "both"),
    (lambda g: 3 * g, lambda g: -g, "neither"),
])
def test_verdict_names_the_side_finite_differences_support(manual, autograd, supports):
    x = np.random.default_rng(0).standard_normal((3, 2))
    diffs = nm.element_differences(_square_site(x))
    verdict = nm.verdict(diffs, manual(2 * x), autograd(2 * x), "float64")
    assert verdict.supports == supports and verdict.detail == nm.SUPPORTS[verdict.vs_manual.passed,
                                                                          verdict.vs_autograd.passed][1]
    assert (verdict.mode, verdict.probes, verdict.kinks) == ("elements", 6, 0)
    assert verdict.as_dict()["vs_autograd"]["passed"] == (supports in ("autograd", "both"))


def test_verdict_is_unreliable_where_the_sides_differ_only_at_kinks():
    x = np.array([[-1.0, 0.0, 2.0]])
    diffs = nm.element_differences(_relu_site(x))
    ge = np.array([[0.0, 1.0, 1.0]])  # x >= 0
    gt = np.array([[0.0, 0.0, 1.0]])  # x > 0, torch's
    verdict = nm.verdict(diffs, ge, gt, "float64")
    assert verdict.supports == "unreliable" and verdict.kinks == 1
    assert verdict.as_dict()["vs_manual"] is None
    # Away from the kink a real difference still gets a verdict.
    assert nm.verdict(diffs, np.array([[0.0, 1.0, 5.0]]), gt, "float64").supports == "autograd"


def test_verdict_when_every_probe_is_a_kink():
    diffs = nm.element_differences(_relu_site(np.zeros((1, 2))))
    verdict = nm.verdict(diffs, np.ones((1, 2)), np.zeros((1, 2)), "float64")
    assert verdict.supports == "unreliable" and verdict.kinks == verdict.probes == 2


@pytest.mark.parametrize("manual", [np.zeros((2, 3)), ManualFailure("sgd_step raised")], ids=["shape", "failure"])
def test_verdict_when_the_manual_side_cannot_be_compared(manual):
    x = np.random.default_rng(1).standard_normal((3, 2))
    verdict = nm.verdict(nm.element_differences(_square_site(x)), manual, 2 * x, "float64")
    assert verdict.supports == "autograd" and verdict.vs_manual.problem.startswith("manual side failed")


def test_verdict_on_a_kinked_site_with_a_wrongly_shaped_manual_side():
    diffs = nm.element_differences(_relu_site(np.array([[-1.0, 0.0, 2.0]])))
    verdict = nm.verdict(diffs, np.zeros((3, 1)), np.array([[0.0, 0.0, 1.0]]), "float64")
    assert verdict.supports == "autograd" and verdict.kinks == 1


def test_float32_gradients_get_the_wider_of_the_two_tolerances():
    assert nm.fd_tolerance("float64") == nm.FD_TOLERANCE
    loose = nm.fd_tolerance("float32")
    assert (loose.rtol, loose.atol) == (1e-4, 1e-6)
