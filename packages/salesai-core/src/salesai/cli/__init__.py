"""The `salesai` command line: a typer app whose command groups live one per module.

`main()` (the console script) loads plugins, lets them add commands, then runs the app.
A `SalesAIError` is printed as one red line with exit code 2; `--debug` shows the traceback.
Heavy libraries (torch, onnx) are imported inside commands so `salesai --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from salesai import __version__
from salesai.errors import SalesAIError

app = typer.Typer(
    name="salesai",
    help="Train, export and serve small multimodal Mixture-of-Experts language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"salesai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(  # noqa: UP045 - typer needs Optional on 3.10
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Train, export and serve small multimodal Mixture-of-Experts language models."""
    if debug:
        os.environ["SALESAI_DEBUG"] = "1"


def error(message: str) -> None:
    """Print one red error line to stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {message}")


def _add_builtin_commands() -> None:
    from salesai.cli import plugins_cmd

    for module in (plugins_cmd,):
        module.register(app)


_add_builtin_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: load plugins, add their commands, run the app."""
    from salesai import plugins

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        plugins.host().add_commands(app)
    except SalesAIError as exc:  # strict mode re-raises plugin errors
        if debug:
            raise
        error(str(exc))
        raise SystemExit(2) from None
    try:
        app(args=argv, prog_name="salesai")
    except SalesAIError as exc:
        if debug or os.environ.get("SALESAI_DEBUG") == "1":
            raise
        error(str(exc))
        raise SystemExit(2) from None
