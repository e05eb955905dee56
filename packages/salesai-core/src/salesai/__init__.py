"""salesai: a plugin-based PyTorch toolkit for small multimodal Mixture-of-Experts language models.

The public API is imported lazily so that `import salesai` (and `salesai --help`) does not
import torch.
"""

from __future__ import annotations

from salesai.hookspecs import hookimpl
from salesai.lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "ModelConfig": "salesai.model.config",
    "SalesAIModel": "salesai.model.transformer",
    "Tokenizer": "salesai.tokenizer",
    "Trainer": "salesai.train.trainer",
    "TrainConfig": "salesai.train.config",
    "SalesAIError": "salesai.errors",
}

__all__ = ["hookimpl", "__version__", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY)
