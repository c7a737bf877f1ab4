"""Proof that the comparisons catch wrong gradients: each deliberately wrong derivation in
crosscheck.catalogue.seed is reported, at the quantity it breaks first, and the report names what failed."""

import numpy as np
import pytest
from runs import seed_results

from crosscheck.catalogue import find
from crosscheck.catalogue import seed as wrong
from crosscheck.compare import assert_close, compare
from crosscheck.subjects import SeedCase, slide_name
from netdesc import InputError

# The entries that need no particular case (a mean reduction): each must show in every case.
EVERY_CASE = [e for e in wrong.ENTRIES if not e.case]
CASES = [
    SeedCase(),
    SeedCase(input_shape=(9, 14), kernel_shape=(2, 2), n_out=3, batch=16, seed=3, reduction="mean"),
    SeedCase(input_shape=(5, 3), kernel_shape=(3, 2), n_out=1, batch=1, seed=1),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("entry", EVERY_CASE, ids=str)
def test_wrong_derivation_is_caught_where_it_starts(entry, case):
    results = seed_results(case, entry.name, train=False)
    failed = [r for r in results if not r.passed]
    assert failed, f"{entry.name} went unnoticed in {case}"
    assert failed[0].name == slide_name(entry.first_wrong)
    # Everything computed before the wrong step still agrees.
    names = [r.name for r in results]
    assert all(r.passed for r in results[: names.index(failed[0].name)])


@pytest.mark.parametrize("entry", EVERY_CASE, ids=str)
def test_wrong_derivation_breaks_training(entry):
    results = seed_results(SeedCase(steps=5), entry.name)
    assert not results[-1].passed or not results[-2].passed or not results[-3].passed


def test_the_real_derivation_passes_the_same_cases():
    for case in CASES:
        assert all(r.passed for r in seed_results(case))


def test_scaled_by_one_plus_1e_minus_6_is_caught_in_float64():
    rng = np.random.default_rng(0)
    desired = rng.normal(size=(5, 4))
    result = compare("dE/dW", desired * (1 + 1e-6), desired)
    assert not result.passed
    assert result.max_rel_error == pytest.approx(1e-6, rel=1e-3)


def test_failure_message_names_case_quantity_index_values_and_errors():
    desired = np.array([[1.0, 2.0], [3.0, 4.0]])
    actual = desired.copy()
    actual[1, 0] = 3.5
    with pytest.raises(AssertionError) as info:
        assert_close(actual, desired, "dE/df", "8x8-k3-seed0")
    message = str(info.value)
    for part in ["case 8x8-k3-seed0", "dE/df", "index (1, 0)", "manual 3.5", "autograd 3.0",
                 "abs error 5.000e-01", "rel error 1.667e-01", "allowed 1e-12 + 1e-10"]:
        assert part in message


def test_transposed_gradient_is_reported_as_such():
    desired = np.arange(6.0).reshape(3, 2)
    result = compare("dE/dW", desired.T, desired)
    assert not result.passed
    assert "shape mismatch: manual (2, 3), autograd (3, 2); manual equals autograd transposed" in result.describe()


def test_shape_mismatch_without_transpose_hint():
    result = compare("dE/dW", np.zeros((2, 2)), np.ones((3, 2)))
    assert result.problem == "shape mismatch: manual (2, 2), autograd (3, 2)"


def test_dtype_promotion_is_a_mismatch():
    result = compare("dE/db", np.zeros(3, dtype=np.float64), np.zeros(3, dtype=np.float32))
    assert not result.passed and "dtype mismatch" in result.problem


def test_nan_never_passes():
    result = compare("O", np.array([0.5, np.nan]), np.array([0.5, 0.5]))
    assert not result.passed and result.worst_index == (1,)


def test_zero_where_autograd_is_zero_passes_and_reports_zero_error():
    result = compare("dZ1/df", np.zeros((2, 3)), np.zeros((2, 3)))
    assert result.passed and result.max_rel_error == 0.0


def test_empty_arrays_are_no_pass():
    """Zero elements compared is no evidence: never a pass, and the Comparison says so."""
    result = compare("empty", np.zeros((0, 3)), np.zeros((0, 3)))
    assert (result.passed, result.problem, result.compared, result.shape) == (
        False, "nothing to compare: 0 elements", 0, (0, 3))
    assert result.as_dict()["compared"] == 0
    assert compare("one", np.zeros(1), np.zeros(1)).as_dict()["compared"] == 1


def test_float32_tolerance_is_looser_but_not_blind():
    desired = np.linspace(-1, 1, 7, dtype=np.float32)
    assert compare("O", desired * np.float32(1 + 1e-6), desired).passed
    assert not compare("O", desired * np.float32(1 + 1e-3), desired).passed


def test_unknown_wrong_derivation_is_named():
    with pytest.raises(InputError, match=r"--inject: got 'nope', needs one of scaled-dE_dW, "):
        find("nope")
