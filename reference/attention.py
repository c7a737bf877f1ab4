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


def multihead_attention_intermediates(x, in_proj_weight, out_proj_weight, in_proj_bias=None, out_proj_bias=None,
                                      key_padding_mask=None, *, num_heads, causal=False, dout):
    """x (N, T, E) and nn.MultiheadAttention's parameters (NumPy), dout (N, T, E) the upstream gradient dE/dout of
    E = sum(dout * out) -> NumPy values by name: the forward's QUANTITIES and "out" (qkv (N, T, 3E); q, k, v, heads
    (N, H, T, d); scores, P (N, H, T, T); merged (N, T, E)), and dE/d of each of them and of every input as "d" + its
    name (dq, dscores, dP, ..., dx, din_proj_weight, dout_proj_bias)."""
    inputs = {"x": x, "in_proj_weight": in_proj_weight, "out_proj_weight": out_proj_weight,
              "in_proj_bias": in_proj_bias, "out_proj_bias": out_proj_bias}
    t = {name: torch.from_numpy(np.array(a)).requires_grad_() for name, a in inputs.items() if a is not None}
    N, T, E = x.shape
    H = num_heads
    d = E // H
    kept = {"qkv": functional.linear(t["x"], t["in_proj_weight"], t.get("in_proj_bias"))}
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
    out = functional.linear(kept["merged"], t["out_proj_weight"], t.get("out_proj_bias"))
    for value in kept.values():
        value.retain_grad()
    (out * torch.from_numpy(dout)).sum().backward()
    numpy = lambda a: a.detach().numpy()  # noqa: E731
    return ({name: numpy(v) for name, v in kept.items()} | {"out": numpy(out)}
            | {f"d{name}": numpy(v.grad) for name, v in (kept | t).items()})
