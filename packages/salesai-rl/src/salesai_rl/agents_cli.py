"""`salesai rl agents`: the registered RL agents and their options.

Results go to stdout (a table, or JSON with `--json`); nothing heavy is imported at import time.
"""

from __future__ import annotations

import json
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `salesai rl` group."""
    app.command("agents")(agents)


def _agent_rows() -> list[dict[str, Any]]:
    from salesai import plugins

    rows = []
    for entry in plugins.registry("agents").entries():
        options = getattr(entry.factory, "default_options", None)
        defaults = options() if callable(options) else {}
        rows.append({
            "name": entry.name,
            "provider": entry.provider,
            "description": str(entry.metadata.get("description", "")),
            "options": defaults,
        })
    return rows


def agents(json_output: bool = typer.Option(False, "--json", help="Print the list as JSON.")) -> None:
    """List the registered agents, with their options and defaults."""
    rows = _agent_rows()
    if json_output:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("agent", "provider", "description", "options (defaults)")
    for row in rows:
        opts = ", ".join(f"{k}={v}" for k, v in row["options"].items())
        table.add_row(row["name"], row["provider"], row["description"], opts)
    Console().print(table)
