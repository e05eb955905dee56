"""The salesai text model: config, MoE decoder, generation engine, checkpoints.

Names are imported lazily (`salesai.model.ModelConfig` does not import torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY: dict[str, str] = {
    "ModelConfig": "salesai.model.config",
    "PRESETS": "salesai.model.config",
    "SalesAIModel": "salesai.model.transformer",
    "ModelOutput": "salesai.model.transformer",
    "StaticKVCache": "salesai.model.cache",
    "generate": "salesai.model.generation",
    "stream": "salesai.model.generation",
    "save_checkpoint": "salesai.model.checkpoint",
    "load_checkpoint": "salesai.model.checkpoint",
    "resolve_checkpoint": "salesai.model.checkpoint",
    "SalesAIForSequenceClassification": "salesai.model.classifier",
    "TextClassifier": "salesai.model.classifier",
    "load_classifier": "salesai.model.classifier",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'salesai.model' has no attribute {name!r}")
