"""The judges' edges that a review of surviving mutants found unpinned: the "transposed" hypothesis on a 2-D
gradient tries the transpose a.T and a.T's values laid out in a's shape, each once; the swaps of the last two or
the first two axes are tried only from three axes on (on two axes both are a.T again, tried already)."""

import numpy as np

from crosscheck.hypotheses import _transposes

A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_a_2d_gradients_transpose_is_the_one_candidate_in_the_transposed_shape():
    m = np.zeros((3, 2))
    pairs = _transposes(m, A)
    assert len(pairs) == 1
    (actual, expected), = pairs
    assert actual is m
    np.testing.assert_array_equal(expected, [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]])


def test_a_2d_gradients_values_laid_out_transposed_are_the_one_candidate_in_its_own_shape():
    m = np.zeros((2, 3))
    pairs = _transposes(m, A)
    assert len(pairs) == 1
    (actual, expected), = pairs
    assert actual is m
    np.testing.assert_array_equal(expected, [[1.0, 4.0, 2.0], [5.0, 3.0, 6.0]])
