"""`salesai export CKPT --format NAME --out DIR [--force] [exporter options]`.

Generic over `registry("exporters")`: the format names an exporter
`factory(model, tokenizer, out_dir, **options) -> Path`. Options the command does not know
are handed to the exporter: `--name value` -> name="value" (numbers and true/false
converted), a bare `--flag` -> flag=True, `--no-flag` -> flag=False, dashes become
underscores. The export is written into a temporary directory beside `--out` and renamed
into place only when it succeeded, so a failure leaves nothing half-written; an existing
non-empty `--out` is refused unless `--force`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from salesai.errors import SalesAIError


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(args: list[str]) -> dict[str, Any]:
    """['--opset', '17', '--no-verify', '--quantize=int8'] -> {opset: 17, verify: False, quantize: 'int8'}."""
    options: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise SalesAIError(f"unexpected argument {arg!r}: exporter options are written --name value")
        name, eq, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if eq:
            options[key] = _value(value)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            options[key] = _value(args[i + 1])
            i += 1
        elif key.startswith("no_"):
            options[key[3:]] = False
        else:
            options[key] = True
        i += 1
    return options


def check_options(name: str, factory: Any, options: dict[str, Any]) -> None:
    """Refuse options the exporter's signature does not take (unless it takes **options)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [p for p in params if p not in ("model", "tokenizer", "out_dir")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(f"--{k.replace('_', '-')}" for k in known) or "none"
        given = ", ".join("--" + u for u in unknown)
        raise SalesAIError(f"exporter {name!r} does not take {given}; its options: {listed}")


def run_export(
    checkpoint: Path, fmt: str, out: Path, force: bool = False, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Export `checkpoint` with exporter `fmt` into `out`; returns a summary dict."""
    from salesai.plugins import registry

    options = dict(options or {})
    entry = registry("exporters").entry(fmt)  # unknown: lists the known formats and providers
    check_options(fmt, entry.factory, options)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SalesAIError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SalesAIError(f"--out {out}: exists and is not empty; pass --force to replace it")
    if not checkpoint.is_dir():
        raise SalesAIError(f"{checkpoint}: checkpoint directory not found")

    from salesai.atomic import atomic_dir
    from salesai.model.checkpoint import load_checkpoint, resolve_checkpoint

    checkpoint = resolve_checkpoint(checkpoint, notice=True)

    start = time.perf_counter()
    model, tokenizer = load_checkpoint(checkpoint)
    if fmt != "hf" and callable(getattr(model, "merged_model", None)):
        model = model.merged_model()  # a LoRA adapter checkpoint: merged first (hf writes a PEFT adapter)
    with atomic_dir(out) as tmp:
        result = entry.factory(model, tokenizer, tmp, **options)
    result_path = Path(result) if result is not None else out
    with contextlib.suppress(ValueError):  # a path inside the temp dir now lies inside `out`
        result_path = out / result_path.relative_to(tmp)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return {
        "format": fmt,
        "provider": entry.provider,
        "checkpoint": str(checkpoint),
        "out": str(out),
        "path": str(result_path),
        "files": files,
        "bytes": sum((out / f).stat().st_size for f in files),
        "seconds": round(time.perf_counter() - start, 3),
        "options": options,
    }


def export(
    ctx: typer.Context,
    checkpoint: Path = typer.Argument(..., help="Checkpoint directory (config.json, model.safetensors)."),
    fmt: str = typer.Option(..., "--format", "-f", help="Exporter name (`salesai plugins`): hf, onnx, ..."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (must be empty unless --force)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty output directory."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Export a checkpoint with any registered exporter; extra --options go to the exporter."""
    summary = run_export(checkpoint, fmt, out, force=force, options=parse_options(list(ctx.args)))
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(summary["path"])
    print(
        f"exported {summary['checkpoint']} as {fmt} ({summary['provider']}): {len(summary['files'])} files, "
        f"{summary['bytes'] / 1e6:.1f} MB in {summary['seconds']:.1f} s",
        file=sys.stderr,
    )


def register(app: typer.Typer) -> None:
    app.command(
        "export",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(export)
