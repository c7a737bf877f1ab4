"""Deliberately wrong derivations of attention (manual.attention) on a small described network (NumPy only): each
replaces the backward of a multihead_attention layer (by layer index) with one step of it wrong, or its forward and
backward consistently with its mask misplaced; crosscheck.diagnose names the first row it breaks and the class
crosscheck.hypotheses gives it (each hypothesis built by autograd through the same mistake)."""

import numpy as np

from crosscheck.catalogue import WrongDerivation
from crosscheck.catalogue.layers import FLAT, _linear, _stack
from manual import attention as A

# --- attention: multi-head self-attention with one step of its backward (or its mask) wrong -------------------

def _mha_backward_with(terms=A.scaled_dot_product_attention_backward_terms, merge=A.merge_heads):
    """multihead_attention's backward (manual/network's order: dx, in_proj_weight, in_proj_bias, out_proj.weight,
    out_proj.bias) with each head's attention backward `terms` and the merge of the heads' dq, dk, dv `merge`; its
    ``terms`` attribute gives every gradient by name, as manual.attention.multihead_attention_backward_terms names
    them (crosscheck.diagnose localizes a mistake inside the layer with it)."""
    def named(dout, cache):
        dmerged, dout_proj_weight, dout_proj_bias = A._linear_backward(dout, cache["out_proj"])
        dheads = A.split_heads(dmerged, cache["num_heads"])
        t = terms(dheads, cache["attention"])
        dqkv = np.concatenate([merge(t[name]) for name in ("dq", "dk", "dv")], axis=-1)
        dx, din_proj_weight, din_proj_bias = A._linear_backward(dqkv, cache["in_proj"])
        return {"dmerged": dmerged, "dout_proj_weight": dout_proj_weight, "dout_proj_bias": dout_proj_bias,
                "dheads": dheads, **t, "dqkv": dqkv, "dx": dx, "din_proj_weight": din_proj_weight,
                "din_proj_bias": din_proj_bias}

    def backward(dout, cache):
        g = named(dout, cache)
        return tuple(g[name] for name in ("dx", "din_proj_weight", "din_proj_bias", "dout_proj_weight",
                                          "dout_proj_bias") if g[name] is not None)
    backward.terms = named
    return backward


def _no_row_sum_terms(dout, cache):
    t = A.scaled_dot_product_attention_backward_terms(dout, cache)
    dscores = cache["P"] * t["dP"]  # the softmax's Jacobian diag(P) alone: - P * sum(dP * P) left out
    return t | {"dscores": dscores, "dq": (dscores @ cache["k"]) * cache["scale"],
                "dk": (dscores.swapaxes(-1, -2) @ cache["q"]) * cache["scale"]}


def _unscaled_terms(dout, cache):
    t = A.scaled_dot_product_attention_backward_terms(dout, cache)
    return t | {"dq": t["dscores"] @ cache["k"], "dk": t["dscores"].swapaxes(-1, -2) @ cache["q"]}  # no 1/sqrt(d)


def _heads_merged_transposed(x):
    """(N, H, T, d) -> (N, T, d*H): feature h*d + j of head h put at j*H + h, the two axes merged the wrong way."""
    N, H, T, d = x.shape
    return x.transpose(0, 2, 3, 1).reshape(N, T, d * H)


def _mha_mask_after_softmax_forward(x, p, o):
    """The mask applied to the probabilities: P = softmax(scores) over every key, then 0 where masked (causal)."""
    _, cache = A.multihead_attention_forward(x, p["in_proj_weight"], p["out_proj.weight"], p.get("in_proj_bias"),
                                             p.get("out_proj.bias"), num_heads=o["num_heads"])  # no mask: S
    attention, T = cache["attention"], x.shape[1]
    keep = ~np.triu(np.ones((T, T), bool), 1)
    heads = (attention["P"] * keep) @ attention["v"]
    merged = A.merge_heads(heads)
    out, out_proj = A._linear_forward(merged, p["out_proj.weight"], p.get("out_proj.bias"))
    return out, cache | {"attention": attention | {"keep": keep}, "heads": heads, "merged": merged,
                         "out_proj": out_proj}


def _mask_after_softmax_terms(dout, cache):
    """The true backward of _mha_mask_after_softmax_forward's attention: consistent with it, only its forward wrong."""
    S, keep, q, k, v, scale = (cache[n] for n in ("P", "keep", "q", "k", "v", "scale"))
    dP = dout @ v.swapaxes(-1, -2)
    dS = dP * keep
    dscores = S * (dS - (dS * S).sum(axis=-1, keepdims=True))
    return {"dv": (S * keep).swapaxes(-1, -2) @ dout, "dP": dP, "dscores": dscores, "dq": (dscores @ k) * scale,
            "dk": (dscores.swapaxes(-1, -2) @ q) * scale}


# self-attention on sequences (T 5, E 4) of 2 heads of d = 2, causal
ATTENTION = _stack((5, 4), [{"type": "multihead_attention", "num_heads": 2, "causal": True}, FLAT, _linear(3)])

ENTRIES = [
    WrongDerivation("attention-softmax-no-row-sum", "multi-head attention: dscores = P * dP, the softmax's backward "
                    "without its row-sum term - P * sum(dP * P)", ATTENTION, "0 multihead_attention: dE/dinput",
                    "softmax-diagonal", {0: _mha_backward_with(_no_row_sum_terms)}),
    WrongDerivation("attention-mask-after-softmax", "causal multi-head attention: the softmax taken over every key and "
                    "the later keys' probabilities then set to 0, where their scores must be -inf before it; the "
                    "backward is this forward's own", ATTENTION, "0 multihead_attention: output", "mask-after-softmax",
                    {0: _mha_backward_with(_mask_after_softmax_terms)}, {0: _mha_mask_after_softmax_forward}),
    WrongDerivation("attention-scale-forgotten", "multi-head attention: dq = dscores k and dk = dscores^T q, the "
                    "forward's 1/sqrt(d) left out of the backward", ATTENTION, "0 multihead_attention: dE/dinput",
                    "attention-scale", {0: _mha_backward_with(_unscaled_terms)}),
    WrongDerivation("attention-heads-merged-wrong", "multi-head attention with 2 heads: each head's dq, dk, dv merged "
                    "back as (d, H) instead of (H, d), feature h*d + j of head h put at j*H + h", ATTENTION,
                    "0 multihead_attention: dE/dinput", "heads-order",
                    {0: _mha_backward_with(merge=_heads_merged_transposed)}),
]
