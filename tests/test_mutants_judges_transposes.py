"""The judges' edges that a review of surviving mutants found unpinned: the "transposed" hypothesis on a 2-D
gradient tries the transpose a.T and a.T's values laid out in a's shape, each once; the swaps of the last two or
the first two axes are tried only from three axes on (on two axes both are a.T again, tried already)."""

import numpy as np
import pytest

from crosscheck.hypotheses import _transposes

A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


@pytest.mark.parametrize(("shape", "expected"), [
    ((3, 2), [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]),   # the transpose a.T, in the transposed shape
    ((2, 3), [[1.0, 4.0, 2.0], [5.0, 3.0, 6.0]]),     # a.T's values laid out in a's own shape
], ids=["transposed-shape", "own-shape"])
def test_a_2d_gradient_has_one_transposed_candidate_in_each_shape(shape, expected):
    m = np.zeros(shape)
    pairs = _transposes(m, A)
    assert len(pairs) == 1
    (actual, candidate), = pairs
    assert actual is m
    np.testing.assert_array_equal(candidate, expected)
