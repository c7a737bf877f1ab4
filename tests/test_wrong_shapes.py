"""A backward that returns a gradient of the wrong shape (or none) is a wrong derivation: reported as a
mismatch at the quantity it breaks, with what could not be computed below it, never a crash or exit 2."""

import pytest
from runs import network_rows

import crosscheck.check
from crosscheck import cli
from crosscheck.check import overrides
from manual import functional as F
from netdesc.description import load_spec

SPEC = load_spec("examples/small3conv.toml")  # layer 9 is linear (60 -> 3), layer 8 flatten, layer 5 conv2d


def _failed(rows):
    return [row for row in rows if not row.passed]


def test_a_transposed_weight_gradient_is_a_mismatch_with_a_hint():
    def transposed_dw(dout, cache):
        dx, dw, db = F.linear_backward(dout, cache)
        return dx, dw.T, db

    failed = _failed(network_rows(SPEC, layer_backward={9: transposed_dw}, steps=2))
    assert (failed[0].where, failed[0].quantity) == ("9 linear", "dE/dweight")
    assert "manual equals autograd transposed" in failed[0].result.problem
    # The update cannot be taken with it: every training row says why instead of crashing.
    training = [row for row in failed if "step" in row.quantity]
    assert training and all("no gradient to step with" in row.result.problem or "got shape" in row.result.problem
                            for row in training)


def test_an_input_gradient_of_the_wrong_shape_stops_the_chain_below_it():
    def short_dx(dout, cache):
        dx, dw, db = F.linear_backward(dout, cache)
        return dx[:, :-1], dw, db

    rows = network_rows(SPEC, layer_backward={9: short_dx}, train=False)
    failed = _failed(rows)
    assert (failed[0].where, failed[0].quantity) == ("9 linear", "dE/dinput")
    assert failed[0].result.problem == "shape mismatch: manual (3, 59), autograd (3, 60)"
    below = failed[1:]
    assert [row.where for row in below][:2] == ["8 flatten", "7 avg_pool2d"]
    assert all("not computed: layer 9 (linear)'s backward returned dE/dinput of shape (3, 59), needs (3, 60)"
               in row.result.problem for row in below)


def test_a_loss_gradient_of_the_wrong_shape_breaks_every_layer():
    def flat_loss_grad(dout, cache):
        dpred, _ = F.softmax_cross_entropy_backward(dout, cache)
        return dpred.ravel(), None

    failed = _failed(network_rows(SPEC, layer_backward={"loss": flat_loss_grad}, train=False))
    assert (failed[0].where, failed[0].quantity) == ("loss", "dE/dinput")
    assert all("not computed: the loss's backward" in row.result.problem for row in failed[1:])
    # the loss, every layer's input gradient, every parameter's gradient and its value after steps 1 and 2
    assert len(failed) == 1 + len(SPEC.layers) + 3 * len(SPEC.param_shapes())


@pytest.mark.parametrize("returned", ["none", "missing"])
def test_a_missing_parameter_gradient_is_reported(returned):
    def without_db(dout, cache):
        dx, dw, _ = F.conv2d_backward(dout, cache)
        return (dx, dw, None) if returned == "none" else (dx, dw)

    failed = _failed(network_rows(SPEC, layer_backward={5: without_db}, steps=1))
    assert (failed[0].where, failed[0].quantity) == ("5 conv2d", "dE/dbias")
    expected = "layer 5 (conv2d)'s backward returned None" if returned == "none" else "returned no such gradient"
    assert expected in failed[0].result.problem


def test_verify_exits_1_not_2_on_a_wrongly_shaped_gradient(monkeypatch, capsys):
    def short_dx(dout, cache):
        dx, dw, db = F.linear_backward(dout, cache)
        return dx[:, :-1], dw, db

    monkeypatch.setattr(crosscheck.check, "inject", lambda name, spec, dtype: overrides({9: short_dx}))
    assert cli.main(["verify", "--spec", "examples/small3conv.toml", "--inject", "9", "--steps", "1"]) == 1
    assert "shape mismatch: manual (3, 59), autograd (3, 60)" in capsys.readouterr().out


def test_a_backward_that_returns_none_is_a_finding_not_a_crash():
    rows = network_rows(SPEC, layer_backward={9: lambda dout, cache: None}, train=False)
    failed = [row for row in rows if not row.passed]
    assert (failed[0].where, failed[0].quantity) == ("9 linear", "dE/dinput")
    assert failed[0].result.problem == ("manual side failed: layer 9 (linear)'s backward returned NoneType, needs a "
                                        "tuple of gradients")
    assert next(r for r in failed if r.quantity == "dE/dweight").result.problem == failed[0].result.problem
