"""The core's layout rules (docs/architecture.md): imports point down, never to a plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "salesai"
PLUGIN_PACKAGES = ("salesai_vision", "salesai_audio", "salesai_rl", "salesai_serve")
# package -> packages it must not import
FORBIDDEN = {
    "model": ("salesai.data", "salesai.train", "salesai.cli", "salesai.export", "salesai.quickstart"),
    "data": ("salesai.train", "salesai.cli", "salesai.export", "salesai.quickstart"),
    "train": ("salesai.cli", "salesai.export", "salesai.quickstart"),
    "export": ("salesai.cli", "salesai.train", "salesai.quickstart"),
}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_core_never_imports_a_plugin() -> None:
    offenders = [
        f"{p.relative_to(SRC)} imports {name}"
        for p in SRC.rglob("*.py")
        for name in _imports(p)
        if name.split(".")[0] in PLUGIN_PACKAGES
    ]
    assert not offenders


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package: str) -> None:
    offenders = [
        f"{p.relative_to(SRC)} imports {name}"
        for p in (SRC / package).rglob("*.py")
        for name in _imports(p)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package])
    ]
    assert not offenders


def test_no_circle_between_weights_model_and_checkpoint() -> None:
    weights = _imports(SRC / "model" / "weights.py")
    transformer = _imports(SRC / "model" / "transformer.py")
    assert not any(n.startswith(("salesai.model.transformer", "salesai.model.checkpoint")) for n in weights)
    assert not any(n.startswith("salesai.model.checkpoint") for n in transformer)


def test_training_and_data_live_in_their_folders() -> None:
    for flat in ("trainer.py", "train_config.py", "train_state.py", "training_run.py", "distributed.py",
                 "data.py", "data_inspect.py"):
        assert not (SRC / flat).exists(), flat
    assert {p.name for p in (SRC / "train").glob("*.py")} >= {
        "__init__.py", "config.py", "trainer.py", "state.py", "run.py", "distributed.py"}
    assert {p.name for p in (SRC / "data").glob("*.py")} >= {
        "__init__.py", "sources.py", "tokens.py", "windows.py", "inspection.py"}
