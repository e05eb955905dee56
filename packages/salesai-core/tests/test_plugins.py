"""The plugin host: discovery, provenance, duplicates, unknown names, broken plugins, env switches.

Installed entry points are replaced by fakes (`importlib.metadata.entry_points` as seen by
`salesai.plugins`), so these tests do not depend on what is installed in the environment.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from salesai import hookimpl, plugins
from salesai.errors import PluginError, SalesAIError
from salesai.testing import register_plugin, run_cli

ENV_VARS = (
    "SALESAI_LOAD_PLUGINS",
    "SALESAI_DISABLE_PLUGINS",
    "SALESAI_STRICT_PLUGINS",
    "SALESAI_TRACE_PLUGINS",
)


class FakeDist:
    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version


class FakeEntryPoint:
    """Just what the host reads from an `importlib.metadata.EntryPoint`."""

    group = "salesai"

    def __init__(self, name: str, dist: str, load: Callable[[], object], version: str = "1.2.3") -> None:
        self.name = name
        self.module = f"fake_{name}"
        self.value = f"fake_{name}"
        self.dist = FakeDist(dist, version)
        self._load = load
        self.loads = 0

    def load(self) -> object:
        self.loads += 1
        return self._load()


def make_plugin(name: str, doc: str = "A test plugin.", **hooks: Callable[..., None]) -> types.ModuleType:
    """A module object whose attributes are the given hook implementations."""
    module = types.ModuleType(name, doc)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def expert_factory(hidden_dim: int, intermediate_dim: int) -> Any:
    import torch

    return torch.nn.Linear(hidden_dim, hidden_dim)


def good_plugin() -> types.ModuleType:
    def register_experts(register: Callable[..., None]) -> None:
        register("linear", expert_factory, description="one linear layer")

    return make_plugin("good", "Registers the linear expert.", register_experts=register_experts)


def failing_import() -> object:
    raise RuntimeError("boom at import")


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeEntryPoint]]:
    """The installed entry points, as a list the test fills; the host reloads from it."""
    eps: list[FakeEntryPoint] = []

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        assert group == plugins.GROUP
        return list(eps)

    monkeypatch.setattr(plugins.metadata, "entry_points", fake_entry_points)
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    plugins.reset()
    yield eps
    plugins.reset()


def infos_by_dist() -> dict[str, dict[str, Any]]:
    result = run_cli(["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    return {i["distribution"] + ":" + i["name"]: i for i in json.loads(result.stdout)}


# -- discovery and provenance -----------------------------------------------------------------
def test_builtins_register_through_the_same_hooks(entry_points: list[FakeEntryPoint]) -> None:
    experts = plugins.registry("experts")
    assert {"swiglu", "gelu"} <= set(experts.names())
    assert experts.entry("swiglu").provider == "salesai-core"
    infos = infos_by_dist()
    builtin = infos["salesai-core:salesai.builtin.experts"]
    assert builtin["builtin"] is True
    assert builtin["hooks"] == ["register_experts"]
    assert builtin["registered"] == {"experts": ["swiglu", "gelu"]}
    assert builtin["error"] is None


def test_entry_point_plugin_is_listed_with_version_and_registrations(
    entry_points: list[FakeEntryPoint],
) -> None:
    entry_points.append(FakeEntryPoint("good", "salesai-good", good_plugin))
    info = infos_by_dist()["salesai-good:good"]
    assert info["version"] == "1.2.3"
    assert info["builtin"] is False
    assert info["description"] == "Registers the linear expert."
    assert info["hooks"] == ["register_experts"]
    assert info["registered"] == {"experts": ["linear"]}
    assert info["error"] is None
    entry = plugins.registry("experts").entry("linear")
    assert (entry.provider, entry.metadata) == ("salesai-good", {"description": "one linear layer"})


def test_loading_is_lazy_and_idempotent(entry_points: list[FakeEntryPoint]) -> None:
    ep = FakeEntryPoint("good", "salesai-good", good_plugin)
    entry_points.append(ep)
    assert ep.loads == 0  # nothing happens until the first lookup
    first = plugins.host()
    plugins.registry("experts")
    plugins.plugin_infos()
    assert plugins.host() is first
    assert ep.loads == 1


def test_plugin_that_registers_nothing_says_so(entry_points: list[FakeEntryPoint]) -> None:
    empty = types.ModuleType("empty", "Registers nothing yet: the encoder arrives later.")
    entry_points.append(FakeEntryPoint("empty", "salesai-empty", lambda: empty))
    info = infos_by_dist()["salesai-empty:empty"]
    assert (info["hooks"], info["registered"], info["error"]) == ([], {}, None)
    table = run_cli(["plugins"], env={"COLUMNS": "250"}).stdout
    assert "salesai-empty" in table and "Registers nothing yet" in table


# -- duplicates and unknown names ----------------------------------------------------------------
def test_duplicate_name_fails_loudly_naming_both_providers(entry_points: list[FakeEntryPoint]) -> None:
    def register_experts(register: Callable[..., None]) -> None:
        register("gelu", expert_factory)
        register("linear2", expert_factory)

    entry_points.append(
        FakeEntryPoint("dup", "salesai-dup", lambda: make_plugin("dup", register_experts=register_experts))
    )
    info = infos_by_dist()["salesai-dup:dup"]
    assert "duplicate expert name 'gelu'" in info["error"]
    assert "registered by salesai-core and by salesai-dup" in info["error"]
    assert info["registered"] == {"experts": ["linear2"]}  # the rest of its registrations stand
    assert plugins.registry("experts").entry("gelu").provider == "salesai-core"  # first one kept


def test_override_replaces_on_purpose_and_removal_restores(entry_points: list[FakeEntryPoint]) -> None:
    def register_experts(register: Callable[..., None]) -> None:
        register("gelu", expert_factory, override=True)

    plugin = make_plugin("override", register_experts=register_experts)
    with register_plugin(plugin, distribution="salesai-override") as info:
        assert info.error is None
        assert plugins.registry("experts").entry("gelu").provider == "salesai-override"
    assert plugins.registry("experts").entry("gelu").provider == "salesai-core"
    assert all(i.distribution != "salesai-override" for i in plugins.plugin_infos())


def test_unknown_name_lists_known_names(entry_points: list[FakeEntryPoint]) -> None:
    with pytest.raises(PluginError) as excinfo:
        plugins.registry("experts").get("relu7")
    message = str(excinfo.value)
    assert message.startswith("unknown expert 'relu7'; known: ")
    assert "gelu (salesai-core)" in message and "swiglu (salesai-core)" in message
    assert "pip install" not in message  # no first-party package provides experts


@pytest.mark.parametrize(
    ("kind", "name", "package"),
    [
        ("encoders", "image", "salesai-vision"),
        ("encoders", "audio", "salesai-audio"),
        ("agents", "dqn", "salesai-rl"),
    ],
)
def test_unknown_first_party_name_hints_pip_install(
    entry_points: list[FakeEntryPoint], kind: str, name: str, package: str
) -> None:
    with pytest.raises(
        PluginError, match=rf"unknown {kind[:-1]} '{name}'; known: none; try `pip install {package}`"
    ):
        plugins.registry(kind).get(name)


def test_unknown_kind_is_a_user_error(entry_points: list[FakeEntryPoint]) -> None:
    with pytest.raises(SalesAIError, match="unknown plugin kind 'tokenizers'; expected one of experts"):
        plugins.registry("tokenizers")


# -- broken plugins --------------------------------------------------------------------------------
def test_plugin_raising_on_import_is_listed_as_failed_and_others_work(
    entry_points: list[FakeEntryPoint],
) -> None:
    entry_points.append(FakeEntryPoint("broken", "salesai-broken", failing_import, version="0.0.1"))
    entry_points.append(FakeEntryPoint("good", "salesai-good", good_plugin))
    infos = infos_by_dist()
    broken = infos["salesai-broken:broken"]
    assert broken["version"] == "0.0.1"
    assert broken["error"] == "import failed: RuntimeError: boom at import"
    assert broken["registered"] == {}
    assert infos["salesai-good:good"]["error"] is None
    assert "linear" in plugins.registry("experts")
    assert run_cli(["--version"]).exit_code == 0
    table = run_cli(["plugins"], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "boom at import" in table.stdout


def _hook_raises(register: Callable[..., None]) -> None:
    register("early", expert_factory)
    raise KeyError("half way")


@pytest.mark.parametrize(
    ("hooks", "expected", "kept"),
    [
        ({"register_experts": lambda register: register(42, expert_factory)}, "invalid expert name 42", []),
        ({"register_experts": lambda register: register("", expert_factory)}, "invalid expert name ''", []),
        (
            {"register_experts": lambda register: register("two words", expert_factory)},
            "invalid expert name",
            [],
        ),
        (
            {"register_exporters": lambda register: register("zip", "not callable")},
            "non-callable factory",
            [],
        ),
        ({"register_experts": _hook_raises}, "register_experts raised KeyError: 'half way'", ["early"]),
        ({"register_experts": lambda reg: None}, "invalid plugin: PluginValidationError", []),
        ({"register_tokenizers": lambda register: None}, "unknown hook register_tokenizers", []),
    ],
    ids=[
        "name-not-str",
        "name-empty",
        "name-spaces",
        "factory-not-callable",
        "hook-raises",
        "bad-signature",
        "unknown-hook",
    ],
)
def test_garbage_registrations_are_reported(
    entry_points: list[FakeEntryPoint], hooks: dict[str, Callable[..., None]], expected: str, kept: list[str]
) -> None:
    plugin = make_plugin("garbage", **hooks)
    entry_points.append(FakeEntryPoint("garbage", "salesai-garbage", lambda: plugin))
    info = infos_by_dist()["salesai-garbage:garbage"]
    assert expected in info["error"]
    assert info["registered"].get("experts", []) == kept
    assert {"swiglu", "gelu"} <= set(plugins.registry("experts").names())  # the host survived
    assert run_cli(["--version"]).exit_code == 0


# -- environment switches ----------------------------------------------------------------------------
def test_load_plugins_empty_loads_none_but_builtins_stay(
    entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    ep = FakeEntryPoint("good", "salesai-good", good_plugin)
    entry_points.append(ep)
    monkeypatch.setenv("SALESAI_LOAD_PLUGINS", "")
    infos = infos_by_dist()
    assert set(infos) == {f"salesai-core:{m}" for m in plugins.BUILTIN_MODULES}
    assert ep.loads == 0
    assert "swiglu" in plugins.registry("experts") and "linear" not in plugins.registry("experts")


def test_load_plugins_allow_list(entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch) -> None:
    entry_points.append(FakeEntryPoint("good", "salesai-good", good_plugin))
    entry_points.append(FakeEntryPoint("broken", "salesai-broken", failing_import))
    monkeypatch.setenv("SALESAI_LOAD_PLUGINS", "salesai_good, salesai-missing")
    infos = infos_by_dist()
    assert "salesai-good:good" in infos and "salesai-broken:broken" not in infos
    assert infos["salesai-missing:salesai-missing"]["error"] == (
        "SALESAI_LOAD_PLUGINS names 'salesai-missing', which is not installed"
    )


def test_disable_plugins_skips_named_distributions(
    entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = FakeEntryPoint("broken", "salesai-broken", failing_import)
    entry_points.extend([FakeEntryPoint("good", "salesai-good", good_plugin), broken])
    monkeypatch.setenv("SALESAI_DISABLE_PLUGINS", "salesai-broken")
    infos = infos_by_dist()
    assert "salesai-good:good" in infos and "salesai-broken:broken" not in infos
    assert broken.loads == 0


def test_strict_mode_reraises_import_errors(
    entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_points.append(FakeEntryPoint("broken", "salesai-broken", failing_import))
    monkeypatch.setenv("SALESAI_STRICT_PLUGINS", "1")
    with pytest.raises(RuntimeError, match="boom at import"):
        plugins.registry("experts")
    assert plugins._HOST is None  # a failed load is not cached: the next lookup tries again
    monkeypatch.setenv("SALESAI_STRICT_PLUGINS", "0")
    assert plugins.plugin_infos()[-1].error == "import failed: RuntimeError: boom at import"


@pytest.mark.parametrize(
    ("hooks", "match"),
    [
        (
            {"register_experts": lambda register: register("gelu", expert_factory)},
            "registered by salesai-core and by",
        ),
        ({"register_experts": lambda register: register(42, expert_factory)}, "invalid expert name 42"),
    ],
    ids=["duplicate", "garbage"],
)
def test_strict_mode_reraises_registration_errors(
    entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch, hooks: dict[str, Any], match: str
) -> None:
    plugin = make_plugin("strict", **hooks)
    entry_points.append(FakeEntryPoint("strict", "salesai-strict", lambda: plugin))
    monkeypatch.setenv("SALESAI_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=match):
        plugins.host()
    result = run_cli(["plugins"])  # the CLI turns it into one red line, exit code 2
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and match in result.stderr


def test_trace_mode_prints_hook_calls(
    entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry_points.append(FakeEntryPoint("good", "salesai-good", good_plugin))
    monkeypatch.setenv("SALESAI_TRACE_PLUGINS", "1")
    plugins.host()
    err = capsys.readouterr().err
    assert "register_experts" in err
    assert err.count("register_experts") >= 3  # built-in and plugin calls, with their results


# -- commands ----------------------------------------------------------------------------------------
def hello_commands(app: Any) -> None:
    @app.command("hello")
    def hello(name: str = "world") -> None:
        """Say hello."""
        print(f"hello, {name}")


def test_plugin_commands_are_added_and_listed(entry_points: list[FakeEntryPoint]) -> None:
    plugin = make_plugin("cmds", register_commands=hello_commands)
    entry_points.append(FakeEntryPoint("cmds", "salesai-cmds", lambda: plugin))
    for _ in range(2):  # every run builds a fresh app: nothing accumulates
        result = run_cli(["hello", "--name", "salesai"])
        assert (result.exit_code, result.stdout) == (0, "hello, salesai\n")
    assert "hello" in run_cli(["--help"]).stdout
    assert infos_by_dist()["salesai-cmds:cmds"]["registered"] == {"commands": ["hello"]}


def test_duplicate_command_is_reported_and_builtin_kept(entry_points: list[FakeEntryPoint]) -> None:
    def register_commands(app: Any) -> None:
        @app.command("plugins")
        def hijack() -> None:
            print("hijacked")

    plugin = make_plugin("hijack", register_commands=register_commands)
    entry_points.append(FakeEntryPoint("hijack", "salesai-hijack", lambda: plugin))
    info = infos_by_dist()["salesai-hijack:hijack"]
    assert info["error"] == "duplicate command name 'plugins': provided by salesai-core and by salesai-hijack"
    assert "hijacked" not in run_cli(["plugins"]).stdout


def test_failing_register_commands_is_reported(entry_points: list[FakeEntryPoint]) -> None:
    def register_commands(app: Any) -> None:
        raise ImportError("no module named fastapi")

    plugin = make_plugin("nocmd", register_commands=register_commands)
    entry_points.append(FakeEntryPoint("nocmd", "salesai-nocmd", lambda: plugin))
    info = infos_by_dist()["salesai-nocmd:nocmd"]
    assert info["error"] == "register_commands raised ImportError: no module named fastapi"


# -- register_plugin (salesai.testing) -------------------------------------------------------------------
def test_register_plugin_checks_by_default(entry_points: list[FakeEntryPoint]) -> None:
    plugin = make_plugin("bad", register_experts=lambda register: register("gelu", expert_factory))
    with pytest.raises(
        PluginError, match="plugin 'bad' did not register cleanly: duplicate expert name 'gelu'"
    ), register_plugin(plugin):
        pass  # pragma: no cover
    assert all(i.name != "bad" for i in plugins.plugin_infos())
    with register_plugin(plugin, check=False) as info:
        assert "duplicate expert name 'gelu'" in (info.error or "")


def test_salesai_plugin_fixture_registers_for_one_test(
    entry_points: list[FakeEntryPoint], salesai_plugin: Callable[..., plugins.PluginInfo]
) -> None:
    info = salesai_plugin(good_plugin(), distribution="salesai-fixture")
    assert info.registered == {"experts": ["linear"]}
    assert plugins.registry("experts").entry("linear").provider == "salesai-fixture"


def test_registering_an_installed_plugin_again_leaves_it_alone(entry_points: list[FakeEntryPoint]) -> None:
    plugin = good_plugin()
    entry_points.append(FakeEntryPoint("good", "salesai-good", lambda: plugin))
    with register_plugin(plugin, check=False) as info:
        assert (info.error or "").startswith("invalid plugin: ValueError: Plugin already registered")
        assert "\n" not in (info.error or "")
    assert plugins.registry("experts").entry("linear").provider == "salesai-good"
    assert [i.distribution for i in plugins.plugin_infos()].count("salesai-good") == 1
    assert plugins.host().pm.is_registered(plugin)
