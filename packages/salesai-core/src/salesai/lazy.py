"""Lazy package attributes: `from salesai.model import SalesAIModel` imports torch only then.

    _LAZY = {"SalesAIModel": "salesai.model.transformer"}
    __getattr__ = lazy_getattr(__name__, _LAZY)     # module-level __getattr__ (PEP 562)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `names[attr]` (a module path) on first access."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
