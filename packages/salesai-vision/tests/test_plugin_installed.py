"""salesai-vision is installed, discovered through its entry point, and registers `vit` and `vision`."""

from __future__ import annotations

import json

import salesai_vision
from salesai.testing import installed_plugin, run_cli


def test_plugin_is_installed() -> None:
    info = installed_plugin("salesai-vision")
    assert info["name"] == "vision"
    assert info["version"] == salesai_vision.__version__
    assert info["registered"]["encoders"] == ["vit"]
    assert info["registered"]["commands"] == ["vision"]


def test_vit_listed_by_salesai_plugins() -> None:
    result = run_cli(["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    text = json.dumps(data)
    assert '"vit"' in text
