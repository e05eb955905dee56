"""Feed-forward expert types: SwiGLU (Llama/Mixtral) and a GELU MLP.

What: the modules behind the built-in `swiglu` and `gelu` entries of `registry("experts")`.
An expert maps (N, D) -> (N, D); a MoE layer calls it only on the tokens routed to it, and a
dense model (num_experts=1) uses one as its MLP. Weights are ordinary 2-D `nn.Linear`s,
bias-free, named like Mixtral's experts (`w1` gate, `w3` up, `w2` down), so the `hf`
exporter maps them 1:1 and ONNX Runtime's int8 quantisation covers all of them.
References: Shazeer 2020 "GLU Variants Improve Transformer"; transformers
`MixtralBlockSparseTop2MLP` (v4 layout).

What it is not: no routing here (see `moe.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLUExpert(nn.Module):
    """w2(silu(w1 x) * w3 x): the Llama/Mixtral feed-forward block."""

    def __init__(self, hidden_dim: int, intermediate_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.w1 = nn.Linear(hidden_dim, intermediate_dim, bias=False)  # gate
        self.w3 = nn.Linear(hidden_dim, intermediate_dim, bias=False)  # up
        self.w2 = nn.Linear(intermediate_dim, hidden_dim, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N, D)
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class GeluExpert(nn.Module):
    """w2(gelu(w1 x)): the classic two-layer transformer MLP (tanh-free GELU)."""

    def __init__(self, hidden_dim: int, intermediate_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.w1 = nn.Linear(hidden_dim, intermediate_dim, bias=False)  # up
        self.w2 = nn.Linear(intermediate_dim, hidden_dim, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N, D)
        return self.w2(F.gelu(self.w1(x)))


__all__ = ["GeluExpert", "SwiGLUExpert"]
