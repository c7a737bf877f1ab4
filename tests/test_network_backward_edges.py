"""Edges of manual.network's backward and running statistics that the end-to-end suites pass by: the whole message
of a loss backward that returns a wrong shape or no numbers, a layer backward that returns no tuple at all (every
gradient it owes, parameters included, says so), the embedding's input (integer indices) given no gradient at all,
and a batch norm's own momentum in the running statistics of manual.network.updated_buffers. Expectations come
from torch, or are the whole failure messages."""

import numpy as np
import pytest
import torch

import netdesc.inputs
from manual import functional as manual_functional
from manual import network as manual_net
from netdesc.checks import ManualFailure
from netdesc.description import parse_spec

LINEAR = {
    "input_shape": [2, 3],
    "batch_size": 2,
    "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 3}],
    "loss": {"type": "mse"},
}


def _run(description, **hooks):
    spec = parse_spec(description)
    params = netdesc.inputs.init_params(spec)
    x, target = netdesc.inputs.random_batch(spec)
    return spec, manual_net.run(spec, params, x, target, **hooks)


@pytest.mark.parametrize(("returned", "message"), [
    (np.zeros((2, 1)), "not computed: the loss's backward returned dE/dinput of shape (2, 1), needs (2, 3)"),
    (None, "the loss's backward (dE/dinput) returned None, needs an array of numbers"),
])
def test_a_broken_loss_backward_is_named_in_full_below_it(returned, message):
    """The loss's backward giving dE/dout of the wrong shape, or no numbers, is reported by name and quantity for
    every gradient below it: the linear's input and both its parameters."""
    _, m = _run(LINEAR, layer_backward={"loss": lambda dE, cache: (returned, None)})
    for grad in (m.input_grads[1], m.param_grads["1.weight"], m.param_grads["1.bias"], m.input_grads[0]):
        assert isinstance(grad, ManualFailure)
        assert str(grad) == message


def test_a_backward_that_returns_no_tuple_fails_every_gradient_it_owes():
    """A layer backward returning None (not a tuple) owes dE/dinput, dE/dweight and dE/dbias: each is a
    ManualFailure naming the layer and what it returned, not a generic "no such gradient"."""
    _, m = _run(LINEAR, layer_backward={1: lambda dout, cache: None})
    message = "layer 1 (linear)'s backward returned NoneType, needs a tuple of gradients"
    for grad in (m.input_grads[1], m.param_grads["1.weight"], m.param_grads["1.bias"]):
        assert isinstance(grad, ManualFailure)
        assert str(grad) == message


def test_the_embeddings_integer_input_gets_no_gradient():
    """torch gives integer indices no gradient (a LongTensor cannot require one): the embedding's dE/dinput is
    None, not a placeholder of some other kind, while its table's gradient is computed."""
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2]).requires_grad_()
    description = {
        "input_shape": [3],
        "batch_size": 2,
        "layers": [{"type": "embedding", "num_embeddings": 5, "embedding_dim": 2}, {"type": "flatten"},
                   {"type": "linear", "out_features": 2}],
        "loss": {"type": "mse"},
    }
    _, m = _run(description)
    assert m.input_grads[0] is None
    assert m.param_grads["0.weight"].shape == (5, 2)


def test_updated_buffers_use_each_batch_norms_own_momentum():
    """A batch norm with momentum 0.3 (not the default 0.1) moves its running statistics as
    torch.nn.BatchNorm1d(momentum=0.3) does in one training-mode forward."""
    description = {
        "input_shape": [2, 2],
        "batch_size": 5,
        "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 3},
                   {"type": "batch_norm1d", "momentum": 0.3}],
        "loss": {"type": "mse"},
    }
    spec = parse_spec(description)
    params = netdesc.inputs.init_params(spec)
    x, _ = netdesc.inputs.random_batch(spec)
    outputs, _ = manual_net.forward(spec, params, x)
    buffers = manual_net.initial_buffers(spec, np.float64)
    new = manual_net.updated_buffers(spec, x, outputs, buffers)

    bn = torch.nn.BatchNorm1d(3, momentum=0.3).double().train()
    bn(torch.tensor(np.asarray(outputs[1], dtype=np.float64)))
    np.testing.assert_allclose(new["2.running_mean"], bn.running_mean.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new["2.running_var"], bn.running_var.numpy(), rtol=1e-6, atol=1e-6)


def test_a_backward_that_leaves_gradients_out_names_the_layer_for_each_one():
    """A linear backward returning (dx,) or () owes the rest: each missing gradient is a ManualFailure naming the
    layer; what it did return is used as it is."""
    dx = np.full((2, 6), 0.5)
    _, m = _run(LINEAR, layer_backward={1: lambda dout, cache: (dx,)})
    message = "layer 1 (linear)'s backward returned no such gradient"
    assert m.input_grads[1] is dx
    for grad in (m.param_grads["1.weight"], m.param_grads["1.bias"]):
        assert isinstance(grad, ManualFailure) and str(grad) == message
    _, m = _run(LINEAR, layer_backward={1: lambda dout, cache: ()})
    for grad in (m.input_grads[1], m.param_grads["1.weight"], m.param_grads["1.bias"]):
        assert isinstance(grad, ManualFailure) and str(grad) == message
    assert list(m.param_grads) == ["1.weight", "1.bias"]  # the description's order, as torch's named_parameters


def test_a_backward_that_returns_a_bare_array_is_named_by_its_type():
    _, m = _run(LINEAR, layer_backward={1: lambda dout, cache: np.zeros((2, 6))})
    for grad in (m.input_grads[1], m.param_grads["1.weight"], m.param_grads["1.bias"]):
        assert str(grad) == "layer 1 (linear)'s backward returned ndarray, needs a tuple of gradients"


def test_a_wrong_shaped_input_gradient_names_its_quantity_below_it():
    """dE/dinput of the wrong shape: the layer below gets a ManualFailure naming the quantity; a merge layer's
    inputs are numbered, dE/dinput[k]."""
    _, m = _run(LINEAR, layer_backward={1: lambda dout, cache: (np.zeros((2, 5)), None, None)})
    assert str(m.input_grads[0]) == ("not computed: layer 1 (linear)'s backward returned dE/dinput of shape (2, 5), "
                                     "needs (2, 6)")
    added = {**LINEAR, "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 6},
                                  {"type": "add", "inputs": [1, 0]}]}
    _, m = _run(added, layer_backward={2: lambda dout, cache: (dout, np.zeros((2, 4)))})
    assert str(m.input_grads[0]) == ("not computed: layer 2 (add)'s backward returned dE/dinput[1] of shape (2, 4), "
                                     "needs (2, 6)")


def test_a_replaced_loss_forward_is_the_one_run():
    """layer_forward's "loss" entry replaces the loss's forward: its E is the one reported, and its cache is the one
    the backward reads (here torch's sum-reduced MSE in place of the description's mean)."""
    spec, m = _run(LINEAR, layer_forward={"loss": lambda pred, target, reduction: manual_functional.mse_forward(
        pred, target, "sum")})
    x, target = netdesc.inputs.random_batch(spec)
    params = netdesc.inputs.init_params(spec)
    pred = torch.nn.functional.linear(torch.tensor(x).flatten(1), torch.tensor(params["1.weight"]),
                                      torch.tensor(params["1.bias"]))
    pred.requires_grad_()
    E = torch.nn.functional.mse_loss(pred, torch.tensor(target), reduction="sum")
    E.backward()
    np.testing.assert_allclose(m.loss, E.item(), rtol=1e-12)
    np.testing.assert_allclose(m.loss_grad, pred.grad.numpy(), rtol=1e-12)
