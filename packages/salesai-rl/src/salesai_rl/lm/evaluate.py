"""Greedy evaluation of a policy on prompt records with the run's rewards.

`evaluate_rewards` completes every prompt greedily (temperature 0, batched through the KV-cache
engine) and returns the mean combined reward (`reward`, which is the accuracy for a 0/1 reward
such as exact-match) and each reward's mean (`rewards/NAME`). Unscorable completions are left
out of the means.
"""

from __future__ import annotations

import math
from typing import Any

from salesai_rl.lm.policy import encode_prompt, sample
from salesai_rl.lm.rewards import RewardSpec, score


def greedy_completions(
    model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, batch_size: int = 64
) -> list[str]:
    """Greedy completion text of each prompt (eos removed)."""
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        room = model.config.max_seq_len - max_new_tokens
        ids = [encode_prompt(tokenizer, p, room) for p in prompts[i:i + batch_size]]
        samples = sample(model, ids, max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id, temperature=0.0)
        out += [tokenizer.decode([t for t in c if t != tokenizer.eos_id]) for c in samples.completions]
    return out


def evaluate_rewards(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, Any]],
    rewards: list[RewardSpec],
    max_new_tokens: int = 32,
    source: str = "eval prompts",
) -> dict[str, Any]:
    """{"reward": mean combined reward, "rewards/NAME": ..., "n": number of prompts} of greedy completions."""
    texts = greedy_completions(model, tokenizer, [str(r["prompt"]) for r in records], max_new_tokens)
    scores, per_reward = score(rewards, records, texts, source)
    finite = [s for s in scores if not math.isnan(s)]
    result: dict[str, Any] = {"reward": sum(finite) / len(finite) if finite else None, "n": len(records)}
    result.update({f"rewards/{k}": (None if math.isnan(v) else v) for k, v in per_reward.items()})
    return result


__all__ = ["evaluate_rewards", "greedy_completions"]
