"""The salesai-rl plugin: registers the RL agents and the `salesai rl` command group.

This is the module the `salesai` entry point of salesai-rl names. It stays tiny and imports
nothing heavy: agent classes import torch and gymnasium inside their methods.
"""

from __future__ import annotations

from typing import Any

import salesai


@salesai.hookimpl
def register_agents(register: Any) -> None:
    """The value-based agents of salesai-rl."""
    from salesai_rl.agents.dqn import DQNAgent

    register("dqn", DQNAgent, description="DQN, Rainbow switches: dueling, double Q, PER, n-step, novelty")


@salesai.hookimpl
def register_commands(app: Any) -> None:
    """`salesai rl ...` (agents, train, eval and the LM RL commands)."""
    from salesai_rl.cli import make_app

    app.add_typer(make_app(), name="rl")
