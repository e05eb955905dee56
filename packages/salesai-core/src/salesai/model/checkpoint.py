"""Checkpoint directories: config.json + model.safetensors (+ tokenizer.model), never pickled.

What: `load_pretrained(dir)` / `save_pretrained(model, dir)` (also `SalesAIModel.from_pretrained` /
`.save_pretrained`), the one-call helpers `save_checkpoint(dir, model, tokenizer=None)` /
`load_checkpoint(dir) -> (model, tokenizer | None)`, and `resolve_checkpoint(path)`, which accepts
a training run directory wherever a checkpoint is expected (it follows the run's `latest` pointer
to a `step-XXXXXX/` checkpoint, as litgpt and transformers users expect). `save_checkpoint`
builds the whole directory in a temporary sibling and renames it into place, so a crash never
leaves a half-written checkpoint. File-level reading and checks live in `salesai.model.weights`.
References: transformers `save_pretrained` layout, safetensors docs.

What it is not: trainer state (optimizer, RNG, data position) lives in `trainer_state/`,
written by the trainer (`salesai.train.state`).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import torch

from salesai.atomic import atomic_dir
from salesai.errors import SalesAIError
from salesai.model.transformer import SalesAIModel
from salesai.model.weights import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    check_weights_file,
    read_config,
    save_pretrained,
)

LATEST = "latest"  # a run directory's pointer file: the name of its newest complete checkpoint
STEP_RE = re.compile(r"^step-(\d{6,})$")


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The `step-XXXXXX/` directories of a run, oldest first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and STEP_RE.match(p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint `latest` points to; the newest step directory if the pointer is missing."""
    root = Path(run_dir)
    pointer = root / LATEST
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if STEP_RE.match(name) and (root / name / CONFIG_FILE).is_file():
            return root / name
    ckpts = [c for c in list_checkpoints(root) if (c / CONFIG_FILE).is_file()]
    return ckpts[-1] if ckpts else None


def resolve_checkpoint(path: str | os.PathLike[str], notice: bool = False) -> Path:
    """A checkpoint directory itself, or a run directory's latest checkpoint (said on stderr when
    `notice`); anything else is one error saying what was expected."""
    p = Path(path)
    if (p / CONFIG_FILE).is_file():
        return p
    if p.is_file() and p.name == LATEST:
        p = p.parent
    if p.is_dir():
        found = latest_checkpoint(p)
        if found is not None:
            if notice:
                print(f"{p}: a run directory; using its latest checkpoint {found.name}", file=sys.stderr)
            return found
        raise SalesAIError(f"{p}: no checkpoint found (expected {CONFIG_FILE} + {WEIGHTS_FILE}, or a run "
                           "directory with step-*/ checkpoints)")
    raise SalesAIError(f"{p}: no such checkpoint directory")


def load_pretrained(path: str | Path, device: str | torch.device | None = None) -> Any:
    """Build the model from config.json and fill it from model.safetensors: a `SalesAIModel`, or a
    `SalesAIForSequenceClassification` when config.json names `labels`; for a LoRA adapter checkpoint
    (adapter_config.json), its base + adapter (`salesai.lora.LoraModel`)."""
    if (Path(path) / "adapter_config.json").is_file():
        from salesai.lora.checkpoint import load_adapter_checkpoint

        return load_adapter_checkpoint(path, device=device)
    if read_config(path).labels:
        from salesai.model.classifier import SalesAIForSequenceClassification

        return SalesAIForSequenceClassification.from_pretrained(path, device=device)
    return SalesAIModel.from_pretrained(path, device=device)


def save_checkpoint(path: str | Path, model: Any, tokenizer: Any = None) -> Path:
    """Write a complete checkpoint directory atomically (temp sibling, then rename into place).

    An existing directory at `path` is replaced as a whole (its other files are not kept).
    """
    with atomic_dir(path) as tmp:
        save_pretrained(model, tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(path)


def load_checkpoint(path: str | Path, device: str | torch.device | None = None) -> tuple[Any, Any]:
    """(model, tokenizer or None) of a checkpoint or run directory; the tokenizer when it holds
    tokenizer.model. The model is a `SalesAIModel`, or a `SalesAIForSequenceClassification` (with
    `predict(texts, tokenizer)`) for a classifier checkpoint."""
    ckpt = resolve_checkpoint(path)
    model = load_pretrained(ckpt, device=device)
    tokenizer = None
    if (ckpt / TOKENIZER_FILE).is_file():
        from salesai.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_pretrained(ckpt)
    return model, tokenizer


__all__ = [
    "CONFIG_FILE",
    "LATEST",
    "TOKENIZER_FILE",
    "WEIGHTS_FILE",
    "check_weights_file",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_pretrained",
    "read_config",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_pretrained",
]
