"""The salesai Trainer: AdamW, warmup + cosine, accumulation, bf16 autocast, eval, atomic checkpoints, resume.

    trainer = Trainer(model, TrainConfig(max_steps=1000, out_dir="runs/x"), train_data, val_data, tokenizer)
    result = trainer.fit(resume=True)          # continues from out_dir/latest when there is one

Data: any sequence of fixed-length token sequences (`len(ds)`, `ds[i]` -> ids) or one flat 1-D
token array (cut into `seq_len` windows), read through `salesai.data.windows`. The Trainer owns
the order (`SampleOrder`, the one data ordering): the global sample stream is an endless series
of seeded epoch permutations, and optimizer step `s` consumes samples `[s*G, (s+1)*G)`
(G = batch_size * grad_accum * world_size); micro-batch
`m` of rank `r` takes chunk `m*world + r`. The data position is therefore the step itself, which
makes resume exact and gives 1 process with accumulation or a larger batch the same batches as
N processes. Under `torchrun` the model is wrapped in DistributedDataParallel (salesai.train.distributed).

References: nanoGPT `train.py` (loop, decay groups, schedule), litgpt `pretrain.py`. Not here:
model code, tokenisation, FSDP, mixed fp16 loss scaling (bf16 needs none).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from salesai.data.windows import SampleOrder, TokenSequences
from salesai.errors import SalesAIError
from salesai.train import distributed as D
from salesai.train import state as S
from salesai.train.config import TrainConfig, fit_schedule

__all__ = ["TokenSequences", "TrainConfig", "TrainResult", "Trainer", "evaluate", "lr_at"]


# ------------------------------------------------------------------------------ device/precision
def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SalesAIError("training.device: 'cuda' requested but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


@cache
def cpu_bf16_speedup() -> float:
    """bf16/fp32 matmul speed ratio measured on this CPU (>1: bf16 faster); best of 5, about 50 ms, cached."""
    best = {}
    a32, b32 = torch.randn(256, 512), torch.randn(512, 512)
    pairs = {torch.float32: (a32, b32), torch.bfloat16: (a32.bfloat16(), b32.bfloat16())}
    for dtype, (a, b) in pairs.items():
        a @ b
        times = []
        for _ in range(5):  # the minimum is robust to other processes on a shared machine
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        best[dtype] = min(times)
    return best[torch.float32] / max(best[torch.bfloat16], 1e-9)


def cpu_prefers_bf16() -> bool:
    """True on CPUs with bf16 matrix units (AMX), where bf16 autocast trains faster (docs/training.md);
    on AVX512-BF16 alone only if a quick matmul measurement shows bf16 at least 1.5x faster."""
    if torch.cpu._is_amx_tile_supported():
        return True
    return bool(torch.cpu._is_avx512_bf16_supported()) and cpu_bf16_speedup() > 1.5


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> "bf16" on CUDA with bf16 support and on CPUs with bf16 matrix units, else "fp32"."""
    if precision != "auto":
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise SalesAIError("training.precision: 'bf16' is not supported by this CUDA device")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_prefers_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- optimizer/schedule
def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to `lr` over `warmup_steps`, then cosine from `lr` to `min_lr` at `max_steps`."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay 2-D+ weights; never norms, biases (ndim < 2) or embedding tables (tied heads included).

    An encoder entry with `lr_scale` (model config) puts that encoder and its projector in groups of
    their own whose `lr_scale` multiplies the scheduled learning rate (`Trainer.train_step`)."""
    no_decay_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    scale_of: dict[int, float] = {}
    encoders = getattr(getattr(model, "config", None), "encoders", None) or {}
    for modality, entry in encoders.items():
        scale = float(entry.get("lr_scale", 1.0))
        if scale != 1.0:
            for name in (f"encoders.{modality}.", f"projectors.{modality}."):
                scale_of.update((id(p), scale) for n, p in model.named_parameters() if n.startswith(name))
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {(1.0, True): [], (1.0, False): []}
    seen: set[int] = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        decays = not (p.ndim < 2 or id(p) in no_decay_ids)
        groups.setdefault((scale_of.get(id(p), 1.0), decays), []).append(p)
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0}
        | ({"lr_scale": scale} if scale != 1.0 else {})
        for (scale, decays), params in groups.items()
        if params or scale == 1.0
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused kernel where the device supports it, else the multi-tensor (foreach) one."""
    groups = param_groups(model, cfg.weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, foreach=True)


def as_dataset(data: Any, seq_len: int) -> Any:
    """A dataset with `batch(indices)` as it is (its batches: (B, T) token ids, or a dict of model keyword
    arguments, e.g. salesai.train.classify's); token arrays and sequences through TokenSequences."""
    if callable(getattr(data, "batch", None)) and not isinstance(data, (torch.Tensor, np.ndarray)):
        return data
    return TokenSequences(data, seq_len)


def model_inputs(batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch as the model's keyword arguments: token ids (B, T) are input_ids and labels (the model
    shifts them); a dict is passed on as it is."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    ids = batch.to(device, non_blocking=True)  # (B, T)
    return {"input_ids": ids, "labels": ids}


def micro_indices(step: int, micro: int, cfg: TrainConfig, info: D.DistInfo, order: SampleOrder) -> list[int]:
    """Dataset indices of micro-batch `micro` of optimizer step `step` on this rank."""
    b, world = cfg.batch_size, info.world_size
    start = step * b * cfg.grad_accum * world + (micro * world + info.rank) * b
    return [order(start + j) for j in range(b)]


# ----------------------------------------------------------------------------------- evaluation
def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _jsonable(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist() if x.numel() != 1 else x.item()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        return _jsonable(vars(x))
    return x


def expert_usage(model: nn.Module) -> Any:
    """The model's expert_usage() as JSON-able data (None for models without one)."""
    fn = getattr(unwrap(model), "expert_usage", None)
    return _jsonable(fn()) if callable(fn) else None


def _reset_usage(model: nn.Module) -> None:
    fn = getattr(unwrap(model), "reset_expert_usage", None)
    if callable(fn):
        fn()


@torch.no_grad()
def evaluate(model: nn.Module, data: TokenSequences, batch_size: int, max_batches: int,
             device: torch.device, precision: str = "fp32", info: D.DistInfo | None = None) -> dict[str, Any]:
    """Mean next-token cross-entropy (no aux losses), perplexity and expert usage on a fixed val prefix."""
    info = info or D.DistInfo()
    net = unwrap(model)
    was_training = net.training
    net.eval()
    _reset_usage(net)
    n = min(len(data), max_batches * batch_size * info.world_size)
    mine = list(range(info.rank, n, info.world_size))
    total = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of CE, token count]
    for i in range(0, len(mine), batch_size):
        ids = data.batch(mine[i : i + batch_size]).to(device)  # (B, T)
        with autocast(device, precision):
            logits = net(ids).logits  # (B, T, V)
        ce = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten(), reduction="sum")
        count = torch.tensor(ids[:, 1:].numel(), dtype=torch.float64, device=device)
        total += torch.stack([ce.double(), count])
    total = D.all_reduce_sum(total, info)
    net.train(was_training)
    loss = float(total[0] / total[1].clamp(min=1))
    return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0)), "val_tokens": int(total[1]),
            "expert_usage": expert_usage(net)}


# ------------------------------------------------------------------------------------- trainer
@dataclass
class TrainResult:
    """What `fit` returns."""

    step: int  # optimizer steps completed (including resumed ones)
    losses: list[float] = field(default_factory=list)  # training loss (CE + aux) of each step run here
    evals: list[dict[str, Any]] = field(default_factory=list)  # evaluation records
    checkpoint: Path | None = None  # last checkpoint written
    tokens_per_s: float = 0.0  # global training throughput of this run
    elapsed_s: float = 0.0  # wall time of the loop
    precision: str = "fp32"  # what was used


class Trainer:
    """Train a salesai model (or any module with the same forward contract); see the module docstring."""

    def __init__(self, model: nn.Module, config: TrainConfig, train_data: Any, val_data: Any = None,
                 tokenizer: Any = None, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
        config, schedule_notice = fit_schedule(config)
        self.config = config
        self.device = resolve_device(config.device)
        self.info = D.init_distributed(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.info.local_rank)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        self.precision = resolve_precision(config.precision, self.device)
        self.model = model.to(self.device)
        self.engine: nn.Module = self.model
        if self.info.enabled:
            moe = getattr(getattr(model, "config", None), "num_experts", 1) > 1
            media = bool(getattr(getattr(model, "config", None), "encoders", None))
            self.engine = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=moe or media)  # an expert (an encoder) may get no input in a batch
        self.train_data = as_dataset(train_data, config.seq_len)
        self.val_data = as_dataset(val_data, config.seq_len) if val_data is not None else None
        self.tokenizer = tokenizer
        self.optimizer = build_optimizer(self.model, config)
        self.order = SampleOrder(len(self.train_data), config.seed)
        self.step = 0
        self.out_dir = Path(config.out_dir)
        self.show_progress = progress and self.info.is_main
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        if schedule_notice:
            self.log(schedule_notice)

    # -- logging -------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.info.is_main:
            self._log(msg)

    def write_metrics(self, record: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_jsonable(record)) + "\n")

    def _drop_metrics_after(self, step: int) -> None:
        """On resume: forget the records the interrupted run wrote after its last checkpoint."""
        path = self.out_dir / "metrics.jsonl"
        if not self.info.is_main or not path.is_file():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line).get("step", 0)) <= step:
                    kept.append(line)
            except (ValueError, TypeError, AttributeError):
                continue  # a line cut by a crash
        S.write_text_atomic(path, "".join(x + "\n" for x in kept))

    @property
    def global_batch_tokens(self) -> int:
        return self.config.tokens_per_step * self.info.world_size

    # -- one optimizer step --------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimizer step (all micro-batches); returns loss, aux_loss, lr, grad_norm, step_s."""
        t0 = time.perf_counter()
        cfg, step = self.config, self.step
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.engine.train()
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # [loss, aux]
        for micro in range(cfg.grad_accum):
            indices = micro_indices(step, micro, cfg, self.info, self.order)
            batch = model_inputs(self.train_data.batch(indices), self.device)
            sync = micro == cfg.grad_accum - 1 or not self.info.enabled
            ctx = contextlib.nullcontext() if sync else self.engine.no_sync()  # type: ignore[operator]
            with ctx:
                with autocast(self.device, self.precision):
                    out = self.engine(**batch)
                (out.loss / cfg.grad_accum).backward()
            aux = out.aux_loss if getattr(out, "aux_loss", None) is not None else torch.zeros(())
            sums += torch.stack([out.loss.detach().double(), aux.detach().double().to(self.device)])
        grad_norm = 0.0
        if cfg.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        sums = D.all_reduce_mean(sums / cfg.grad_accum, self.info)
        return {"loss": float(sums[0]), "aux_loss": float(sums[1]), "lr": lr, "grad_norm": grad_norm,
                "step_s": time.perf_counter() - t0}

    def evaluate(self) -> dict[str, Any]:
        if self.val_data is None:
            return {"expert_usage": expert_usage(self.model)}
        own = getattr(self.val_data, "evaluate", None)
        if callable(own):  # a dataset with its own metrics (classification: accuracy, F1, confusion matrix)
            record: dict[str, Any] = own(self.engine, self.config.batch_size, self.device, self.precision,
                                         self.info)
            return record
        cfg = self.config  # eval_steps global batches: the same sequences for any world size/accumulation
        return evaluate(self.engine, self.val_data, cfg.batch_size, cfg.eval_steps * cfg.grad_accum,
                        self.device, self.precision, self.info)

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume: bool | str | Path = False, stop_at_step: int | None = None,
            time_limit_s: float | None = None, time_budget_s: float | None = None,
            on_step: Callable[[Trainer, dict[str, float]], None] | None = None) -> TrainResult:
        """Train to `config.max_steps` (or `stop_at_step`, or until `time_limit_s` has passed).

        `resume=True` continues from `out_dir/latest` if it exists (a fresh start otherwise);
        a path resumes from that checkpoint. Evaluates and saves at the end.
        `time_budget_s`: a time-budgeted schedule. After every step `max_steps` is re-estimated
        from the recent step times so that the cosine reaches its floor when the budget is spent,
        also when the machine slows down or speeds up (the quickstart's mode; not for exact resume).
        `on_step(trainer, stats)` is called after every optimizer step.
        """
        cfg = self.config
        if resume:
            ckpt = S.latest_checkpoint(self.out_dir) if resume is True else S.resolve_checkpoint(resume)
            if ckpt is not None:
                self.load_checkpoint(ckpt)
                self._drop_metrics_after(self.step)
                self.log(f"resumed from {ckpt} at step {self.step}")
                self.write_metrics({"kind": "resume", "step": self.step, "checkpoint": str(ckpt)})
            elif self.step == 0:
                self._seed()
        elif self.step == 0:  # (steps may have been run by hand with train_step(), e.g. a timing probe)
            self._seed()
        end = min(cfg.max_steps, stop_at_step if stop_at_step is not None else cfg.max_steps)
        result = TrainResult(step=self.step, precision=self.precision)
        bar = _Progress(self.show_progress, self.step, end)
        t0 = last_t = prev = time.perf_counter()
        tokens_done, last_step = 0, self.step
        last_eval = last_save = -1
        recent: deque[float] = deque(maxlen=20)  # wall seconds of the latest steps (time-budgeted schedule)
        try:
            while self.step < end:
                stats = self.train_step()
                result.losses.append(stats["loss"])
                tokens_done += self.global_batch_tokens
                now = time.perf_counter()
                if on_step is not None:
                    on_step(self, stats)
                if time_budget_s is not None:  # wall time per step: evaluation and logging included
                    recent.append(now - prev)
                    left = int((time_budget_s - (now - t0)) / (sum(recent) / len(recent)))
                    cfg = self.config = dataclasses.replace(cfg, max_steps=max(1, self.step + max(0, left)))
                    end = min(cfg.max_steps, stop_at_step if stop_at_step is not None else cfg.max_steps)
                    bar.set_total(end)
                prev = now
                tps = tokens_done / max(now - t0, 1e-9)
                bar.update(self.step, stats, tps)
                if self.step % cfg.log_every == 0 or self.step == end:
                    window_tps = (self.step - last_step) * self.global_batch_tokens / max(now - last_t, 1e-9)
                    last_t, last_step = now, self.step
                    self.write_metrics({"kind": "train", "step": self.step, **stats,
                                        "tokens": self.step * self.global_batch_tokens,
                                        "tokens_per_s": window_tps, "elapsed_s": now - t0})
                timed_out = time_limit_s is not None and now - t0 >= time_limit_s
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < end and not timed_out:
                    result.evals.append(self._eval_and_log(bar))
                    last_eval = self.step
                if cfg.save_every and self.step % cfg.save_every == 0 and self.step < end and not timed_out:
                    result.checkpoint = self.save_checkpoint()
                    last_save = self.step
                if timed_out:
                    self.log(f"time limit reached after {self.step} steps")
                    break
        finally:
            bar.close()
        result.elapsed_s = time.perf_counter() - t0
        result.tokens_per_s = tokens_done / max(result.elapsed_s, 1e-9)
        if last_eval != self.step:
            result.evals.append(self._eval_and_log(None))
        already = (self.out_dir / S.step_dir_name(self.step)).is_dir() and not result.losses
        if last_save != self.step and not already:
            result.checkpoint = self.save_checkpoint()
        result.step = self.step
        return result

    def _eval_and_log(self, bar: _Progress | None) -> dict[str, Any]:
        record = {"kind": "eval", "step": self.step, **self.evaluate()}
        self.write_metrics(record)
        if "val_loss" in record:
            metric = (f"accuracy {record['val_accuracy']:.4f}" if "val_accuracy" in record
                      else f"perplexity {record['val_perplexity']:.2f}")
            msg = f"step {self.step}: val loss {record['val_loss']:.4f}, {metric}"
            if bar is not None and bar.active:
                bar.print(msg)
            else:
                self.log(msg)
        return record

    def _seed(self) -> None:
        import random


        seed = self.config.seed + self.info.rank
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write out_dir/step-XXXXXX atomically (all ranks call this; rank 0 writes the shared files)."""
        out = self.out_dir
        tmp = S.begin_checkpoint(out, self.step) if self.info.is_main else None
        tmp = Path(D.broadcast_object(str(tmp) if tmp else None, self.info))
        rng_tensors, rng_meta = S.capture_rng()
        S.save_tensors(tmp / S.STATE_DIR / f"rng-rank{self.info.rank}.safetensors", rng_tensors)
        S.write_json(tmp / S.STATE_DIR / f"rng-rank{self.info.rank}.json", rng_meta)
        D.barrier(self.info)
        final = out / S.step_dir_name(self.step)
        if self.info.is_main:
            self.model.save_pretrained(tmp)  # type: ignore[operator]
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(tmp)
            S.crash_test_hook(self.step, tmp)
            opt_meta = S.save_optimizer(self.optimizer, tmp / S.STATE_DIR / "optimizer.safetensors")
            S.write_json(tmp / S.STATE_DIR / "state.json", {
                "format": 1,
                "step": self.step,
                "data": {"samples_seen": self.step * self.config.batch_size * self.config.grad_accum
                         * self.info.world_size, "num_samples": len(self.train_data),
                         "seed": self.config.seed},
                "world_size": self.info.world_size,
                "precision": self.precision,
                "train_config": self.config.to_dict(),
                "optimizer": opt_meta,
            })
            final = S.commit_checkpoint(tmp, out, self.step, self.config.keep_last)
            self.write_metrics({"kind": "checkpoint", "step": self.step, "path": str(final)})
        D.barrier(self.info)
        return final

    def load_checkpoint(self, ckpt: str | Path) -> None:
        """Restore weights, optimizer, step (= data position) and this rank's RNG from a checkpoint."""
        ckpt = S.resolve_checkpoint(ckpt)
        state = S.read_state_json(ckpt)
        load_adapters = getattr(self.model, "load_adapter_weights", None)
        if callable(load_adapters):  # a LoRA model (salesai.lora): the checkpoint holds its adapters only
            load_adapters(ckpt)
        else:
            weights = S.load_tensors(ckpt / "model.safetensors")
            try:
                self.model.load_state_dict(weights, strict=True)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                raise SalesAIError(f"{ckpt}/model.safetensors does not match the model: {first}") from None
        S.load_optimizer(self.optimizer, ckpt / S.STATE_DIR / "optimizer.safetensors", state["optimizer"])
        self.step = int(state["step"])
        data = state.get("data", {})
        if data.get("num_samples") not in (None, len(self.train_data)):
            self.log(f"warning: training data has {len(self.train_data)} sequences, the checkpoint saw "
                     f"{data['num_samples']}: the data order differs from the interrupted run")
        old_cfg = state.get("train_config", {})
        for key in ("batch_size", "grad_accum", "seq_len", "seed", "max_steps", "lr", "min_lr",
                    "warmup_steps"):
            now = getattr(self.config, key)
            if key in old_cfg and old_cfg[key] != now:
                self.log(f"warning: training.{key} changed from {old_cfg[key]} to {now} since the "
                         "checkpoint; the resumed run will not match an uninterrupted one")
        rng_file = ckpt / S.STATE_DIR / f"rng-rank{self.info.rank}.safetensors"
        if rng_file.is_file():
            meta_file = rng_file.with_suffix(".json")
            meta = json.loads(meta_file.read_text()) if meta_file.is_file() else None
            S.restore_rng(S.load_tensors(rng_file), meta)
        else:
            self._seed()


class _Progress:
    """A rich progress bar on stderr with loss, lr, tokens/s and ETA (a no-op when disabled)."""

    def __init__(self, enabled: bool, start: int, total: int) -> None:
        self.active = enabled and total > start
        if not self.active:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss [cyan]{task.fields[loss]}"), TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[tps]} tok/s"), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, loss="-", lr="-", tps="-")
        self.progress.start()

    def update(self, step: int, stats: dict[str, float], tps: float) -> None:
        if self.active:
            self.progress.update(self.task, completed=step, loss=f"{stats['loss']:.4f}",
                                 lr=f"{stats['lr']:.2e}", tps=f"{tps:,.0f}")

    def set_total(self, total: int) -> None:
        if self.active:
            self.progress.update(self.task, total=total)

    def print(self, msg: str) -> None:
        self.progress.console.print(msg, highlight=False)

    def close(self) -> None:
        if self.active:
            self.progress.stop()
