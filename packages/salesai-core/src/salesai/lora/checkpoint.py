"""Adapter checkpoints: the adapter weights only, the base checkpoint referenced by path and fingerprint.

    ft/step-000200/
      adapter_config.json        {"format": "salesai-lora", "lora": {r, alpha, dropout, targets},
                                  "base": {"path", "relative", "fingerprint"}, "trainable_parameters"}
      adapter_model.safetensors  <layer path>.lora_A.weight (r, in), <layer path>.lora_B.weight (out, r)
      config.json                the base's model config (so `salesai info` and run directories work)
      tokenizer.model            the base's tokenizer, when it has one
      trainer_state/             optimizer (adapter parameters only), RNG, step: exact resume

The base is found through its path relative to the adapter directory first (a copied pair of
directories keeps working), then its absolute path; its fingerprint (sha256 of its
model.safetensors) must match, otherwise loading fails with one line naming both. Loading an
adapter checkpoint (`salesai.model.load_checkpoint`, `load_adapter_checkpoint`) gives a `LoraModel`:
base + adapter. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from salesai.errors import SalesAIError
from salesai.lora.config import LoraConfig
from salesai.lora.model import LoraModel, apply_lora

ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
FORMAT = "salesai-lora"
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> fingerprint


def is_adapter_checkpoint(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / ADAPTER_CONFIG_FILE).is_file()


def fingerprint(checkpoint: str | os.PathLike[str]) -> str:
    """"sha256:<hex>" of a checkpoint's model.safetensors (cached per file size and mtime)."""
    from salesai.model.weights import WEIGHTS_FILE

    file = Path(checkpoint) / WEIGHTS_FILE
    if not file.is_file():
        raise SalesAIError(f"{file}: missing (a LoRA base must be a plain checkpoint with {WEIGHTS_FILE})")
    st = file.stat()
    key = (str(file.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _FINGERPRINTS[key] = "sha256:" + h.hexdigest()
    return _FINGERPRINTS[key]


def base_reference(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """{"path", "fingerprint"} of a plain checkpoint directory (a run directory: its latest)."""
    from salesai.model.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(checkpoint)
    if is_adapter_checkpoint(ckpt):
        raise SalesAIError(f"{ckpt}: an adapter checkpoint, not a base model; merge it first "
                           "(salesai lora merge) to train another adapter on top")
    return {"path": str(ckpt.resolve()), "fingerprint": fingerprint(ckpt)}


def load_base_for_lora(checkpoint: str | os.PathLike[str], config: LoraConfig,
                       device: str | torch.device | None = None) -> LoraModel:
    """Load a plain checkpoint and attach fresh adapters (B = 0: the same outputs as the base)."""
    from salesai.model.checkpoint import load_pretrained

    ref = base_reference(checkpoint)
    return apply_lora(load_pretrained(ref["path"], device=device), config, ref)


# ------------------------------------------------------------------------------------ save
def save_adapter(model: LoraModel, path: str | Path) -> Path:
    """Write adapter_config.json, adapter_model.safetensors and the base's config.json into `path`."""
    from safetensors.torch import save_file

    from salesai import __version__
    from salesai.atomic import write_text_atomic
    from salesai.model.weights import CONFIG_FILE

    if not model.base_ref.get("path"):
        raise SalesAIError("LoRA: the base model was not loaded from a checkpoint, so an adapter checkpoint "
                           "could not name it; save the base first and load it with load_base_for_lora")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    base_path = Path(model.base_ref["path"])
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.adapter_state_dict().items()}
    save_file(tensors, str(out / ADAPTER_WEIGHTS_FILE),
              metadata={"format": "pt", "producer": f"salesai {__version__}"})
    meta = {
        "format": FORMAT,
        "version": 1,
        "lora": model.lora_config.to_dict(),
        "base": {"path": str(base_path), "relative": os.path.relpath(base_path, out.resolve()),
                 "fingerprint": model.base_ref.get("fingerprint")},
        "trainable_parameters": model.num_adapter_parameters(),
    }
    write_text_atomic(out / ADAPTER_CONFIG_FILE, json.dumps(meta, indent=2) + "\n")
    base_config: Any = model.base.config
    write_text_atomic(out / CONFIG_FILE, base_config.to_json() + "\n")
    return out


# ------------------------------------------------------------------------------------ load
def read_adapter_config(checkpoint: Path) -> dict[str, Any]:
    file = checkpoint / ADAPTER_CONFIG_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SalesAIError(f"{file}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("base"), dict):
        peft = isinstance(data, dict) and "peft_type" in data
        hint = " (a PEFT adapter? load it with peft)" if peft else ""
        raise SalesAIError(f"{file}: not a salesai adapter config{hint}")
    return data


def read_adapter_weights(checkpoint: Path) -> tuple[dict[str, torch.Tensor], str]:
    from salesai.model.weights import read_weights

    file = checkpoint / ADAPTER_WEIGHTS_FILE
    return read_weights(file), str(file)


def find_base(checkpoint: Path, meta: dict[str, Any], base: str | os.PathLike[str] | None = None) -> Path:
    """The base checkpoint an adapter names (or `base`), after checking its fingerprint."""
    ref = meta["base"]
    if base is not None:
        candidates = [Path(base)]
    else:
        candidates = [p for p in ((checkpoint / ref["relative"]) if ref.get("relative") else None,
                                  Path(ref["path"]) if ref.get("path") else None) if p is not None]
    found = next((p for p in candidates if p.is_dir()), None)
    if found is None:
        raise SalesAIError(f"{checkpoint}: its base checkpoint {ref.get('path')} is missing (moved? copy it "
                           "back or pass the base explicitly)")
    want = ref.get("fingerprint")
    have = fingerprint(found)
    if want and have != want:
        raise SalesAIError(f"{checkpoint}: adapter trained on a base with fingerprint {want[:19]}..., but "
                           f"{found} has {have[:19]}... (a different or retrained base)")
    return found


def load_adapter_checkpoint(path: str | os.PathLike[str], device: str | torch.device | None = None,
                            base: str | os.PathLike[str] | None = None) -> LoraModel:
    """Base + adapter from an adapter checkpoint (the base located and checked by `find_base`)."""
    from salesai.model.checkpoint import load_pretrained

    ckpt = Path(path)
    meta = read_adapter_config(ckpt)
    config = LoraConfig.from_dict(meta.get("lora"), where=str(ckpt / ADAPTER_CONFIG_FILE))
    base_dir = find_base(ckpt, meta, base)
    model = apply_lora(load_pretrained(base_dir), config,
                       {"path": str(base_dir.resolve()), "fingerprint": fingerprint(base_dir)})
    model.load_adapter_state_dict(*read_adapter_weights(ckpt))
    model.eval()
    return model.to(device) if device is not None else model


def lora_for_training(spec: str | LoraConfig | None, init: str | os.PathLike[str] | None,
                      resume: str | os.PathLike[str] | None = None,
                      log: Callable[[str], None] = print) -> LoraModel:
    """The model `salesai train --lora` trains: fresh adapters on `init`, or, when resuming from an
    adapter checkpoint, its base (found and checked by fingerprint) with its adapter config; the
    Trainer then restores the adapter weights and the optimizer state."""
    config = LoraConfig.parse(spec) if isinstance(spec, str) else spec
    if resume is not None and is_adapter_checkpoint(resume):
        ckpt = Path(resume)
        meta = read_adapter_config(ckpt)
        saved = LoraConfig.from_dict(meta.get("lora"), where=str(ckpt / ADAPTER_CONFIG_FILE))
        if config is not None and config != saved:
            log(f"notice: --lora {config.to_dict()} differs from the run's {saved.to_dict()}; "
                "resuming with the run's")
        base_dir = find_base(ckpt, meta, init)
        model = load_base_for_lora(base_dir, saved)
    else:
        if config is None or init is None:
            raise SalesAIError("--lora: needs --init CHECKPOINT, the base model the adapters are trained on")
        model = load_base_for_lora(init, config)
    if model.lora_config.base == "bf16":  # the frozen base in bf16, the adapters in fp32
        model.base.to(torch.bfloat16)
        for _, adapter in model.named_adapters():
            adapter.float()
        modules = dict(model.base.named_modules())
        for path in model.trained:  # trained in full: fp32 like the adapters
            modules[path].float()
    total = sum(p.numel() for p in model.base.parameters())
    log(f"LoRA: {len(model.adapters)} adapted layers, {model.num_adapter_parameters():,} trainable "
        f"parameters ({100 * model.num_adapter_parameters() / max(total, 1):.2f}% of {total:,}); base frozen")
    return model


__all__ = [
    "ADAPTER_CONFIG_FILE",
    "ADAPTER_WEIGHTS_FILE",
    "base_reference",
    "find_base",
    "fingerprint",
    "is_adapter_checkpoint",
    "load_adapter_checkpoint",
    "load_base_for_lora",
    "lora_for_training",
    "read_adapter_config",
    "save_adapter",
]
