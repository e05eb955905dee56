"""Built-in exporters. Each registers here only once it works (see docs/exporters.md)."""

from __future__ import annotations

from salesai.hookspecs import Register, hookimpl


@hookimpl
def register_exporters(register: Register) -> None:
    """Nothing yet: `safetensors`, `hf` and `onnx` are added as they land."""
