"""The agent interface every registered agent follows, and helpers for options.

An agent is a class registered through the core's `register_agents` hook:

    class MyAgent:
        @classmethod
        def default_options(cls) -> dict[str, Any]: ...       # every option and its default
        def __init__(self, observation_space, action_space, *, seed=0, **options): ...
        def act(self, observation, explore=True): ...          # an action in action_space
        def observe(self, obs, action, reward, next_obs, terminated, truncated) -> dict[str, float]: ...
        def save(self, directory, include_buffer=True) -> None: ...
        @classmethod
        def load(cls, directory, observation_space, action_space) -> "MyAgent": ...

- `act(obs, explore=False)` is the greedy (evaluation) policy and must be deterministic.
- `observe` is called once per environment step, in order; the agent stores the transition,
  learns when it decides to, and returns metrics (possibly empty) such as `loss`, `epsilon`.
  A step with `terminated or truncated` ends the episode; the next `observe` starts another.
- `save` writes only JSON and safetensors files into `directory` (nothing pickled); `load`
  restores an agent that acts identically and, when the buffer was saved, learns on
  exactly as the saved one would have.
- Bad input (an unknown option, a value of the wrong type, spaces the agent cannot handle)
  raises `salesai.errors.SalesAIError` naming it.

`salesai.testing.check_agent` checks these promises for any registered agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from salesai.errors import SalesAIError


@runtime_checkable
class Agent(Protocol):
    """The interface of a salesai RL agent (see the module docstring)."""

    @classmethod
    def default_options(cls) -> dict[str, Any]: ...

    def act(self, observation: Any, explore: bool = True) -> Any: ...

    def observe(self, obs: Any, action: Any, reward: float, next_obs: Any,
                terminated: bool, truncated: bool) -> dict[str, float]: ...

    def save(self, directory: Any, include_buffer: bool = True) -> None: ...


def coerce_option(agent: str, name: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of `default` (strings from the command line included)."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError):
        raise SalesAIError(
            f"option {name!r} of agent {agent!r} expects {kind.__name__}, got {value!r}") from None
    return value


def resolve_options(agent: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated with `given`, each value coerced to its default's type; unknown names refused."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SalesAIError(
            f"unknown option(s) for agent {agent!r}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(defaults))}")
    resolved = dict(defaults)
    for name, value in given.items():
        resolved[name] = coerce_option(agent, name, value, defaults[name])
    return resolved


def parse_option_strings(items: list[str]) -> dict[str, str]:
    """`["lr=0.001", "dueling=false"]` -> {"lr": "0.001", "dueling": "false"}; a malformed item is refused."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SalesAIError(f"--option {item!r}: expected NAME=VALUE, for example lr=0.001")
        out[key.strip()] = value.strip()
    return out
