"""The `safetensors` exporter: the native salesai checkpoint directory.

What: config.json + model.safetensors (+ tokenizer.model when a tokenizer is given), the
same directory `SalesAIModel.from_pretrained` / `salesai generate` read. Option `dtype`
("float32", "bfloat16", "float16") stores the weights in that precision (loading casts them
back into the model's parameters). References: `salesai.model.checkpoint`.

What it is not: no trainer state; `salesai train` writes resumable checkpoints itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from salesai.errors import SalesAIError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def export_safetensors(model: torch.nn.Module, tokenizer: Any, out_dir: Path, dtype: str = "float32",
                       **options: Any) -> Path:
    """Write the native checkpoint into `out_dir`."""
    from safetensors.torch import save_file

    from salesai import __version__
    from salesai.model.weights import CONFIG_FILE, WEIGHTS_FILE, weights_state_dict

    if options:
        unknown = ", ".join(sorted(options))
        raise SalesAIError(f"safetensors export: unknown option(s) {unknown}; known: dtype")
    if dtype not in DTYPES:
        raise SalesAIError(f"safetensors export: dtype={dtype!r}; expected one of: {', '.join(DTYPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(DTYPES[dtype]) for k, v in weights_state_dict(model).items()}
    meta = {"format": "pt", "producer": f"salesai {__version__}"}
    save_file(tensors, str(out / WEIGHTS_FILE), metadata=meta)
    cfg: Any = model.config
    text = json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n"
    (out / CONFIG_FILE).write_text(text, encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


__all__ = ["export_safetensors"]
