"""Checkpoint directories: config.json + model.safetensors (+ tokenizer.model), never pickled.

What: `save_pretrained(model, dir)` / `load_pretrained(dir)` (behind
`SalesAIModel.save_pretrained` / `.from_pretrained`) and the one-call helpers
`save_checkpoint(dir, model, tokenizer=None)` / `load_checkpoint(dir) -> (model, tokenizer | None)`.
Weights are written with `safetensors.torch.save_file` (a tied output head is stored once,
as `embed_tokens.weight`); loading reads tensors only. Every failure names the file: a
missing file, a truncated or foreign safetensors file, a config that does not match the
weights (missing or unexpected tensors, shape mismatches). `save_checkpoint` builds the
whole directory in a temporary sibling and renames it into place, so a crash never leaves
a half-written checkpoint; `save_pretrained` replaces each file atomically.
References: transformers `save_pretrained` layout, safetensors docs.

What it is not: trainer state (optimizer, RNG, data position) lives in `trainer_state/`,
written by the trainer.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from salesai.atomic import atomic_dir
from salesai.errors import SalesAIError
from salesai.model.config import ModelConfig

if TYPE_CHECKING:
    from salesai.model.transformer import SalesAIModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.model"


def weights_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors to save: contiguous CPU copies, the tied output head left out."""
    sd = model.state_dict()
    if getattr(model.config, "tie_embeddings", False):
        sd.pop("lm_head.weight", None)
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same directory, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_pretrained(model: SalesAIModel, path: str | Path) -> Path:
    """Write config.json and model.safetensors into `path` (created if needed)."""
    from safetensors.torch import save_file

    from salesai import __version__

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = weights_state_dict(model)
    meta = {"format": "pt", "producer": f"salesai {__version__}"}
    _atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata=meta))
    text = model.config.to_json() + "\n"
    _atomic_write(out / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return out


def read_config(path: str | Path) -> ModelConfig:
    """The ModelConfig of a checkpoint directory, with errors naming config.json."""
    d = Path(path)
    if not d.is_dir():
        raise SalesAIError(f"{d}: checkpoint directory not found")
    file = d / CONFIG_FILE
    if not file.is_file():
        raise SalesAIError(f"{file}: missing (a checkpoint holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SalesAIError(f"{file}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and ("model_type" in data or "architectures" in data):
        raise SalesAIError(
            f"{file}: a Hugging Face transformers config, not a salesai checkpoint; load it with transformers"
        )
    return ModelConfig.from_dict(data, source=str(file))


def read_weights(file: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; one clear error for missing, truncated or foreign files."""
    from safetensors.torch import load_file

    if not file.is_file():
        raise SalesAIError(f"{file}: missing (a checkpoint holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        return load_file(str(file), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ValueError from a damaged header
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SalesAIError(
            f"{file}: not a readable safetensors file (truncated or foreign?): {reason}"
        ) from None


def load_state(model: SalesAIModel, tensors: dict[str, torch.Tensor], file: Path) -> None:
    """Copy `tensors` into `model` after checking names and shapes against the config."""
    expected = weights_state_dict_shapes(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = [f"{what} {len(names)} tensors ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                 for what, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise SalesAIError(f"{file}: does not match {CONFIG_FILE}: {'; '.join(parts)}")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise SalesAIError(
                f"{file}: tensor {name} has shape {tuple(tensors[name].shape)}, {CONFIG_FILE} implies {shape}"
            )
    model.load_state_dict(tensors, strict=False)
    if model.config.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight


def weights_state_dict_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    sd = model.state_dict()
    if getattr(model.config, "tie_embeddings", False):
        sd.pop("lm_head.weight", None)
    return {k: tuple(v.shape) for k, v in sd.items()}


def load_pretrained(path: str | Path, device: str | torch.device | None = None) -> SalesAIModel:
    """Build the model from config.json and fill it from model.safetensors."""
    from salesai.model.transformer import SalesAIModel

    d = Path(path)
    cfg = read_config(d)
    tensors = read_weights(d / WEIGHTS_FILE)
    with torch.device("meta"):
        model = SalesAIModel(cfg)
    model = model.to_empty(device="cpu")
    model.init_rope()
    load_state(model, tensors, d / WEIGHTS_FILE)
    model.eval()
    return model.to(device) if device is not None else model


def save_checkpoint(path: str | Path, model: SalesAIModel, tokenizer: Any = None) -> Path:
    """Write a complete checkpoint directory atomically (temp sibling, then rename into place).

    An existing directory at `path` is replaced as a whole (its other files are not kept).
    """
    with atomic_dir(path) as tmp:
        save_pretrained(model, tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(path)


def load_checkpoint(path: str | Path, device: str | torch.device | None = None) -> tuple[SalesAIModel, Any]:
    """(model, tokenizer or None): the tokenizer when the directory holds tokenizer.model."""
    model = load_pretrained(path, device=device)
    tokenizer = None
    if (Path(path) / TOKENIZER_FILE).is_file():
        from salesai.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_pretrained(path)
    return model, tokenizer


__all__ = [
    "CONFIG_FILE",
    "TOKENIZER_FILE",
    "WEIGHTS_FILE",
    "load_checkpoint",
    "load_pretrained",
    "read_config",
    "save_checkpoint",
    "save_pretrained",
]
