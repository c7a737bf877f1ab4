"""manual/attention.py beyond the registry: every per-head intermediate of multi-head attention and its gradient
against autograd's (reference/attention.py, retain_grad), the mask conventions against torch's own modules, the
bad-input messages (asserted whole), and wrong derivations the registry's check reports."""

import re

import numpy as np
import pytest
import torch
from layer_cases import encoder_shapes, key_padding, mha, sdpa, torch_mha

from crosscheck import check_layer
from manual import attention as A
from netdesc import InputError
from reference.attention import QUANTITIES, multihead_attention_intermediates

DTYPES = ["float64", "float32"]
TOL = {"float64": 1e-12, "float32": 2e-5}


def _mha_inputs(rng, N, T, E, dtype, bias=True):
    x = rng.standard_normal((N, T, E))
    params = [rng.standard_normal((3 * E, E)) / 2, rng.standard_normal((E, E)) / 2]
    params += [rng.uniform(-0.1, 0.1, 3 * E), rng.uniform(-0.1, 0.1, E)] if bias else [None, None]
    return [None if a is None else a.astype(dtype) for a in (x, *params)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("heads", "causal", "padded", "bias"), [
    (1, False, False, True), (2, True, False, True), (2, False, True, False), (3, True, True, True)],
    ids=["1-head", "2-heads-causal", "2-heads-padded-no-bias", "3-heads-causal-padded"])
def test_every_per_head_intermediate_and_its_gradient_is_autograds(heads, causal, padded, bias, dtype):
    """The cache's q, k, v, scores, P, heads, merged and the *_backward_terms' dq, dk, dv, dscores, dP, dheads,
    dmerged, dqkv, dx and parameter gradients against autograd's on the same quantities built as torch ops: what a
    localization compares, head by head."""
    rng = np.random.default_rng(3)
    N, T, E = 3, 5, 6
    x, w_in, w_out, b_in, b_out = _mha_inputs(rng, N, T, E, dtype, bias)
    mask = key_padding(rng, (N, T)) if padded else None
    out, cache = A.multihead_attention_forward(x, w_in, w_out, b_in, b_out, mask, num_heads=heads, causal=causal)
    dout = rng.standard_normal(out.shape).astype(dtype)
    terms = A.multihead_attention_backward_terms(dout, cache)
    ref = multihead_attention_intermediates(x, w_in, w_out, b_in, b_out, mask, num_heads=heads, causal=causal,
                                            dout=dout)
    attention = cache["attention"]
    manual = {name: attention[name] for name in ("q", "k", "v", "scores", "P")}
    manual |= {name: cache[name] for name in ("qkv", "heads", "merged")} | {"out": out}
    manual |= {f"d{name}": terms[f"d{name}"] for name in QUANTITIES}
    manual |= {name: terms[name] for name in ("dx", "din_proj_weight", "dout_proj_weight")}
    if bias:
        manual |= {name: terms[name] for name in ("din_proj_bias", "dout_proj_bias")}
    assert manual.keys() <= ref.keys() and len(manual) == 20 + 2 * bias
    for name, value in manual.items():
        np.testing.assert_allclose(value, ref[name], rtol=TOL[dtype], atol=TOL[dtype], err_msg=name)
    # a masked score: weight 0 and no gradient, on both sides
    if causal:
        assert np.all(attention["P"][..., 0, 1:] == 0) and np.all(terms["dscores"][..., 0, 1:] == 0)


def test_the_per_head_decomposition_is_torchs_own_attention():
    """reference/attention.py's ops give what torch's F.multi_head_attention_forward gives: the intermediates are
    those of torch's layer, not of a second derivation."""
    rng = np.random.default_rng(0)
    x, w_in, w_out, b_in, b_out = _mha_inputs(rng, 2, 6, 4, "float64")
    mask = key_padding(rng, (2, 6))
    dout = rng.standard_normal(x.shape)
    ref = multihead_attention_intermediates(x, w_in, w_out, b_in, b_out, mask, num_heads=2, causal=True, dout=dout)
    tensors = [torch.from_numpy(a) for a in (x, w_in, w_out, b_in, b_out, mask)]
    np.testing.assert_allclose(ref["out"], torch_mha(*tensors, num_heads=2, causal=True).numpy(), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True], ids=["padded", "padded-causal"])
def test_masks_mean_what_nn_multihead_attention_means(causal, dtype):
    """nn.MultiheadAttention(batch_first=True) with need_weights=False, the key padding mask (True = padding) and
    torch's causal attn_mask (True = may not attend): the manual forward with the same masks, and the gradients."""
    rng = np.random.default_rng(1)
    N, T, E = 3, 5, 4
    x, w_in, w_out, b_in, b_out = _mha_inputs(rng, N, T, E, dtype)
    mask = key_padding(rng, (N, T))
    module = torch.nn.MultiheadAttention(E, 2, batch_first=True, dtype=getattr(torch, dtype))
    module.load_state_dict({"in_proj_weight": torch.from_numpy(w_in), "in_proj_bias": torch.from_numpy(b_in),
                            "out_proj.weight": torch.from_numpy(w_out), "out_proj.bias": torch.from_numpy(b_out)})
    tx = torch.from_numpy(x).requires_grad_()
    triangle = torch.ones((T, T), dtype=torch.bool).triu(1) if causal else None
    t_out, _ = module(tx, tx, tx, key_padding_mask=torch.from_numpy(mask), need_weights=False, attn_mask=triangle)
    out, cache = A.multihead_attention_forward(x, w_in, w_out, b_in, b_out, mask, num_heads=2, causal=causal)
    dout = rng.standard_normal(out.shape).astype(dtype)
    (t_dx,) = torch.autograd.grad(t_out, tx, torch.from_numpy(dout))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(A.multihead_attention_backward(dout, cache)[0], t_dx.numpy(), rtol=TOL[dtype],
                               atol=TOL[dtype])


def test_sdpa_takes_the_logical_not_of_torchs_scaled_dot_product_attention_mask():
    """The same pairs masked: manual's attn_mask True = masked out, F.scaled_dot_product_attention's True = takes
    part; handing torch the manual mask unchanged gives another answer."""
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    masked = ~np.eye(4, dtype=bool)  # each query may attend to its own key alone: out = v
    out, _ = A.scaled_dot_product_attention_forward(q, k, v, attn_mask=masked)
    np.testing.assert_allclose(out, v, rtol=1e-12, atol=0)
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    same = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(~masked))
    np.testing.assert_allclose(out, same.numpy(), rtol=1e-12, atol=1e-14)
    unchanged = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(masked))
    assert not np.allclose(out, unchanged.numpy())  # every key but its own


def test_merged_mask_of_every_kind():
    kpm = np.array([[False, False, True]])
    pairs = np.array([[False, True, False], [False, False, False]])
    assert A.attention_mask(1, 2, 3) is None
    np.testing.assert_array_equal(A.attention_mask(1, 2, 3, kpm, pairs, causal=True),
                                  [[[False, True, True], [False, False, True]]])


# --- wrong derivations: the registry's check reports the quantities they break ---------------------------------

def _failing(case, backward, dtype="float64"):
    result = check_layer(case.forward, backward, case.torch_fn, case.shapes, seeds=(0,), dtypes=(dtype,),
                         kwargs=case.options, differentiable=case.differentiable, input_factory=list(case.draw[
                             :len(case.shapes)]))
    return [row.quantity for row in result.failures]


def _without_row_sum(dout, cache):
    """The softmax's Jacobian as its diagonal alone: dscores = P * dP, the row-sum term left out."""
    P, q, k, v, scale = (cache[n] for n in ("P", "q", "k", "v", "scale"))
    dP = dout @ v.swapaxes(-1, -2)
    dscores = P * dP
    return (dscores @ k) * scale, (dscores.swapaxes(-1, -2) @ q) * scale, P.swapaxes(-1, -2) @ dout, None, None


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_backward_without_its_row_sum_is_reported_in_dq_and_dk(dtype):
    case = sdpa((2, 2, 5, 3), (2, 2, 5, 3), (2, 2, 5, 3), (2, 5), is_causal=True)
    assert _failing(case, case.backward, dtype) == []
    assert _failing(case, _without_row_sum, dtype) == ["dq", "dk"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_heads_merged_in_the_wrong_order_are_reported(dtype):
    """The per-head input gradients joined as (d, H) instead of (H, d): every gradient below the heads is wrong."""
    case = mha((2, 5, 4), (12, 4), (4, 4), (12,), (4,), num_heads=2)

    def wrong(dout, cache):
        right = A.merge_heads
        A.merge_heads = lambda x: x.transpose(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1)
        try:
            return A.multihead_attention_backward(dout, cache)
        finally:
            A.merge_heads = right

    assert _failing(case, wrong, dtype) == ["dx", "din_proj_weight", "din_proj_bias"]


# --- bad input: one InputError line naming the argument, what it got and what it needs ------------------------

Q = np.zeros((2, 2, 4, 3))
X = np.zeros((2, 4, 6))
W_IN, W_OUT = np.zeros((18, 6)), np.zeros((6, 6))
ENC = [np.zeros(s) for s in encoder_shapes(2, 4)]

BAD_INPUT = [
    ("q-2d", lambda: A.scaled_dot_product_attention_forward(Q[0, 0], Q[0, 0], Q[0, 0]),
     "q: got 2-D array of shape (4, 3), needs 3-D or 4-D"),
    ("k-features", lambda: A.scaled_dot_product_attention_forward(Q, Q[..., :2], Q),
     "k: got shape (2, 2, 4, 2), needs (2, 2, 4, 3) (the batch (and head) axes and the features d of q)"),
    ("v-keys", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q[:, :, :3]),
     "v: got shape (2, 2, 3, 3), needs (2, 2, 4, 3) (the batch (and head) axes and the keys S of k)"),
    ("mixed", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q.astype(np.float32)),
     "mixed dtypes: got q float64, k float64, v float32, needs one dtype (all float32 or all float64)"),
    ("is-causal", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q, is_causal=1),
     "is_causal: got 1, needs True or False"),
    ("mask-int", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q, np.zeros((2, 4), int)),
     "key_padding_mask: got dtype int64, needs a NumPy bool array (True = masked out, torch.nn.MultiheadAttention's "
     "convention)"),
    ("mask-list", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q, attn_mask=[[True]]),
     "attn_mask: got list, needs a NumPy bool array (True = masked out, torch.nn.MultiheadAttention's convention)"),
    ("mask-shape", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q, np.zeros((4, 2), bool)),
     "key_padding_mask: got shape (4, 2), needs (2, 4) ((N, S): True where a key is padding)"),
    ("pairs-shape", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q, attn_mask=np.zeros((4, 3), bool)),
     "attn_mask: got shape (4, 3), needs (4, 4) ((T, S): True where query t may not attend to key s)"),
    ("all-padding", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q, np.array([[1] * 4, [0] * 4], bool)),
     "key_padding_mask, attn_mask, causal: got every key masked out for query 0 of sample 0, needs at least one key "
     "to attend to (torch gives nan there)"),
    ("causal-padding", lambda: A.scaled_dot_product_attention_forward(Q, Q, Q, np.array([[0, 0, 0, 0], [1, 0, 0, 0]],
                                                                                         bool), is_causal=True),
     "key_padding_mask, attn_mask, causal: got every key masked out for query 0 of sample 1, needs at least one key "
     "to attend to (torch gives nan there)"),
    ("heads", lambda: A.multihead_attention_forward(X, W_IN, W_OUT, num_heads=4),
     "num_heads: got 4, needs a divisor of the 6 features of x (2, 4, 6)"),
    ("heads-0", lambda: A.multihead_attention_forward(X, W_IN, W_OUT, num_heads=0),
     "num_heads: got 0, needs an integer >= 1"),
    ("x-2d", lambda: A.multihead_attention_forward(X[0], W_IN, W_OUT, num_heads=2),
     "x: got 2-D array of shape (4, 6), needs 3-D"),
    ("in-proj", lambda: A.multihead_attention_forward(X, W_IN[:6], W_OUT, num_heads=2),
     "in_proj_weight: got shape (6, 6), needs (18, 6) (torch's layout for E = 6 features of x (2, 4, 6))"),
    ("out-bias", lambda: A.multihead_attention_forward(X, W_IN, W_OUT, np.zeros(18), np.zeros(18), num_heads=2),
     "out_proj_bias: got shape (18,), needs (6,) (torch's layout for E = 6 features of x (2, 4, 6))"),
    ("weight-dtype", lambda: A.multihead_attention_forward(X, W_IN, W_OUT.astype(np.float32), num_heads=2),
     "mixed dtypes: got x float64, in_proj_weight float64, out_proj_weight float32, needs one dtype (all float32 or "
     "all float64)"),
    ("causal", lambda: A.multihead_attention_forward(X, W_IN, W_OUT, num_heads=2, causal="yes"),
     "causal: got 'yes', needs True or False"),
    ("activation", lambda: A.transformer_encoder_layer_forward(*ENC, num_heads=2, activation="tanh"),
     "activation: got 'tanh', needs one of 'gelu', 'relu'"),
    ("eps", lambda: A.transformer_encoder_layer_forward(*ENC, num_heads=2, layer_norm_eps=0),
     "layer_norm_eps: got 0, needs a finite number > 0"),
    ("encoder-heads", lambda: A.transformer_encoder_layer_forward(*ENC, num_heads=3),
     "num_heads: got 3, needs a divisor of the 4 features of x (2, 4, 4)"),
    ("linear1-1d", lambda: A.transformer_encoder_layer_forward(*ENC[:5], ENC[6], *ENC[6:], num_heads=2),
     "linear1_weight: got 1-D array of shape (8,), needs 2-D"),
    ("linear2", lambda: A.transformer_encoder_layer_forward(*ENC[:7], ENC[7].T, *ENC[8:], num_heads=2),
     "linear2_weight: got shape (8, 4), needs (4, 8) (torch's layout for E = 4 features of x (2, 4, 4))"),
    ("norm2", lambda: A.transformer_encoder_layer_forward(*ENC[:11], ENC[2], ENC[12], num_heads=2),
     "norm2_weight: got shape (12,), needs (4,) (torch's layout for E = 4 features of x (2, 4, 4))"),
]


@pytest.mark.parametrize(("call", "message"), [b[1:] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_named(call, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call()


@pytest.mark.parametrize(("forward", "backward", "inputs", "options"), [
    (A.scaled_dot_product_attention_forward, A.scaled_dot_product_attention_backward, (Q, Q, Q), {}),
    (A.multihead_attention_forward, A.multihead_attention_backward, (X, W_IN, W_OUT), {"num_heads": 2}),
    (A.transformer_encoder_layer_forward, A.transformer_encoder_layer_backward, ENC, {"num_heads": 2}),
], ids=["sdpa", "multihead_attention", "transformer_encoder_layer"])
def test_bad_dout_is_named(forward, backward, inputs, options):
    out, cache = forward(*inputs, **options)
    with pytest.raises(InputError, match=r"^dout: got shape \(2, 4, 3\) dtype float64, needs an array of shape "):
        backward(np.zeros((2, 4, 3)), cache)
