"""Sparse Mixture-of-Experts feed-forward layer: router, dropless dispatch, auxiliary losses.

What: `MoE` = a linear router `gate` (D -> E, bias-free, Mixtral's name) whose logits go
through a float32 softmax, top-k and renormalisation; every token is processed by exactly
its k experts (dropless, no capacity factor), each expert running only on its own tokens;
optional DeepSeekMoE shared experts run on every token and are added unweighted.

Two dispatch paths with identical maths (for any token, contributions are added in
ascending expert order):
- eager: sort the (token, slot) assignments by expert, read the per-expert counts with
  `.tolist()`, run only the experts that received tokens, `index_add_` the weighted outputs
  back. A single token (batch-1 decoding) skips the sort and calls its k experts directly.
- static (under `torch.onnx.export`, `torch.export`, jit tracing, `torch.compile`, or when
  `static_dispatch=True`): a loop over ALL experts; the tokens routed to expert e are
  selected with `nonzero`, run, scaled and `index_add_`-ed back. No `.tolist()` and no Python
  branch on tensor values, so one graph serves every routing, batch and sequence length.

Losses (pure functions, known-value tests in tests/test_model.py):
- `load_balancing_loss`: Switch Transformer eq. 4-6, `E * sum_e f_e * P_e`, where f_e is
  the share of the N*k routing assignments that went to expert e and P_e the mean router
  probability of e; padding tokens are excluded. Perfect balance gives 1.0, everything on
  one expert gives E. (transformers' Mixtral reports k times this value.)
- `router_z_loss`: ST-MoE eq. 5, mean over tokens of logsumexp(router_logits)^2.

Expert usage: per-expert assignment counts are accumulated in plain Python counters (not
in the state_dict) for every non-padding token routed in eager mode (training, evaluation,
generation); `usage()` reports shares, balance and utilisation; `reset_usage()` clears.

References: Fedus et al. 2021 (Switch), Zoph et al. 2022 (ST-MoE), Dai et al. 2024
(DeepSeekMoE), transformers `modeling_mixtral.py`. What it is not: no expert parallelism,
no capacity dropping, no router jitter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def route(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Router logits (N, E) -> (probs (N, E) fp32, weights (N, k) fp32 renormalised, indices (N, k))."""
    probs = F.softmax(logits.float(), dim=-1)  # (N, E)
    weights, indices = torch.topk(probs, top_k, dim=-1)  # (N, k)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return probs, weights, indices


def load_balancing_loss(
    probs: torch.Tensor, indices: torch.Tensor, token_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Switch load-balancing loss E * sum_e f_e * P_e (1.0 when perfectly balanced).

    probs: (N, E) router softmax; indices: (N, k) chosen experts; token_mask: (N,), 1 = real token.
    """
    num_experts = probs.shape[-1]
    top_k = indices.shape[-1]
    assigned = F.one_hot(indices, num_experts).sum(dim=1).float()  # (N, E), 0/1 per expert
    if token_mask is None:
        n = float(probs.shape[0])
        f = assigned.sum(0) / (n * top_k)  # (E,) share of assignments
        p = probs.float().sum(0) / n  # (E,) mean probability
    else:
        m = token_mask.reshape(-1, 1).float()  # (N, 1)
        n_valid = m.sum().clamp_min(1.0)
        f = (assigned * m).sum(0) / (n_valid * top_k)
        p = (probs.float() * m).sum(0) / n_valid
    return num_experts * torch.sum(f * p)


def router_z_loss(logits: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """ST-MoE router z-loss: mean over (real) tokens of logsumexp(logits)^2. logits: (N, E)."""
    z = torch.logsumexp(logits.float(), dim=-1).pow(2)  # (N,)
    if token_mask is None:
        return z.mean()
    m = token_mask.reshape(-1).float()
    return (z * m).sum() / m.sum().clamp_min(1.0)


def usage_summary(counts: list[float]) -> dict[str, Any]:
    """Share per expert, balance (normalised entropy, 1.0 = uniform), utilisation (share of experts used)."""
    total = float(sum(counts))
    n = len(counts)
    share = [c / total if total else 0.0 for c in counts]
    entropy = -sum(s * math.log(s) for s in share if s > 0)
    balance = entropy / math.log(n) if n > 1 and total else (1.0 if total else 0.0)
    used = sum(1 for c in counts if c > 0)
    return {
        "assignments": int(total),
        "share": share,
        "balance": balance,
        "min_max_ratio": (min(counts) / max(counts)) if total else 0.0,
        "utilisation": used / n,
    }


class MoE(nn.Module):
    """Router + `num_experts` experts (+ optional shared experts); (B, T, D) -> (B, T, D)."""

    def __init__(
        self,
        hidden_dim: int,
        intermediate_dim: int,
        num_experts: int,
        top_k: int,
        expert_factory: Callable[[int, int], nn.Module],
        shared_dim: int = 0,
    ) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.top_k = top_k
        self.gate = nn.Linear(hidden_dim, num_experts, bias=False)  # router
        self.experts = nn.ModuleList(expert_factory(hidden_dim, intermediate_dim) for _ in range(num_experts))
        self.shared_expert = expert_factory(hidden_dim, shared_dim) if shared_dim else None
        self.static_dispatch = False  # force the export-safe loop over all experts
        self.track_usage = True
        self._counts: list[float] = [0.0] * num_experts

    # -- usage -----------------------------------------------------------------------------
    def usage(self) -> dict[str, Any]:
        return usage_summary(self._counts)

    def reset_usage(self) -> None:
        self._counts = [0.0] * self.num_experts

    # -- forward ---------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        compute_aux: bool = False,
        static: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """x (B, T, D); token_mask (B*T,) 1 = real token. Returns (y, load-balance loss, z-loss)."""
        shape = x.shape
        h = x.reshape(-1, shape[-1])  # (N, D)
        logits = self.gate(h)  # (N, E)
        probs, weights, indices = route(logits, self.top_k)
        weights = weights.to(h.dtype)
        if static or self.static_dispatch:
            y = self._dispatch_static(h, weights, indices)
        elif h.shape[0] == 1:
            y = self._dispatch_one(h, weights, indices, token_mask)
        else:
            y = self._dispatch_sorted(h, weights, indices, token_mask)
        if self.shared_expert is not None:
            y = y + self.shared_expert(h)
        lb = z = None
        if compute_aux:
            lb = load_balancing_loss(probs, indices, token_mask)
            z = router_z_loss(logits, token_mask)
        return y.reshape(shape), lb, z

    def _dispatch_one(
        self, h: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, token_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """One token (batch-1 decoding): call its k experts directly, ascending expert order."""
        pairs = sorted(zip(indices[0].tolist(), weights[0].tolist(), strict=True))
        if self.track_usage and (token_mask is None or bool(token_mask[0])):
            for e, _ in pairs:
                self._counts[e] += 1
        y = self.experts[pairs[0][0]](h) * pairs[0][1]
        for e, w in pairs[1:]:
            y = y + self.experts[e](h) * w
        return y

    def _dispatch_sorted(
        self, h: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, token_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Sort assignments by expert; run each expert that has tokens on exactly those tokens."""
        flat = indices.reshape(-1)  # (N*k,)
        order = torch.argsort(flat, stable=True)  # (N*k,) assignments grouped by expert
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()
        if self.track_usage:
            if token_mask is None:
                used = counts
            else:
                m = token_mask.reshape(-1).to(torch.float32).repeat_interleave(self.top_k)  # (N*k,)
                used = torch.bincount(flat, weights=m, minlength=self.num_experts).tolist()
            self._counts = [a + b for a, b in zip(self._counts, used, strict=True)]
        token = order // self.top_k  # (N*k,) token of each sorted assignment
        w = weights.reshape(-1)[order].unsqueeze(-1)  # (N*k, 1)
        xs = h[token]  # (N*k, D)
        out = torch.zeros_like(h)
        start = 0
        for e, c in enumerate(counts):
            if c == 0:
                continue
            end = start + c
            y = self.experts[e](xs[start:end]) * w[start:end]  # (c, D)
            out.index_add_(0, token[start:end], y)
            start = end
        return out

    def _dispatch_static(self, h: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Export-safe: every expert, each on the tokens routed to it (possibly none)."""
        out = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            token, slot = torch.nonzero(indices == e, as_tuple=True)  # (n_e,), (n_e,)
            y = expert(h[token]) * weights[token, slot].unsqueeze(-1)  # (n_e, D)
            out.index_add_(0, token, y)
        return out


__all__ = ["MoE", "load_balancing_loss", "route", "router_z_loss", "usage_summary"]
