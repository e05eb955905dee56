"""`register_plugin`: register a plugin object with the process-wide host for one block.

The object is anything pluggy accepts: a module, a class or an instance with
`@salesai.hookimpl` functions. On exit it is unregistered and the registries are rebuilt,
so a name it overrode comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from salesai import plugins
from salesai.errors import PluginError


def _default_name(plugin: object) -> str:
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return str(name)


@contextmanager
def register_plugin(
    plugin: object,
    *,
    name: str | None = None,
    distribution: str | None = None,
    version: str = "0.0.0",
    check: bool = True,
) -> Iterator[plugins.PluginInfo]:
    """Register `plugin` for the duration of the block; yields its `PluginInfo`.

    `distribution` (default: the plugin's name) is what error messages and `salesai plugins`
    show as the provider. With `check=True` (default) a plugin that does not register
    cleanly raises `PluginError` with the reason; pass `check=False` to inspect
    `info.error` yourself (tests of error reporting).
    """
    host = plugins.host()
    plugin_name = name or _default_name(plugin)
    info = plugins.PluginInfo(plugin_name, distribution or plugin_name, version)
    info.description = plugins._first_line(getattr(plugin, "__doc__", None))
    try:
        host.add(plugin, info)
        if check and info.error:
            raise PluginError(f"plugin {plugin_name!r} did not register cleanly: {info.error}")
        yield info
    finally:
        host.remove(plugin, info)


def has_component(kind: str, name: str) -> bool:
    """Whether an installed plugin registered `name` under `kind` (e.g. `("encoders", "vit")`); for
    `pytest.mark.skipif` on tests that need another package's component."""
    try:
        plugins.registry(kind).get(name)
    except PluginError:
        return False
    return True
