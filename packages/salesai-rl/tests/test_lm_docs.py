"""docs/lm-rl.md keeps up with the code: its Python example runs and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from salesai.testing import run_cli

DOC = Path(__file__).resolve().parents[3] / "docs" / "lm-rl.md"
pytestmark = pytest.mark.skipif(not DOC.is_file(), reason="runs from a repository checkout (docs/ not found)")


def test_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    torch.set_num_threads(1)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})
    assert "'step': 1" in capsys.readouterr().out


def test_every_documented_command_and_option_exists() -> None:
    text = DOC.read_text()
    for command in ("grpo", "dpo", "rewards", "make-task"):
        assert f"salesai rl {command}" in text
        help_text = run_cli(["rl", command, "--help"]).stdout
        options = set(re.findall(r"(--[a-z][a-z-]+)", help_text))
        block_options = set()
        for line in re.findall(rf"salesai rl {command} [^\n]*(?:\\\n[^\n]*)*", text):
            block_options |= set(re.findall(r"(--[a-z][a-z-]+)", line))
        assert block_options <= options, (command, block_options - options)
