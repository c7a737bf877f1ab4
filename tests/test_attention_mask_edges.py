"""Corners of manual.attention.scaled_dot_product_attention_forward that tests/test_attention.py passes by: a k or
v that is not a float NumPy array of 3 or 4 axes is an InputError naming k or v (the messages asserted whole); the
softmax is shifted by each query's own maximum score, so a sample whose scores are far below another sample's
still matches torch (one shift for the whole array underflows it to 0 / 0); and the cache keeps the merged mask
under "mask", True exactly where torch's attention weight is 0, broadcast over the heads, None when nothing is
masked. Every numeric expectation comes from torch."""

import re

import numpy as np
import pytest
import torch

from manual import attention as A
from netdesc import InputError

BAD = [
    ("list", lambda a: a.tolist(), "got list, needs a NumPy array"),
    ("int", lambda a: a.astype(np.int64), "got dtype int64, needs float32 or float64"),
    ("2d", lambda a: a[0], "got 2-D array of shape (4, 3), needs 3-D or 4-D"),
]


@pytest.mark.parametrize(("bad", "problem"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_sdpa_names_the_argument_that_is_not_a_float_array(name, bad, problem):
    """q, k or v given as a list, as integers or with 2 axes is an InputError that starts with its own name."""
    args = {n: np.zeros((2, 4, 3)) for n in ("q", "k", "v")}
    args[name] = bad(args[name])
    with pytest.raises(InputError, match=f"^{re.escape(f'{name}: {problem}')}$"):
        A.scaled_dot_product_attention_forward(**args)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("heads", [False, True], ids=["no-head-axis", "head-axis"])
def test_softmax_is_shifted_by_each_querys_own_maximum(heads, dtype):
    """Sample 0's scores are in the thousands, sample 1's near 1: every query's softmax still equals
    F.scaled_dot_product_attention's, finite, in both samples (e^(1 - 2000) underflows to 0 in both dtypes)."""
    rng = np.random.default_rng(3)
    shape = (2, 2, 4, 3) if heads else (2, 4, 3)
    q, k, v = (rng.standard_normal(shape) for _ in range(3))
    q[0] *= 40
    k[0] *= 40
    q, k, v = (a.astype(dtype) for a in (q, k, v))
    expected = torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v))).numpy()
    assert np.isfinite(expected).all()
    out, _ = A.scaled_dot_product_attention_forward(q, k, v)
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("heads", [False, True], ids=["no-head-axis", "head-axis"])
def test_the_cache_keeps_the_merged_mask_where_torchs_weights_are_zero(heads):
    """With v = the identity over the keys, F.scaled_dot_product_attention's output is its attention weights P:
    cache["mask"], broadcast to P's shape, is True exactly where torch's P is 0, for key padding, pairs and the
    causal triangle together; without a mask cache["mask"] is None."""
    rng = np.random.default_rng(4)
    N, H, T, S, d = 2, 3, 4, 5, 3
    lead = (N, H) if heads else (N,)
    q, k = rng.standard_normal((*lead, T, d)), rng.standard_normal((*lead, S, d))
    v = np.broadcast_to(np.eye(S), (*lead, S, S)).copy()
    padding = np.array([[False] * 4 + [True], [False] * 3 + [True] * 2])
    pairs = np.array([[False, True, False, False, False], [False, False, False, True, False],
                      [False, False, True, False, False], [False, False, False, False, False]])
    out, cache = A.scaled_dot_product_attention_forward(q, k, v, padding, pairs, is_causal=True)

    t_padding = torch.from_numpy(padding)[:, None, :]
    if heads:
        t_padding = t_padding[:, None]
    masked = t_padding | torch.from_numpy(pairs) | torch.ones((T, S), dtype=torch.bool).triu(1)
    P = torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)),
                                                         attn_mask=~masked).numpy()
    np.testing.assert_allclose(out, P, rtol=1e-12, atol=1e-14)
    assert (P == 0).any() and (P > 0).any()
    np.testing.assert_array_equal(np.broadcast_to(cache["mask"], P.shape), P == 0)

    _, unmasked = A.scaled_dot_product_attention_forward(q, k, v)
    assert "mask" in unmasked and unmasked["mask"] is None
