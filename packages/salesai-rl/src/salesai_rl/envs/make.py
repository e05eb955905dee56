"""`make_env(spec)`: a Gymnasium env from a registered id or a `module:Class` path."""

from __future__ import annotations

import importlib
from typing import Any

from salesai.errors import SalesAIError


def _from_path(spec: str, kwargs: dict[str, Any]) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SalesAIError(f"--env {spec!r}: cannot import module {module_name!r} ({exc})") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise SalesAIError(f"--env {spec!r}: module {module_name!r} has no callable {attr!r}")
    try:
        return factory(**kwargs)
    except Exception as exc:
        raise SalesAIError(f"--env {spec!r}: building it failed: {type(exc).__name__}: {exc}") from None


def make_env(spec: str, **kwargs: Any) -> Any:
    """Build the environment `spec` names: a Gymnasium id (`CartPole-v1`) or `module:Class`."""
    import gymnasium

    if not spec or not isinstance(spec, str):
        raise SalesAIError(f"--env {spec!r}: expected a Gymnasium id such as CartPole-v1 or module:Class")
    if ":" in spec:
        env = _from_path(spec, kwargs)
    else:
        try:
            env = gymnasium.make(spec, **kwargs)
        except gymnasium.error.Error as exc:
            raise SalesAIError(
                f"--env {spec!r}: not a registered Gymnasium id ({exc}); "
                "pass a registered id such as CartPole-v1 or module:Class") from None
    if not isinstance(env, gymnasium.Env):
        raise SalesAIError(f"--env {spec!r}: built a {type(env).__name__}, expected a gymnasium.Env")
    return env
