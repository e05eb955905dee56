"""The `relu2` expert type: w2(relu(w1 x)^2), a squared-ReLU feed-forward block.

Reference: So et al. 2021, "Primer: Searching for Efficient Transformers for Language
Modeling" (arXiv:2109.08668), which found squared ReLU a strong feed-forward activation.
What it is not: a gated unit (no third matrix, unlike SwiGLU).
"""

from __future__ import annotations

import torch
from torch import nn


class ReLU2Expert(nn.Module):
    """(N, hidden_dim) -> (N, hidden_dim), row by row, no bias (Llama-style)."""

    def __init__(self, hidden_dim: int, intermediate_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(hidden_dim, intermediate_dim, bias=False)  # up projection
        self.w2 = nn.Linear(intermediate_dim, hidden_dim, bias=False)  # down projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.w1(x)).square()  # (N, intermediate_dim)
        return self.w2(h)  # (N, hidden_dim)
