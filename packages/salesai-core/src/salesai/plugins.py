"""The plugin host: discovers `salesai` entry points and keeps one registry per kind.

Loading is lazy and idempotent (the first registry lookup or `salesai` start-up loads),
one entry point at a time inside its own try/except, so a broken plugin is reported by
`salesai plugins` instead of taking the CLI down. Built-ins register first, through the
same hooks as third parties.

Environment:
- `SALESAI_LOAD_PLUGINS`: comma list of distributions to load (set but empty = none).
- `SALESAI_DISABLE_PLUGINS`: comma list of distributions to skip.
- `SALESAI_STRICT_PLUGINS=1`: re-raise plugin errors instead of reporting them.
- `SALESAI_TRACE_PLUGINS=1`: print every hook call to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterator

import pluggy

from salesai import hookspecs
from salesai.errors import PluginError

GROUP = "salesai"
CORE_DIST = "salesai-core"
BUILTIN_MODULES = ("salesai.builtin.experts", "salesai.builtin.exporters")

# kind -> hook name
KINDS: dict[str, str] = {
    "experts": "register_experts",
    "encoders": "register_encoders",
    "agents": "register_agents",
    "exporters": "register_exporters",
}

# Names that first-party packages provide, for the `pip install` hint on unknown names.
FIRST_PARTY: dict[str, dict[str, str]] = {
    "encoders": {"image": "salesai-vision", "vit": "salesai-vision", "audio": "salesai-audio"},
    "agents": {
        "dqn": "salesai-rl",
        "double_dqn": "salesai-rl",
        "dueling_dqn": "salesai-rl",
        "grpo": "salesai-rl",
        "dpo": "salesai-rl",
    },
    "exporters": {},
    "experts": {},
}
KIND_PACKAGES: dict[str, str] = {
    "encoders": "salesai-vision or salesai-audio",
    "agents": "salesai-rl",
}


@dataclass
class Entry:
    """One registered component and where it came from."""

    name: str
    factory: Callable[..., Any]
    provider: str  # distribution name, or "salesai-core" for built-ins
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class PluginInfo:
    """What `salesai plugins` reports about one plugin."""

    name: str
    distribution: str
    version: str
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "registered": self.registered,
            "error": self.error,
        }


class Registry:
    """Name -> factory for one extension kind, with provenance."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry, override: bool = False) -> None:
        old = self._entries.get(entry.name)
        if old is not None and not override:
            raise PluginError(
                f"duplicate {self.kind[:-1]} name {entry.name!r}: registered by "
                f"{old.provider} and by {entry.provider} (pass override=True to replace on purpose)"
            )
        self._entries[entry.name] = entry

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise PluginError(self._unknown_message(name))
        return self._entries[name]

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under `name`; a clear error listing known names otherwise."""
        return self.entry(name).factory

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def _unknown_message(self, name: str) -> str:
        known = ", ".join(f"{e.name} ({e.provider})" for e in self.entries()) or "none"
        msg = f"unknown {self.kind[:-1]} {name!r}; known: {known}"
        package = FIRST_PARTY.get(self.kind, {}).get(name) or KIND_PACKAGES.get(self.kind)
        if package:
            msg += f"; try `pip install {package}`"
        return msg


def _env_list(var: str) -> list[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _strict() -> bool:
    return os.environ.get("SALESAI_STRICT_PLUGINS", "") not in ("", "0")


def _norm(dist: str) -> str:
    return dist.lower().replace("_", "-")


class PluginHost:
    """Owns the pluggy manager, the plugin list and the registries."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("salesai")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._plugins: list[tuple[object, PluginInfo]] = []
        self.registries: dict[str, Registry] = {k: Registry(k) for k in KINDS}
        if os.environ.get("SALESAI_TRACE_PLUGINS", "") not in ("", "0"):
            self.pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
            self.pm.enable_tracing()

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        version = _dist_version(CORE_DIST)
        for module_name in BUILTIN_MODULES:
            module = importlib.import_module(module_name)
            info = PluginInfo(module_name, CORE_DIST, version, builtin=True)
            self.add(module, info)
        allow = _env_list("SALESAI_LOAD_PLUGINS")
        deny = {_norm(d) for d in (_env_list("SALESAI_DISABLE_PLUGINS") or [])}
        allowed = None if allow is None else {_norm(d) for d in allow}
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else ep.module
            dist_version = ep.dist.version if ep.dist is not None else "unknown"
            if (allowed is not None and _norm(dist) not in allowed) or _norm(dist) in deny:
                continue
            info = PluginInfo(ep.name, dist, dist_version)
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin is reported, never fatal
                if _strict():
                    raise
                info.error = f"import failed: {type(exc).__name__}: {exc}"
                self.infos.append(info)
                continue
            self.add(plugin, info)

    def add(self, plugin: object, info: PluginInfo) -> None:
        """Register one plugin object and collect what it registers."""
        try:
            self.pm.register(plugin, name=f"{info.distribution}:{info.name}")
        except Exception as exc:
            if _strict():
                raise
            info.error = f"invalid plugin: {type(exc).__name__}: {exc}"
            self.infos.append(info)
            return
        info.hooks = sorted(
            h.name for h in self.pm.get_hookcallers(plugin) or [] if h.name.startswith("register_")
        )
        self._plugins.append((plugin, info))
        self.infos.append(info)
        self._collect(plugin, info)

    def remove(self, plugin: object) -> None:
        """Unregister a plugin object and rebuild the registries without it."""
        self.pm.unregister(plugin)
        kept = [(p, i) for p, i in self._plugins if p is not plugin]
        self.infos = [i for i in self.infos if all(i is not j for p, j in self._plugins if p is plugin)]
        self._plugins = []
        self.registries = {k: Registry(k) for k in KINDS}
        for p, info in kept:
            info.registered, info.error = {}, None
            self._plugins.append((p, info))
            self._collect(p, info)

    def _collect(self, plugin: object, info: PluginInfo) -> None:
        for kind, hook_name in KINDS.items():
            impl = getattr(plugin, hook_name, None)
            if impl is None or hook_name not in info.hooks:
                continue
            added: list[Entry] = []

            def register(name: str, factory: Callable[..., Any], override: bool = False,
                         _kind: str = kind, _added: list[Entry] = added, **meta: Any) -> None:
                if not isinstance(name, str) or not name:
                    raise PluginError(f"{info.distribution} registered a {_kind[:-1]} with an invalid name {name!r}")
                if not callable(factory):
                    raise PluginError(
                        f"{info.distribution} registered {_kind[:-1]} {name!r} with a non-callable factory {factory!r}"
                    )
                entry = Entry(name, factory, info.distribution, dict(meta))
                self.registries[_kind].add(entry, override=override)
                _added.append(entry)

            try:
                self._call(plugin, hook_name, register=register)
            except Exception as exc:
                if _strict():
                    raise
                info.error = f"{hook_name} failed: {type(exc).__name__}: {exc}"
            if added:
                info.registered[kind] = [e.name for e in added]

    def _call(self, plugin: object, hook_name: str, **kwargs: Any) -> None:
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            if impl.plugin is plugin:
                impl.function(**{a: kwargs[a] for a in impl.argnames})

    def add_commands(self, app: Any) -> None:
        """Let every plugin add its commands; a failing plugin is reported, not fatal."""
        for plugin, info in self._plugins:
            if "register_commands" not in info.hooks:
                continue
            before = _command_names(app)
            try:
                self._call(plugin, "register_commands", app=app)
                added = [n for n in _command_names(app) if n not in before]
                if added:
                    info.registered["commands"] = added
            except Exception as exc:
                if _strict():
                    raise
                info.error = f"register_commands failed: {type(exc).__name__}: {exc}"


def _command_names(app: Any) -> list[str]:
    """Names of the commands and groups on a typer app."""
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name or "" for g in app.registered_groups]
    return names


def _dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


_HOST: PluginHost | None = None


def host() -> PluginHost:
    """The process-wide plugin host, loading plugins on first use."""
    global _HOST
    if _HOST is None:
        new = PluginHost()
        _HOST = new
        try:
            new.load()
        except BaseException:
            _HOST = None
            raise
    return _HOST


def reset() -> None:
    """Forget loaded plugins (tests; the next lookup loads again)."""
    global _HOST
    _HOST = None


def registry(kind: str) -> Registry:
    """The registry for `kind` ("experts", "encoders", "agents", "exporters")."""
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind {kind!r}; expected one of {', '.join(KINDS)}")
    return host().registries[kind]


def plugin_infos() -> list[PluginInfo]:
    return list(host().infos)


def iter_entries() -> Iterator[tuple[str, Entry]]:
    for kind, reg in host().registries.items():
        for entry in reg.entries():
            yield kind, entry
