"""A pre-allocated key/value cache for PyTorch generation.

What: per layer one key and one value tensor of shape (B, num_kv_heads, max_len, head_dim),
allocated once; each forward writes its new keys/values in place at `[length:length+T]` and
attends over the view `[:length+T]`. No per-step concatenation or reallocation. The model
advances `length` after all layers have written. References: transformers `StaticCache`,
nanochat `engine.py` `KVCache`.

What it is not: not the ONNX path. Exported graphs take and return explicit past/present
tensors instead (`SalesAIModel.decoder_forward`).
"""

from __future__ import annotations

from typing import Any

import torch

from salesai.errors import SalesAIError


class StaticKVCache:
    """Keys and values of every layer for up to `max_len` positions, written in place."""

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        shape = (batch_size, num_kv_heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.max_len = max_len
        self.batch_size = batch_size
        self.length = 0  # positions filled so far (the same for every layer between forwards)

    @classmethod
    def for_model(cls, model: torch.nn.Module, batch_size: int, max_len: int) -> StaticKVCache:
        cfg: Any = model.config
        param = next(model.parameters())
        return cls(cfg.num_layers, batch_size, cfg.num_kv_heads, max_len, cfg.head_dim,
                   dtype=param.dtype, device=param.device)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, n_kv, T, hd) at the current length; return views over all filled positions."""
        start = self.length
        end = start + k.shape[2]
        if end > self.max_len:
            raise SalesAIError(f"KV cache full: {end} positions needed, {self.max_len} allocated")
        keys, values = self.keys[layer], self.values[layer]
        keys[:, :, start:end].copy_(k)
        values[:, :, start:end].copy_(v)
        return keys[:, :, :end], values[:, :, :end]  # (B, n_kv, end, hd)

    def advance(self, n: int) -> None:
        self.length += n

    def reset(self) -> None:
        self.length = 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


__all__ = ["StaticKVCache"]
