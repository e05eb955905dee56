"""LoraModel: a frozen base model plus LoRA adapters on some of its linear layers.

    lora = apply_lora(model, LoraConfig(r=16, alpha=32, targets=("attn", "experts")))
    lora(ids, labels=ids).loss.backward()     # gradients reach the adapters only
    lora.generate(ids, max_new_tokens=20)      # base + adapter
    with lora.disabled(): ...                  # the base alone (a reference model, no second copy)
    plain = lora.merged_model()                # a plain model with B @ A * scaling folded in

`LoraModel` is an `nn.Module` whose submodules are `base` (the model, unchanged: same module tree,
same parameter names, every parameter frozen) and `adapters` (one `LoraLinear` per targeted layer,
keyed by the layer's path with dots replaced by `--`). Attributes it does not have itself come
from the base (`config`, `step`, `stream`, `expert_usage`, ...), so the Trainer, the generation
engine and the exporters use it like the base model. `save_pretrained(dir)` writes an adapter
checkpoint (salesai.lora.checkpoint): the adapter weights only, with the base referenced by path
and fingerprint.

What it is not: one adapter per model (no adapter switching by name), no DoRA/AdaLoRA.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salesai.errors import SalesAIError
from salesai.lora.config import LoraConfig
from salesai.lora.layers import LoraLinear

SEP = "--"  # replaces "." in adapter keys (nn.ModuleDict keys cannot hold dots)


def linear_paths(model: nn.Module) -> list[str]:
    """Paths of the model's `nn.Linear` layers, in module order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


class LoraModel(nn.Module):
    """A frozen base model with LoRA adapters; see the module docstring."""

    def __init__(self, base: nn.Module, config: LoraConfig, base_ref: dict[str, Any] | None = None) -> None:
        super().__init__()
        if isinstance(base, LoraModel):
            raise SalesAIError("LoRA: the model already carries adapters; merge them first "
                               "(salesai lora merge)")
        self.base = base
        self.lora_config = config
        self.base_ref = dict(base_ref or {})  # {"path", "fingerprint"} of the base checkpoint, when known
        targets = config.select(linear_paths(base))
        modules = dict(base.named_modules())
        cfg = getattr(base, "config", None)
        if "lm_head" in targets and getattr(cfg, "tie_embeddings", False):
            raise SalesAIError("lora.targets: lm_head is tied to the input embedding (tie_embeddings); "
                               "leave lm_head out of the targets")
        for p in base.parameters():
            p.requires_grad_(False)
        self.trained = config.select_trained(n for n, _ in base.named_modules()) if config.train else []
        for path in self.trained:  # modules trained in full (a classifier's head, encoders)
            for p in modules[path].parameters():
                p.requires_grad_(True)
        self.adapters = nn.ModuleDict()
        for path in targets:
            layer = modules[path]
            assert isinstance(layer, nn.Linear)
            w = layer.weight
            adapter = LoraLinear(layer.in_features, layer.out_features, config.r, config.alpha,
                                 config.dropout)
            adapter.to(device=w.device, dtype=w.dtype if w.dtype.is_floating_point else torch.float32)
            adapter.attach(layer)
            self.adapters[path.replace(".", SEP)] = adapter

    # -- the base's attributes -----------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or "base" not in self._modules:
                raise
            return getattr(self._modules["base"], name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.base(*args, **kwargs)

    def generate(self, input_ids: Any, **kwargs: Any) -> Any:
        from salesai.model.generation import generate

        return generate(self, input_ids, **kwargs)

    def stream(self, input_ids: Any, **kwargs: Any) -> Iterator[Any]:
        from salesai.model.generation import stream

        return stream(self, input_ids, **kwargs)

    # -- adapters ------------------------------------------------------------------------
    def named_adapters(self) -> Iterator[tuple[str, LoraLinear]]:
        """(layer path, adapter) pairs, e.g. ("layers.0.self_attn.q_proj", LoraLinear)."""
        for key, adapter in self.adapters.items():
            assert isinstance(adapter, LoraLinear)
            yield key.replace(SEP, "."), adapter

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """`<layer path>.lora_A.weight` / `.lora_B.weight` -> tensor, plus the parameters of the modules
        trained in full under their own names (what an adapter checkpoint holds)."""
        out: dict[str, torch.Tensor] = {}
        if self.trained:
            out.update((n, p) for n, p in self.base.named_parameters() if p.requires_grad)
        for path, adapter in self.named_adapters():
            out[f"{path}.lora_A.weight"] = adapter.lora_A.weight
            out[f"{path}.lora_B.weight"] = adapter.lora_B.weight
        return out

    def load_adapter_state_dict(self, tensors: dict[str, torch.Tensor], source: str = "adapter") -> None:
        """Copy adapter weights in, after checking names and shapes (one error naming `source`)."""
        own = self.adapter_state_dict()
        missing = sorted(set(own) - set(tensors))
        unexpected = sorted(set(tensors) - set(own))
        if missing or unexpected:
            parts = [f"{what} {len(n)} ({', '.join(n[:2])}{', ...' if len(n) > 2 else ''})"
                     for what, n in (("missing", missing), ("unexpected", unexpected)) if n]
            raise SalesAIError(f"{source}: does not match the adapter config: {'; '.join(parts)}")
        with torch.no_grad():
            for name, param in own.items():
                if tuple(tensors[name].shape) != tuple(param.shape):
                    raise SalesAIError(f"{source}: tensor {name} has shape {tuple(tensors[name].shape)}, "
                                       f"expected {tuple(param.shape)}")
                param.copy_(tensors[name].to(param.dtype))

    def load_adapter_weights(self, checkpoint: str | Path) -> None:
        """Load the adapter weights of an adapter checkpoint (the Trainer's resume)."""
        from salesai.lora.checkpoint import read_adapter_weights

        self.load_adapter_state_dict(*read_adapter_weights(Path(checkpoint)))

    @contextlib.contextmanager
    def disabled(self) -> Iterator[nn.Module]:
        """Within the block the model computes the base alone (adapters bypassed, not removed)."""
        was = [a.enabled for _, a in self.named_adapters()]
        for _, a in self.named_adapters():
            a.enabled = False
        try:
            yield self.base
        finally:
            for (_, a), w in zip(self.named_adapters(), was, strict=True):
                a.enabled = w

    def merge(self) -> None:
        """Fold every adapter into its base weight (generation then costs what the base costs)."""
        for _, a in self.named_adapters():
            a.merge()

    def unmerge(self) -> None:
        for _, a in self.named_adapters():
            a.unmerge()

    def merged_model(self) -> nn.Module:
        """The base model with the adapters folded in and unhooked; this LoraModel is used up."""
        self.merge()
        for _, a in self.named_adapters():
            a.detach()
        self.adapters = nn.ModuleDict()
        return self.base

    # -- sizes and files -----------------------------------------------------------------
    def num_adapter_parameters(self) -> int:
        """Trainable parameters: the adapters and the modules trained in full."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write an adapter checkpoint into `path` (see salesai.lora.checkpoint)."""
        from salesai.lora.checkpoint import save_adapter

        return save_adapter(self, path)


def apply_lora(model: nn.Module, config: LoraConfig, base_ref: dict[str, Any] | None = None) -> LoraModel:
    """Freeze `model` and attach adapters to the layers `config.targets` select."""
    return LoraModel(model, config, base_ref)


__all__ = ["LoraModel", "apply_lora", "linear_paths"]
