"""salesai-rl is installed, discovered through its entry point, and loads cleanly."""

from __future__ import annotations

import salesai_rl
from salesai.testing import installed_plugin


def test_plugin_is_installed() -> None:
    info = installed_plugin("salesai-rl")
    assert info["name"] == "rl"
    assert info["version"] == salesai_rl.__version__
    assert info["registered"] or info["description"].startswith("Registers nothing yet")
