"""Bad input gets an InputError naming the argument, what it got and what it needs."""

import numpy as np
import pytest

from crosscheck.subjects import SeedCase
from manual import seed_network
from netdesc import InputError
from netdesc.seed import check_inputs


def _good(dtype=np.float64):
    return SeedCase(batch=2, n_out=2, dtype=np.dtype(dtype).name).inputs()


def _with(**changes):
    X, Y, params = _good()
    params = dict(params)
    for key, value in changes.items():
        if key in ("X", "Y"):
            X, Y = (value, Y) if key == "X" else (X, value)
        else:
            params[key] = value
    return X, Y, params


BAD = [
    ("X-1d", _with(X=np.zeros(8)), r"X: got 1-D array of shape \(8,\), needs 2-D or 3-D"),
    ("X-4d", _with(X=np.zeros((1, 1, 8, 8))), r"X: got 4-D .* needs 2-D or 3-D"),
    ("X-list", _with(X=[[1.0]]), r"X: got list, needs a NumPy array"),
    ("X-int", _with(X=np.zeros((2, 8, 8), dtype=np.int64)), r"X: got dtype int64, needs float32 or float64"),
    ("X-float16", _with(X=np.zeros((2, 8, 8), dtype=np.float16)), r"X: got dtype float16, needs float32 or float64"),
    ("X-bool", _with(X=np.zeros((2, 8, 8), dtype=bool)), r"X: got dtype bool"),
    ("X-complex", _with(X=np.zeros((2, 8, 8), dtype=complex)), r"X: got dtype complex128"),
    ("X-byte-swapped", _with(X=np.zeros((2, 8, 8), dtype=np.dtype(np.float64).newbyteorder("S"))),
     r"X: got dtype [<>]f8 \(not this machine's byte order\), needs float32 or float64 in native byte order: "
     r"\.astype\(np\.float64\)$"),
    ("X-nan", _with(X=np.full((2, 8, 8), np.nan)), r"X: got non-finite value nan at index \(0, 0, 0\)"),
    ("f-inf", _with(f=np.array([[1.0, np.inf], [0.0, 0.0]])), r"f: got non-finite value inf at index \(0, 1\)"),
    ("Y-nan", _with(Y=np.array([[0.0, np.nan], [0.0, 0.0]])), r"Y: got non-finite value nan"),
    ("filter-too-tall", _with(f=np.zeros((9, 3))), r"f: got shape \(9, 3\), needs 1 <= KH <= 8 and 1 <= KW <= 8"),
    ("filter-empty", _with(f=np.zeros((0, 3))), r"f: got shape \(0, 3\)"),
    ("W-wrong-shape", _with(W=np.zeros((35, 2))), r"W: got shape \(35, 2\), needs \(36, 2\)"),
    ("b-empty", _with(b=np.zeros(0), W=np.zeros((36, 0))), r"b: got shape \(0,\), needs n_out >= 1"),
    ("Y-wrong-rows", _with(Y=np.zeros((3, 2))), r"Y: got shape \(3, 2\), needs \(2, 2\) \(one target row per sample"),
    ("Y-1d-for-batch", _with(Y=np.zeros(2)), r"Y: got 1-D array .* needs 2-D"),
    ("X-empty", _with(X=np.zeros((0, 8, 8))), r"X: got shape \(0, 8, 8\), needs at least one sample"),
    ("mixed-dtypes", _with(f=np.zeros((3, 3), dtype=np.float32)), r"mixed dtypes: got X float64, Y float64, f float32"),
    ("params-missing-b", (*_good()[:2], {"f": np.zeros((3, 3)), "W": np.zeros((36, 2))}), r"params: got \['W', 'f'\]"),
    ("params-not-dict", (*_good()[:2], [1, 2]), r"params: got list, needs a dict"),
]


@pytest.mark.parametrize(("X", "Y", "params", "message"), [(*b[1], b[2]) for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("side", ["manual", "check_inputs"])
def test_bad_input_is_named(side, X, Y, params, message):
    """The inputs are checked once, at the boundary: manual train and netdesc.seed.check_inputs, which the harness's
    SeedSubject calls (forward, backward and the reference's run and train do not check again)."""
    with pytest.raises(InputError, match=message):
        if side == "manual":
            seed_network.train(X, Y, params, 0.1, 1)
        else:
            check_inputs(X, Y, params)


def test_single_image_is_a_batch_of_one():
    X, Y, params = _good()
    X1, Y1 = check_inputs(X[0], Y[0], params)  # one image (H, W) and its target (n_out,): N = 1
    values = seed_network.forward(X1, params, Y1)
    batch_values = seed_network.forward(X[:1], params, Y[:1])
    np.testing.assert_array_equal(values["O"], batch_values["O"])
    assert values["O"].shape == (1, 2)
    errors, final = seed_network.train(X[0], Y[0], params, 0.1, 2)
    batch_errors, batch_final = seed_network.train(X[:1], Y[:1], params, 0.1, 2)
    np.testing.assert_array_equal(errors, batch_errors)
    np.testing.assert_array_equal(final["f"], batch_final["f"])


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", True, None])
def test_learning_rate_must_be_positive(lr):
    """Checked where it enters: manual train and the harness's SeedCase (sgd_step and the reference take it checked)."""
    X, Y, params = _good()
    with pytest.raises(InputError, match="lr: got"):
        seed_network.train(X, Y, params, lr, 1)
    with pytest.raises(InputError, match="lr: got"):
        SeedCase(lr=lr)


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_steps_must_be_a_positive_integer(steps):
    X, Y, params = _good()
    with pytest.raises(InputError, match="steps: got"):
        seed_network.train(X, Y, params, 0.1, steps)


def test_reduction_must_be_known():
    X, Y, params = _good()
    with pytest.raises(InputError, match=r"reduction: got 'avg', needs one of sum, mean"):
        seed_network.train(X, Y, params, 0.1, 1, reduction="avg")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("dtype", "float16", r"dtype: got 'float16', needs one of float64, float32"),
    ("input_shape", (8,), r"input_shape: got \(8,\), needs two positive integers"),
    ("kernel_shape", (0, 3), r"kernel_shape: got \(0, 3\)"),
    ("kernel_shape", (9, 3), r"kernel_shape: got 9x3, needs at most the input's 8x8"),
    ("batch", 0, r"batch: got 0, needs an integer >= 1"),
    ("seed", -1, r"seed: got -1, needs an integer >= 0"),
    ("reduction", "max", r"reduction: got 'max'"),
])
def test_case_validation(field, value, message):
    with pytest.raises(InputError, match=message):
        SeedCase(**{field: value})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_keep_the_input_dtype(dtype):
    X, Y, params = _good(dtype)
    values = seed_network.forward(X, params, Y)
    grads = seed_network.backward(X, Y, params, values)
    updated = seed_network.sgd_step(params, grads, 0.1)
    for name, value in [*values.items(), *grads.items(), *updated.items()]:
        assert value.dtype == dtype, name


def test_float_check_without_ndim_accepts_any_rank():
    from netdesc.checks import check_float_array

    assert check_float_array("x", np.zeros((1, 2, 3, 4))).ndim == 4
