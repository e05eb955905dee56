"""salesai-audio is installed, discovered through its entry point, and loads cleanly."""

from __future__ import annotations

import salesai_audio
from salesai.testing import installed_plugin


def test_plugin_is_installed() -> None:
    info = installed_plugin("salesai-audio")
    assert info["name"] == "audio"
    assert info["version"] == salesai_audio.__version__
    assert info["registered"] == {"encoders": ["audio"], "commands": ["audio"]}
    assert info["error"] is None
