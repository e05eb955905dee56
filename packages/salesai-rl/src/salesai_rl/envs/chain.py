"""A chain MDP: states 0..n-1 in a row, start at 0, action 1 moves right, action 0 moves left.

Reaching the last state gives reward 1 and terminates; every episode is truncated after
`max_steps`. Observations are one-hot vectors (float32). A random policy rarely reaches the
end of a long chain, a learning agent does within a few hundred steps: the smallest test of
"it learns" (Osband et al.'s deep-sea/chain family, simplified).
"""

from __future__ import annotations

from typing import Any, ClassVar


def make_chain_env(n: int = 6, max_steps: int = 12) -> Any:
    """A `ChainEnv` (gymnasium imported here)."""
    return ChainEnv(n=n, max_steps=max_steps)


def _env_base() -> Any:
    import gymnasium

    return gymnasium.Env


class ChainEnv(_env_base()):  # type: ignore[misc]
    """States in a row, reward 1 at the right end; one-hot observations, 2 actions."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, n: int = 6, max_steps: int = 12) -> None:
        import numpy as np
        from gymnasium import spaces

        self.n, self.max_steps = n, max_steps
        self.observation_space = spaces.Box(0.0, 1.0, shape=(n,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.state = 0
        self.t = 0

    def _obs(self) -> Any:
        import numpy as np

        obs = np.zeros(self.n, dtype=np.float32)
        obs[self.state] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.state, self.t = 0, 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        self.state = min(self.state + 1, self.n - 1) if int(action) == 1 else max(self.state - 1, 0)
        terminated = self.state == self.n - 1
        truncated = not terminated and self.t >= self.max_steps
        return self._obs(), float(terminated), terminated, truncated, {}
