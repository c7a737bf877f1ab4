"""The seed network over the grid: manual/ against reference/, quantity by quantity, in the slides' order."""

import itertools

import pytest

from crosscheck.compare import assert_close
from crosscheck.seed_check import SeedCase, one_step_pairs, slide_name, training_pairs

INPUT_SHAPES = [(2, 2), (5, 3), (6, 6), (9, 14), (28, 20), (32, 32)]
KERNELS = [1, 2, 3, 5, "input"]  # "input": the filter as large as the image, a 1x1 output
N_OUTS = [1, 3]
BATCHES = [1, 4, 16]
REDUCTIONS = ["sum", "mean"]
DTYPES = ["float64", "float32"]
SEEDS = range(5)


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
    for name, manual, autograd in one_step_pairs(case):
        assert_close(manual, autograd, slide_name(name), case, case.dtype)


@pytest.mark.training
@pytest.mark.parametrize("case", TRAINING, ids=str)
def test_training_run_matches_autograd(case):
    """50 SGD steps on a fixed batch: E at every step and the parameters at the end."""
    for name, manual, autograd in training_pairs(case):
        assert_close(manual, autograd, slide_name(name), case, case.dtype)


def test_grid_is_big_enough():
    assert len(GRID) >= 1000
    assert len(TRAINING) >= 100
    assert {c.kernel_shape for c in GRID if c.kernel_shape == c.input_shape} >= {(2, 2), (5, 3), (32, 32)}
