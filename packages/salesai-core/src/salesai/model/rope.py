"""Rotary position embedding (RoPE) in the Llama "rotate_half" convention, plus RMSNorm.

What: a cos/sin table for every position up to `max_seq_len`, looked up by position ids,
and `apply_rope(x, cos, sin) = x * cos + rotate_half(x) * sin` where rotate_half pairs dim i
with dim i + head_dim/2 (not interleaved pairs). Frequencies are computed in float32 exactly
as transformers' `LlamaRotaryEmbedding`, so weights and logits map 1:1 onto HF Llama/Mixtral.
RMSNorm is the T5/Llama form `w * x / sqrt(mean(x^2) + eps)`, computed in float32.
References: Su et al. 2021 "RoFormer"; transformers `modeling_llama.py`.

What it is not: no scaling variants (NTK, YaRN): sequences are at most 2048 tokens.
Also home of `is_exporting()`, the one switch between eager and export-safe code paths.
"""

from __future__ import annotations

import torch
from torch import nn


def is_exporting() -> bool:
    """True under torch.onnx.export (either exporter), torch.export, jit tracing or torch.compile."""
    return bool(
        torch.onnx.is_in_onnx_export()
        or torch.compiler.is_exporting()
        or torch.compiler.is_compiling()
        or torch.jit.is_tracing()
    )


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (no mean subtraction, no bias), Llama/Mixtral layout."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        dtype = x.dtype
        if dtype == torch.float32:  # the same maths without two no-op conversions (decode speed)
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rope_table(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables of shape (max_len, head_dim), float32, HF-identical frequencies."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    pos = torch.arange(max_len, dtype=torch.int64).float()
    freqs = pos[:, None] * inv_freq[None, :]  # (max_len, head_dim / 2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (max_len, head_dim)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, hd) by cos/sin broadcastable to it, e.g. (B, 1, T, hd) or (T, hd)."""
    return x * cos + rotate_half(x) * sin


def signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """sin with its first half negated, for `apply_rope_rolled` (same maths, fewer ops)."""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def apply_rope_rolled(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """`apply_rope` as x * cos + roll(x, hd/2) * signed_sin: bit-identical, 4 kernels instead of 7."""
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * sin_signed


__all__ = [
    "RMSNorm", "apply_rope", "apply_rope_rolled", "is_exporting", "rope_table", "rotate_half", "signed_sin",
]
