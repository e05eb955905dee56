"""The `salesai` entry point of salesai-serve: adds the `salesai serve` command.

Nothing heavy is imported here or at registration: FastAPI, uvicorn and torch load when
the command runs.
"""

from __future__ import annotations

from typing import Any

import salesai


@salesai.hookimpl
def register_commands(app: Any) -> None:
    """Add `salesai serve`."""
    from salesai_serve.cli import register

    register(app)
