"""User-facing errors: one line naming the input and what was expected.

The CLI prints a `SalesAIError` as a single red line and exits with code 2 (no traceback
unless `--debug`). Library callers can catch it like any `ValueError`.
"""

from __future__ import annotations


class SalesAIError(ValueError):
    """A problem with the user's input (file, config, argument), explained in one line."""


class PluginError(SalesAIError):
    """A plugin registered something invalid, or a name is unknown or duplicated."""
