"""Value-based RL agents and their runs.

- `base`: the agent interface (`Agent`) and option helpers every agent can use;
- `dqn`: `DQNAgent`, DQN with Rainbow switches (dueling, double Q, prioritized replay, n-step)
  and optional episodic novelty;
- `networks`: Q-network torsos (MLP, small CNN) and heads (plain, dueling);
- `run`: training and evaluation runs (`salesai rl train`, `salesai rl eval`).

Nothing heavy is imported here: torch loads when an agent is built.
"""

from __future__ import annotations

from salesai_rl.agents.base import Agent, resolve_options
from salesai_rl.agents.dqn import DQNAgent, DQNConfig

__all__ = ["Agent", "DQNAgent", "DQNConfig", "resolve_options"]
