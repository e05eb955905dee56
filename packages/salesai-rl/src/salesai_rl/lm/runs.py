"""Run directories of LM RL: checkpoints, trainer state, metrics, resume.

Layout, as `salesai train` writes it (so `salesai generate/export/serve RUN_DIR` take the
latest checkpoint as it is):

    OUT/step-000100/config.json, model.safetensors, tokenizer.model   <- a plain checkpoint
    OUT/step-000100/trainer_state/optimizer.safetensors, state.json    <- for --resume
    OUT/latest                                                         <- name of the newest
    OUT/metrics.jsonl                                                  <- one JSON object per step

Checkpoint directories, `latest` and the optimizer's safetensors come from the core
(`salesai.train`: the same code `salesai train` uses): each checkpoint is built in a temporary
sibling, fsynced and renamed into place, then `latest` is replaced atomically, so a crash (or a
reward that raises) leaves the last checkpoint intact. Nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from salesai import train as core
from salesai.atomic import write_text_atomic
from salesai.errors import SalesAIError

LATEST = "latest"


def step_name(step: int) -> str:
    return str(core.step_dir_name(step))


def save_checkpoint(
    out_dir: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep_last: int = 2,
) -> Path:
    """Write OUT/step-XXXXXX atomically (model, tokenizer, trainer state), point `latest` at it, keep
    the newest `keep_last` checkpoints (0 keeps all)."""
    tmp: Path = core.begin_checkpoint(out_dir, step)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    meta = core.save_optimizer(optimizer, tmp / core.STATE_DIR / "optimizer.safetensors")
    (tmp / core.STATE_DIR / "state.json").write_text(json.dumps({**state, "step": step, "optimizer": meta},
                                                                indent=1))
    final: Path = core.commit_checkpoint(tmp, out_dir, step, keep_last if keep_last > 0 else 1 << 30)
    return final


def latest(out_dir: Path) -> Path | None:
    """The checkpoint `latest` points to, or None for a run without a resumable one."""
    ckpt: Path | None = core.latest_checkpoint(out_dir)
    return ckpt if ckpt is not None and (ckpt / core.STATE_DIR / "state.json").is_file() else None


def load_state(ckpt: Path) -> dict[str, Any]:
    """The JSON trainer state of a checkpoint written by `save_checkpoint`."""
    state: dict[str, Any] = core.read_state_json(ckpt)
    return state


def restore_optimizer(optimizer: torch.optim.Optimizer, ckpt: Path, state: dict[str, Any]) -> None:
    core.load_optimizer(optimizer, ckpt / core.STATE_DIR / "optimizer.safetensors", state["optimizer"])


def _step_of(line: str) -> float:
    """The step of a metrics line; infinity for a blank or torn line (a crash mid-write), so it is dropped."""
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return float("inf")


class Metrics:
    """OUT/metrics.jsonl: one JSON object per line; on resume, lines past the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            path.write_text("")
        elif path.is_file():
            keep = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            write_text_atomic(path, "".join(line + "\n" for line in keep))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def check_out_dir(out_dir: Path, resume: bool) -> None:
    """Refuse to start a fresh run over an existing one (ask for --resume instead)."""
    if not resume and (out_dir / LATEST).exists():
        raise SalesAIError(f"{out_dir}: already holds a run; pass --resume to continue it, or another --out")
    if resume and latest(out_dir) is None:
        raise SalesAIError(f"{out_dir}: --resume found no checkpoint to continue from")


__all__ = ["Metrics", "check_out_dir", "latest", "load_state", "restore_optimizer", "save_checkpoint"]


class CheckpointedRun:
    """`resume()` and `save()` for a trainer that keeps a run directory (GRPO, DPO): the trainer sets
    `kind`, `model`, `tokenizer`, `optimizer`, `config` (with `keep_last`), `out_dir`, `step_count`,
    `run_info` and `log`."""

    kind: str
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    config: Any
    out_dir: Path | None
    step_count: int
    run_info: dict[str, Any]
    log: Any
    metrics: Metrics | None

    def open_run(self, resume: bool) -> None:
        """Check OUT (refused when it holds a run and `resume` is off), resume from it, open metrics.jsonl."""
        if self.out_dir is None:
            return
        check_out_dir(self.out_dir, resume)
        if resume:
            self.resume()
        self.metrics = Metrics(self.out_dir / "metrics.jsonl", self.step_count if resume else None)

    def resume(self) -> int:
        """Load weights, optimizer and step from OUT's latest checkpoint; returns the step."""
        from salesai import SalesAIModel

        assert self.out_dir is not None
        ckpt = latest(self.out_dir)
        if ckpt is None:
            raise SalesAIError(f"{self.out_dir}: --resume found no checkpoint to continue from")
        state = load_state(ckpt)
        self.model.load_state_dict(SalesAIModel.from_pretrained(ckpt).state_dict())
        restore_optimizer(self.optimizer, ckpt, state)
        self.step_count = int(state["step"])
        self.log(f"resumed from {ckpt} (step {self.step_count})")
        return self.step_count

    def save(self) -> Path:
        """A checkpoint of the current step in OUT (atomic; keeps the newest `config.keep_last`)."""
        from dataclasses import asdict

        assert self.out_dir is not None
        state = {"kind": self.kind, "config": asdict(self.config), **self.run_info}
        return save_checkpoint(self.out_dir, self.step_count, self.model, self.tokenizer, self.optimizer,
                               state, self.config.keep_last)
