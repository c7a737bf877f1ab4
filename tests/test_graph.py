"""Graph-shaped networks: named layers, inputs, add and concat, fan-out. The description's rules and every mistake
named in full; fan-out gradients summed as torch sums them (checked against a torch graph written out here, not
only against reference.network); the accumulate hook; wrongly shaped gradients of a merge; the catalogue's
fan-out-overwritten flagged by verify and localized."""

import copy
import json

import numpy as np
import pytest
import torch
from runs import diagnose_entry, diagnose_network, gradients_by_site, network_rows
from torch.nn import functional as TF

import netdesc.inputs
from crosscheck import cli
from crosscheck import numerical as nm
from crosscheck.catalogue import find
from crosscheck.catalogue import layers as wrong_layers
from crosscheck.check import check
from crosscheck.compare import assert_close
from crosscheck.subjects import NetworkSubject
from manual import functional as F
from manual import network as manual_net
from netdesc import InputError
from netdesc.checks import ManualFailure
from netdesc.description import load_spec, parse_spec
from reference import network as reference_net


def _conv(out, k, **options):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **options}


GRAPH = {
    "input_shape": [2, 4, 4],
    "batch_size": 2,
    "layers": [
        _conv(2, 3, padding=1, name="a"),  # 0: (2, 4, 4)
        {"type": "relu"},  # 1
        {"type": "add", "inputs": [1, "input"]},  # 2: relu(conv(x)) + x
        {"type": "flatten"},  # 3: 32
        {"type": "linear", "out_features": 3},  # 4
    ],
    "loss": {"type": "mse"},
}


def _graph(*changes):
    """A copy of GRAPH with (layer index, key, value) changes; value None deletes the key."""
    data = copy.deepcopy(GRAPH)
    for index, key, value in changes:
        if value is None:
            del data["layers"][index][key]
        else:
            data["layers"][index][key] = value
    return data


def _layers(data, layers):
    return copy.deepcopy(data) | {"layers": layers}


# --- the description -----------------------------------------------------------------------------------

def test_names_and_inputs_are_resolved():
    spec = parse_spec(GRAPH)
    assert [layer.name for layer in spec.layers] == ["a", "1", "2", "3", "4"]
    assert [layer.inputs for layer in spec.layers] == [(-1,), (0,), (1, -1), (2,), (3,)]
    add = spec.layers[2]
    assert add.merge and add.in_shape == ((2, 4, 4), (2, 4, 4)) and add.in_shapes == add.in_shape
    assert add.out_shape == (2, 4, 4) and add.param_shapes() == {}
    assert not spec.layers[1].merge and spec.layers[1].in_shapes == ((2, 4, 4),)


def test_a_sequential_file_reads_the_previous_layer():
    spec = load_spec("examples/lenet5.toml")
    assert [layer.inputs for layer in spec.layers] == [(-1,), *[(i,) for i in range(len(spec.layers) - 1)]]
    assert [layer.name for layer in spec.layers] == [str(i) for i in range(len(spec.layers))]


def test_concat_joins_along_dim():
    data = _layers(GRAPH, [_conv(3, 1), _conv(1, 3, padding=1, inputs=["input"]),
                           {"type": "concat", "inputs": [0, 1, "input"]},  # 3 + 1 + 2 channels
                           {"type": "concat", "inputs": [2, 2], "dim": 2},  # the width doubled
                           {"type": "flatten"}, {"type": "concat", "inputs": [4, 4]}])
    spec = parse_spec(data)
    assert [layer.out_shape for layer in spec.layers[2:]] == [(6, 4, 4), (6, 4, 8), (192,), (384,)]
    assert spec.layers[2].options == {"dim": 0} and spec.layers[3].options == {"dim": 2}


def test_names_may_be_any_string_and_are_shown_escaped():
    data = _graph((1, "name", "relu 'x'\n"), (2, "inputs", ["relu 'x'\n", "input"]))
    assert parse_spec(data).layers[2].inputs == (1, -1)
    with pytest.raises(InputError) as info:
        parse_spec(_graph((1, "name", "relu 'x'\n"), (2, "inputs", ["relu 'x'", "input"])))
    assert str(info.value) == ("layer 2 (add): inputs: got \"relu 'x'\", needs the name or index of an earlier "
                               "layer, or 'input'; known: 'input', 'a', \"relu 'x'\\n\"")


LATER = {"type": "flatten", "name": "later"}
BAD_GRAPHS = [
    ("unknown-input-name", _graph((2, "inputs", [1, "nope"])),
     "layer 2 (add): inputs: got 'nope', needs the name or index of an earlier layer, or 'input'; known: 'input', "
     "'a', '1'"),
    ("negative-index", _graph((2, "inputs", [1, -1])),
     "layer 2 (add): inputs: got -1, needs the name or index of an earlier layer, or 'input'; known: 'input', 'a', "
     "'1'"),
    ("boolean-index", _graph((2, "inputs", [True, 1])),
     "layer 2 (add): inputs: got True, needs the name or index of an earlier layer, or 'input'; known: 'input', 'a', "
     "'1'"),
    ("list-as-input", _graph((2, "inputs", [[1], 1])),
     "layer 2 (add): inputs: got [1], needs the name or index of an earlier layer, or 'input'; known: 'input', 'a', "
     "'1'"),
    ("forward-reference-by-name", _layers(GRAPH, [*GRAPH["layers"][:2], {"type": "add", "inputs": [1, "later"]},
                                                  LATER, {"type": "linear", "out_features": 3}]),
     "layer 2 (add): inputs: got 'later' (layer 3), needs an earlier layer: a layer reads only the layers before it "
     "(a forward reference or a cycle)"),
    ("self-reference", _graph((2, "inputs", [1, 2])),
     "layer 2 (add): inputs: got 2 (layer 2), needs an earlier layer: a layer reads only the layers before it "
     "(a forward reference or a cycle)"),
    ("cycle", _graph((1, "inputs", [3])),
     "layer 1 (relu): inputs: got 3 (layer 3), needs an earlier layer: a layer reads only the layers before it "
     "(a forward reference or a cycle)"),
    ("inputs-not-a-list", _graph((2, "inputs", "a")),
     "layer 2 (add): inputs: got 'a', needs a list of earlier layers' names or indices, or 'input'"),
    ("merge-of-one", _graph((2, "inputs", [1])), "layer 2 (add): inputs: got 1 input [1], needs 2 or more to add"),
    ("merge-of-none", _graph((2, "inputs", [])), "layer 2 (add): inputs: got 0 inputs [], needs 2 or more to add"),
    ("concat-of-one-by-default", _graph((2, "type", "concat"), (2, "inputs", None)),
     "layer 2 (concat): inputs: got 1 input [1], needs 2 or more to concat"),
    ("two-inputs-to-a-relu", _graph((1, "inputs", [0, "input"])),
     "layer 1 (relu): inputs: got 2 inputs [0, 'input'], needs exactly 1 (only add and concat merge several)"),
    ("no-input-to-a-flatten", _graph((3, "inputs", [])),
     "layer 3 (flatten): inputs: got 0 inputs [], needs exactly 1 (only add and concat merge several)"),
    ("add-shape-mismatch", _graph((0, "padding", 0), (1, "inputs", ["input"]), (2, "inputs", [0, 1])),
     "layer 2 (add): got inputs of shapes (2, 2, 2), (2, 4, 4) per sample, needs one shape to add"),
    ("add-of-three-shapes", _graph((0, "out_channels", 3), (2, "inputs", [0, 1, "input"])),
     "layer 2 (add): got inputs of shapes (3, 4, 4), (3, 4, 4), (2, 4, 4) per sample, needs one shape to add"),
    ("concat-size-mismatch", _graph((0, "padding", 0), (1, "inputs", ["input"]), (2, "type", "concat"),
                                    (2, "inputs", [0, 1])),
     "layer 2 (concat): got inputs of shapes (2, 2, 2), (2, 4, 4) per sample, needs equal sizes on every axis but "
     "dim 0"),
    ("concat-dim-beyond-the-axes", _graph((2, "type", "concat"), (2, "dim", 3)),
     "layer 2 (concat): dim: got 3 for inputs of shapes (2, 4, 4), (2, 4, 4) per sample, needs inputs of one rank "
     "and an axis among theirs"),
    ("concat-of-two-ranks", _layers(GRAPH, [{"type": "flatten"}, {"type": "concat", "inputs": [0, "input"]},
                                            {"type": "flatten"}]),
     "layer 1 (concat): dim: got 0 for inputs of shapes (32,), (2, 4, 4) per sample, needs inputs of one rank and an "
     "axis among theirs"),
    ("concat-negative-dim", _graph((2, "type", "concat"), (2, "dim", -1)),
     "layer 2 (concat): dim: got -1, needs an integer >= 0"),
    ("add-takes-no-dim", _graph((2, "dim", 0)), "layer 2 (add): unknown option 'dim'; known options: none"),
    ("name-not-a-string", _graph((0, "name", 3)), "layer 0 (conv2d): name: got 3, needs a string other than 'input'"),
    ("name-input", _graph((0, "name", "input")),
     "layer 0 (conv2d): name: got 'input', needs a string other than 'input'"),
    ("duplicate-name", _graph((1, "name", "a")),
     "layer 1 (relu): name: got 'a', but layer 0 already has that name; names must be unique"),
    ("name-taken-by-a-default", _graph((0, "name", "2")),
     "layer 2 (add): name: got '2' (its index, the default name), but layer 0 already has that name; names must be "
     "unique"),
    ("dead-end", _graph((2, "inputs", [0, "input"])),
     "layer 1 (relu): its output ('1') is read by no later layer, needs a reader: only the last layer's output "
     "reaches the loss"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_GRAPHS, ids=[c[0] for c in BAD_GRAPHS])
def test_bad_graph_is_named(case, data, message):
    with pytest.raises(InputError) as info:
        parse_spec(data)
    assert str(info.value) == message


@pytest.mark.parametrize(("case", "data", "message"), BAD_GRAPHS[::4], ids=[c[0] for c in BAD_GRAPHS[::4]])
def test_verify_exits_2_on_a_bad_graph(case, data, message, capsys):
    assert cli.main(["verify", "--spec-json", json.dumps(data)]) == 2
    assert capsys.readouterr().err == f"crosscheck: error: {message}\n"


# --- fan-out: the sum of every reader's share, as torch's autograd sums it --------------------------------------

THREE_READERS = _layers(GRAPH, [
    _conv(2, 3, padding=1, name="t"),  # 0: read by the three layers below
    {"type": "tanh", "inputs": ["t"]},  # 1
    {"type": "sigmoid", "inputs": ["t"]},  # 2
    _conv(2, 1, inputs=["t"]),  # 3
    {"type": "add", "inputs": [1, 2, 3]},  # 4
    {"type": "flatten"}, {"type": "linear", "out_features": 3},
])


def _inputs(data, dtype=np.float64, seed=0):
    spec = parse_spec(data)
    return spec, netdesc.inputs.init_params(spec, dtype, seed), *netdesc.inputs.random_batch(spec, dtype, seed)


def _torch(params):
    return {k: torch.from_numpy(v).requires_grad_() for k, v in params.items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_tensor_read_by_three_layers_gets_the_sum_of_their_gradients(dtype):
    spec, params, x, target = _inputs(THREE_READERS, dtype)
    m = manual_net.run(spec, params, x, target)
    # The graph written out in torch: dE/dt by autograd sums the three readers' shares.
    p = _torch(params)
    t = TF.conv2d(torch.from_numpy(x), p["0.weight"], p["0.bias"], padding=1)
    h = torch.tanh(t) + torch.sigmoid(t) + TF.conv2d(t, p["3.weight"], p["3.bias"])
    E = TF.mse_loss(TF.linear(h.flatten(1), p["6.weight"], p["6.bias"]), torch.from_numpy(target))
    dt, dw0 = torch.autograd.grad(E, [t, p["0.weight"]])
    shares = [m.input_grads[1], m.input_grads[2], m.input_grads[3]]
    assert_close(shares[0] + shares[1] + shares[2], dt.numpy(), "dE/dt", "three readers", dtype)
    assert all(not np.allclose(share, dt.numpy()) for share in shares)  # no single share is the sum
    assert_close(m.param_grads["0.weight"], dw0.numpy(), "dE/dweight of the tensor's conv", "three readers", dtype)
    a = reference_net.run(spec, params, x, target)
    assert_close(a["output_grads"][0], dt.numpy(), "reference dE/dt", "three readers", dtype)
    for i in (1, 2, 3):
        assert_close(m.input_grads[i], a["input_grads"][i], f"layer {i}'s share", "three readers", dtype)
    assert isinstance(m.input_grads[4], tuple) and len(m.input_grads[4]) == 3
    assert isinstance(a["input_grads"][4], tuple) and len(a["input_grads"][4]) == 3


NETWORK_INPUT_TWICE = _layers(GRAPH, [
    _conv(2, 3, padding=1),  # 0 reads the network's input
    {"type": "tanh", "inputs": ["input"]},  # 1 reads it too
    {"type": "add", "inputs": [0, 1, "input", "input"]},  # and the add reads it twice more
    {"type": "flatten"}, {"type": "linear", "out_features": 3},
])


def test_the_network_input_read_four_times_gets_the_sum():
    spec, params, x, target = _inputs(NETWORK_INPUT_TWICE)
    m = manual_net.run(spec, params, x, target)
    p, xt = _torch(params), torch.from_numpy(x).requires_grad_()
    h = TF.conv2d(xt, p["0.weight"], p["0.bias"], padding=1) + torch.tanh(xt) + xt + xt
    E = TF.mse_loss(TF.linear(h.flatten(1), p["4.weight"], p["4.bias"]), torch.from_numpy(target))
    (dx,) = torch.autograd.grad(E, [xt])
    add = m.input_grads[2]
    assert_close(m.input_grads[0] + m.input_grads[1] + add[2] + add[3], dx.numpy(), "dE/dx", "input four times")
    assert add[2] is add[3]  # the add hands out one array for both: summing must not write into it
    rows = network_rows(spec, steps=3)
    assert all(row.passed for row in rows)
    assert [row.quantity for row in rows if row.where == "2 add"] == [
        "output", "dE/dinput[0]", "dE/dinput[1]", "dE/dinput[2]", "dE/dinput[3]"]


def test_a_layer_read_twice_by_one_add_is_doubled():
    data = _layers(GRAPH, [_conv(2, 3, padding=1), {"type": "add", "inputs": [0, 0]}, {"type": "flatten"},
                           {"type": "linear", "out_features": 3}])
    spec, params, x, target = _inputs(data)
    m = manual_net.run(spec, params, x, target)
    dout = m.input_grads[1][0]
    expected = F.conv2d_backward(2 * dout, manual_net.forward(spec, params, x)[1][0])
    np.testing.assert_array_equal(m.input_grads[0], expected[0])
    np.testing.assert_array_equal(dout, m.input_grads[1][1])  # the add's shares were left as they were


# --- the accumulate hook -----------------------------------------------------------------------------------

def test_accumulate_is_called_once_per_extra_reader_and_its_result_used():
    spec, params, x, target = _inputs(THREE_READERS)
    calls = []

    def recording(total, grad):
        calls.append((total.shape, grad.shape))
        return manual_net.accumulate(total, grad)

    right = manual_net.run(spec, params, x, target)
    recorded = manual_net.run(spec, params, x, target, accumulate=recording)
    assert calls == [((2, 2, 4, 4), (2, 2, 4, 4))] * 2  # three readers of t: two additions
    np.testing.assert_array_equal(recorded.param_grads["0.weight"], right.param_grads["0.weight"])
    overwritten = manual_net.run(spec, params, x, target, accumulate=lambda total, grad: grad)
    assert not np.allclose(overwritten.input_grads[0], right.input_grads[0])


def test_accumulate_sums_into_a_fresh_array():
    total, grad = np.ones(3), np.full(3, 2.0)
    summed = manual_net.accumulate(total, grad)
    np.testing.assert_array_equal(summed, [3.0, 3.0, 3.0])
    assert summed is not total and summed is not grad
    np.testing.assert_array_equal(total, [1.0, 1.0, 1.0])


def test_training_passes_the_hook_through():
    spec, params, x, target = _inputs(THREE_READERS)
    right, _ = manual_net.train(spec, params, x, target, steps=3)
    wrong, _ = manual_net.train(spec, params, x, target, steps=3, accumulate=lambda total, grad: grad)
    reference, _ = reference_net.train(spec, params, x, target, steps=3)
    assert_close(right, reference, "E at steps 1..3")
    assert right[0] == wrong[0] and not np.allclose(right[1:], wrong[1:])


# --- wrongly shaped gradients of a graph: reported, never a crash ------------------------------------------

def _failed(rows):
    return [row for row in rows if not row.passed]


def test_a_merge_share_of_the_wrong_shape_breaks_only_its_branch():
    spec = parse_spec(THREE_READERS)

    def short(dout, cache):
        dxs = F.add_backward(dout, cache)
        return dxs[0][:, :1], *dxs[1:]

    failed = [row for row in _failed(network_rows(spec, layer_backward={4: short}, train=False))
              if "after step" not in row.quantity]  # the updates it leaves undone follow
    assert [(row.where, row.quantity) for row in failed] == [
        ("4 add", "dE/dinput[0]"), ("1 tanh", "dE/dinput"), ("0 conv2d", "dE/dinput"), ("0 conv2d", "dE/dweight"),
        ("0 conv2d", "dE/dbias")]
    assert failed[0].result.problem == "shape mismatch: manual (2, 1, 4, 4), autograd (2, 2, 4, 4)"
    broken = "not computed: layer 4 (add)'s backward returned dE/dinput[0] of shape (2, 1, 4, 4), needs (2, 2, 4, 4)"
    assert all(broken in row.result.problem for row in failed[1:])


def test_a_merge_that_returns_too_few_gradients_is_reported():
    spec = parse_spec(THREE_READERS)
    failed = _failed(network_rows(spec, layer_backward={4: lambda dout, cache: F.add_backward(dout, cache)[:2]},
                                  train=False))
    assert (failed[0].where, failed[0].quantity) == ("4 add", "dE/dinput[2]")
    assert "layer 4 (add)'s backward returned no such gradient" in failed[0].result.problem
    assert ("3 conv2d", "dE/dinput") in [(row.where, row.quantity) for row in failed]


def test_a_broken_gradient_above_a_merge_reaches_all_its_inputs():
    spec = parse_spec(THREE_READERS)
    params = netdesc.inputs.init_params(spec)
    x, target = netdesc.inputs.random_batch(spec)

    def short(dout, cache):
        dx, dw, db = F.linear_backward(dout, cache)
        return dx[:, 1:], dw, db

    m = manual_net.run(spec, params, x, target, layer_backward={6: short})
    assert all(isinstance(g, ManualFailure) for g in m.input_grads[4]) and len(m.input_grads[4]) == 3
    assert isinstance(m.input_grads[0], ManualFailure) and isinstance(m.param_grads["3.weight"], ManualFailure)


def test_a_broken_share_and_a_good_share_of_one_tensor_stay_broken():
    """The first share of t to arrive (the conv's at 3) is broken, the next two (sigmoid's, tanh's) are fine: the
    sum stays broken."""
    spec = parse_spec(THREE_READERS)
    params = netdesc.inputs.init_params(spec)
    x, target = netdesc.inputs.random_batch(spec)

    def short(dout, cache):
        dx, dw, db = F.conv2d_backward(dout, cache)
        return dx[:, :1], dw, db

    m = manual_net.run(spec, params, x, target, layer_backward={3: short})
    assert m.input_grads[3].shape == (2, 1, 4, 4) and m.input_grads[2].shape == (2, 2, 4, 4)
    assert isinstance(m.input_grads[0], ManualFailure)
    assert str(m.input_grads[0]).startswith("not computed: layer 3 (conv2d)'s backward")


# --- finite differences of a graph ----------------------------------------------------------------------------

@pytest.mark.parametrize("data", [THREE_READERS, NETWORK_INPUT_TWICE], ids=["three-readers", "input-four-times"])
def test_finite_differences_agree_with_each_readers_share(data):
    grads, sites = gradients_by_site(*_inputs(data))
    assert set(sites) == set(grads)
    for name, site in sites.items():
        diffs = nm.differences(site)
        for grad in grads[name]:
            result = nm.against(diffs, name, grad, "float64", keep=~diffs.kinks)
            assert result.passed, result.describe()


def test_the_residual_example_has_finite_difference_sites_per_input():
    spec = load_spec("examples/residual.toml")
    params = netdesc.inputs.init_params(spec, np.float64, 0)
    x, target = netdesc.inputs.random_batch(spec, np.float64, 0)
    sites = nm.network_sites(spec, params, x, target)
    assert {"5 add: dE/dinput[0]", "5 add: dE/dinput[1]", "9 concat: dE/dinput[1]", "7 conv2d: dE/dweight"} <= set(
        sites)
    a = reference_net.run(spec, params, x, target)
    for name, grad in [("5 add: dE/dinput[1]", a["input_grads"][5][1]), ("8 conv2d: dE/dinput", a["input_grads"][8]),
                       ("2 conv2d: dE/dweight", a["param_grads"]["2.weight"])]:
        diffs = nm.differences(sites[name])
        assert nm.against(diffs, name, grad, "float64", keep=~diffs.kinks).passed


# --- the catalogue's fan-out mistake ------------------------------------------------------------------------

def test_fan_out_overwritten_is_flagged_by_verify_at_its_first_wrong_quantity():
    entry = find("fan-out-overwritten")
    assert entry in wrong_layers.ENTRIES and entry.kind == "fan-out"
    spec = parse_spec(entry.network, entry.name)
    for dtype in entry.dtypes:
        rows = list(check(NetworkSubject(spec, 0, dtype, 2, entry)).rows)
        failed = _failed(rows)
        assert f"{failed[0].where}: {failed[0].quantity}" == entry.first_wrong == "1 tanh: dE/dinput"
        assert all(row.passed for row in rows[:rows.index(failed[0])])
        assert ("loss", "E at steps 1..2") in [(row.where, row.quantity) for row in failed]
        assert all(row.passed for row in network_rows(spec, 0, dtype, steps=2))


def test_fan_out_classification_names_the_reader_left_out():
    result = diagnose_entry(find("fan-out-overwritten"))
    assert result.classification.detail == (
        "manual = autograd without layer 4 (add)'s share of dE/d(output of layer 1 (tanh)), read by 2 layers: their "
        "gradients overwritten, not summed")


def test_a_wrong_backward_next_to_a_fan_out_is_not_called_a_fan_out():
    entry = find("fan-out-overwritten")
    spec = parse_spec(entry.network)
    scaled = {1: lambda dout, cache: (3 * F.tanh_backward(dout, cache)[0],)}
    result = diagnose_network(spec, layer_backward=scaled)
    assert result.quantity == "1 tanh: dE/dinput" and result.classification.kind == "scaled"
