"""salesai-vision is installed, discovered through its entry point, and loads cleanly."""

from __future__ import annotations

import salesai_vision
from salesai.testing import installed_plugin


def test_plugin_is_installed() -> None:
    info = installed_plugin("salesai-vision")
    assert info["name"] == "vision"
    assert info["version"] == salesai_vision.__version__
    assert info["registered"] or info["description"].startswith("Registers nothing yet")
