"""GRPO (and REINFORCE with a batch-mean baseline) for salesai checkpoints, MoE included.

One step, top to bottom (`GRPOTrainer.step`):
1. take `prompts_per_step` prompt records (each epoch a fresh seeded permutation, so a step's
   prompts depend only on (seed, step) and a resumed run continues exactly);
2. sample `group_size` completions of each through the core's batched KV-cache engine;
3. score them with the rewards (weighted sum; None = no opinion) and turn the scores into
   advantages: group-normalised for GRPO (`scale_rewards` group / batch / none), reward minus
   the batch mean for `estimator="reinforce"`;
4. for `num_iterations` passes: per-token log-probs of the completions under the policy (in
   micro-batches), clipped-ratio loss (epsilon, epsilon_high) aggregated token-level by
   default, + beta * k3 KL to the frozen reference when beta > 0, + the model's MoE
   load-balancing loss; clip gradients, AdamW step;
5. log reward mean/std (and per reward), share of zero-variance groups, KL, entropy,
   completion length, truncation ratio, clip ratios, to OUT/metrics.jsonl.
The loss maths lives in `losses.py`; sampling and log-probs in `policy.py`; checkpoints in `runs.py`.
References: TRL `GRPOTrainer` (1.16), DeepSeekMath (Shao et al. 2024), DAPO (Yu et al. 2025).

What it is not: distributed, vLLM-backed or multimodal; fp32 on CPU or one device.
"""

from __future__ import annotations

import copy
import functools
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from salesai.errors import SalesAIError
from salesai_rl.lm import losses, runs
from salesai_rl.lm.policy import Batch, completion_logprobs, encode_prompt, pad_pairs, sample
from salesai_rl.lm.rewards import RewardSpec, score


@dataclass
class GRPOConfig:
    """Hyper-parameters of a GRPO run (TRL's names where they exist)."""

    steps: int = 400  # optimizer steps (each on a freshly sampled batch)
    prompts_per_step: int = 8  # prompts sampled per step
    group_size: int = 8  # completions per prompt (TRL num_generations)
    max_new_tokens: int = 32  # completion length cap (TRL max_completion_length)
    temperature: float = 1.0  # sampling temperature; log-probs use the same
    top_k: int | None = None
    top_p: float | None = None
    lr: float = 1e-5  # AdamW learning rate (constant after warmup)
    warmup_steps: int = 0  # linear warmup
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0 = no clipping
    epsilon: float = 0.2  # lower clip: ratio >= 1 - epsilon
    epsilon_high: float | None = None  # upper clip (DAPO clip-higher); None = epsilon
    beta: float = 0.0  # k3 KL coefficient; > 0 loads a frozen reference copy
    scale_rewards: str = "group"  # group | batch | none
    loss_type: str = "token"  # token (TRL bnpo/dapo) | sequence (TRL grpo) | dr_grpo
    estimator: str = "grpo"  # grpo | reinforce (batch-mean baseline, no std scaling)
    num_iterations: int = 1  # policy updates per sampled batch (TRL mu)
    micro_batch_size: int = 0  # rows per forward/backward; 0 = the whole step
    save_every: int = 100  # checkpoint every N steps (and at the end)
    keep_last: int = 2  # checkpoints kept
    eval_every: int = 0  # greedy evaluation on eval prompts every N steps (0 = start and end only)
    seed: int = 0

    def validate(self) -> GRPOConfig:
        positive = ("steps", "prompts_per_step", "group_size", "max_new_tokens", "num_iterations")
        for name in positive:
            if getattr(self, name) < 1:
                raise SalesAIError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.estimator == "grpo" and self.group_size < 2:
            raise SalesAIError("group_size=1: GRPO needs at least 2 completions per prompt")
        if self.scale_rewards not in losses.SCALE_REWARDS:
            raise SalesAIError(f"scale_rewards={self.scale_rewards!r}: expected group, batch or none")
        if self.loss_type not in losses.LOSS_TYPES:
            raise SalesAIError(f"loss_type={self.loss_type!r}: expected token, sequence or dr_grpo")
        if self.estimator not in ("grpo", "reinforce"):
            raise SalesAIError(f"estimator={self.estimator!r}: expected grpo or reinforce")
        if not (self.lr > 0 and self.temperature > 0 and self.epsilon > 0 and self.beta >= 0):
            raise SalesAIError("lr, temperature and epsilon must be > 0, beta >= 0")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GRPOConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


Log = Callable[[str], None]


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return tuple(order)


def epoch_indices(n: int, k: int, step: int, seed: int) -> list[int]:
    """k indices out of n for `step`: every index once per epoch, each epoch a seeded permutation."""
    return [_permutation(n, seed, i // n)[i % n] for i in range(step * k, (step + 1) * k)]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


class GRPOTrainer(runs.CheckpointedRun):
    """GRPO on a SalesAIModel with a prompt set and rewards; `train()` runs, `step()` does one step."""

    kind = "grpo"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        records: list[dict[str, Any]],
        rewards: list[RewardSpec],
        config: GRPOConfig,
        out_dir: str | Path | None = None,
        *,
        ref_model: Any = None,
        eval_records: list[dict[str, Any]] | None = None,
        source: str = "prompts",
        run_info: dict[str, Any] | None = None,
        log: Log | None = _stderr,
        progress: bool = False,
    ) -> None:
        if not records:
            raise SalesAIError(f"{source}: no prompt records")
        if config.max_new_tokens >= model.config.max_seq_len:
            raise SalesAIError(f"max_new_tokens={config.max_new_tokens}: expected fewer than the model's "
                               f"max_seq_len={model.config.max_seq_len}")
        self.model, self.tokenizer, self.records = model, tokenizer, records
        self.rewards, self.config = rewards, config.validate()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.eval_records, self.source = eval_records, source
        self.run_info = run_info or {}
        self.log, self.progress = log or (lambda _msg: None), progress
        self.ref_model = None
        if config.beta > 0:  # the reference is loaded only when the KL term is on
            self.ref_model = ref_model if ref_model is not None else copy.deepcopy(model)
            self.ref_model.eval().requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.step_count = 0
        self.metrics: runs.Metrics | None = None

    # -- the step --------------------------------------------------------------------------
    def _prompt_indices(self, step: int) -> list[int]:
        """Record indices of a step: position step*k.. in the concatenation of seeded epoch permutations."""
        return epoch_indices(len(self.records), self.config.prompts_per_step, step, self.config.seed)

    def step(self) -> dict[str, Any]:
        """Sample, score, update once; returns the step's metrics (also written to metrics.jsonl)."""
        cfg, tok, model = self.config, self.tokenizer, self.model
        start = time.perf_counter()
        chosen = [self.records[i] for i in self._prompt_indices(self.step_count)]
        rows = [r for r in chosen for _ in range(cfg.group_size)]  # group by group
        room = model.config.max_seq_len - cfg.max_new_tokens
        prompt_ids = [encode_prompt(tok, str(r["prompt"]), room) for r in rows]
        samples = sample(model, prompt_ids, max_new_tokens=cfg.max_new_tokens, eos_id=tok.eos_id,
                         temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                         seed=cfg.seed * 7919 + self.step_count)
        texts = [tok.decode([t for t in c if t != tok.eos_id]) for c in samples.completions]
        scores, per_reward = score(self.rewards, rows, texts, self.source)  # raises before any update
        rewards = torch.tensor(scores, dtype=torch.float32)  # (N,), NaN = unscorable
        if cfg.estimator == "grpo":
            advantages, zero_std = losses.group_advantages(rewards, cfg.group_size, cfg.scale_rewards)
        else:
            advantages = losses.batch_mean_advantages(rewards)
            _, zero_std = losses.group_advantages(rewards, cfg.group_size, "none")
        batch = pad_pairs(prompt_ids, samples.completions, tok.pad_id)
        update = self._update(batch, advantages)
        self.step_count += 1
        lengths = [len(c) for c in samples.completions]
        finite = rewards[~torch.isnan(rewards)]
        record: dict[str, Any] = {
            "step": self.step_count,
            "lr": self.optimizer.param_groups[0]["lr"],
            "reward": float(finite.mean()) if finite.numel() else math.nan,
            "reward_std": float(finite.std()) if finite.numel() > 1 else 0.0,
            **{f"rewards/{k}": v for k, v in per_reward.items()},
            "frac_reward_zero_std": float(zero_std.float().mean()),
            **update,
            "completion_length": sum(lengths) / len(lengths),
            "truncated_ratio": sum(samples.truncated) / len(samples.truncated),
            "step_time_s": time.perf_counter() - start,
        }
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}

    def _set_lr(self) -> None:
        cfg = self.config
        scale = min(1.0, (self.step_count + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * scale

    def _update(self, batch: Batch, advantages: torch.Tensor) -> dict[str, Any]:
        """`num_iterations` optimizer steps on one sampled batch; returns loss/KL/entropy/clip stats."""
        cfg, model = self.config, self.model
        n = batch.input_ids.shape[0]
        micro = cfg.micro_batch_size or n
        chunks = [slice(i, min(n, i + micro)) for i in range(0, n, micro)]
        total_tokens = float(batch.completion_mask.sum().clamp(min=1.0))
        old: list[torch.Tensor | None] = [None] * len(chunks)
        ref: list[torch.Tensor | None] = [None] * len(chunks)
        with torch.no_grad():
            for j, ch in enumerate(chunks):
                if cfg.num_iterations > 1:
                    model.train()
                    old[j] = completion_logprobs(model, batch.rows(ch), cfg.temperature, False)[0]
                if self.ref_model is not None:
                    ref[j] = completion_logprobs(self.ref_model, batch.rows(ch), cfg.temperature, False)[0]
        self._set_lr()
        model.train()
        sums: dict[str, float] = {}
        for _ in range(cfg.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            for j, ch in enumerate(chunks):
                part = batch.rows(ch)
                mask = part.completion_mask.to(model.device)
                logps, entropy, aux = completion_logprobs(model, part, cfg.temperature)
                old_j = old[j]
                loss, stats = losses.grpo_loss(
                    logps, logps.detach() if old_j is None else old_j, advantages[ch].to(logps.device), mask,
                    epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high, beta=cfg.beta, ref_logps=ref[j],
                    loss_type=cfg.loss_type, max_completion_length=cfg.max_new_tokens)
                tokens = float(mask.sum())
                weight = tokens / total_tokens if cfg.loss_type == "token" else (ch.stop - ch.start) / n
                total = loss * weight
                if aux is not None:
                    rows_share = (ch.stop - ch.start) / n
                    total = total + aux * rows_share
                    sums["aux_loss"] = sums.get("aux_loss", 0.0) + float(aux.detach()) * rows_share
                total.backward()
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * weight
                assert entropy is not None
                share = tokens / total_tokens  # token-weighted means over the whole batch
                sums["entropy"] = sums.get("entropy", 0.0) + float((entropy * mask).sum()) / total_tokens
                for key in ("clip_low", "clip_high", "clip_region", "kl"):
                    value = getattr(stats, key)
                    if value is not None:
                        sums[key] = sums.get(key, 0.0) + value * share
            params = [p for p in model.parameters() if p.requires_grad]
            max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
            sums["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
            self.optimizer.step()
        k = cfg.num_iterations
        out = {key: v / k for key, v in sums.items() if key != "grad_norm"}
        out["grad_norm"] = sums["grad_norm"]
        renamed = {"clip_low": "clip_ratio/low", "clip_high": "clip_ratio/high",
                   "clip_region": "clip_ratio/region"}
        return {renamed.get(key, key): v for key, v in out.items()}

    # -- the run ---------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """Greedy completions of the eval prompts: mean combined reward and each reward's mean."""
        from salesai_rl.lm.evaluate import evaluate_rewards

        assert self.eval_records is not None
        return evaluate_rewards(self.model, self.tokenizer, self.eval_records, self.rewards,
                                max_new_tokens=self.config.max_new_tokens, source="eval prompts")

    def train(self, resume: bool = False) -> dict[str, Any]:
        """Run until `config.steps`; checkpoints, metrics and evaluation as configured. Returns a summary."""
        cfg = self.config
        self.open_run(resume)
        summary: dict[str, Any] = {"kind": "grpo", "start_step": self.step_count}
        if self.eval_records:
            summary["eval_start"] = ev = self.evaluate()
            self._write({"step": self.step_count, **{f"eval/{k}": v for k, v in ev.items()}})
        bar = _Progress(self.progress, self.step_count, cfg.steps)
        last: dict[str, Any] = {}
        saved = None
        try:
            while self.step_count < cfg.steps:
                last = self.step()
                if self.eval_records and cfg.eval_every and self.step_count % cfg.eval_every == 0 \
                        and self.step_count < cfg.steps:
                    last.update({f"eval/{k}": v for k, v in self.evaluate().items()})
                self._write(last)
                bar.update(self.step_count, last)
                if self.out_dir is not None and cfg.save_every and self.step_count % cfg.save_every == 0:
                    saved = self.save()
        finally:
            bar.close()
        if self.out_dir is not None and (saved is None or saved.name != runs.step_name(self.step_count)):
            saved = self.save()
        if self.eval_records:
            summary["eval_end"] = ev = self.evaluate()
            self._write({"step": self.step_count, **{f"eval/{k}": v for k, v in ev.items()}})
        summary.update(steps=self.step_count, last=last, checkpoint=str(saved) if saved else None,
                       metrics=str(self.metrics.path) if self.metrics else None)
        return summary

    def _write(self, record: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.write(record)


class _Progress:
    """A rich progress bar on stderr (reward and length in the description), or nothing."""

    def __init__(self, enabled: bool, start: int, total: int) -> None:
        self.bar: Any = None
        if enabled and start < total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("rl", total=total, completed=start)

    def update(self, step: int, record: dict[str, Any]) -> None:
        if self.bar is not None:
            reward = record.get("reward")
            text = f"reward {reward:.3f}" if isinstance(reward, float) else "reward -"
            self.bar.update(self.task, completed=step, description=text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


__all__ = ["GRPOConfig", "GRPOTrainer"]
