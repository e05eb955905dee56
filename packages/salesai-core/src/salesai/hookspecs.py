"""The salesai plugin hooks: one per extension kind.

Each `register_*` hook receives a `register(name, factory, **metadata)` callable, so new
keyword arguments never break existing plugins. Plugins implement any subset with
`@salesai.hookimpl` and expose the module through the `salesai` entry point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("salesai")
hookimpl = pluggy.HookimplMarker("salesai")

Register = Callable[..., None]


@hookspec
def register_experts(register: Register) -> None:
    """Register expert types: `factory(hidden_dim, intermediate_dim) -> nn.Module`, (N, D) -> (N, D)."""


@hookspec
def register_encoders(register: Register) -> None:
    """Register modality encoders: `factory(**options) -> nn.Module` (modality, output_dim, preprocess)."""


@hookspec
def register_agents(register: Register) -> None:
    """Register RL agents: a class following the agent interface documented by salesai-rl."""


@hookspec
def register_exporters(register: Register) -> None:
    """Register exporters: `factory(model, tokenizer, out_dir: Path, **options) -> Path`."""


@hookspec
def register_rewards(register: Register) -> None:
    """Register LM RL rewards: `factory(**options) -> reward(prompts, completions, **fields) -> scores`."""


@hookspec
def register_commands(app: Any) -> None:
    """Add sub-commands or command groups to the `salesai` typer app."""
