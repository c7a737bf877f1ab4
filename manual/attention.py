"""Attention as forward/backward pairs in torch's layouts (NumPy only): scaled dot-product attention, multi-head
self-attention in torch.nn.MultiheadAttention's parameter layout, and a pre-norm transformer encoder layer, the
layer torch.nn.TransformerEncoderLayer(norm_first=True, dropout=0, batch_first=True) computes.

Shape letters are torch's: N the batch, H the heads, T the queries (the sequence), S the keys, E the features of
the model, d = E / H the features of one head, F dim_feedforward.

Masks are bool arrays in torch.nn.MultiheadAttention's convention: True = masked out, the position takes no part.
attn_mask (T, S): query t may not attend to key s; key_padding_mask (N, S): key s of sample n is padding; causal
(torch's is_causal): query t may not attend to a later key s > t, the upper triangle. Beware:
torch.nn.functional.scaled_dot_product_attention reads a bool attn_mask the other way round (True = takes part);
its mask is the logical not of these. A query whose keys are all masked out is an InputError (torch gives nan).

The caches are dicts naming the derivation's quantities, per head where there are heads (q, k, v, scores, P, ...),
and each backward has a ``*_backward_terms`` twin returning every intermediate gradient by name: a wrong derivation
can be traced to the head and the quantity where it leaves autograd.
"""

import math

import numpy as np

from manual import functional as F
from manual.functional import _check_dout
from netdesc.checks import (
    InputError,
    check_float_array,
    check_number,
    check_positive_int,
    check_same_dtype,
    check_shape,
)

__all__ = [
    "ACTIVATIONS", "attention_mask", "merge_heads", "multihead_attention_backward",
    "multihead_attention_backward_terms",
    "multihead_attention_forward", "scaled_dot_product_attention_backward",
    "scaled_dot_product_attention_backward_terms", "scaled_dot_product_attention_forward", "split_heads",
    "transformer_encoder_layer_backward", "transformer_encoder_layer_backward_terms",
    "transformer_encoder_layer_forward",
]


# --- masks -----------------------------------------------------------------------------------------------------

def _check_mask(name, mask, shape, meaning):
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        got = f"dtype {mask.dtype}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise InputError(f"{name}: got {got}, needs a NumPy bool array (True = masked out, torch.nn."
                         "MultiheadAttention's convention)")
    check_shape(name, mask, shape, meaning)


def attention_mask(N, T, S, key_padding_mask=None, attn_mask=None, causal=False):
    """The masks given, merged -> bool (N, T, S), True where query t of sample n may not attend to key s, or None
    when nothing is masked. InputError when a query has no key left to attend to."""
    if key_padding_mask is None and attn_mask is None and not causal:
        return None
    masked = np.zeros((N, T, S), dtype=bool)
    if key_padding_mask is not None:
        _check_mask("key_padding_mask", key_padding_mask, (N, S), "(N, S): True where a key is padding")
        masked |= key_padding_mask[:, None, :]
    if attn_mask is not None:
        _check_mask("attn_mask", attn_mask, (T, S), "(T, S): True where query t may not attend to key s")
        masked |= attn_mask
    if causal:
        masked |= np.triu(np.ones((T, S), dtype=bool), k=1)
    empty = np.argwhere(masked.all(axis=-1))
    if empty.size:
        n, t = (int(i) for i in empty[0])
        raise InputError(f"key_padding_mask, attn_mask, causal: got every key masked out for query {t} of sample {n}, "
                         "needs at least one key to attend to (torch gives nan there)")
    return masked


# --- scaled dot-product attention ------------------------------------------------------------------------------

def scaled_dot_product_attention_forward(q, k, v, key_padding_mask=None, attn_mask=None, *, is_causal=False):
    """softmax(q k^T / sqrt(d), masked) v, torch.nn.functional.scaled_dot_product_attention with the masks of
    this module's convention (True = masked out).

    q (N, H, T, d) or (N, T, d), k (N, H, S, d) or (N, S, d), v (N, H, S, dv) or (N, S, dv) -> out (N, H, T, dv)
    or (N, T, dv); key_padding_mask (N, S), attn_mask (T, S), is_causal: the upper triangle masked.
    scores = q k^T / sqrt(d); a masked score is -inf, so its softmax weight P is 0; P = softmax(scores) along the
    keys, shifted by the row's maximum so that nothing overflows; out = P v.
    """
    q, k, v = (check_float_array(name, a, ndim=(3, 4)) for name, a in (("q", q), ("k", k), ("v", v)))
    check_same_dtype(q=q, k=k, v=v)
    *lead, T, d = q.shape
    S = k.shape[-2]
    check_shape("k", k, (*lead, S, d), "the batch (and head) axes and the features d of q")
    check_shape("v", v, (*lead, S, v.shape[-1]), "the batch (and head) axes and the keys S of k")
    if S == 0:  # a softmax over no keys has no value
        raise InputError(f"k: got shape {k.shape}, needs at least one key (S >= 1)")
    if not isinstance(is_causal, bool):
        raise InputError(f"is_causal: got {is_causal!r}, needs True or False")
    masked = attention_mask(q.shape[0], T, S, key_padding_mask, attn_mask, is_causal)
    if masked is not None and q.ndim == 4:
        masked = masked[:, None]  # one mask for every head
    scale = 1 / math.sqrt(d)
    scores = (q @ k.swapaxes(-1, -2)) * scale
    logits = scores if masked is None else np.where(masked, -np.inf, scores)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    P = e / e.sum(axis=-1, keepdims=True)
    out = P @ v
    return out, {"q": q, "k": k, "v": v, "scale": scale, "mask": masked, "scores": scores, "P": P}


def scaled_dot_product_attention_backward_terms(dout, cache):
    """Every gradient of the derivation, by name: dv = P^T dout; dP = dout v^T; dscores = P * (dP - sum_s dP * P),
    the softmax's Jacobian diag(P) - P P^T applied row by row (its row-sum form; a masked score, a constant -inf,
    gets P = 0 and so no gradient); dq = dscores k / sqrt(d); dk = dscores^T q / sqrt(d)."""
    q, k, v, P, scale = cache["q"], cache["k"], cache["v"], cache["P"], cache["scale"]
    dout = _check_dout(dout, (*q.shape[:-1], v.shape[-1]), q.dtype)
    dv = P.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
    dq = (dscores @ k) * scale
    dk = (dscores.swapaxes(-1, -2) @ q) * scale
    return {"dv": dv, "dP": dP, "dscores": dscores, "dq": dq, "dk": dk}


def scaled_dot_product_attention_backward(dout, cache):
    """-> (dq, dk, dv, None, None): the masks are data, no gradient."""
    g = scaled_dot_product_attention_backward_terms(dout, cache)
    return g["dq"], g["dk"], g["dv"], None, None


# --- multi-head self-attention ------------------------------------------------------------------------------------

def split_heads(x, num_heads):
    """(N, T, E) -> (N, H, T, d): head h takes features h*d .. (h+1)*d - 1, as torch splits them."""
    N, T, E = x.shape
    return x.reshape(N, T, num_heads, E // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(N, H, T, d) -> (N, T, H*d), split_heads undone: head h back at features h*d .. (h+1)*d - 1."""
    N, H, T, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(N, T, H * d)


def _linear_forward(x, w, b):
    """torch's nn.Linear on the last axis of x (N, T, in): the rows of all N*T positions at once -> (N, T, out)."""
    N, T, _ = x.shape
    y, cache = F.linear_forward(x.reshape(N * T, -1), w, b)
    return y.reshape(N, T, -1), cache


def _linear_backward(dy, cache):
    """-> (dx (N, T, in), dw, db), linear_backward over the N*T rows."""
    N, T, _ = dy.shape
    dx, dw, db = F.linear_backward(dy.reshape(N * T, -1), cache)
    return dx.reshape(N, T, -1), dw, db


def _check_params(x, params):
    """params: {name: (array or None, shape)}; each given one a float array of `shape` and x's dtype."""
    arrays = {"x": x}
    for name, (value, shape) in params.items():
        if value is not None:
            arrays[name] = check_float_array(name, value)
            check_shape(name, value, shape, f"torch's layout for E = {x.shape[-1]} features of x {x.shape}")
    check_same_dtype(**arrays)


def _heads(num_heads, E, x):
    H = check_positive_int("num_heads", num_heads)
    if E % H:
        raise InputError(f"num_heads: got {H}, needs a divisor of the {E} features of x {x.shape}")
    return H


def multihead_attention_forward(x, in_proj_weight, out_proj_weight, in_proj_bias=None, out_proj_bias=None,
                                key_padding_mask=None, *, num_heads, causal=False):
    """Self-attention as torch.nn.MultiheadAttention(E, num_heads, batch_first=True)(x, x, x, need_weights=False)
    computes it: x (N, T, E) -> out (N, T, E).

    in_proj_weight (3E, E) and in_proj_bias (3E,) hold the projections of q, k and v in that order; out_proj_weight
    (E, E), out_proj_bias (E,); a bias may be None (bias=False). [q | k | v] = x W_in^T + b_in; each split into H
    heads of d = E / H features (split_heads); per head, scaled dot-product attention with the masks
    (key_padding_mask (N, T); causal); the heads merged back (merge_heads), then out = merged W_out^T + b_out.
    """
    x = check_float_array("x", x, ndim=3)
    N, T, E = x.shape
    if min(N, T, E) == 0:  # as the recurrent layers: no sample, position or feature to attend over
        raise InputError(f"x: got shape {x.shape}, needs at least one sample, one position and one feature")
    H = _heads(num_heads, E, x)
    _check_params(x, {"in_proj_weight": (in_proj_weight, (3 * E, E)), "out_proj_weight": (out_proj_weight, (E, E)),
                      "in_proj_bias": (in_proj_bias, (3 * E,)), "out_proj_bias": (out_proj_bias, (E,))})
    if not isinstance(causal, bool):
        raise InputError(f"causal: got {causal!r}, needs True or False")
    qkv, in_proj = _linear_forward(x, in_proj_weight, in_proj_bias)
    q, k, v = (split_heads(a, H) for a in np.split(qkv, 3, axis=-1))
    heads, attention = scaled_dot_product_attention_forward(q, k, v, key_padding_mask, is_causal=causal)
    merged = merge_heads(heads)
    out, out_proj = _linear_forward(merged, out_proj_weight, out_proj_bias)
    # qkv (N, T, 3E); per head: attention's q, k, v, scores, P (N, H, ...); heads = P v (N, H, T, d)
    return out, {"qkv": qkv, "in_proj": in_proj, "attention": attention, "heads": heads, "merged": merged,
                 "out_proj": out_proj, "num_heads": H}


def multihead_attention_backward_terms(dout, cache):
    """Every gradient of the derivation, by name, the forward read backwards: through the output projection
    ("dmerged", "dout_proj_weight", "dout_proj_bias"), the heads split again ("dheads" (N, H, T, d)), each head's
    attention (scaled_dot_product_attention_backward_terms: "dv", "dP", "dscores", "dq", "dk", per head), the heads'
    q, k, v merged and joined in the input projection's order ("dqkv" (N, T, 3E)), through it ("dx",
    "din_proj_weight", "din_proj_bias")."""
    x_rows = cache["in_proj"][0]
    dout = _check_dout(dout, cache["merged"].shape, x_rows.dtype)
    dmerged, dout_proj_weight, dout_proj_bias = _linear_backward(dout, cache["out_proj"])
    dheads = split_heads(dmerged, cache["num_heads"])
    terms = scaled_dot_product_attention_backward_terms(dheads, cache["attention"])
    dqkv = np.concatenate([merge_heads(terms[name]) for name in ("dq", "dk", "dv")], axis=-1)
    dx, din_proj_weight, din_proj_bias = _linear_backward(dqkv, cache["in_proj"])
    return {"dmerged": dmerged, "dout_proj_weight": dout_proj_weight, "dout_proj_bias": dout_proj_bias,
            "dheads": dheads, **terms, "dqkv": dqkv, "dx": dx, "din_proj_weight": din_proj_weight,
            "din_proj_bias": din_proj_bias}


def multihead_attention_backward(dout, cache):
    """-> (dx, din_proj_weight, dout_proj_weight, din_proj_bias, dout_proj_bias, None): the forward's inputs in
    order, None for a bias left out and for the mask."""
    g = multihead_attention_backward_terms(dout, cache)
    return g["dx"], g["din_proj_weight"], g["dout_proj_weight"], g["din_proj_bias"], g["dout_proj_bias"], None


# --- the pre-norm transformer encoder layer -------------------------------------------------------------------

ACTIVATIONS = {"gelu": (F.gelu_forward, F.gelu_backward), "relu": (F.relu_forward, F.relu_backward)}


def transformer_encoder_layer_forward(x, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias,
                                      linear1_weight, linear1_bias, linear2_weight, linear2_bias, norm1_weight,
                                      norm1_bias, norm2_weight, norm2_bias, key_padding_mask=None, *, num_heads,
                                      activation="gelu", layer_norm_eps=1e-5, causal=False):
    """torch.nn.TransformerEncoderLayer(E, num_heads, F, dropout=0, activation, layer_norm_eps, batch_first=True,
    norm_first=True): x (N, T, E) -> out (N, T, E), the parameters in its state_dict's order (self_attn.in_proj_weight
    ... norm2.bias, the dots as underscores, "self_attn." left out):

        h = x + SA(LN1(x))                     SA: multihead_attention_forward with the masks
        out = h + linear2(act(linear1(LN2(h))))    act: gelu (erf) or relu

    linear1_weight (F, E), linear1_bias (F,), linear2_weight (E, F), linear2_bias (E,), the norms' (E,).
    """
    x = check_float_array("x", x, ndim=3)
    E = x.shape[-1]
    _heads(num_heads, E, x)
    ff = check_float_array("linear1_weight", linear1_weight, ndim=2).shape[0]  # dim_feedforward
    _check_params(x, {"linear1_weight": (linear1_weight, (ff, E)), "linear1_bias": (linear1_bias, (ff,)),
                      "linear2_weight": (linear2_weight, (E, ff)), "linear2_bias": (linear2_bias, (E,)),
                      **{name: (value, (E,)) for name, value in (("norm1_weight", norm1_weight),
                                                                   ("norm1_bias", norm1_bias),
                                                                   ("norm2_weight", norm2_weight),
                                                                   ("norm2_bias", norm2_bias))}})
    if activation not in ACTIVATIONS:
        raise InputError(f"activation: got {activation!r}, needs one of {', '.join(map(repr, ACTIVATIONS))}")
    eps = check_number("layer_norm_eps", layer_norm_eps, "a finite number > 0", minimum=np.finfo(np.float64).tiny)
    a, norm1 = F.layer_norm_forward(x, norm1_weight, norm1_bias, normalized_shape=(E,), eps=eps)
    sa, attention = multihead_attention_forward(a, in_proj_weight, out_proj_weight, in_proj_bias, out_proj_bias,
                                                key_padding_mask, num_heads=num_heads, causal=causal)
    h = x + sa
    b, norm2 = F.layer_norm_forward(h, norm2_weight, norm2_bias, normalized_shape=(E,), eps=eps)
    z, linear1 = _linear_forward(b, linear1_weight, linear1_bias)
    g, act = ACTIVATIONS[activation][0](z)
    f, linear2 = _linear_forward(g, linear2_weight, linear2_bias)
    return h + f, {"norm1": norm1, "self_attn": attention, "h": h, "norm2": norm2, "linear1": linear1,
                   "activation": (activation, act), "linear2": linear2}


def transformer_encoder_layer_backward_terms(dout, cache):
    """Every gradient by name, the forward read backwards: the feed-forward block ("dlinear2_in" = d act(...),
    "dlinear1_out" = d linear1(...), "dnorm2_out"), h's two paths summed ("dh" = dout through the residual + through
    LN2), the attention block ("self_attn": multihead_attention_backward_terms, per head) and x's two paths ("dx" =
    dh through the residual + through LN1); the parameters' under their forward names with a d."""
    h = cache["h"]
    dout = _check_dout(dout, h.shape, h.dtype)
    dlinear2_in, dlinear2_weight, dlinear2_bias = _linear_backward(dout, cache["linear2"])
    activation, act = cache["activation"]
    (dlinear1_out,) = ACTIVATIONS[activation][1](dlinear2_in, act)
    dnorm2_out, dlinear1_weight, dlinear1_bias = _linear_backward(dlinear1_out, cache["linear1"])
    dh_ff, dnorm2_weight, dnorm2_bias = F.layer_norm_backward(dnorm2_out, cache["norm2"])
    dh = dout + dh_ff
    attention = multihead_attention_backward_terms(dh, cache["self_attn"])
    dx_attn, dnorm1_weight, dnorm1_bias = F.layer_norm_backward(attention["dx"], cache["norm1"])
    return {"dlinear2_in": dlinear2_in, "dlinear2_weight": dlinear2_weight, "dlinear2_bias": dlinear2_bias,
            "dlinear1_out": dlinear1_out, "dlinear1_weight": dlinear1_weight, "dlinear1_bias": dlinear1_bias,
            "dnorm2_out": dnorm2_out, "dnorm2_weight": dnorm2_weight, "dnorm2_bias": dnorm2_bias, "dh": dh,
            "self_attn": attention, "dnorm1_weight": dnorm1_weight, "dnorm1_bias": dnorm1_bias, "dx": dh + dx_attn}


def transformer_encoder_layer_backward(dout, cache):
    """-> one gradient per forward input, in order: dx, then the 12 parameters' (state_dict order), None for the
    mask."""
    g = transformer_encoder_layer_backward_terms(dout, cache)
    a = g["self_attn"]
    return (g["dx"], a["din_proj_weight"], a["din_proj_bias"], a["dout_proj_weight"], a["dout_proj_bias"],
            g["dlinear1_weight"], g["dlinear1_bias"], g["dlinear2_weight"], g["dlinear2_bias"], g["dnorm1_weight"],
            g["dnorm1_bias"], g["dnorm2_weight"], g["dnorm2_bias"], None)
