"""`salesai data`: look at training data before training on it."""

from __future__ import annotations

import json
from typing import Optional

import typer

data_app = typer.Typer(name="data", help="Inspect training data.", no_args_is_help=True)


@data_app.command("inspect")
def inspect(
    paths: list[str] = typer.Argument(..., help="Text files, .jsonl files, folders or globs."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer dir: count tokens too."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
    val: Optional[str] = typer.Option(
        None, "--val", help="Labelled validation file: texts also in PATHS (leakage), unseen labels."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Labelled data: the text column."),
    label_column: Optional[str] = typer.Option(
        None, "--label-column", help="Labelled data: the label column."),
    max_len: int = typer.Option(256, "--max-len", min=3, help="Labelled data: texts longer than this many "
                                "tokens (with --tokenizer) are reported."),
) -> None:
    """Records, modalities, sizes and problems (with line numbers) of PATHS."""
    from salesai.data.inspection import inspect_data

    tok = None
    if tokenizer is not None:
        from salesai.tokenizer import Tokenizer

        tok = Tokenizer.from_pretrained(tokenizer)
    report = inspect_data(list(paths), tokenizer=tok, val=val, text_column=text_column,
                          label_column=label_column, max_len=max_len)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    summary = Table(title=f"salesai data: {report.path}", show_header=False)
    summary.add_column("field")
    summary.add_column("value")
    summary.add_row("files", str(report.files))
    summary.add_row("records", f"{report.records} ({report.empty_records} empty)")
    modalities = ", ".join(report.modalities) or "none"
    summary.add_row("modalities", f"{modalities} (from {report.modalities_source})")
    summary.add_row("media", ", ".join(f"{k}: {v}" for k, v in report.media.items()))
    summary.add_row("characters", f"{report.characters:,}")
    summary.add_row("words", f"{report.words:,}")
    if report.tokens is not None:
        summary.add_row("tokens", f"{report.tokens:,} (vocab {report.tokenizer_vocab_size})")
    summary.add_row("problems", str(len(report.problems)))
    console.print(summary)
    if report.classification is not None:
        from salesai.cli.classify_cmd import print_classification_summary

        print_classification_summary(console, report.classification)
    if report.problems:
        table = Table(title="problems")
        for col in ("file", "line", "kind", "message"):
            table.add_column(col)
        for p in report.problems:
            table.add_row(p.path, "" if p.line is None else str(p.line), p.kind, p.message)
        console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
