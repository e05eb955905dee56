"""`salesai vision ...`: the command group salesai-vision adds to the salesai CLI."""

from __future__ import annotations

import json

import typer


def make_data(
    kind: str = typer.Argument(..., help="Data set: shapes or digits."),
    out: str = typer.Option(..., "--out", "-o", help="Output directory (created)."),
    n: int = typer.Option(2000, "--n", help="Training images (each test split gets n // 4)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes the same files."),
) -> None:
    """Generate benchmark images + prompt/response JSONL (train.jsonl, test.jsonl, README.md)."""
    from salesai_vision.data import make_data as build

    summary = build(kind, out, n=n, seed=seed)
    typer.echo(json.dumps(summary))


def vision_app() -> typer.Typer:
    app = typer.Typer(help="Images: demo data for image-to-text models.", no_args_is_help=True)
    app.command("make-data")(make_data)
    return app
