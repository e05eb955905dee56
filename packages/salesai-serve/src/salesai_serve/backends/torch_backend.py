"""PyTorch backend: a checkpoint directory run through `SalesAIModel.step` over a slot KV cache.

`SlotKVCache` is a `StaticKVCache` whose rows are the running batch: tensors
(capacity_rows, n_kv, capacity_len, hd) grown by doubling, a bool key mask (rows, len) and a
next position per row. `step` writes the new keys/values of rows [:n] at the shared length
and attends over the mask, so rows of different lengths decode together. Prefill runs one
prompt alone through a fresh `StaticKVCache` (exactly as `generate` does) and copies its
keys/values into the slot, right-aligned.
Sampling uses the core's `sample_next` / `apply_repetition_penalty` with a per-request
`torch.Generator`, so a lone request gives `generate`'s tokens for the same seed too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from salesai.model.cache import StaticKVCache
from salesai_serve.backends.base import Backend, Sampler, SamplingParams

INITIAL_LEN = 64  # time capacity allocated first; doubled on demand up to the context length


class SlotKVCache(StaticKVCache):
    """Rows [:n] of the running batch share one time axis; see the module docstring."""

    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(num_layers, 1, num_kv_heads, min(INITIAL_LEN, max_len), head_dim, dtype, device)
        self.limit = max_len  # the model's context length: the axis never grows beyond it
        self.n = 0  # rows in use
        self.valid = torch.zeros(1, self.max_len, dtype=torch.bool, device=device)  # (rows, len)
        self.pos: list[int] = []  # next position per row

    # -- used by SalesAIModel.step -----------------------------------------------------------
    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (n, n_kv, T, hd) of rows [:n] at the shared length; views over [:length+T]."""
        start, end, n = self.length, self.length + k.shape[2], self.n
        self.keys[layer][:n, :, start:end].copy_(k)
        self.values[layer][:n, :, start:end].copy_(v)
        return self.keys[layer][:n, :, :end], self.values[layer][:n, :, :end]  # (n, n_kv, end, hd)

    # -- capacity ------------------------------------------------------------------------------
    def _resize(self, rows: int, length: int) -> None:
        def grow(t: torch.Tensor) -> torch.Tensor:
            new = t.new_zeros((rows, *t.shape[1:-2], length, t.shape[-1]))
            new[: t.shape[0], ..., : t.shape[-2], :] = t
            return new

        self.keys = [grow(t) for t in self.keys]
        self.values = [grow(t) for t in self.values]
        valid = self.valid.new_zeros((rows, length))
        valid[: self.valid.shape[0], : self.valid.shape[1]] = self.valid
        self.valid = valid
        self.batch_size, self.max_len = rows, length

    def reserve(self, rows: int, length: int) -> None:
        """Room for `rows` rows and `length` positions (doubling; length at most the limit)."""
        new_rows = self.batch_size
        while new_rows < rows:
            new_rows *= 2
        if length > self.limit:
            raise RuntimeError(f"KV slots: {length} positions asked for, context length is {self.limit}")
        new_len = self.max_len
        while new_len < length:
            new_len = min(2 * new_len, self.limit)
        if (new_rows, new_len) != (self.batch_size, self.max_len):
            self._resize(new_rows, new_len)

    def compact(self) -> None:
        """Move every row's real positions right-aligned to the shortest common length."""
        n, length = self.n, self.length
        counts = self.valid[:n, :length].sum(-1)  # (n,)
        new_length = int(counts.max()) if n else 0
        if new_length == length:
            return
        for r in range(n):
            src = self.valid[r, :length].nonzero().squeeze(-1)  # (count,)
            dst = torch.arange(new_length - src.numel(), new_length, device=src.device)
            for t in (*self.keys, *self.values):
                t[r, :, dst] = t[r, :, src]
            self.valid[r, :new_length] = False
            self.valid[r, dst] = True
        self.valid[:n, new_length:] = False
        self.length = new_length

    def shift_right(self, d: int) -> None:
        """Left-pad rows [:n] by d positions (a longer prompt is joining)."""
        n, length = self.n, self.length
        self.reserve(n, length + d)
        for t in (*self.keys, *self.values):
            t[:n, :, d:d + length] = t[:n, :, :length].clone()
        self.valid[:n, d:d + length] = self.valid[:n, :length].clone()
        self.valid[:n, :d] = False
        self.length = length + d

    def keep(self, indices: Sequence[int]) -> None:
        idx = torch.tensor(list(indices), dtype=torch.long, device=self.valid.device)
        m = len(idx)
        if m:
            for t in (*self.keys, *self.values):
                t[:m, :, : self.length] = t[idx, :, : self.length]
            self.valid[:m] = self.valid[idx]
        self.pos = [self.pos[i] for i in indices]
        self.n = m
        if m == 0:
            self.length = 0
            self.valid.zero_()
            return
        dead = int((~self.valid[:m, : self.length].any(0)).long().cumprod(0).sum())  # leading free columns
        if dead * 2 >= self.length:
            self.compact()


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a training run directory's latest checkpoint (the core's resolver)."""
    import salesai.model
    from salesai.model import checkpoint

    resolve: Any = getattr(salesai.model, "resolve_checkpoint", None) or getattr(
        checkpoint, "resolve_checkpoint", None)
    return Path(path) if resolve is None else Path(resolve(path))  # None: an older core, no run dirs


class TorchSampler:
    """One request's sampler: repetition penalty -> temperature -> top-k -> top-p, as `generate`."""

    def __init__(self, params: SamplingParams, prompt_ids: Sequence[int], vocab_size: int,
                 index: int) -> None:
        self.params = params
        self.generator = None
        if params.seed is not None:
            self.generator = torch.Generator(device="cpu")
            self.generator.manual_seed(params.seed + index)
        self.seen = None
        if params.repetition_penalty != 1.0:
            self.seen = torch.zeros(1, vocab_size, dtype=torch.bool)
            self.seen[0, list(prompt_ids)] = True

    def __call__(self, logits: Any) -> int:
        from salesai.model.generation import apply_repetition_penalty, sample_next

        p = self.params
        scores = logits.float().cpu().view(1, -1)  # (1, V)
        if not bool(torch.isfinite(scores).all()):
            raise FloatingPointError("non-finite logits")
        if self.seen is not None:
            scores = apply_repetition_penalty(scores, self.seen, p.repetition_penalty)
        token = int(sample_next(scores, p.temperature, p.top_k or None, p.top_p, self.generator)[0])
        if self.seen is not None:
            self.seen[0, token] = True
        return token

    def logprobs(self, logits: Any, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
        """Log-softmax of the raw logits (V,) at `token`, and the k most likely (id, logprob)."""
        lp = torch.log_softmax(logits.float().cpu().view(-1), -1)  # (V,)
        values, ids = torch.topk(lp, k)
        return float(lp[token]), [(int(i), float(v)) for v, i in zip(values, ids, strict=True)]


class TorchBackend(Backend):
    """A salesai checkpoint on CPU (or `device`), batched through one `SlotKVCache`."""

    name = "pytorch"

    def __init__(self, model: Any, tokenizer: Any, add_bos: bool = True) -> None:
        cfg = model.config
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_seq_len = int(cfg.max_seq_len)
        self.vocab_size = int(cfg.vocab_size)
        self.eos_id = int(cfg.eos_token_id)
        self.pad_id = int(getattr(cfg, "pad_token_id", 0))
        self.add_bos = add_bos
        self.modalities = ("text", *(getattr(cfg, "encoders", None) or {}))
        param = next(model.parameters())
        with torch.inference_mode():  # every cache tensor is an inference tensor, updated in place
            self.cache = SlotKVCache(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, self.max_seq_len,
                                     param.dtype, param.device)

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> TorchBackend:
        """Load a checkpoint directory (config.json, model.safetensors, tokenizer.model)."""
        from salesai import SalesAIModel
        from salesai.errors import SalesAIError
        from salesai.model.generation import decode_layout
        from salesai.ort_runtime import load_tokenizer

        if threads:
            torch.set_num_threads(threads)
        path = resolve_checkpoint(path)
        if not (path / "tokenizer.model").is_file():
            raise SalesAIError(f"{path}: no tokenizer.model; the server needs the checkpoint's tokenizer")
        # from_pretrained + load_tokenizer rather than load_checkpoint: it also reads the test ByteTokenizer
        model = SalesAIModel.from_pretrained(path)
        decode_layout(model)  # column-major Linear weights: faster batch-1 decoding; the server never trains
        return cls(model, load_tokenizer(path / "tokenizer.model"))

    @property
    def rows(self) -> int:
        return self.cache.n

    def prepare_media(self, modality: str, data: bytes) -> tuple[Any, int]:
        encoder = self.model.encoders[modality]
        return encoder.preprocess(data), int(encoder.num_tokens())

    def add(self, ids: Sequence[int], media: dict[str, Any] | None = None) -> Any:
        with torch.inference_mode():
            tokens = torch.tensor([list(ids)], device=self.cache.valid.device)  # (1, P)
            embeds = None
            if media:  # placeholders expand to their items' embeddings, as in generate(media=...)
                sp = self.model.splice_media(tokens, media)
                tokens, embeds = sp.input_ids, sp.inputs_embeds  # (1, P'), (1, P', D)
            p = int(tokens.shape[1])
            alone = StaticKVCache.for_model(self.model, 1, p)
            logits = self.model.step(tokens, alone, None, None, embeds)  # (1, V)
            self._append(alone, torch.ones_like(tokens, dtype=torch.bool), [p])
        return logits[0]

    def add_many(self, prompts: Sequence[Sequence[int]]) -> list[Any]:
        """Prefill several text prompts in one forward (left-padded, key-masked, as `generate` does for
        a batch) and append them as rows."""
        device = self.cache.valid.device
        k, p = len(prompts), max(len(x) for x in prompts)
        with torch.inference_mode():
            tokens = torch.full((k, p), self.pad_id, dtype=torch.long, device=device)  # (k, P)
            valid = torch.zeros(k, p, dtype=torch.bool, device=device)  # (k, P)
            for r, ids in enumerate(prompts):
                tokens[r, p - len(ids):] = torch.tensor(list(ids), device=device)
                valid[r, p - len(ids):] = True
            padded = not bool(valid.all())
            positions = (valid.long().cumsum(-1) - 1).clamp_min(0) if padded else None  # (k, P)
            batch = StaticKVCache.for_model(self.model, k, p)
            logits = self.model.step(tokens, batch, positions, valid if padded else None)  # (k, V)
            self._append(batch, valid, [len(x) for x in prompts])
        return list(logits)

    def _append(self, prefilled: StaticKVCache, valid: torch.Tensor, lengths: list[int]) -> None:
        """Copy prefilled rows (keys/values (k, n_kv, P, hd), valid (k, P)) right-aligned into the slots."""
        c = self.cache
        k, p = valid.shape
        if max(c.length, p) + 1 > c.limit:
            c.compact()
        if p > c.length:
            if c.n:
                c.shift_right(p - c.length)
            else:
                c.length = p
        c.reserve(c.n + k, c.length + 1)
        r, start = c.n, c.length - p
        for dst, src in zip((*c.keys, *c.values), (*prefilled.keys, *prefilled.values), strict=True):
            dst[r:r + k, :, start:c.length] = src[:, :, :p]
        c.valid[r:r + k] = False
        c.valid[r:r + k, start:c.length] = valid
        c.pos.extend(lengths)
        c.n += k

    def decode(self, tokens: Sequence[int]) -> Any:
        c = self.cache
        n = c.n
        with torch.inference_mode():
            if c.length + 1 > c.limit:
                c.compact()
            c.reserve(n, c.length + 1)
            c.valid[:n, c.length] = True
            key_valid: torch.Tensor | None = c.valid[:n, : c.length + 1]  # (n, L+1)
            positions: torch.Tensor | None = torch.tensor(c.pos, device=c.valid.device).view(n, 1)
            assert key_valid is not None
            if bool(key_valid.all()):  # no padding at all: generate's exact fast path
                key_valid = None
                if all(p == c.length for p in c.pos):
                    positions = None
            ids = torch.tensor(list(tokens), device=c.valid.device).view(n, 1)
            logits = self.model.step(ids, c, positions, key_valid)  # (n, V)
        c.pos = [p + 1 for p in c.pos]
        return logits

    def keep(self, indices: Sequence[int]) -> None:
        with torch.inference_mode():
            self.cache.keep(indices)

    def sampler(self, params: SamplingParams, prompt_ids: Sequence[int], index: int = 0) -> Sampler:
        return TorchSampler(params, prompt_ids, self.vocab_size, index)


__all__ = ["SlotKVCache", "TorchBackend", "TorchSampler", "resolve_checkpoint"]
