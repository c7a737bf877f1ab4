"""The seed network over the grid: manual/ against reference/, quantity by quantity, in the slides' order."""

import ast
import itertools
import pathlib

import numpy as np
import pytest
from runs import SEED_BASE, seed_pairs

from crosscheck.compare import assert_close, compare
from crosscheck.subjects import SEED_BACKWARD, SeedCase, slide_name
from manual import seed_network
from netdesc.checks import InputError
from reference import seed_network as reference_net

INPUT_SHAPES = [(2, 2), (5, 3), (6, 6), (9, 14), (28, 20), (32, 32)]
KERNELS = [1, 2, 3, 5, "input"]  # "input": the filter as large as the image, a 1x1 output
N_OUTS = [1, 3]
BATCHES = [1, 4, 16]
REDUCTIONS = ["sum", "mean"]
DTYPES = ["float64", "float32"]
SEEDS = range(SEED_BASE, SEED_BASE + 5)


def _kernel_shapes(input_shape):
    shapes = []
    for k in KERNELS:
        shape = input_shape if k == "input" else (k, k)
        if shape[0] <= input_shape[0] and shape[1] <= input_shape[1] and shape not in shapes:
            shapes.append(shape)
    return shapes


GRID = [
    SeedCase(input_shape=s, kernel_shape=k, n_out=o, batch=n, seed=seed, dtype=dt, reduction=r)
    for s in INPUT_SHAPES
    for k in _kernel_shapes(s)
    for o, n, r, dt, seed in itertools.product(N_OUTS, BATCHES, REDUCTIONS, DTYPES, SEEDS)
]

# Training runs: every shape and kernel, both dtypes and reductions, at a learning rate where 50 steps
# of full-batch SGD are stable (a chaotic run amplifies rounding and proves nothing about gradients):
# "sum" makes the step N times larger than "mean", so its rate is divided by N.
TRAINING = [
    SeedCase(
        input_shape=s, kernel_shape=k, n_out=o, batch=n, seed=seed, dtype=dt, reduction=r,
        lr=0.1 if r == "mean" else 0.1 / n, steps=50,
    )
    for (s, k), (o, n, seed) in zip(
        [(s, k) for s in INPUT_SHAPES for k in _kernel_shapes(s)],
        itertools.cycle([(1, 4, 0), (3, 16, 1), (3, 1, 2), (1, 16, 3), (3, 4, 4)]),
    )
    for r, dt in itertools.product(REDUCTIONS, DTYPES)
]


@pytest.mark.parametrize("case", GRID, ids=str)
def test_seed_network_matches_autograd(case):
    """Forward values and E, every chain-rule factor, dE/df, dE/dW, dE/db, then one SGD step."""
    for name, manual, autograd, witness in seed_pairs(case):
        assert_close(manual, autograd, name, case, case.dtype, witness)


@pytest.mark.training
@pytest.mark.parametrize("case", TRAINING, ids=str)
def test_training_run_matches_autograd(case):
    """50 SGD steps on a fixed batch: E at every step and the parameters at the end."""
    for name, manual, autograd, witness in seed_pairs(case, training=True):
        assert_close(manual, autograd, name, case, case.dtype, witness)


def test_grid_is_big_enough():
    assert len(GRID) >= 1000
    assert len(TRAINING) >= 100
    assert {c.kernel_shape for c in GRID if c.kernel_shape == c.input_shape} >= {(2, 2), (5, 3), (32, 32)}


# --- the slides' file: the factors it reports are the factors it multiplies ------------------------------------

def _rows(case, wrong=None):
    """[Comparison] of every factor and gradient, in check order, with `wrong` passed to backward."""
    X, Y, params = case.inputs()
    values = seed_network.forward(X, params, Y, case.reduction)
    grads = seed_network.backward(X, Y, params, values, case.reduction, wrong=wrong)
    _, autograd = reference_net.run(X, params, Y, case.reduction)
    return [compare(slide_name(k), grads[k], autograd[k], case.dtype) for k in SEED_BACKWARD]


@pytest.mark.parametrize("case", [SeedCase(), SeedCase(input_shape=(5, 7), kernel_shape=(2, 3), n_out=3, batch=3,
                                                       reduction="mean", dtype="float32")], ids=str)
def test_a_wrong_dH1_dZ1_shows_on_its_own_row(case):
    def wrong_dH1_dZ1(H1, Z1):  # sigma'(Z1) taken as H1 alone: the (1 - H1) forgotten
        return H1.reshape(Z1.shape)

    rows = _rows(case, {"dH1_dZ1": wrong_dH1_dZ1})
    verdict = {r.name: r.passed for r in rows}
    names = [r.name for r in rows]
    assert [n for n in names if not verdict[n]] == ["dH1/dZ1", "dE/dZ1", "dE/df"]
    assert all(verdict[n] for n in names[:names.index("dH1/dZ1")])  # everything before it agrees
    assert verdict["dE/dW"] and verdict["dE/db"]  # the other branch of the chain is untouched
    assert all(r.passed for r in _rows(case))


def test_the_reported_factors_are_the_ones_multiplied():
    X, Y, params = SeedCase(batch=3, n_out=2).inputs()
    g = seed_network.backward(X, Y, params, seed_network.forward(X, params, Y))
    np.testing.assert_array_equal(g["dE_dZ2"], g["dE_dO"] * g["dO_dZ2"])
    np.testing.assert_array_equal(g["dE_dH1"], g["dE_dZ2"] @ g["dZ2_dH1"])
    np.testing.assert_array_equal(g["dE_dZ1"], g["dE_dH1"].reshape(g["dH1_dZ1"].shape) * g["dH1_dZ1"])
    np.testing.assert_array_equal(g["dE_dW"], g["dZ2_dW"].T @ g["dE_dZ2"])
    np.testing.assert_array_equal(g["dE_db"], g["dE_dZ2"].sum(axis=0))
    assert_close(g["dE_df"], np.tensordot(g["dE_dZ1"], g["dZ1_df"], 3), "dE/df = dE/dZ1 . dZ1/df")


def test_every_equation_is_called_by_name_and_can_be_swapped():
    """backward reads EQUATIONS | wrong for each of its factors: swapping one name changes that factor alone."""
    X, Y, params = SeedCase().inputs()
    values = seed_network.forward(X, params, Y)
    real = seed_network.backward(X, Y, params, values)
    assert set(seed_network.EQUATIONS) == set(real) == set(SEED_BACKWARD)
    for name, equation in seed_network.EQUATIONS.items():
        def doubled(*args, equation=equation):
            return 2 * equation(*args)
        changed = seed_network.backward(X, Y, params, values, wrong={name: doubled})
        np.testing.assert_array_equal(changed[name], 2 * real[name])


SLIDES_FILE = pathlib.Path(seed_network.__file__)


@pytest.mark.parametrize("word", ["strides", "as_strided", "np.ndarray(", "view(", "itemsize", "stride_tricks"])
def test_the_slides_file_has_no_stride_arithmetic(word):
    assert word not in SLIDES_FILE.read_text()


def test_backward_never_indexes_a_cache_by_position():
    """backward reads forward's values by name (values["H1"]), never a cache, never by position."""
    tree = ast.parse(SLIDES_FILE.read_text())
    backward = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "backward")
    assert "cache" not in ast.unparse(backward)
    for node in ast.walk(backward):
        if isinstance(node, ast.Subscript):
            assert isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str), ast.unparse(node)
        assert not isinstance(node, ast.Starred), ast.unparse(node)  # no unpacking of a tuple by position
        if isinstance(node, ast.Assign) and not isinstance(node.value, ast.Tuple):  # a, b = x, y names both
            assert all(isinstance(t, (ast.Name, ast.Subscript)) for t in node.targets), ast.unparse(node)


def test_the_reduction_is_sum_unless_told_and_no_other_word_is_taken():
    """forward, backward, train and training reduce E by "sum" when no reduction is given, as the slides' E is the
    batch's summed half squared error (autograd of the sum reduction is the judge, on a batch of 4 where the mean
    differs); a reduction other than "sum" or "mean" is refused by name, never read as "sum"."""
    X, Y, params = SeedCase(input_shape=(5, 5), kernel_shape=(2, 2), n_out=2, batch=4, seed=SEED_BASE).inputs()
    values, grads = reference_net.run(X, params, Y, reduction="sum")
    manual_values = seed_network.forward(X, params, Y)
    assert_close(manual_values["E"], values["E"], "E")
    manual_grads = seed_network.backward(X, Y, params, manual_values)
    for name in ("dE_dO", "dE_df", "dE_dW", "dE_db"):
        assert_close(manual_grads[name], grads[name], name)
    E, final = seed_network.train(X, Y, params, 0.1, 3)
    E_ref, final_ref = reference_net.train(X, Y, params, 0.1, 3, reduction="sum")
    assert_close(E, E_ref, "E per step")
    for name in final_ref:
        assert_close(final[name], final_ref[name], name)
    (E0, _, _), = seed_network.training([(X, Y)], params, 0.1)
    assert_close(E0, values["E"], "E of the first step")
    for call in (lambda: seed_network.forward(X, params, Y, "Sum"),
                 lambda: seed_network.backward(X, Y, params, manual_values, "total")):
        with pytest.raises(InputError, match=r"^reduction: got '(Sum|total)', needs one of sum, mean$"):
            call()
