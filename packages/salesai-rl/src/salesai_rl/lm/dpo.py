"""DPO (sigmoid loss) for salesai checkpoints on {"prompt", "chosen", "rejected"} records.

One step, top to bottom (`DPOTrainer.step`): take `batch_size` pairs (seeded epoch order), build
one batch [chosen rows; rejected rows] (prompt as `[bos] + ids`, completion + eos, as TRL adds
eos), sum the completion log-probs under the policy, take the reference's (precomputed once
for the whole data set before training, or live from a frozen copy), loss
-logsigmoid(beta * (chosen log-ratio - rejected log-ratio)) + the MoE load-balancing loss
(+ `sft_weight` x the chosen completions' token NLL, TRL's "sft" loss term, as in RPO),
clip gradients, AdamW step. Logged: loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies (rewards = beta * log-ratio, TRL's names).
References: Rafailov et al. 2023; TRL `DPOTrainer._compute_loss` (1.16), whose loss this
matches on the same weights (tests/test_lm_trl_parity.py).

What it is not: IPO/hinge/other loss types, length-desensitised DPO, multimodal pairs.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from salesai.errors import SalesAIError
from salesai_rl.lm import losses, runs
from salesai_rl.lm.grpo import Log, _Progress, _stderr, epoch_indices
from salesai_rl.lm.policy import Batch, encode_prompt, pad_pairs, sequence_logprobs


@dataclass
class DPOConfig:
    """Hyper-parameters of a DPO run (TRL's names)."""

    steps: int = 200  # optimizer steps
    batch_size: int = 8  # preference pairs per step
    beta: float = 0.1  # strength of the implicit KL constraint
    lr: float = 1e-6  # AdamW learning rate (constant after warmup)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0 = no clipping
    max_length: int = 512  # prompt + completion tokens kept (prompt cut from the left)
    sft_weight: float = 0.0  # + weight * mean token NLL of the chosen completions (TRL loss_type "sft", RPO)
    precompute_ref: bool = True  # reference log-probs once, before training; else a live frozen copy
    save_every: int = 100
    keep_last: int = 2
    seed: int = 0

    def validate(self) -> DPOConfig:
        for name in ("steps", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise SalesAIError(f"{name}={getattr(self, name)}: expected a positive integer")
        if not (self.beta > 0 and self.lr > 0 and self.sft_weight >= 0):
            raise SalesAIError(f"beta={self.beta}, lr={self.lr}, sft_weight={self.sft_weight}: "
                               "expected beta, lr > 0 and sft_weight >= 0")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DPOConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def pair_batch(tokenizer: Any, records: list[dict[str, Any]], max_length: int) -> Batch:
    """[chosen rows; rejected rows] of the records as one batch (2P rows)."""
    prompts: list[list[int]] = []
    completions: list[list[int]] = []
    for key in ("chosen", "rejected"):
        for r in records:
            completion = [*tokenizer.encode(str(r[key])), tokenizer.eos_id]
            prompt = encode_prompt(tokenizer, str(r["prompt"]))
            keep = max(1, max_length - len(completion))
            prompts.append(prompt[-keep:])
            completions.append(completion[: max_length - 1])
    return pad_pairs(prompts, completions, tokenizer.pad_id)


class DPOTrainer(runs.CheckpointedRun):
    """DPO on a SalesAIModel with preference records; `train()` runs, `step()` does one step."""

    kind = "dpo"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        records: list[dict[str, Any]],
        config: DPOConfig,
        out_dir: str | Path | None = None,
        *,
        ref_model: Any = None,
        run_info: dict[str, Any] | None = None,
        log: Log | None = _stderr,
        progress: bool = False,
    ) -> None:
        if not records:
            raise SalesAIError("preferences: no records")
        self.model, self.tokenizer, self.records, self.config = model, tokenizer, records, config.validate()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_info, self.log, self.progress = run_info or {}, log or (lambda _m: None), progress
        ref = ref_model if ref_model is not None else copy.deepcopy(model)
        ref.eval().requires_grad_(False)
        self.ref_model: Any = None
        self.ref_logps: torch.Tensor | None = None  # (len(records), 2): chosen, rejected
        if config.precompute_ref:
            self.ref_logps = self.reference_logps(ref)
        else:
            self.ref_model = ref
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.step_count = 0
        self.metrics: runs.Metrics | None = None

    def reference_logps(self, ref: Any, batch_size: int = 32) -> torch.Tensor:
        """Summed completion log-probs of every record under `ref`: (N, 2) = (chosen, rejected)."""
        out = []
        with torch.no_grad():
            for i in range(0, len(self.records), batch_size):
                part = self.records[i:i + batch_size]
                logps = sequence_logprobs(ref, pair_batch(self.tokenizer, part, self.config.max_length))
                out.append(torch.stack(logps.chunk(2), dim=1))  # (n, 2)
        return torch.cat(out).float().cpu()

    def _indices(self, step: int) -> list[int]:
        return epoch_indices(len(self.records), self.config.batch_size, step, self.config.seed)

    def step(self) -> dict[str, Any]:
        cfg, model = self.config, self.model
        start = time.perf_counter()
        idx = self._indices(self.step_count)
        batch = pair_batch(self.tokenizer, [self.records[i] for i in idx], cfg.max_length)
        if self.ref_logps is not None:
            ref_c, ref_r = self.ref_logps[idx, 0], self.ref_logps[idx, 1]
        else:
            with torch.no_grad():
                ref_c, ref_r = sequence_logprobs(self.ref_model, batch).chunk(2)
        scale = min(1.0, (self.step_count + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * scale
        model.train()
        from salesai_rl.lm.policy import completion_logprobs

        logps, _, aux = completion_logprobs(model, batch, with_entropy=False)
        seq = (logps * batch.completion_mask.to(logps.device)).sum(-1)  # (2P,)
        chosen, rejected = seq.chunk(2)
        ref_c, ref_r = ref_c.to(seq.device), ref_r.to(seq.device)
        loss, r_c, r_r = losses.dpo_loss(chosen, rejected, ref_c, ref_r, cfg.beta)
        total = loss + aux if aux is not None else loss
        nll = None
        if cfg.sft_weight > 0:
            nll = losses.chosen_nll(logps, batch.completion_mask.to(logps.device))
            total = total + cfg.sft_weight * nll
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        params = [p for p in model.parameters() if p.requires_grad]
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.optimizer.step()
        self.step_count += 1
        record = {
            "step": self.step_count, "lr": self.optimizer.param_groups[0]["lr"], "loss": float(loss.detach()),
            "rewards/chosen": float(r_c.mean()), "rewards/rejected": float(r_r.mean()),
            "rewards/margins": float((r_c - r_r).mean()),
            "rewards/accuracies": float((r_c > r_r).float().mean()),
            "logps/chosen": float(chosen.detach().mean()), "logps/rejected": float(rejected.detach().mean()),
            "grad_norm": float(grad_norm), "step_time_s": time.perf_counter() - start,
        }
        if aux is not None:
            record["aux_loss"] = float(aux.detach())
        if nll is not None:
            record["sft_nll"] = float(nll.detach())
        return record

    def evaluate(self, records: list[dict[str, Any]], ref_model: Any = None) -> dict[str, float]:
        """Implicit-reward accuracy and mean margin on held-out `records` against `ref_model`
        (default: the live reference of a run with precompute_ref=False)."""
        ref = ref_model if ref_model is not None else self.ref_model
        if ref is None:
            raise SalesAIError("DPO evaluation needs the reference model (pass ref_model)")
        self.model.eval()
        with torch.no_grad():
            batch = pair_batch(self.tokenizer, records, self.config.max_length)
            pc, pr = sequence_logprobs(self.model, batch).chunk(2)
            rc, rr = sequence_logprobs(ref, batch).chunk(2)
        margins = self.config.beta * ((pc - rc) - (pr - rr))
        return {"accuracy": float((margins > 0).float().mean()), "margin": float(margins.mean())}

    def train(self, resume: bool = False) -> dict[str, Any]:
        cfg = self.config
        self.open_run(resume)
        summary: dict[str, Any] = {"kind": "dpo", "start_step": self.step_count}
        bar = _Progress(self.progress, self.step_count, cfg.steps)
        last: dict[str, Any] = {}
        saved = None
        try:
            while self.step_count < cfg.steps:
                last = self.step()
                if self.metrics is not None:
                    self.metrics.write(last)
                bar.update(self.step_count, {"reward": last["rewards/margins"]})
                if self.out_dir is not None and cfg.save_every and self.step_count % cfg.save_every == 0:
                    saved = self.save()
        finally:
            bar.close()
        if self.out_dir is not None and (saved is None or saved.name != runs.step_name(self.step_count)):
            saved = self.save()
        summary.update(steps=self.step_count, last=last, checkpoint=str(saved) if saved else None,
                       metrics=str(self.metrics.path) if self.metrics else None)
        return summary


__all__ = ["DPOConfig", "DPOTrainer", "pair_batch"]
