"""Edges of manual.functional, manual.kernels and manual.network that the broader suites pass by: add's shape check
of every input against the first (not against its neighbour), the loss checks naming pred when it is no float array,
scatter_add_rows summing each row from that row's values alone (a stable sort: where the other rows' indices sit
changes no bit), and the network's transformer_encoder backward returning dx and exactly the 12 parameters'
gradients, the mask's None left out. Messages are asserted whole; every value expected comes from torch."""

import re

import numpy as np
import pytest
import torch
from layer_cases import encoder_shapes, torch_encoder_layer

from crosscheck.compare import assert_close
from manual import attention as A
from manual import functional as F
from manual import kernels, network
from netdesc import InputError


def _raises(message, call, *args, **kwargs):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call(*args, **kwargs)


# --- add: every input against xs[0] ----------------------------------------------------------------------------------

@pytest.mark.parametrize("others", [[(2, 1)], [(2, 1), (2, 1)], [(2, 1), (2, 3)]],
                         ids=["two", "xs1-equals-xs2", "xs2-as-xs0"])
def test_add_checks_every_input_against_the_first(others):
    """torch.add would broadcast (2, 3) + (2, 1); add sums inputs of one shape, xs[0]'s, so the first input of
    another shape is named and xs[0]'s shape is the one needed, whatever the inputs after it are."""
    xs = [np.zeros((2, 3)), *(np.zeros(s) for s in others)]
    k, bad = next((k, x.shape) for k, x in enumerate(xs) if x.shape != (2, 3))
    assert torch.add(*(torch.from_numpy(x) for x in xs[:2])).shape == (2, 3)  # torch itself would broadcast
    _raises(f"xs[{k}]: got shape {bad}, needs (2, 3) (the shape of xs[0]: add sums inputs of one shape)",
            F.add_forward, *xs)


# --- the losses name pred --------------------------------------------------------------------------------------------

LOSSES = [F.mse_forward, F.half_squared_error_forward, F.binary_cross_entropy_forward,
          F.binary_cross_entropy_with_logits_forward]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("pred", "got"), [([[0.5]], "got list, needs a NumPy array"),
                                           (np.array([[1]]), "got dtype int64, needs float32 or float64"),
                                           (np.array([[np.nan]]), "got non-finite value nan at index (0, 0), needs "
                                                                  "finite values")],
                         ids=["list", "int", "nan"])
def test_a_loss_names_pred_that_is_no_float_array(loss, pred, got):
    _raises(f"pred: {got}", loss, pred, np.array([[0.5]]))


# --- scatter_add_rows: a stable sort ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("run", "rows"), [(3, 4), (7, 2), (9, 30)])
def test_scatter_add_rows_sums_each_row_from_its_own_values_in_their_order(run, rows, dtype):
    """out[r] is the sum of the values at index r, in the order they come: the same bits as scatter_add_rows on
    those values alone, wherever the other rows' indices sit among them (values over eight decades: another
    order of the same values rounds differently). And out is torch's index_add_ up to rounding."""
    rng = np.random.default_rng(4)
    indices = rng.permutation(np.repeat(np.arange(rows), run))
    values = (rng.standard_normal((indices.size, 4)) * 10.0 ** rng.uniform(-4, 4, (indices.size, 1))).astype(dtype)
    out = kernels.scatter_add_rows(indices, values, rows)
    for r in range(rows):
        alone = kernels.scatter_add_rows(np.zeros(run, np.int64), values[indices == r], 1)[0]
        np.testing.assert_array_equal(out[r], alone, err_msg=f"row {r}")
    expected = torch.zeros(rows, 4, dtype=torch.from_numpy(values).dtype).index_add_(
        0, torch.from_numpy(indices), torch.from_numpy(values))
    assert_close(out, expected.numpy(), "scatter_add_rows", f"{run} x {rows}", values.dtype)


# --- network: the transformer encoder's backward ---------------------------------------------------------------------

def test_transformer_encoder_backward_returns_dx_and_the_12_parameter_gradients():
    """manual.network's transformer_encoder backward: dx then the 12 parameters' gradients, autograd's through
    nn.TransformerEncoderLayer, and nothing after them (the key padding mask's None left out)."""
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal(s) * 0.5 for s in encoder_shapes(2, 3)]
    out, cache = A.transformer_encoder_layer_forward(*inputs, num_heads=2)
    dout = rng.standard_normal(out.shape)
    grads = network.transformer_encoder_backward(dout, cache)

    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    expected = torch_encoder_layer(tensors[0], *tensors[1:], num_heads=2)
    expected.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert len(grads) == 13 and not any(g is None for g in grads)
    for k, (grad, t) in enumerate(zip(grads, tensors, strict=True)):
        np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=f"gradient {k}")


# --- linear_forward: each argument named in its message --------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    ((np.array([[1, 2]]), np.ones((3, 2))), "x: got dtype int64, needs float32 or float64"),
    ((np.ones((2, 2), np.float32), np.ones((3, 2))),
     "mixed dtypes: got x float32, w float64, needs one dtype (all float32 or all float64)"),
    ((np.ones((2, 2)), np.ones((3, 2)), np.ones(3, np.float32)),
     "mixed dtypes: got x float64, w float64, b float32, needs one dtype (all float32 or all float64)"),
    ((np.ones((2, 2)), np.ones((3, 2)), np.ones((3, 1))), "b: got 2-D array of shape (3, 1), needs 1-D"),
], ids=["x-int", "w-other-dtype", "b-other-dtype", "b-2d"])
def test_linear_forward_names_the_argument_that_is_wrong(args, message):
    _raises(message, F.linear_forward, *args)


SWAPPED = {dtype: np.dtype(dtype).newbyteorder("S") for dtype in (np.float32, np.float64)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", ["mse", "half_squared_error", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("swapped", ["pred", "target"])
def test_a_loss_refuses_an_array_in_the_other_byte_order_in_one_line(loss, swapped, dtype):
    """A big-endian float32 is still float32 to dtype.type, but the loss is computed in native order and its backward
    checks dout against the native dtype: refused up front, with the cast that fixes it."""
    arrays = {"pred": np.full((2, 3), 0.5, dtype), "target": np.full((2, 3), 0.25, dtype)}
    arrays[swapped] = arrays[swapped].astype(SWAPPED[dtype])
    message = (f"{swapped}: got dtype {SWAPPED[dtype].str} (not this machine's byte order), needs float32 or float64 "
               f"in native byte order: .astype(np.{np.dtype(dtype).name})")
    with pytest.raises(InputError) as raised:
        getattr(F, f"{loss}_forward")(arrays["pred"], arrays["target"])
    assert str(raised.value) == message
