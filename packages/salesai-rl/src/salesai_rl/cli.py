"""The `salesai rl` command group: a typer app assembled from one module per topic.

`make_app()` builds the group and lets each command module add its commands through a
`register(app)` function: `salesai_rl.agents_cli` (agents, train, eval), `salesai_rl.meta_cli`
(meta) and, when present, `salesai_rl.lm_cli` (language-model RL). A new topic adds its module
name to `COMMAND_MODULES`; a module that is absent is skipped, any other import error surfaces.
Nothing heavy is imported here (torch and gymnasium load inside the commands).
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = ("salesai_rl.agents_cli", "salesai_rl.meta_cli", "salesai_rl.lm_cli")
HELP = "Reinforcement learning: value-based agents on Gymnasium environments, LM policy optimisation."


def make_app() -> typer.Typer:
    """A new `rl` typer group with the commands of every module in `COMMAND_MODULES`."""
    app = typer.Typer(name="rl", help=HELP, no_args_is_help=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # the topic is not installed in this version
                continue
            raise
        module.register(app)
    return app
