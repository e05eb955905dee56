"""salesai-serve is installed, discovered through its entry point, and loads cleanly."""

from __future__ import annotations

import salesai_serve
from salesai.testing import installed_plugin


def test_plugin_is_installed() -> None:
    info = installed_plugin("salesai-serve")
    assert info["name"] == "serve"
    assert info["version"] == salesai_serve.__version__
    assert info["registered"] or info["description"].startswith("Registers nothing yet")
