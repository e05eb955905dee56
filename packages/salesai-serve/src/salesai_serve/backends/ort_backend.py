"""ONNX Runtime backend: a salesai ONNX export (fp32, int8, q8 or q4 decoder), numpy only, no torch.

The decoder graph takes explicit past keys/values (rows, n_kv, P, hd) and an attention mask
(rows, P+T) and returns the presents, so the running batch is just these arrays: a joining
row is prefilled alone (past length 0) and concatenated on the batch axis, left-padded to the
shared length; leaving rows are dropped by indexing; the axis is compacted when it reaches
the context length. Sampling uses `salesai.ort_runtime.sample_next` with a per-request numpy
generator (greedy output equals PyTorch's; seeded sampling follows numpy's random stream).

Multimodal exports (`encoder_<m>.onnx` per modality, loaded at start-up): `prepare_media` reads
the bytes with the encoder plugin's torch-free `preprocess_numpy` (`OrtEncoder.preprocess`);
the joining row's prefill runs the encoder on its items and feeds the embeddings through the
decoder's `inputs_embeds` / `embeds_mask` at the expanded placeholders (the core's
`expand_placeholders`), exactly as `OrtGenerator.generate(media=...)` does. A modality whose
plugin is not installed is left out of `modalities` (a warning says which package to install).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from salesai_serve.backends.base import Backend, Sampler, SamplingParams


class OrtSampler:
    """One request's sampler over numpy logits (V,), as `OrtGenerator` samples."""

    def __init__(self, params: SamplingParams, prompt_ids: Sequence[int], vocab_size: int,
                 index: int) -> None:
        self.params = params
        self.rng = np.random.default_rng(None if params.seed is None else params.seed + index)
        self.seen = None
        if params.repetition_penalty != 1.0:
            self.seen = np.zeros((1, vocab_size), np.bool_)
            self.seen[0, list(prompt_ids)] = True

    def __call__(self, logits: Any) -> int:
        from salesai.ort_runtime import apply_repetition_penalty, sample_next

        p = self.params
        scores = np.asarray(logits, np.float32).reshape(1, -1)  # (1, V)
        if not np.isfinite(scores).all():
            raise FloatingPointError("non-finite logits")
        if self.seen is not None:
            scores = apply_repetition_penalty(scores, self.seen, p.repetition_penalty)
        token = int(sample_next(scores, self.rng, p.temperature, p.top_k or None, p.top_p)[0])
        if self.seen is not None:
            self.seen[0, token] = True
        return token

    def logprobs(self, logits: Any, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
        """Log-softmax of the raw logits (V,) at `token`, and the k most likely (id, logprob)."""
        x = np.asarray(logits, np.float64).reshape(-1)  # (V,)
        top = x.max()
        lp = x - (top + np.log(np.exp(x - top).sum()))
        best = np.argsort(-lp, kind="stable")[:k]
        return float(lp[token]), [(int(i), float(lp[i])) for i in best]


class OrtBackend(Backend):
    """A salesai ONNX export run by ONNX Runtime; see the module docstring."""

    def __init__(self, decoder: Any, tokenizer: Any, eos_id: int, pad_id: int, add_bos: bool,
                 encoders: dict[str, Any] | None = None) -> None:
        self.decoder = decoder
        self.encoders: dict[str, Any] = dict(encoders or {})  # modality -> OrtEncoder
        self.modalities = ("text", *self.encoders)
        self.name = "onnxruntime" if decoder.variant == "fp32" else f"onnxruntime-{decoder.variant}"
        self.tokenizer = tokenizer
        self.max_seq_len = int(decoder.max_seq_len)
        self.vocab_size = int(decoder.vocab_size)
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.add_bos = add_bos
        self.past: list[np.ndarray] = decoder.empty_past(0)  # key_0, value_0, ... (rows, n_kv, L, hd)
        self.mask = np.zeros((0, 0), np.int64)  # (rows, L) 1 = real token
        self.pos: list[int] = []

    @classmethod
    def load(cls, path: str | Path, variant: str = "fp32", threads: int | None = None) -> OrtBackend:
        """Load an export directory (`salesai export CKPT --format onnx [--quantize int8,q8,q4]`)."""
        from salesai.errors import SalesAIError
        from salesai.ort_runtime import OrtGenerator, numpy_preprocessor

        gen = OrtGenerator.from_export(path, variant=variant, threads=threads or 0)
        if gen.tokenizer is None:
            raise SalesAIError(f"{path}: the export has no tokenizer.model; re-export with a tokenizer")
        encoders = {}
        for modality in gen.decoder.manifest.get("encoders") or {}:
            encoder = gen.encoder(modality)  # a missing or broken graph fails here, at start-up
            try:
                numpy_preprocessor(modality, encoder.entry)  # the encoder plugin's torch-free reader
            except SalesAIError as exc:
                logging.getLogger("salesai_serve").warning("%s input disabled: %s", modality, exc)
                continue
            encoders[modality] = encoder
        return cls(gen.decoder, gen.tokenizer, gen.eos_id, gen.pad_id, gen.add_bos, encoders)

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    def prepare_media(self, modality: str, data: bytes) -> tuple[Any, int]:
        encoder = self.encoders.get(modality)
        if encoder is None:
            return super().prepare_media(modality, data)
        return encoder.preprocess(data), int(encoder.entry["tokens_per_input"])

    def _media_embeds(self, ids: Sequence[int], media: dict[str, Any]) -> tuple[list[int], Any, Any]:
        """Placeholders expanded: (ids (P',), inputs_embeds (1, P', D), embeds_mask (1, P'))."""
        from salesai.ort_runtime import expand_placeholders

        embeddings: dict[int, np.ndarray] = {}
        names: dict[int, str] = {}
        for modality, items in media.items():
            encoder = self.encoders[modality]
            embeddings[encoder.placeholder_id] = encoder.encode(np.stack(items))  # (K, N, D)
            names[encoder.placeholder_id] = modality
        rows, fills = expand_placeholders([list(ids)], embeddings, names)
        embeds = np.zeros((1, len(rows[0]), self.decoder.hidden_dim), np.float32)
        embeds_mask = np.zeros((1, len(rows[0])), np.bool_)
        for at, block in fills[0]:  # block (N, D)
            embeds[0, at:at + block.shape[0]] = block
            embeds_mask[0, at:at + block.shape[0]] = True
        return rows[0], embeds, embeds_mask

    def add(self, ids: Sequence[int], media: dict[str, Any] | None = None) -> Any:
        from salesai.ort_runtime import positions

        dec = self.decoder
        embeds = embeds_mask = None
        if media:
            ids, embeds, embeds_mask = self._media_embeds(ids, media)
        row = np.asarray([list(ids)], np.int64)  # (1, P)
        mask = np.ones_like(row)
        # logits (1, P, V)
        logits, present = dec.step(row, mask, positions(mask), dec.empty_past(1), embeds, embeds_mask)
        self._append(present, mask, [row.shape[1]])
        return logits[0, -1]

    def add_many(self, prompts: Sequence[Sequence[int]]) -> list[Any]:
        """Prefill several text prompts in one forward (left-padded, masked) and append them as rows."""
        from salesai.ort_runtime import left_pad, positions

        dec = self.decoder
        ids, mask = left_pad(prompts, self.pad_id)  # (k, P), (k, P)
        logits, present = dec.step(ids, mask, positions(mask), dec.empty_past(len(prompts)))  # (k, P, V)
        self._append(present, mask, [len(p) for p in prompts])
        return [logits[r, -1] for r in range(len(prompts))]

    def _append(self, present: list[np.ndarray], mask: np.ndarray, lengths: list[int]) -> None:
        """Join prefilled rows (their presents (k, n_kv, P, hd), mask (k, P)) to the running batch."""
        p = mask.shape[1]
        if max(self.mask.shape[1], p) + 1 > self.max_seq_len:
            self._compact()
        length = self.mask.shape[1]
        if p > length and self.rows:
            self._pad_left(p - length)
            length = p
        if not self.rows:
            self.past, self.mask = present, mask
        else:
            pad = max(length - p, 0)
            present = [np.pad(t, ((0, 0), (0, 0), (pad, 0), (0, 0))) for t in present]
            self.past = [np.concatenate([a, b], axis=0) for a, b in zip(self.past, present, strict=True)]
            self.mask = np.concatenate([self.mask, np.pad(mask, ((0, 0), (pad, 0)))], axis=0)
        self.pos.extend(lengths)

    def _pad_left(self, d: int) -> None:
        self.past = [np.pad(t, ((0, 0), (0, 0), (d, 0), (0, 0))) for t in self.past]
        self.mask = np.pad(self.mask, ((0, 0), (d, 0)))

    def decode(self, tokens: Sequence[int]) -> Any:
        n = self.rows
        if self.mask.shape[1] + 1 > self.max_seq_len:
            self._compact()
        mask = np.concatenate([self.mask, np.ones((n, 1), np.int64)], axis=1)  # (n, L+1)
        ids = np.asarray(list(tokens), np.int64).reshape(n, 1)
        pos = np.asarray(self.pos, np.int64).reshape(n, 1)
        logits, self.past = self.decoder.step(ids, mask, pos, self.past)  # (n, 1, V)
        self.mask = mask
        self.pos = [p + 1 for p in self.pos]
        return logits[:, -1]

    def _compact(self) -> None:
        """Right-align every row's real positions on the shortest common axis."""
        counts = self.mask.sum(-1)
        new_len = int(counts.max()) if self.rows else 0
        past = [np.zeros((*t.shape[:2], new_len, t.shape[3]), t.dtype) for t in self.past]
        mask = np.zeros((self.rows, new_len), np.int64)
        for r in range(self.rows):
            src = np.nonzero(self.mask[r])[0]
            dst = np.arange(new_len - len(src), new_len)
            for new, old in zip(past, self.past, strict=True):
                new[r, :, dst] = old[r, :, src]
            mask[r, dst] = 1
        self.past, self.mask = past, mask

    def keep(self, indices: Sequence[int]) -> None:
        idx = np.asarray(list(indices), np.int64)
        self.past = [t[idx] for t in self.past]
        self.mask = self.mask[idx]
        self.pos = [self.pos[i] for i in indices]
        if not len(idx):
            self.past = self.decoder.empty_past(0)
            self.mask = np.zeros((0, 0), np.int64)
            return
        dead = int(np.cumprod(~self.mask.any(0)).sum())  # leading columns no row uses
        if dead:
            self.past = [t[:, :, dead:] for t in self.past]
            self.mask = self.mask[:, dead:]

    def sampler(self, params: SamplingParams, prompt_ids: Sequence[int], index: int = 0) -> Sampler:
        return OrtSampler(params, prompt_ids, self.vocab_size, index)


__all__ = ["OrtBackend", "OrtSampler"]
