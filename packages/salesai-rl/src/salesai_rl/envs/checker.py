"""An environment checker users can run on their own envs (after SB3's and Gymnasium's).

`check_env(env, name)` resets and steps the env a few times with random actions and raises
one `SalesAIError` naming the first broken promise of the Gymnasium API: missing spaces,
`reset` not returning `(obs, info)`, `step` not returning five values, an observation
outside its space, a non-numeric reward, non-boolean flags. It does not judge whether the
env is a good task.
"""

from __future__ import annotations

from typing import Any

from salesai.errors import SalesAIError


def _fail(name: str, message: str) -> None:
    raise SalesAIError(f"environment {name}: {message}")


def _check_obs(name: str, env: Any, obs: Any, where: str) -> None:
    try:
        ok = env.observation_space.contains(obs)
    except Exception:  # contains() itself chokes on a wrong type
        ok = False
    if not ok:
        shape = getattr(obs, "shape", None)
        dtype = getattr(obs, "dtype", type(obs).__name__)
        _fail(name, f"the observation from {where} (shape {shape}, dtype {dtype}) is not in "
                    f"observation_space {env.observation_space}")


def check_env(env: Any, name: str | None = None, steps: int = 20, seed: int = 0) -> None:
    """Raise `SalesAIError` naming what is wrong with `env`; return None when it follows the API."""
    import gymnasium
    import numpy as np

    name = name or type(getattr(env, "unwrapped", env)).__name__
    for attr in ("observation_space", "action_space"):
        space = getattr(env, attr, None)
        if not isinstance(space, gymnasium.spaces.Space):
            _fail(name, f"{attr} is {space!r}, expected a gymnasium.spaces.Space")
    env.action_space.seed(seed)
    result = env.reset(seed=seed)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        _fail(name, f"reset() returned {type(result).__name__}, expected a tuple (observation, info: dict)")
    _check_obs(name, env, result[0], "reset()")
    for _ in range(steps):
        out = env.step(env.action_space.sample())
        if not (isinstance(out, tuple) and len(out) == 5):
            _fail(name, "step() must return 5 values (obs, reward, terminated, truncated, info); "
                        f"got {len(out) if isinstance(out, tuple) else type(out).__name__}")
        obs, reward, terminated, truncated, info = out
        _check_obs(name, env, obs, "step()")
        if not isinstance(reward, (int, float, np.integer, np.floating)) or isinstance(reward, bool):
            _fail(name, f"step() returned a reward of type {type(reward).__name__}, expected a number")
        for flag, value in (("terminated", terminated), ("truncated", truncated)):
            if not isinstance(value, (bool, np.bool_)):
                _fail(name, f"step() returned {flag}={value!r}, expected a bool")
        if not isinstance(info, dict):
            _fail(name, f"step() returned info of type {type(info).__name__}, expected a dict")
        if terminated or truncated:
            env.reset()
    env.reset(seed=seed)
