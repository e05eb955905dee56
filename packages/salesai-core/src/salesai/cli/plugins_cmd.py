"""`salesai plugins`: list installed plugins, what they registered, and failures."""

from __future__ import annotations

import json

import typer


def plugins(json_output: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List plugins: distribution, version, hooks, registered names, errors."""
    from salesai import plugins as host

    infos = host.plugin_infos()
    if json_output:
        typer.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="salesai plugins")
    table.add_column("distribution", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("plugin", overflow="fold")
    table.add_column("registered", overflow="fold", min_width=16)
    table.add_column("status", overflow="fold", min_width=6)
    for info in infos:
        registered = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.registered.items())
        if not registered:
            registered = "nothing" + (f" ({escape(info.description)})" if info.description else "")
        status = f"[red]{escape(info.error)}[/red]" if info.error else "ok"
        table.add_row(info.distribution, info.version, info.name, registered, status)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
