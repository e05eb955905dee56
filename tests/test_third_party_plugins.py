"""Third-party plugin discovery, end to end, through the installed `salesai` console script.

Needs the environment `nox -s integration` builds: every first-party package, the example
plugin from docs/plugins/salesai-example and the broken fixture plugin from
tests/fixtures/salesai-broken, all installed non-editable with pip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from salesai.cli import make_app
from salesai.plugins import registry
from salesai.testing import ByteTokenizer, check_expert, check_exporter

torch.set_num_threads(1)

FIRST_PARTY = ("salesai-vision", "salesai-audio", "salesai-rl", "salesai-serve")
NEEDED = ("salesai-core", *FIRST_PARTY, "salesai-example", "salesai-broken")


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not all(_installed(d) for d in NEEDED),
    reason="needs the example and broken plugins installed: run `nox -s integration`",
)

SCRIPT = Path(sys.executable).parent / ("salesai.exe" if os.name == "nt" else "salesai")


def salesai(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script with a clean plugin environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SALESAI_")}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=120
    )


def plugin_list(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    result = salesai("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {i["distribution"] + ":" + i["name"]: i for i in json.loads(result.stdout)}


def test_plugins_json_lists_everything_installed() -> None:
    infos = plugin_list()
    example = infos["salesai-example:example"]
    assert example["version"] == metadata.version("salesai-example")
    assert example["registered"] == {"experts": ["relu2"], "exporters": ["summary"], "commands": ["hello"]}
    assert example["error"] is None
    broken = infos["salesai-broken:broken"]
    assert broken["version"] == "0.0.1"
    assert broken["error"] == (
        "import failed: RuntimeError: salesai-broken fails on import on purpose (integration test fixture)"
    )
    for dist in FIRST_PARTY:
        (info,) = [i for i in infos.values() if i["distribution"] == dist]
        assert info["version"] == metadata.version(dist)
        assert info["error"] is None
        assert info["registered"] or info["description"].startswith("Registers nothing yet")
    assert infos["salesai-core:salesai.builtin.experts"]["registered"]["experts"] == ["swiglu", "gelu"]


def test_broken_plugin_is_shown_as_failed_in_the_table() -> None:
    result = salesai("plugins", env={"COLUMNS": "300"})
    assert result.returncode == 0
    assert "salesai-broken" in result.stdout and "import failed: RuntimeError" in result.stdout


def test_example_expert_is_usable_through_the_registry() -> None:
    entry = registry("experts").entry("relu2")
    assert entry.provider == "salesai-example"
    expert = check_expert(registry("experts").get("relu2"))
    assert type(expert).__name__ == "ReLU2Expert"


def test_example_exporter_is_listed_and_usable(tmp_path: Path) -> None:
    assert registry("exporters").entry("summary").provider == "salesai-example"
    model = nn.Sequential(nn.Embedding(267, 8), nn.Linear(8, 267))
    path = check_exporter(registry("exporters").get("summary"), model, ByteTokenizer(), tmp_path)
    assert json.loads(path.read_text())["total_parameters"] == sum(p.numel() for p in model.parameters())


def test_example_command_runs() -> None:
    result = salesai("hello", "integration")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello, integration! Expert types available: ")
    assert "relu2" in result.stdout and "swiglu" in result.stdout


def test_load_plugins_empty_loads_none() -> None:
    infos = plugin_list(env={"SALESAI_LOAD_PLUGINS": ""})
    assert all(i["builtin"] for i in infos.values()), sorted(infos)
    result = salesai("hello", env={"SALESAI_LOAD_PLUGINS": ""})
    assert result.returncode == 2 and "No such command 'hello'" in result.stderr


def test_load_and_disable_lists_pick_plugins() -> None:
    only = plugin_list(env={"SALESAI_LOAD_PLUGINS": "salesai-example"})
    assert {i["distribution"] for i in only.values()} == {"salesai-core", "salesai-example"}
    without = plugin_list(env={"SALESAI_DISABLE_PLUGINS": "salesai-broken,salesai-example"})
    assert "salesai-broken:broken" not in without and "salesai-example:example" not in without
    assert "salesai-vision:vision" in without


def test_other_commands_work_beside_the_broken_plugin() -> None:
    version = salesai("--version")
    assert version.returncode == 0 and version.stdout.startswith("salesai ")
    helped = salesai("--help")
    assert helped.returncode == 0 and "hello" in helped.stdout and "plugins" in helped.stdout
    builtin = [c.name for c in make_app().registered_commands if c.name]
    builtin += [str(getattr(g.name, "value", g.name)) for g in make_app().registered_groups]
    for name in builtin:
        result = salesai(name, "--help")
        assert result.returncode == 0, (name, result.stderr)


def test_strict_mode_refuses_the_broken_plugin() -> None:
    result = salesai("plugins", env={"SALESAI_STRICT_PLUGINS": "1"})
    assert result.returncode != 0
    assert "salesai-broken fails on import on purpose" in result.stderr


def test_help_stays_free_of_torch_with_plugins_installed() -> None:
    code = (
        "import sys\nfrom salesai.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'fastapi') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_salesai() -> None:
    result = subprocess.run([sys.executable, "-m", "salesai", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("salesai ")
