"""The plugin docs keep up with the code: every hookspec has a section in docs/plugins/hooks.md
that names each of its arguments and shows an example (datasette's tests/test_docs.py habit),
and each example runs and passes the conformance check of its kind."""

from __future__ import annotations

import inspect
import json
import re
import types
from pathlib import Path

import pytest

from salesai import hookspecs
from salesai.plugins import registry
from salesai.testing import (
    ByteTokenizer,
    check_agent,
    check_encoder,
    check_expert,
    check_exporter,
    check_reward,
    register_plugin,
    run_cli,
)

REPO = Path(__file__).resolve().parents[3]
HOOKS_MD = REPO / "docs" / "plugins" / "hooks.md"

pytestmark = pytest.mark.skipif(
    not HOOKS_MD.is_file(), reason="runs from a repository checkout (docs/ not found)"
)


def _hookspecs() -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(fn).parameters)
        for name, fn in vars(hookspecs).items()
        if callable(fn) and hasattr(fn, "salesai_spec")
    }


def _sections() -> dict[str, str]:
    """Heading hook name -> the text of its section, from '## `register_x(args)`' headings."""
    text = HOOKS_MD.read_text()
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    sections: dict[str, str] = {}
    for part in parts:
        heading, _, body = part.partition("\n")
        match = re.match(r"`(\w+)\(", heading)
        if match:
            sections[match.group(1)] = heading + "\n" + body
    return sections


def test_there_are_hookspecs() -> None:
    assert set(_hookspecs()) == {
        "register_experts",
        "register_encoders",
        "register_agents",
        "register_exporters",
        "register_rewards",
        "register_commands",
    }


@pytest.mark.parametrize("hook", sorted(_hookspecs()))
def test_every_hookspec_is_documented(hook: str) -> None:
    sections = _sections()
    assert hook in sections, f"docs/plugins/hooks.md has no '## `{hook}(...)`' section"
    section = sections[hook]
    for arg in _hookspecs()[hook]:
        assert f"`{arg}`" in section, f"the {hook} section of hooks.md does not describe its argument `{arg}`"
    heading = section.split("\n", 1)[0]
    assert heading == f"`{hook}({', '.join(_hookspecs()[hook])})`", heading
    assert "```python" in section and "@salesai.hookimpl" in section and f"def {hook}(" in section, (
        f"the {hook} section of hooks.md has no example implementation"
    )


def test_no_documented_hook_is_missing_from_the_code() -> None:
    assert set(_sections()) <= set(_hookspecs())


def _examples() -> dict[str, str]:
    """Hook name -> the example code block of its section."""
    examples = {}
    for hook, section in _sections().items():
        blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
        examples[hook] = next(b for b in blocks if "@salesai.hookimpl" in b)
    return examples


def _example_module(hook: str) -> types.ModuleType:
    module = types.ModuleType(f"hooks_md_{hook}")
    exec(compile("import salesai\n" + _examples()[hook], f"hooks.md:{hook}", "exec"), module.__dict__)
    return module


def test_expert_example_runs() -> None:
    with register_plugin(_example_module("register_experts")) as info:
        assert info.registered == {"experts": ["relu2"]}
        check_expert(registry("experts").get("relu2"))


def test_encoder_example_runs() -> None:
    pytest.importorskip("PIL", reason="the encoder example uses Pillow")
    with register_plugin(_example_module("register_encoders")):
        check_encoder(registry("encoders").get("tiny-patches"))


def test_exporter_example_runs(tmp_path: Path) -> None:
    import torch

    with register_plugin(_example_module("register_exporters")):
        model = torch.nn.Linear(3, 3)
        path = check_exporter(registry("exporters").get("summary"), model, ByteTokenizer(), tmp_path)
        assert json.loads(path.read_text()) == {"total_parameters": 12, "vocab_size": 267}


def test_agent_example_runs() -> None:
    pytest.importorskip("gymnasium", reason="the agent check runs a Gymnasium env")
    with register_plugin(_example_module("register_agents")) as info:
        assert info.registered == {"agents": ["greedy-bandit"]}
        agent = check_agent(registry("agents").get("greedy-bandit"))
        assert sum(agent.counts) == 64  # observe() saw every step of the check


def test_reward_example_runs() -> None:
    with register_plugin(_example_module("register_rewards")) as info:
        assert info.registered == {"rewards": ["ends-with-period"]}
        reward = check_reward(registry("rewards").get("ends-with-period"))
        assert reward(["q", "q"], ["Yes.", "no"], answer=["a", "b"]) == [1.0, 0.0]


def test_command_example_runs() -> None:
    with register_plugin(_example_module("register_commands")):
        result = run_cli(["hello", "docs"])
    assert (result.exit_code, result.stdout) == (0, "Hello, docs!\n")
