"""GRPO and DPO maths as pure tensor functions: advantages, the clipped surrogate, KL, DPO.

What: each function takes tensors and returns tensors, with no model or trainer inside, so
every formula has a hand-computed unit test and a parity test against TRL on the same
tensors (tests/test_lm_losses.py, tests/test_lm_trl_parity.py). Names and conventions follow
TRL's `GRPOTrainer._compute_loss` / `_generate_and_score_completions` and
`DPOTrainer._compute_loss` (TRL 1.16):
- advantages: reward minus its group mean (NaN-aware: an unscorable completion is left out
  of the baseline and gets advantage 0), divided by std + 1e-4 of the group (`"group"`), of
  the whole batch (`"batch"`), or not at all (`"none"`); std is the unbiased one (torch.std);
- surrogate: -min(r A, clip(r, 1 - eps, 1 + eps_high) A) per token, r = exp(logp - old_logp);
- KL: the k3 estimator exp(ref - logp) - (ref - logp) - 1 per token (Schulman 2020);
- aggregation (`loss_type`): `"token"` = sum over every completion token of the batch /
  their count (TRL "bnpo", and "dapo" on one process), `"sequence"` = mean over sequences of
  each sequence's token mean (TRL "grpo"), `"dr_grpo"` = sum / (batch * max_completion_length);
- DPO (sigmoid): -logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), mean over pairs.
References: Shao et al. 2024 (GRPO), Yu et al. 2025 (DAPO, clip-higher, token-level loss),
Liu et al. 2025 (Dr. GRPO), Rafailov et al. 2023 (DPO).

What it is not: sampling, rewards, optimisation (see `grpo.py`, `dpo.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SCALE_REWARDS = ("group", "batch", "none")
LOSS_TYPES = ("token", "sequence", "dr_grpo")


def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased standard deviation ignoring NaNs (TRL's `nanstd`)."""
    mean = torch.nanmean(x, dim=dim, keepdim=dim is not None)
    sq = (x - mean) ** 2
    count = (~torch.isnan(x)).sum(dim=dim) if dim is not None else (~torch.isnan(x)).sum()
    var = torch.nansum(sq, dim=dim) / (count - 1).clamp_min(1)
    return var.sqrt()


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group"
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO advantages from rewards (N,) laid out group by group (N = groups * group_size).

    Returns (advantages (N,), zero_std (N,) bool: the reward std used for scaling, or the group's
    when `scale="none"`, is 0, i.e. the completion carries no learning signal). NaN rewards
    (every reward returned None) are left out of mean and std and get advantage 0.
    """
    if scale not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards {scale!r}: expected one of {', '.join(SCALE_REWARDS)}")
    grouped = rewards.view(-1, group_size)  # (G, n)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)  # (N,)
    if scale == "batch":
        std = _nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    elif group_size > 1:
        std = _nanstd(grouped, dim=1).repeat_interleave(group_size)  # (N,)
    else:
        std = torch.zeros_like(rewards)
    advantages = rewards - mean
    if scale != "none":
        advantages = advantages / (std + 1e-4)
    zero_std = torch.isclose(std, torch.zeros_like(std))
    return torch.nan_to_num(advantages, nan=0.0), zero_std


def batch_mean_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a batch-mean baseline: reward - mean(rewards), NaN-aware, unscaled. (N,) -> (N,)."""
    return torch.nan_to_num(rewards - torch.nanmean(rewards), nan=0.0)


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1 >= 0. (B, T)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


@dataclass
class SurrogateStats:
    """Per-step diagnostics of the clipped surrogate, as masked means over completion tokens."""

    clip_low: float  # share of tokens with ratio < 1 - eps and negative advantage
    clip_high: float  # share with ratio > 1 + eps_high and positive advantage
    clip_region: float  # either
    kl: float | None  # mean k3 KL, when a reference is given


def clipped_surrogate(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO/GRPO loss -min(r A, clip(r) A) and the ratio r.

    logps, old_logps (B, T); advantages (B,) or (B, T). Returns (loss (B, T), ratio (B, T)).
    """
    high = epsilon if epsilon_high is None else epsilon_high
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages  # (B, 1) or (B, T)
    ratio = torch.exp(logps - old_logps)  # (B, T)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + high)
    return -torch.min(ratio * adv, clipped * adv), ratio


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, loss_type: str = "token", max_completion_length: int = 0
) -> torch.Tensor:
    """Reduce a per-token loss (B, T) over the completion mask (B, T) to a scalar; see module docstring."""
    mask = mask.to(per_token.dtype)
    if loss_type == "token":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    if loss_type == "sequence":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dr_grpo":
        if max_completion_length <= 0:
            raise ValueError("loss_type dr_grpo needs max_completion_length > 0")
        return (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)
    raise ValueError(f"loss_type {loss_type!r}: expected one of {', '.join(LOSS_TYPES)}")


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logps: torch.Tensor | None = None,
    loss_type: str = "token",
    max_completion_length: int = 0,
) -> tuple[torch.Tensor, SurrogateStats]:
    """The GRPO policy loss of completions (B, T) with advantages (B,), plus beta * k3 KL when beta > 0.

    Same value and gradient as TRL's `GRPOTrainer._compute_loss` (token-level importance
    sampling, no entropy bonus) for loss types bnpo (= "token"), grpo (= "sequence") and dr_grpo.
    """
    per_token, ratio = clipped_surrogate(logps, old_logps, advantages, epsilon, epsilon_high)
    kl = None
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta != 0 needs ref_logps")
        per_token_kl = k3_kl(logps, ref_logps)
        per_token = per_token + beta * per_token_kl
        kl = per_token_kl.detach()
    loss = aggregate(per_token, mask, loss_type, max_completion_length)
    with torch.no_grad():
        adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
        high = epsilon if epsilon_high is None else epsilon_high
        low_c = (ratio < 1 - epsilon) & (adv < 0)
        high_c = (ratio > 1 + high) & (adv > 0)
        m = mask.to(ratio.dtype)
        n = m.sum().clamp(min=1.0)

        def mean(x: torch.Tensor) -> float:
            return float((x.to(m.dtype) * m).sum() / n)

        kl_mean = None if kl is None else mean(kl)
        stats = SurrogateStats(mean(low_c), mean(high_c), mean(low_c | high_c), kl_mean)
    return loss, stats


def dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO loss from summed sequence log-probs (P,) of the policy and the reference.

    Returns (loss scalar, chosen rewards (P,), rejected rewards (P,)), rewards = beta * log-ratio, detached.
    """
    chosen_logratios = chosen_logps - ref_chosen_logps  # (P,)
    rejected_logratios = rejected_logps - ref_rejected_logps
    loss = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios)).mean()
    return loss, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def chosen_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token NLL of the chosen half of a [chosen; rejected] batch: logps, mask (2P, T) -> scalar."""
    chosen, _ = logps.chunk(2)
    chosen_mask, _ = mask.chunk(2)
    return -chosen[chosen_mask.bool()].mean()


__all__ = [
    "LOSS_TYPES",
    "SCALE_REWARDS",
    "SurrogateStats",
    "aggregate",
    "batch_mean_advantages",
    "chosen_nll",
    "clipped_surrogate",
    "dpo_loss",
    "group_advantages",
    "grpo_loss",
    "k3_kl",
]
