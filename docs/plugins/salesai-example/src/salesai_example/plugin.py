"""Example plugin: the `relu2` expert type, the `summary` exporter and `salesai hello`.

The module named by the entry point stays tiny and imports nothing heavy: `salesai --help`
loads it on every start, so torch is imported inside the factories, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

import salesai
from salesai.hookspecs import Register


def relu2(hidden_dim: int, intermediate_dim: int) -> Any:
    """Expert factory: a squared-ReLU MLP mapping (N, hidden_dim) -> (N, hidden_dim)."""
    from salesai_example.relu2 import ReLU2Expert

    return ReLU2Expert(hidden_dim, intermediate_dim)


def summary(model: Any, tokenizer: Any, out_dir: Path, **options: Any) -> Path:
    """Exporter factory: write `out_dir/summary.json` (parameter counts); returns its path."""
    from salesai_example.summary import export_summary

    return export_summary(model, tokenizer, Path(out_dir), **options)


@salesai.hookimpl
def register_experts(register: Register) -> None:
    register("relu2", relu2, description="squared-ReLU MLP (Primer, So et al. 2021)")


@salesai.hookimpl
def register_exporters(register: Register) -> None:
    register("summary", summary, description="JSON file of parameter counts")


def hello(
    name: str = typer.Argument("world", help="Who to greet."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Say hello, and list the expert types this installation knows."""
    import json

    from salesai.plugins import registry

    experts = registry("experts").names()
    if json_output:
        typer.echo(json.dumps({"greeting": f"Hello, {name}!", "experts": experts}))
    else:
        typer.echo(f"Hello, {name}! Expert types available: {', '.join(experts)}")


@salesai.hookimpl
def register_commands(app: Any) -> None:
    app.command("hello")(hello)
