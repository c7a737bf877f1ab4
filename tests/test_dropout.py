"""Dropout beyond the registry rows (tests/layer_cases.py): the reference applies the harness's mask, since
torch's own random draw cannot be shared with NumPy; these tests pin that doing so is torch's dropout, the
scaling and masking of F.dropout as torch defines them, for the mask torch drew itself."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from layer_cases import torch_dropout

from crosscheck.check import check
from crosscheck.compare import assert_close
from crosscheck.subjects import NetworkSubject
from manual import functional as M
from manual import network as manual_net
from netdesc import InputError
from netdesc.description import parse_spec
from netdesc.inputs import dropout_masks, init_params, random_batch, seeded_masks
from reference import network as reference_net


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.99, 1.0])
def test_torchs_dropout_is_x_times_its_mask_over_1_minus_p(p, dtype):
    """F.dropout under a given generator state, its mask read back from where it zeroed x: the output and the
    gradient are x * mask / (1 - p) and dout * mask / (1 - p), bit for bit (zeros at p = 1), and the manual
    pair given that mask gives the same bits."""
    torch.manual_seed(11)
    x = torch.randn(40, 30, dtype=dtype, requires_grad=True)
    dout = torch.randn(40, 30, dtype=dtype)
    y = F.dropout(x, p, training=True)
    (dx,) = torch.autograd.grad(y, x, dout)
    mask = y.detach() != 0  # x ~ N(0, 1) holds no exact zero
    expected = torch_dropout(x.detach(), mask, p)
    assert torch.equal(y.detach(), expected) and torch.equal(dx, torch_dropout(dout, mask, p))
    out, cache = M.dropout_forward(x.detach().numpy(), mask.numpy(), p)
    np.testing.assert_array_equal(out, y.detach().numpy())
    np.testing.assert_array_equal(M.dropout_backward(dout.numpy(), cache)[0], dx.numpy())
    if 0 < p < 1:
        assert 0 < mask.sum() < mask.numel()  # both kept and dropped elements were compared


def test_eval_mode_is_the_identity_as_torchs():
    x = np.random.default_rng(0).standard_normal((3, 4))
    out, cache = M.dropout_forward(x, None, 0.5)
    np.testing.assert_array_equal(out, F.dropout(torch.from_numpy(x), 0.5, training=False).numpy())
    np.testing.assert_array_equal(M.dropout_backward(x, cache)[0], x)


def test_a_network_run_without_masks_has_its_dropouts_as_the_identity_on_both_sides():
    spec = parse_spec(DROPPED)
    params, (x, target) = init_params(spec, np.float64, seed=3), random_batch(spec, np.float64, seed=3)
    mine, torch_run = manual_net.run(spec, params, x, target), reference_net.run(spec, params, x, target)
    for i in (3, 5):  # the dropouts pass their input through
        np.testing.assert_array_equal(torch_run["outputs"][i], torch_run["outputs"][i - 1])
        np.testing.assert_array_equal(mine.outputs[i], mine.outputs[i - 1])
    assert_close(mine.loss, torch_run["loss"], "E without masks")


X = np.zeros((2, 3))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: M.dropout_forward(X, np.ones((2, 3), bool), 1.5), "p: got 1.5, needs a number in [0, 1]"),
    (lambda: M.dropout_forward(X, np.ones((2, 3), bool), -0.1), "p: got -0.1, needs a number in [0, 1]"),
    (lambda: M.dropout_forward(X, np.ones((2, 3)), 0.5),
     "mask: got dtype float64, needs a NumPy array of booleans (or 0 and 1), True where kept"),
    (lambda: M.dropout_forward(X, np.full((2, 3), 2), 0.5),
     "mask: got dtype int64, needs a NumPy array of booleans (or 0 and 1), True where kept"),
    (lambda: M.dropout_forward(X, [[1, 1, 1]], 0.5),
     "mask: got list, needs a NumPy array of booleans (or 0 and 1), True where kept"),
    (lambda: M.dropout_forward(X, np.ones((3, 2), bool), 0.5), "mask: got shape (3, 2), needs (2, 3) (the shape of x)"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call()


# --- in a description: a mask per step, drawn by the harness from (seed, step, layer index) -------------------

DROPPED = {
    "input_shape": [1, 3, 4], "batch_size": 6,
    "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}, {"type": "tanh"},
               {"type": "dropout", "p": 0.4}, {"type": "linear", "out_features": 8}, {"type": "dropout"},
               {"type": "linear", "out_features": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "adam", "lr": 0.01, "steps": 6},
}


def test_the_masks_are_drawn_per_seed_step_and_layer():
    spec = parse_spec(DROPPED)
    masks = dropout_masks(spec, 6, seed=4, step=2)
    assert set(masks) == {3, 5} and masks[3].shape == (6, 10) and masks[5].shape == (6, 8)
    assert masks[3].dtype == bool
    again = dropout_masks(spec, 6, seed=4, step=2)
    assert all(np.array_equal(masks[i], again[i]) for i in masks)  # a step's masks are the same on every draw
    for other in (dropout_masks(spec, 6, seed=5, step=2), dropout_masks(spec, 6, seed=4, step=3)):
        assert not any(np.array_equal(masks[i], other[i]) for i in masks)
    assert np.array_equal(seeded_masks(spec, 4)(2, 6)[5], masks[5])
    many = dropout_masks(spec, 2000, seed=0, step=0)
    assert abs(many[3].mean() - 0.6) < 0.01 and abs(many[5].mean() - 0.5) < 0.01  # kept with probability 1 - p


@pytest.mark.parametrize(("p", "kept"), [(0.0, True), (1.0, False)])
def test_p_0_keeps_everything_and_p_1_drops_everything(p, kept):
    spec = parse_spec(DROPPED | {"layers": [{"type": "flatten"}, {"type": "dropout", "p": p},
                                            {"type": "linear", "out_features": 3}]})
    assert np.all(dropout_masks(spec, 4, 0, 0)[1] == kept)
    result = check(NetworkSubject(spec, seed=1))  # both sides, whole: at p = 1 torch's zeros, not 0 / 0
    assert result.passed
    output = next(r.result for r in result.rows if r.quantity == "output" and r.where == "1 dropout")
    assert output.compared == 6 * 12 and output.max_abs_error == 0.0


def test_both_sides_train_with_the_same_masks_and_the_masks_matter():
    spec = parse_spec(DROPPED)
    params = init_params(spec, np.float64, seed=1)
    x, target = random_batch(spec, np.float64, seed=1)
    manual_losses, manual_final = manual_net.train(spec, params, x, target, masks=seeded_masks(spec, 1))
    torch_losses, torch_final = reference_net.train(spec, params, x, target, masks=seeded_masks(spec, 1))
    assert_close(manual_losses, torch_losses, "E at steps 1..6")
    for name, value in manual_final.items():
        assert_close(value, torch_final[name], f"{name} after 6 steps")
    default_losses, _ = manual_net.train(spec, params, x, target)  # both sides' default: the masks of seed 0
    assert_close(default_losses, reference_net.train(spec, params, x, target)[0], "E at steps 1..6, seed 0's masks")
    assert_close(default_losses, manual_net.train(spec, params, x, target, masks=seeded_masks(spec, 0))[0], "E")
    other_losses, _ = reference_net.train(spec, params, x, target, masks=seeded_masks(spec, 2))
    assert not np.allclose(other_losses, torch_losses)  # another seed's masks: another run
    fixed_losses, _ = reference_net.train(spec, params, x, target, masks=lambda step, N: dropout_masks(spec, N, 1, 0))
    assert fixed_losses[0] == torch_losses[0] and not np.allclose(fixed_losses[1:], torch_losses[1:])  # per step
