"""Environments: build any Gymnasium env by id or `module:Class`, check it, and small demo envs.

- `make_env(spec, seed)`: `"CartPole-v1"` (a registered id) or `"mypkg.envs:GridWorld"`
  (a class or factory importable from a module); a bad spec is one `SalesAIError` line;
- `check_env(env)`: runs `reset`/`step` a few times and names the first thing that breaks
  the Gymnasium API (spaces, return types, observations outside their space);
- `ChainEnv`: a tiny chain MDP (walk right to the reward) that a working agent solves in a
  few hundred steps, for tests and the docs.

gymnasium is imported inside the functions.
"""

from __future__ import annotations

from salesai_rl.envs.chain import ChainEnv, make_chain_env
from salesai_rl.envs.checker import check_env
from salesai_rl.envs.make import make_env

__all__ = ["ChainEnv", "check_env", "make_chain_env", "make_env"]
