"""`salesai lora`: inspect an adapter checkpoint, merge it into a plain checkpoint.

Training adapters is `salesai train --init BASE --lora r=16,alpha=32,targets=attn,experts`;
generation and export take an adapter checkpoint (or its run directory) like any other.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from salesai.errors import SalesAIError

lora_app = typer.Typer(name="lora", help="LoRA adapter checkpoints: info, merge.", no_args_is_help=True)


def _adapter_dir(checkpoint: Path) -> Path:
    from salesai.lora.checkpoint import is_adapter_checkpoint
    from salesai.model.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(checkpoint, notice=True)
    if not is_adapter_checkpoint(ckpt):
        raise SalesAIError(f"{ckpt}: not a LoRA adapter checkpoint (no adapter_config.json); train one with "
                           "salesai train --init BASE --lora ...")
    return ckpt


@lora_app.command("info")
def info(
    checkpoint: Path = typer.Argument(..., help="Adapter checkpoint (or its run directory)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """The adapter's config, size and base (path, fingerprint, whether it is present and matches)."""
    from salesai.lora.checkpoint import ADAPTER_WEIGHTS_FILE, find_base, read_adapter_config

    ckpt = _adapter_dir(checkpoint)
    meta = read_adapter_config(ckpt)
    try:
        base_status: Any = str(find_base(ckpt, meta))
    except SalesAIError as exc:
        base_status = {"error": str(exc)}
    result = {"checkpoint": str(ckpt), "lora": meta["lora"], "base": meta["base"], "base_found": base_status,
              "trainable_parameters": meta.get("trainable_parameters"),
              "adapter_bytes": (ckpt / ADAPTER_WEIGHTS_FILE).stat().st_size}
    if json_output:
        typer.echo(json.dumps(result, indent=2))
        return
    lora = meta["lora"]
    typer.echo(f"LoRA r={lora['r']} alpha={lora['alpha']:g} dropout={lora['dropout']:g} "
               f"targets={','.join(lora['targets'])}: {result['trainable_parameters']:,} parameters, "
               f"{result['adapter_bytes'] / 1e6:.2f} MB")
    typer.echo(f"base: {meta['base']['path']} ({meta['base'].get('fingerprint')})")
    if isinstance(base_status, dict):
        typer.echo(f"base check: {base_status['error']}")


@lora_app.command("merge")
def merge(
    checkpoint: Path = typer.Argument(..., help="Adapter checkpoint (or its run directory)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the merged, plain checkpoint."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty output directory."),
) -> None:
    """Fold the adapter into the base weights: a plain checkpoint, no LoRA needed to load it."""
    from salesai.lora.checkpoint import load_adapter_checkpoint
    from salesai.model.checkpoint import save_checkpoint
    from salesai.tokenizer import Tokenizer

    ckpt = _adapter_dir(checkpoint)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise SalesAIError(f"--out {out}: exists and is not empty; pass --force to replace it")
    model = load_adapter_checkpoint(ckpt)
    tokenizer = Tokenizer.from_pretrained(ckpt) if (ckpt / "tokenizer.model").is_file() else None
    save_checkpoint(out, model.merged_model(), tokenizer)
    typer.echo(str(out))
    print(f"merged {len(model.lora_config.targets)} target group(s) of {ckpt} into a plain checkpoint",
          file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.add_typer(lora_app, name="lora")
