"""LoraLinear: the low-rank adapter of one `nn.Linear`, attached by a forward hook, with merge/unmerge.

    y = W x  +  (alpha / r) * B(A(dropout(x)))        A: (r, in) Kaiming-uniform, B: (out, r) zeros

The adapter does not replace the linear layer: it registers a forward hook on it that adds the
low-rank term to the layer's output. The base model therefore keeps its module tree and its
parameter names, so it saves, exports and serves as before, and switching the adapter off
(`enabled = False`) gives the base model back without a second copy (the reference model of
GRPO/DPO). `merge()` adds B @ A * scaling into W and stops the hook; `unmerge()` subtracts it again.
The adapter's own weights are `lora_A.weight` and `lora_B.weight`, as in PEFT's `lora.Linear`.

References: Hu et al. 2021 (LoRA), PEFT `tuners/lora/layer.py`. What it is not: no DoRA,
no bias adapters, no multiple adapters per layer.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class LoraLinear(nn.Module):
    """The adapter of one linear layer; `attach()` hooks it into the layer's forward."""

    def __init__(self, in_features: int, out_features: int, r: int, alpha: float,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.r = r
        self.scaling = float(alpha) / r
        self.lora_A = nn.Linear(in_features, r, bias=False)
        self.lora_B = nn.Linear(r, out_features, bias=False)
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.enabled = True  # False: the base layer alone (e.g. a reference model)
        self.merged = False  # True: B @ A * scaling is inside the base weight, the hook adds nothing
        self._handle: Any = None
        self._base: list[nn.Linear] = []  # the hooked layer, held outside the module tree
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PEFT's default: A Kaiming-uniform, B zero, so a fresh adapter changes nothing."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    # -- hooking ---------------------------------------------------------------------------
    @property
    def base(self) -> nn.Linear:
        if not self._base:
            raise RuntimeError("LoraLinear: not attached to a layer")
        return self._base[0]

    def attach(self, layer: nn.Linear) -> None:
        if self._handle is not None:
            raise RuntimeError("LoraLinear: already attached")
        self._base = [layer]
        self._handle = layer.register_forward_hook(self._hook)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = None
        self._base = []

    def _hook(self, _module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        if self.merged or not self.enabled:
            return output
        x = inputs[0]
        a, b = self.lora_A.weight, self.lora_B.weight
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(a.dtype)
        h = F.linear(self.dropout(x), a).reshape(-1, self.r)  # (N, r)
        bt = (b * self.scaling).t()  # (r, out): the scaling folded into the small matrix
        if torch.is_autocast_enabled(x.device.type) or h.dtype == output.dtype:
            # one fused output + h @ (s B)^T instead of three passes over the (N, out) output
            y = torch.addmm(output.reshape(-1, output.shape[-1]), h, bt)  # (N, out)
            return y.view(output.shape)
        return output + (h @ bt).view(output.shape).to(output.dtype)  # a bf16 base with fp32 adapters

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """The low-rank term (..., in) -> (..., out), in the adapter's dtype (or autocast's)."""
        a, b = self.lora_A.weight, self.lora_B.weight
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(a.dtype)
        return F.linear(F.linear(self.dropout(x), a), b) * self.scaling  # (..., r) -> (..., out)

    # -- merging ---------------------------------------------------------------------------
    def delta_weight(self) -> torch.Tensor:
        """scaling * B @ A: (out, in), what merging adds to the base weight."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            w = self.base.weight
            w += self.delta_weight().to(w.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            w = self.base.weight
            w -= self.delta_weight().to(w.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return (f"in={self.lora_A.in_features}, out={self.lora_B.out_features}, r={self.r}, "
                f"scaling={self.scaling:g}, merged={self.merged}")


__all__ = ["LoraLinear"]
