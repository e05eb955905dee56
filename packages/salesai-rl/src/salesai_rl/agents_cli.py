"""`salesai rl agents`, `salesai rl train`, `salesai rl eval`: registered agents on Gymnasium envs.

Results go to stdout (a table or summary, or JSON with `--json`); progress goes to stderr.
torch and gymnasium are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `salesai rl` group."""
    app.command("agents")(agents)
    app.command("train")(train)
    app.command("eval")(evaluate)


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


def _print(result: dict[str, Any], json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        if key != "returns":
            typer.echo(f"{key}: {value}")


def train(
    agent: str = typer.Argument(..., help="Registered agent name (see `salesai rl agents`)."),
    env: str = typer.Option(..., "--env", help="Gymnasium id (CartPole-v1) or module:Class."),
    out: Path = typer.Option(..., "--out", help="Run directory: run.json, metrics.jsonl, checkpoint/."),
    steps: int = typer.Option(50_000, "--steps", help="Environment steps in total."),
    seed: int = typer.Option(0, "--seed", help="Seed of the agent and the env."),
    option: Optional[list[str]] = typer.Option(
        None, "--option", "-o", help="Agent option NAME=VALUE (repeatable; see `salesai rl agents`)."),
    novelty: Optional[str] = typer.Option(None, "--novelty", help="Intrinsic bonus: episodic (NGU) or none."),
    eval_every: int = typer.Option(0, "--eval-every", help="Greedy evaluation every N steps (0: none)."),
    eval_episodes: int = typer.Option(10, "--eval-episodes", help="Episodes per evaluation."),
    save_every: int = typer.Option(
        10_000, "--save-every", help="Checkpoint every N steps (at an episode end)."),
    save_buffer: bool = typer.Option(
        True, "--save-buffer/--no-save-buffer", help="Keep the replay buffer in checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT from its latest checkpoint."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train an agent on a Gymnasium environment."""
    import torch

    from salesai.errors import SalesAIError
    from salesai_rl.agents.base import parse_option_strings
    from salesai_rl.agents.run import RunSpec
    from salesai_rl.agents.run import train as run_train

    if steps < 1:
        raise SalesAIError(f"--steps {steps}: expected at least 1")
    torch.set_num_threads(max(1, threads))
    options: dict[str, Any] = parse_option_strings(option or [])
    if novelty is not None:
        options["novelty"] = novelty
    spec = RunSpec(agent=agent, env=env, seed=seed, steps=steps, options=options, eval_every=eval_every,
                   eval_episodes=eval_episodes, save_every=save_every, save_buffer=save_buffer)
    _print(run_train(spec, out, resume=resume), json_output)


def evaluate(
    run: Path = typer.Argument(..., help="Run directory made by `salesai rl train`."),
    episodes: int = typer.Option(20, "--episodes", help="Greedy episodes (seeded, so repeatable)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Evaluate the latest checkpoint of a run with greedy, seeded episodes."""
    import torch

    from salesai_rl.agents.run import evaluate_run

    torch.set_num_threads(max(1, threads))
    _print(evaluate_run(run, episodes), json_output)
