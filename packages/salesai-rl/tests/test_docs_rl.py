"""The Python examples of docs/rl.md run (from a repository checkout)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

RL_MD = Path(__file__).resolve().parents[3] / "docs" / "rl.md"

pytestmark = pytest.mark.skipif(
    not RL_MD.is_file(), reason="runs from a repository checkout (docs/ not found)")


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", RL_MD.read_text(), flags=re.S) if RL_MD.is_file() else []


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    exec(compile(_blocks()[index], f"rl.md:block{index}", "exec"), {})
    if "print(exc)" in _blocks()[index]:
        assert "reset() returned ndarray, expected a tuple" in capsys.readouterr().out
