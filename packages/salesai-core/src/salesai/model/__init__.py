"""The salesai text model: config, MoE decoder, generation engine, checkpoints.

Names are imported lazily (`salesai.model.ModelConfig` does not import torch).
"""

from __future__ import annotations

from salesai.lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _LAZY)
