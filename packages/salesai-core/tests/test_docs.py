"""The plugin docs keep up with the code: every hookspec has a section in docs/plugins/hooks.md
that names each of its arguments and shows an example (datasette's tests/test_docs.py habit)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from salesai import hookspecs

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
