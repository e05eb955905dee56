"""salesai-audio is installed, discovered through its entry point, and loads cleanly."""

from __future__ import annotations

import json

import salesai_audio
from salesai.testing import run_cli


def test_plugin_is_installed() -> None:
    result = run_cli(["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    infos = [i for i in json.loads(result.stdout) if i["distribution"] == "salesai-audio"]
    assert len(infos) == 1, infos
    (info,) = infos
    assert info["name"] == "audio"
    assert info["version"] == salesai_audio.__version__
    assert info["builtin"] is False
    assert info["error"] is None
    assert info["registered"] or info["description"].startswith("Registers nothing yet")
