"""LoRA adapters for salesai models: config, adapter layer, injection, adapter checkpoints, PEFT export.

    from salesai.lora import LoraConfig, load_base_for_lora
    config = LoraConfig(r=16, alpha=32, targets=("attn", "experts"))
    model = load_base_for_lora("runs/base/step-001000", config)

`lora/` sits beside `model/`: it imports `salesai.model`, never `data`, `train`, `export` or `cli`
(`salesai.model.load_checkpoint` reaches it, lazily, only for an adapter checkpoint). Names are
imported lazily (`salesai.lora.LoraConfig` does not import torch). See docs/lora.md.
"""

from __future__ import annotations

from salesai.lazy import lazy_getattr

_LAZY: dict[str, str] = {
    "LoraConfig": "salesai.lora.config",
    "LoraLinear": "salesai.lora.layers",
    "LoraModel": "salesai.lora.model",
    "apply_lora": "salesai.lora.model",
    "load_base_for_lora": "salesai.lora.checkpoint",
    "load_adapter_checkpoint": "salesai.lora.checkpoint",
    "is_adapter_checkpoint": "salesai.lora.checkpoint",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
