"""Grouped-query causal self-attention through `F.scaled_dot_product_attention`.

What: bias-free q/k/v/o projections named like Llama/Mixtral (`q_proj`, `k_proj`, `v_proj`,
`o_proj`), RoPE on queries and keys, `num_kv_heads` key/value heads shared by groups of
query heads. Keys/values come from one of three places:
- nothing (a full forward): attention over the current tokens only;
- a `StaticKVCache`: new keys/values are written in place, attention runs over the filled prefix;
- explicit past tensors (k, v), each (B, n_kv, P, hd): concatenated with the new ones and
  returned as the present (the export path; P may be 0).
Masks are built once per forward by `causal_mask()` and shared by all layers.
References: Ainslie et al. 2023 (GQA), transformers `modeling_llama.py`, nanochat `gpt.py`.

What it is not: no sliding window, no attention dropout, no bias terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from salesai.model.cache import StaticKVCache
from salesai.model.rope import apply_rope_rolled


def causal_mask(key_valid: torch.Tensor | None, q_len: int, k_len: int) -> torch.Tensor:
    """Boolean mask (B or 1, 1, q_len, k_len), True = may attend: causal AND key not padding.

    The queries are the last `q_len` of `k_len` positions. Every query may always attend to
    itself, so rows of padding queries are never fully masked (that would put NaNs into the
    padding positions' hidden states and, through 0 * NaN, into real tokens' outputs).
    """
    device = key_valid.device if key_valid is not None else None
    q_pos = torch.arange(k_len - q_len, k_len, device=device).unsqueeze(-1)  # (T, 1)
    k_pos = torch.arange(k_len, device=device).unsqueeze(0)  # (1, S)
    allowed = k_pos <= q_pos  # (T, S)
    if key_valid is None:
        return allowed[None, None]  # (1, 1, T, S)
    allowed = allowed[None, None] & key_valid[:, None, None, :].bool()  # (B, 1, T, S)
    return allowed | (k_pos == q_pos)[None, None]


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, n_kv, S, hd) -> (B, n_kv * n_rep, S, hd), each kv head repeated for its query group."""
    if n_rep == 1:
        return x
    b, n_kv, s, hd = x.shape
    return x[:, :, None].expand(b, n_kv, n_rep, s, hd).reshape(b, n_kv * n_rep, s, hd)


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                      n_rep: int) -> torch.Tensor:
    """Softmax attention for export: q (B, H, T, hd), k/v (B, KV, S, hd), mask (B or 1, 1, T, S) bool.

    The query heads of each key/value head are folded into the query axis, (B, KV, n_rep * T, hd),
    so keys and values are never repeated, and the softmax is written out with a constant scale:
    a handful of ONNX nodes per layer instead of ~50 (repeat_kv's shape arithmetic, SDPA's
    runtime scale and NaN guard). Every query row may attend to itself (`causal_mask`), so no
    row is fully masked. Returns (B, H, T, hd).
    """
    t, hd = q.shape[2], q.shape[3]
    n_kv = k.shape[1]
    qg = q.unflatten(1, (n_kv, n_rep)).flatten(2, 3) * (hd ** -0.5)  # heads kv*n_rep + r: groups
    scores = qg @ k.transpose(-1, -2)  # (B, KV, n_rep * T, S)
    bias = torch.zeros((), dtype=q.dtype).masked_fill(~mask, torch.finfo(q.dtype).min)  # (B|1, 1, T, S)
    scores = scores + bias.repeat(1, 1, n_rep, 1)  # the same mask for every query head of a group
    return (scores.softmax(-1) @ v).unflatten(2, (n_rep, t)).flatten(1, 2)


class Attention(nn.Module):
    """Causal GQA self-attention with RoPE; (B, T, D) -> (B, T, D)."""

    def __init__(self, hidden_dim: int, num_heads: int, num_kv_heads: int, layer_idx: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = hidden_dim // num_heads
        self.layer_idx = layer_idx
        self.q_proj = nn.Linear(hidden_dim, num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden_dim, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden_dim, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * self.head_dim, hidden_dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,  # signed_sin(sin): see rope.apply_rope_rolled
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: StaticKVCache | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        static: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Returns (output (B, T, D), present (k, v) each (B, n_kv, P+T, hd), or None with a cache)."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, hd)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, hd)
        q = apply_rope_rolled(q, cos, sin)
        k = apply_rope_rolled(k, cos, sin)
        present: tuple[torch.Tensor, torch.Tensor] | None = None
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # (B, KV, P+T, hd) views into the cache
        else:
            if past is not None:
                k = torch.cat((past[0], k), dim=2)  # (B, KV, P+T, hd)
                v = torch.cat((past[1], v), dim=2)
            present = (k, v)
        n_rep = self.num_heads // self.num_kv_heads
        if t == 1 and mask is None and not static:
            # one new token seeing every cached key (decoding): fold each query group into the
            # query-length axis, (B, H, 1, hd) -> (B, KV, n_rep, hd): no causal mask is needed
            y = F.scaled_dot_product_attention(q.reshape(b, self.num_kv_heads, n_rep, self.head_dim), k, v)
            y = y.reshape(b, 1, self.num_heads * self.head_dim)  # (B, 1, H * hd)
            return self.o_proj(y), present
        if static and mask is not None:  # export path: few graph nodes per layer (see grouped_attention)
            y = grouped_attention(q, k, v, mask, n_rep)
        elif static:
            y = F.scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep),
                                               attn_mask=mask, is_causal=is_causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                               enable_gqa=n_rep > 1)  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)  # (B, T, H * hd)
        return self.o_proj(y), present


__all__ = ["Attention", "causal_mask", "grouped_attention", "repeat_kv"]
