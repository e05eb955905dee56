"""The files of a checkpoint: config.json and model.safetensors, read and written without pickle.

Weights are written with `safetensors.torch.save_file` (a tied output head is stored once, as
`embed_tokens.weight`); loading reads tensors only. Every failure names the file: a missing
file, a truncated or foreign safetensors file (`check_weights_file` compares the file's size
with what its header declares, without reading the tensors), a config that does not match the
weights (missing or unexpected tensors, shape mismatches). Each file is replaced atomically.
This module knows nothing of the model class (`SalesAIModel.from_pretrained` builds the model
and calls `load_state`), so the model imports it and not the other way round.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salesai.errors import SalesAIError
from salesai.model.config import ModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.model"
_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header


def check_weights_file(file: Path) -> dict[str, Any]:
    """The safetensors header of `file` ({name: {dtype, shape, data_offsets}}), after checking that the
    file exists, parses, and is exactly as long as the header declares (a truncated copy fails here)."""
    if not file.is_file():
        raise SalesAIError(f"{file}: missing (a checkpoint holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    size = file.stat().st_size
    try:
        with open(file, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8)) if size >= 8 else (-1,)
            if not 0 < n <= min(_MAX_HEADER_BYTES, size - 8):
                raise ValueError("no safetensors header")
            header = json.loads(fh.read(n))
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        reason = f"not a readable safetensors file (truncated or foreign?): {exc}"
        raise SalesAIError(f"{file}: {reason}") from None
    declared = 8 + n + max(ends, default=0)
    if size != declared:
        raise SalesAIError(
            f"{file}: not a readable safetensors file (truncated: {size:,} bytes, its header declares "
            f"{declared:,})"
        )
    return {k: v for k, v in header.items() if k != "__metadata__"}


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


def save_pretrained(model: nn.Module, path: str | Path) -> Path:
    """Write config.json and model.safetensors into `path` (created if needed)."""
    from safetensors.torch import save_file

    from salesai import __version__

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = weights_state_dict(model)
    meta = {"format": "pt", "producer": f"salesai {__version__}"}
    _atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata=meta))
    config: ModelConfig = model.config  # type: ignore[assignment]
    text = config.to_json() + "\n"
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

    check_weights_file(file)
    try:
        return load_file(str(file), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ValueError from a damaged header
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SalesAIError(
            f"{file}: not a readable safetensors file (truncated or foreign?): {reason}"
        ) from None


def load_state(model: Any, tensors: dict[str, torch.Tensor], file: Path) -> None:
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
    if model.config.tie_embeddings and isinstance(getattr(model, "lm_head", None), nn.Linear):
        model.lm_head.weight = model.embed_tokens.weight  # (a classifier has no output head to tie)


def weights_state_dict_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    sd = model.state_dict()
    if getattr(model.config, "tie_embeddings", False):
        sd.pop("lm_head.weight", None)
    return {k: tuple(v.shape) for k, v in sd.items()}
