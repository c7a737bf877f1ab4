"""Multi-head self-attention by autograd, its intermediates built as separate torch ops and kept (retain_grad), so
that a derivation can be compared with autograd head by head and quantity by quantity. Nothing is differentiated by
hand: every gradient here is autograd's, and the output is checked against torch's own
F.multi_head_attention_forward (the function nn.MultiheadAttention runs) in tests/test_attention.py.

Masks in torch.nn.MultiheadAttention's convention (True = masked out): key_padding_mask (N, T), causal the upper
triangle.
"""

import math

import numpy as np
import torch
from torch.nn import functional

# the forward's quantities kept, per head where there are heads, under manual.attention's cache names
QUANTITIES = ("qkv", "q", "k", "v", "scores", "P", "heads", "merged")


def _attention(x, t, kept, num_heads, key_padding_mask, causal):
    """Self-attention on the tensor x (N, T, E) with the parameter tensors t (in_proj_weight, ...), its QUANTITIES
    put into `kept` -> the output tensor."""
    N, T, E = x.shape
    H = num_heads
    d = E // H
    kept["qkv"] = functional.linear(x, t["in_proj_weight"], t.get("in_proj_bias"))
    # q, k, v: (N, T, E) each, split into heads (N, H, T, d): head h the features h*d .. (h+1)*d - 1
    for name, part in zip(("q", "k", "v"), kept["qkv"].chunk(3, dim=-1), strict=True):
        kept[name] = part.reshape(N, T, H, d).transpose(1, 2)
    kept["scores"] = kept["q"] @ kept["k"].transpose(-1, -2) / math.sqrt(d)
    masked = torch.zeros((N, 1, T, T), dtype=torch.bool)
    if key_padding_mask is not None:
        masked = masked | torch.from_numpy(key_padding_mask)[:, None, None, :]
    if causal:
        masked = masked | torch.ones((T, T), dtype=torch.bool).triu(1)
    kept["P"] = torch.softmax(kept["scores"].masked_fill(masked, -torch.inf), dim=-1)
    kept["heads"] = kept["P"] @ kept["v"]
    kept["merged"] = kept["heads"].transpose(1, 2).reshape(N, T, E)
    return functional.linear(kept["merged"], t["out_proj_weight"], t.get("out_proj_bias"))


def _leaves(arrays):
    return {name: torch.from_numpy(np.array(a)).requires_grad_() for name, a in arrays.items() if a is not None}


def _numpy(t):
    return t.detach().numpy()


def multihead_attention_intermediates(x, in_proj_weight, out_proj_weight, in_proj_bias=None, out_proj_bias=None,
                                      key_padding_mask=None, *, num_heads, causal=False, dout):
    """x (N, T, E) and nn.MultiheadAttention's parameters (NumPy), dout (N, T, E) the upstream gradient dE/dout of
    E = sum(dout * out) -> NumPy values by name: the forward's QUANTITIES and "out" (qkv (N, T, 3E); q, k, v, heads
    (N, H, T, d); scores, P (N, H, T, T); merged (N, T, E)), and dE/d of each of them and of every input as "d" + its
    name (dq, dscores, dP, ..., dx, din_proj_weight, dout_proj_bias)."""
    t = _leaves({"x": x, "in_proj_weight": in_proj_weight, "out_proj_weight": out_proj_weight,
                 "in_proj_bias": in_proj_bias, "out_proj_bias": out_proj_bias})
    kept = {}
    out = _attention(t["x"], t, kept, num_heads, key_padding_mask, causal)
    for value in kept.values():
        value.retain_grad()
    (out * torch.from_numpy(dout)).sum().backward()
    return ({name: _numpy(v) for name, v in kept.items()} | {"out": _numpy(out)}
            | {f"d{name}": _numpy(v.grad) for name, v in (kept | t).items()})


def transformer_encoder_intermediates(x, params, *, num_heads, activation="gelu", layer_norm_eps=1e-5, causal=False,
                                      dout):
    """nn.TransformerEncoderLayer(norm_first=True, dropout=0)'s computation as torch ops: x (N, T, E), params its
    state_dict ("self_attn.in_proj_weight", ..., "norm2.bias"; NumPy), dout the upstream gradient -> NumPy values:
    "h" = x + SA(LN1(x)), "out", and the gradients "dlinear2_in" (of act(linear1(...))), "dlinear1_out", "dnorm2_out",
    "dh" (both its paths), "dx"; "self_attn": multihead_attention_intermediates' names for the attention, whose input
    is LN1(x) (its "dx": dE/d LN1(x))."""
    t = _leaves({"x": x} | {name.removeprefix("self_attn.").replace(".", "_"): a for name, a in params.items()})
    E = x.shape[-1]
    attention = {}
    a = functional.layer_norm(t["x"], (E,), t["norm1_weight"], t["norm1_bias"], layer_norm_eps)
    h = t["x"] + _attention(a, t, attention, num_heads, None, causal)
    b = functional.layer_norm(h, (E,), t["norm2_weight"], t["norm2_bias"], layer_norm_eps)
    z = functional.linear(b, t["linear1_weight"], t["linear1_bias"])
    g = getattr(functional, activation)(z)
    out = h + functional.linear(g, t["linear2_weight"], t["linear2_bias"])
    kept = {"norm1_out": a, "h": h, "norm2_out": b, "linear1_out": z, "linear2_in": g}
    for value in (kept | attention).values():
        value.retain_grad()
    (out * torch.from_numpy(dout)).sum().backward()
    return ({name: _numpy(v) for name, v in kept.items()} | {"out": _numpy(out), "dx": _numpy(t["x"].grad)}
            | {f"d{name}": _numpy(v.grad) for name, v in kept.items()}
            | {"self_attn": {name: _numpy(v) for name, v in attention.items()}
               | {f"d{name}": _numpy(v.grad) for name, v in attention.items()} | {"dx": _numpy(a.grad)}})
