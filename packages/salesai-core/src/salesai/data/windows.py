"""The one data ordering: training samples as fixed-length windows, visited in a seeded order.

`TokenSequences` turns a flat token array (or a dataset of sequences) into indexable (T,) samples;
`SampleOrder` is the endless global sample stream (epoch e is a permutation seeded by (seed, e)).
The Trainer takes micro-batch `m` of step `s` on rank `r` from global positions
`(s * accum * world + m * world + r) * batch ...` of that stream, so N ranks equal one process
with gradient accumulation and a run resumes exactly from its step number alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from salesai.errors import SalesAIError


class TokenSequences:
    """Adapter: fixed-length (T,) int64 sequences from a flat token array or a dataset of sequences.

    A flat 1-D array (the memory-mapped token file of `salesai.data.tokens`) is cut into windows
    of `seq_len` tokens that overlap by one token, so every token but the first is a prediction
    target exactly once (the model shifts labels inside). Any other sequence of token
    lists/arrays/tensors works too; longer items are cut to `seq_len`.
    """

    def __init__(self, data: Any, seq_len: int) -> None:
        self.seq_len = seq_len
        self._flat: Any = None
        self._data: Any = None
        if isinstance(data, (torch.Tensor, np.ndarray)) and data.ndim == 1:
            self._flat = data
            self._len = max(0, (len(data) - 1) // (seq_len - 1)) if len(data) >= seq_len else 0
        elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
            self._data, self._len = data, len(data)
            self._get = lambda i: data[i]
        else:
            raise SalesAIError(f"training data: expected a token array or a dataset of sequences, "
                               f"got {type(data).__name__}")
        if self._len == 0:
            raise SalesAIError(f"training data: no complete sequence of {seq_len} tokens (too little data?)")

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._flat is not None:
            start = i * (self.seq_len - 1)
            window = self._flat[start : start + self.seq_len]  # (T,)
            return torch.as_tensor(np.asarray(window, dtype=np.int64))
        item = self._get(i)
        if isinstance(item, dict):
            item = item.get("input_ids", item.get("ids"))
        elif isinstance(item, tuple):  # (input_ids, labels) pairs
            item = item[0]
        ids = torch.as_tensor(np.asarray(item, dtype=np.int64)).reshape(-1)
        return ids[: self.seq_len]

    def batch(self, indices: list[int]) -> torch.Tensor:
        return torch.stack([self[i] for i in indices])  # (B, T)


class SampleOrder:
    """The endless global sample stream: epoch e is a permutation seeded by (seed, e)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, global_index: int) -> int:
        epoch, offset = divmod(global_index, self.n)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return int(self._perm[offset])
