"""The user guide's Python examples run as written (each page's ```python blocks, in order, in one
namespace, from a scratch working directory)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# Pages whose examples are cheap enough to run on every test run.
PAGES = ["data.md", "training.md", "architecture.md"]


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = REPO / "docs" / page
    if not path.is_file():
        pytest.skip("runs from a repository checkout (docs/ not found)")
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page}"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{path}[python block {i}]", "exec"), namespace)
    assert os.getcwd() == str(tmp_path)
