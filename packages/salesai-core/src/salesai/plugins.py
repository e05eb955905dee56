"""The plugin host: discovers `salesai` entry points and keeps one registry per kind.

Loading is lazy and idempotent (the first registry lookup or `salesai` start-up loads),
one entry point at a time inside its own try/except, so a broken plugin is reported by
`salesai plugins` instead of taking the CLI down. Built-ins register first, through the
same hooks as third parties. Every hook is called through pluggy (so trace mode sees it),
one plugin at a time (so each registration is attributed to the distribution that made it).

What a plugin can get wrong, and how it is reported (never fatal unless strict):
- the entry point raises on import            -> listed with `import failed: ...`
- pluggy rejects the object (bad hook signature) -> `invalid plugin: ...`
- a hook the core does not know                -> `unknown hook ...`
- a hook raises                                -> `register_experts raised ...`
- `register(name, factory)` with a bad name or a non-callable factory -> reported, skipped
- a name already taken                         -> reported naming both providers; first one kept

Environment:
- `SALESAI_LOAD_PLUGINS`: comma list of distributions (or entry point names) to load; set but
  empty = none. Built-ins always load.
- `SALESAI_DISABLE_PLUGINS`: comma list of distributions (or entry point names) to skip.
- `SALESAI_STRICT_PLUGINS=1`: re-raise plugin errors instead of reporting them.
- `SALESAI_TRACE_PLUGINS=1`: print every hook call to stderr (pluggy's hook-call tracing).

This module is not a general plugin framework: it knows the registry kinds of
`salesai.hookspecs` plus commands, nothing else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any

import pluggy

from salesai import hookspecs
from salesai.errors import PluginError

GROUP = "salesai"
CORE_DIST = "salesai-core"
BUILTIN_MODULES = ("salesai.builtin.experts", "salesai.builtin.exporters", "salesai.builtin.rewards")

# kind -> hook name
KINDS: dict[str, str] = {
    "experts": "register_experts",
    "encoders": "register_encoders",
    "agents": "register_agents",
    "exporters": "register_exporters",
    "rewards": "register_rewards",
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
    "rewards": {},
}
# Where a whole kind comes from first-party packages, the hint for any unknown name of it.
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

    name: str  # entry point name (module name for built-ins)
    distribution: str
    version: str
    builtin: bool = False
    description: str = ""  # first line of the plugin object's docstring
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> names, plus "commands"
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        """All problems in one line, or None when the plugin loaded cleanly."""
        return "; ".join(self.errors) or None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "description": self.description,
            "hooks": list(self.hooks),
            "registered": {k: list(v) for k, v in self.registered.items()},
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


@dataclass
class _Record:
    """Book-keeping for one plugin object handed to `PluginHost.add`."""

    plugin: object
    info: PluginInfo
    active: bool = False  # pluggy accepted it
    problems: list[str] = field(default_factory=list)  # from registering it and calling its hooks
    attempts: list[tuple[str, Entry, bool]] = field(default_factory=list)  # (kind, entry, override)
    registry_problems: list[str] = field(default_factory=list)  # duplicates, recomputed on rebuild
    command_problems: list[str] = field(default_factory=list)  # recomputed by add_commands

    def refresh(self) -> None:
        self.info.errors = self.problems + self.registry_problems + self.command_problems


def _env_list(var: str) -> list[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _flag(var: str) -> bool:
    return os.environ.get(var, "") not in ("", "0")


def _strict() -> bool:
    return _flag("SALESAI_STRICT_PLUGINS")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0].strip()


def _describe(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, at most `limit` characters (reports stay one line per problem)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}"


class PluginHost:
    """Owns the pluggy manager, the plugin list and the registries."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("salesai")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._records: list[_Record] = []
        self.registries: dict[str, Registry] = {k: Registry(k) for k in KINDS}
        if _flag("SALESAI_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
            self.pm.enable_tracing()

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Register the built-ins, then every allowed entry point of the `salesai` group."""
        core_version = _dist_version(CORE_DIST)
        for module_name in BUILTIN_MODULES:
            module = import_module(module_name)
            info = PluginInfo(module_name, CORE_DIST, core_version, builtin=True)
            info.description = _first_line(module.__doc__)
            self.add(module, info)
        allow = _env_list("SALESAI_LOAD_PLUGINS")
        allowed = None if allow is None else {_norm(a) for a in allow}
        denied = {_norm(d) for d in _env_list("SALESAI_DISABLE_PLUGINS") or []}
        seen: set[str] = set()
        eps = sorted(metadata.entry_points(group=GROUP), key=lambda e: (_ep_dist(e)[0], e.name))
        for ep in eps:
            dist, version = _ep_dist(ep)
            keys = {_norm(dist), _norm(ep.name)}
            seen |= keys
            if (allowed is not None and not keys & allowed) or keys & denied:
                continue
            info = PluginInfo(ep.name, dist, version)
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin is reported, never fatal
                if _strict():
                    raise
                info.errors = [f"import failed: {_describe(exc)}"]
                self.infos.append(info)
                continue
            info.description = _first_line(getattr(plugin, "__doc__", None))
            self.add(plugin, info)
        for name in sorted((allowed or set()) - seen - {CORE_DIST}):
            self.infos.append(
                PluginInfo(
                    name, name, "", errors=[f"SALESAI_LOAD_PLUGINS names {name!r}, which is not installed"]
                )
            )

    def add(self, plugin: object, info: PluginInfo) -> PluginInfo:
        """Register one plugin object and collect what it registers; returns `info`, filled in."""
        record = _Record(plugin, info)
        self._records.append(record)
        self.infos.append(info)
        try:
            self.pm.register(plugin, name=f"{info.distribution}:{info.name}")
        except Exception as exc:  # pluggy.PluginValidationError, or already registered
            if _strict():
                raise
            record.problems.append(f"invalid plugin: {_describe(exc)}")
            record.refresh()
            return info
        record.active = True
        callers = self.pm.get_hookcallers(plugin) or []
        info.hooks = sorted(h.name for h in callers)
        for caller in callers:
            if not caller.has_spec():
                self._problem(
                    record,
                    f"unknown hook {caller.name} (this salesai-core knows {', '.join(_hook_names())})",
                )
        for kind, hook_name in KINDS.items():
            if hook_name in info.hooks:
                self._collect(record, kind, hook_name)
        self._apply(record)
        return info

    def remove(self, plugin: object, info: PluginInfo | None = None) -> None:
        """Unregister a plugin object (only the addition that produced `info`, if given) and
        rebuild the registries without it."""
        chosen = [r for r in self._records if r.plugin is plugin and (info is None or r.info is info)]
        for record in chosen:
            if record.active:
                self.pm.unregister(plugin)
            self._records.remove(record)
            self.infos = [i for i in self.infos if i is not record.info]
        self.registries = {k: Registry(k) for k in KINDS}
        for record in self._records:
            self._apply(record)

    def add_commands(self, app: Any) -> None:
        """Let every plugin add its commands to `app`; a failing or clashing plugin is reported."""
        providers = {
            name: CORE_DIST for name in _command_names(app.registered_commands, app.registered_groups)
        }
        for record in self._records:
            record.info.registered.pop("commands", None)
            record.command_problems = []
            if record.active and "register_commands" in record.info.hooks:
                self._collect_commands(record, app, providers)
            record.refresh()

    # -- internals -------------------------------------------------------------------------
    def _problem(self, record: _Record, message: str) -> None:
        if _strict():
            raise PluginError(f"{record.info.distribution}: {message}")
        record.problems.append(message)

    def _call(self, plugin: object, hook_name: str, **kwargs: Any) -> None:
        """Call one hook of one plugin, through pluggy (so tracing and monitoring apply)."""
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        self.pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)

    def _collect(self, record: _Record, kind: str, hook_name: str) -> None:
        """Call `hook_name` on the plugin with a `register` that records valid registrations."""
        noun = kind[:-1]

        def register(name: str, factory: Callable[..., Any], *, override: bool = False, **meta: Any) -> None:
            if not isinstance(name, str) or not name or name != name.strip() or " " in name:
                self._problem(
                    record, f"{hook_name}: invalid {noun} name {name!r} (expected a non-empty word)"
                )
                return
            if not callable(factory):
                self._problem(record, f"{hook_name}: {noun} {name!r} has a non-callable factory {factory!r}")
                return
            entry = Entry(name, factory, record.info.distribution, dict(meta))
            record.attempts.append((kind, entry, bool(override)))

        try:
            self._call(record.plugin, hook_name, register=register)
        except Exception as exc:
            if _strict():
                raise
            record.problems.append(f"{hook_name} raised {_describe(exc)}")

    def _apply(self, record: _Record) -> None:
        """Put the record's registrations into the registries (again, after a rebuild)."""
        commands = record.info.registered.get("commands")
        record.info.registered = {}
        record.registry_problems = []
        for kind, entry, override in record.attempts:
            try:
                self.registries[kind].add(entry, override=override)
            except PluginError as exc:
                if _strict():
                    raise
                record.registry_problems.append(str(exc))
                continue
            record.info.registered.setdefault(kind, []).append(entry.name)
        if commands:
            record.info.registered["commands"] = commands
        record.refresh()

    def _collect_commands(self, record: _Record, app: Any, providers: dict[str, str]) -> None:
        n_commands, n_groups = len(app.registered_commands), len(app.registered_groups)
        try:
            self._call(record.plugin, "register_commands", app=app)
        except Exception as exc:
            if _strict():
                raise
            record.command_problems.append(f"register_commands raised {_describe(exc)}")
        added: list[str] = []
        new = [(c, _command_names([c], [])[0]) for c in app.registered_commands[n_commands:]]
        new += [(g, _command_names([], [g])[0]) for g in app.registered_groups[n_groups:]]
        for item, name in new:
            if name in providers or name in added:
                first = providers.get(name, record.info.distribution)
                message = (
                    f"duplicate command name {name!r}: provided by {first} and by {record.info.distribution}"
                )
                if _strict():
                    raise PluginError(message)
                record.command_problems.append(message)
                _remove_identity(app.registered_commands, item)
                _remove_identity(app.registered_groups, item)
                continue
            added.append(name)
        for name in added:
            providers[name] = record.info.distribution
        if added:
            record.info.registered["commands"] = added


def _remove_identity(items: list[Any], item: Any) -> None:
    items[:] = [i for i in items if i is not item]


def _hook_names() -> list[str]:
    return sorted(n for n in vars(hookspecs) if n.startswith("register_"))


def _command_names(commands: list[Any], groups: list[Any]) -> list[str]:
    """The names typer gives to command and group infos (underscores become dashes)."""
    names: list[str] = []
    for c in commands:
        name = c.name or (c.callback.__name__ if c.callback else "")
        names.append(name if c.name else name.lower().replace("_", "-"))
    for g in groups:
        name = getattr(g.name, "value", g.name)
        if not name and g.typer_instance is not None:
            name = getattr(g.typer_instance.info.name, "value", g.typer_instance.info.name)
        names.append(str(name or ""))
    return names


def _ep_dist(ep: metadata.EntryPoint) -> tuple[str, str]:
    """(distribution name, version) of an entry point; the module name if it has no distribution."""
    dist = getattr(ep, "dist", None)
    if dist is None or not dist.name:
        return ep.module, "unknown"
    return dist.name, dist.version


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
    """Forget loaded plugins (tests; the next lookup loads again, re-reading the environment)."""
    global _HOST
    _HOST = None


def registry(kind: str) -> Registry:
    """The registry for `kind` ("experts", "encoders", "agents", "exporters", "rewards")."""
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind {kind!r}; expected one of {', '.join(KINDS)}")
    return host().registries[kind]


def plugin_infos() -> list[PluginInfo]:
    """Every plugin the host knows: built-ins first, then entry points, failed ones included."""
    return list(host().infos)


def iter_entries() -> Iterator[tuple[str, Entry]]:
    """(kind, entry) for everything registered, kinds in hook order, names sorted."""
    for kind, reg in host().registries.items():
        for entry in reg.entries():
            yield kind, entry
