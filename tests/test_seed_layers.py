"""Each layer of the seed network alone: forward and every input gradient against torch.autograd.grad,
with a random upstream gradient (a backward that forgets to multiply by dout cannot pass)."""

import itertools

import numpy as np
import pytest
import torch

from crosscheck.compare import assert_close
from manual import layers

DTYPES = {"float64": np.float64, "float32": np.float32}
SEEDS = range(3)


def _conv(X, f):
    return torch.nn.functional.conv2d(X[:, None], f[None, None])[:, 0]


def _half_squared_error(reduction):
    def fn(O, Y):
        per_sample = ((Y - O) ** 2 / 2).sum(dim=1)
        return per_sample.sum() if reduction == "sum" else per_sample.mean()

    return fn


def _linear(H1, W, b):
    return torch.nn.functional.linear(H1, W.T, b)


# (name, manual forward, manual backward, torch function, input shapes, differentiable inputs, kwargs)
LAYER_CASES = [
    ("conv", layers.conv_forward, layers.conv_backward, _conv, [(2, 6, 5), (3, 2)], (0, 1)),
    ("conv-1x1-kernel", layers.conv_forward, layers.conv_backward, _conv, [(1, 4, 4), (1, 1)], (0, 1)),
    ("conv-kernel-as-input", layers.conv_forward, layers.conv_backward, _conv, [(3, 4, 7), (4, 7)], (0, 1)),
    ("conv-1x1-input", layers.conv_forward, layers.conv_backward, _conv, [(2, 1, 1), (1, 1)], (0, 1)),
    ("sigmoid", layers.sigmoid_forward, layers.sigmoid_backward, torch.sigmoid, [(3, 4, 5)], (0,)),
    ("flatten", layers.flatten_forward, layers.flatten_backward, lambda x: x.flatten(1), [(2, 3, 4)], (0,)),
    ("linear", layers.linear_forward, layers.linear_backward, _linear, [(4, 6), (6, 3), (3,)], (0, 1, 2)),
    ("linear-batch1-out1", layers.linear_forward, layers.linear_backward, _linear, [(1, 1), (1, 1), (1,)], (0, 1, 2)),
    (
        "error-sum", lambda O, Y: layers.half_squared_error_forward(O, Y, "sum"),
        layers.half_squared_error_backward, _half_squared_error("sum"), [(5, 3), (5, 3)], (0,),
    ),
    (
        "error-mean", lambda O, Y: layers.half_squared_error_forward(O, Y, "mean"),
        layers.half_squared_error_backward, _half_squared_error("mean"), [(5, 2), (5, 2)], (0,),
    ),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c[0])
def test_seed_layer_matches_torch(case, seed, dtype):
    name, forward, backward, torch_fn, shapes, differentiable = case
    rng = np.random.default_rng(seed)
    inputs = [rng.normal(size=s).astype(DTYPES[dtype]) for s in shapes]
    out, cache = forward(*inputs)
    tensors = [torch.tensor(x, requires_grad=i in differentiable) for i, x in enumerate(inputs)]
    expected = torch_fn(*tensors)
    assert_close(out, expected.detach().numpy(), f"{name} forward", f"seed{seed}-{dtype}")
    dout = rng.normal(size=out.shape).astype(DTYPES[dtype])
    grads = backward(dout, cache)
    assert len(grads) == len(inputs), "a backward returns one gradient per forward input"
    wanted = [tensors[i] for i in differentiable]
    expected_grads = torch.autograd.grad(expected, wanted, torch.from_numpy(dout))
    for i, expected_grad in zip(differentiable, expected_grads, strict=True):
        assert_close(grads[i], expected_grad.numpy(), f"{name} d(input {i})", f"seed{seed}-{dtype}")


def test_conv_backward_can_skip_the_input_gradient():
    rng = np.random.default_rng(0)
    X, f = rng.normal(size=(2, 5, 5)), rng.normal(size=(2, 2))
    Z1, cache = layers.conv_forward(X, f)
    dZ1 = rng.normal(size=Z1.shape)
    dX, df = layers.conv_backward(dZ1, cache, input_grad=False)
    assert dX is None
    np.testing.assert_array_equal(df, layers.conv_backward(dZ1, cache)[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_stable_for_huge_inputs(dtype):
    z = np.array([-1e4, -800.0, -100.0, -1e-8, 0.0, 1e-8, 100.0, 800.0, 1e4], dtype=DTYPES[dtype])
    # overflow, divide by zero or an invalid value would raise here (underflow to 0 is the right answer)
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        out, cache = layers.sigmoid_forward(z)
        (dz,) = layers.sigmoid_backward(np.random.default_rng(0).normal(size=z.shape).astype(z.dtype), cache)
    assert out.dtype == z.dtype and dz.dtype == z.dtype
    expected = torch.sigmoid(torch.from_numpy(z)).numpy()
    assert_close(out, expected, "sigmoid at |z| up to 1e4")
    assert out[0] == 0.0 and out[-1] == 1.0 and out[4] == 0.5


@pytest.mark.parametrize(("dtype", "forward", "shapes"), [
    (dt, fw, shapes)
    for dt, (fw, shapes) in itertools.product(
        DTYPES.values(),
        [(layers.conv_forward, [(2, 5, 4), (2, 3)]), (layers.linear_forward, [(2, 3), (3, 2), (2,)])],
    )
])
def test_layers_keep_the_dtype(dtype, forward, shapes):
    rng = np.random.default_rng(0)
    out, cache = forward(*[rng.normal(size=s).astype(dtype) for s in shapes])
    assert out.dtype == dtype
