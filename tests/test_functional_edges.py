"""Edges of manual.functional that the rest of the suite leaves open: concat's dim and shape checks, the index that
the probability check names, the 0-d half squared error, group norm's affine check, nll's ignore_index range and its
all-ignored reductions, dropout's default p and p = 1. Messages are asserted whole: they are the product."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from manual import functional as F
from netdesc import InputError


def _raises(message, call, *args, **kwargs):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call(*args, **kwargs)


# --- concat ----------------------------------------------------------------------------------------------------------

def test_concat_checks_dim_against_the_first_input_and_names_its_shape():
    """dim 1 is no per-sample axis of a (2, 3) first input, whatever the second input's rank."""
    _raises("dim: got 1, needs one of the 1 per-sample axes of xs[0] (shape (2, 3), the batch axis first)",
            F.concat_forward, np.zeros((2, 3)), np.zeros((2, 3, 4)), dim=1)


def test_concat_names_a_second_input_of_fewer_axes():
    """xs[1] (2, 3) lacks the axis 2 that the (2, 3, 4) first input is joined on: an InputError, not an IndexError."""
    _raises("xs[1]: got shape (2, 3), needs the shape of xs[0] (2, 3, 4) on every axis but axis 2",
            F.concat_forward, np.zeros((2, 3, 4)), np.zeros((2, 3)), dim=1)


# --- probabilities ---------------------------------------------------------------------------------------------------

PROBABILITY_CASES = [
    # 0 and 1 are valid probabilities: the message names the first value outside [0, 1], not the first at a bound
    ("bce-pred-above", F.binary_cross_entropy_forward, "pred", [[0.0, 1.0, 1.5]], "1.5 at index (0, 2)"),
    ("bce-pred-below", F.binary_cross_entropy_forward, "pred", [[1.0, 0.0, -0.5]], "-0.5 at index (0, 2)"),
    ("bce-target-below", F.binary_cross_entropy_forward, "target", [[0.0, 1.0, 0.5], [1.0, 0.0, -0.25]],
     "-0.25 at index (1, 2)"),
    ("bce-logits-target-above", F.binary_cross_entropy_with_logits_forward, "target", [[0.0, 1.0, 2.0]],
     "2.0 at index (0, 2)"),
]


@pytest.mark.parametrize(("loss", "name", "values", "got"), [c[1:] for c in PROBABILITY_CASES],
                         ids=[c[0] for c in PROBABILITY_CASES])
def test_a_probability_outside_0_1_is_named_by_its_own_index(loss, name, values, got):
    bad = np.array(values)
    good = np.full(bad.shape, 0.5)
    pred, target = (bad, good) if name == "pred" else (good, bad)
    _raises(f"{name}: got {got}, needs probabilities in [0, 1]", loss, pred, target)


# --- half squared error ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_half_squared_error_needs_a_batch_axis(dtype):
    _raises("pred: got a 0-d array, needs a batch axis (N, ...) for the batch mean",
            F.half_squared_error_forward, np.array(1.0, dtype), np.array(0.0, dtype))


# --- group norm ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gamma", "beta"])
def test_group_norm_names_an_affine_parameter_of_the_wrong_shape(name):
    x = np.zeros((2, 4, 3))
    _raises(f"{name}: got shape (3,), needs (4,) (one per channel of x)",
            F.group_norm_forward, x, **{name: np.ones(3)}, num_groups=2)


# --- nll -------------------------------------------------------------------------------------------------------------

def _log_probs(shape, dtype=np.float64):
    return np.log(np.random.default_rng(0).dirichlet(np.ones(shape[-1]), size=shape[:-1])).astype(dtype)


@pytest.mark.parametrize("ignore_index", [-127, -1000, -(2 ** 63)])
def test_nll_takes_any_int64_ignore_index(ignore_index):
    """Any int64 is a valid ignore_index, as torch's, down to -2**63."""
    log_probs = _log_probs((3, 2))
    labels = np.array([0, ignore_index, 1])
    out, _ = F.nll_forward(log_probs, labels, ignore_index=ignore_index)
    assert out == pytest.approx(-(log_probs[0, 0] + log_probs[2, 1]) / 2, rel=1e-12)


@pytest.mark.parametrize("ignore_index", [-(2 ** 63) - 1, -(2 ** 64)])
def test_nll_rejects_an_ignore_index_below_int64(ignore_index):
    _raises(f"ignore_index: got {ignore_index}, needs an integer",
            F.nll_forward, _log_probs((3, 2)), np.array([0, 1, 1]), ignore_index=ignore_index)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_nll_with_every_label_ignored_is_torchs(reduction, dtype):
    """Every label ignored: "sum" is 0 and "mean" nan, as torch's, in the input's dtype; the gradient is 0."""
    log_probs = _log_probs((3, 2), dtype)
    labels = np.full(3, -100)
    out, cache = F.nll_forward(log_probs, labels, reduction)
    expected = TF.nll_loss(torch.from_numpy(log_probs), torch.from_numpy(labels), reduction=reduction)
    assert out.shape == () and out.dtype == dtype
    np.testing.assert_array_equal(out, expected.numpy())
    dlog_probs, none = F.nll_backward(np.asarray(1.0, dtype), cache)
    assert none is None
    np.testing.assert_array_equal(dlog_probs, np.zeros((3, 2), dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_softmax_cross_entropy_with_every_label_ignored_is_torchs(reduction, dtype):
    """The same for softmax cross-entropy: "sum" 0, "mean" nan (0/0), as torch.nn.functional.cross_entropy's, in the
    logits' dtype (a float64 nan for float32 logits was a dtype change torch does not make)."""
    logits = np.random.default_rng(0).normal(size=(3, 2)).astype(dtype)
    labels = np.full(3, 1)
    out, _ = F.softmax_cross_entropy_forward(logits, labels, reduction, ignore_index=1)
    expected = TF.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), reduction=reduction, ignore_index=1)
    assert out.shape == () and out.dtype == dtype == expected.numpy().dtype
    np.testing.assert_array_equal(out, expected.numpy())


# --- dropout ---------------------------------------------------------------------------------------------------------

def test_dropout_default_p_is_torchs_one_half():
    """torch's default p = 0.5: the kept elements doubled; without a mask the identity."""
    x = np.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])
    mask = np.array([[True, False, True], [False, True, True]])
    out, cache = F.dropout_forward(x, mask)
    np.testing.assert_array_equal(out, [[2.0, 0.0, 6.0], [0.0, 10.0, -12.0]])
    dx, _ = F.dropout_backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(dx, [[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]])
    out, _ = F.dropout_forward(x)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_p_1_gives_zeros_whatever_the_mask(dtype):
    """p = 1 drops everything, as torch's dropout (zeros, zero gradient), even where a given mask keeps elements."""
    x = np.arange(1.0, 7.0, dtype=dtype).reshape(2, 3)
    expected = TF.dropout(torch.from_numpy(x), p=1.0, training=True).numpy()
    for mask in (np.ones((2, 3), bool), np.array([[1, 0, 1], [0, 1, 0]], np.uint8)):
        out, cache = F.dropout_forward(x, mask, p=1)
        np.testing.assert_array_equal(out, expected)
        assert out.dtype == dtype
        dx, _ = F.dropout_backward(np.ones_like(x), cache)
        np.testing.assert_array_equal(dx, np.zeros_like(x))
