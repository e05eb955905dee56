"""Autoregressive generation: a pre-allocated KV cache, samplers, stop tokens, streaming.

What: `generate(model, input_ids, ...)` and `stream(model, input_ids, ...)` over token ids.
Prompts are a (B, T) tensor (with an optional left-padded `attention_mask`) or a list of
token-id lists of any lengths (left-padded here). One prefill computes only the last
position's logits, then one token per step through `model.step` with a `StaticKVCache`:
no per-step concatenation, no full-length mask for unpadded batches, sampling on CPU.
Order of logit processing (as transformers): repetition penalty -> temperature -> top-k ->
top-p -> sample (temperature 0 = greedy argmax). A per-call `torch.Generator` seeded with
`seed` makes the same call give the same tokens.
References: nanochat `engine.py`, transformers `generation/logits_process.py` (CTRL
repetition penalty, nucleus sampling).

Multimodal prompts: `images=[...]` (and `audio=[...]`, or `media={modality: [...]}`) hold one
item per placeholder token, in reading order over the batch; the prefill runs on the spliced
embeddings (`SalesAIModel.splice_media`, left-padded), decoding is unchanged.

`decode_layout(model)` re-lays the Linear weights column-major for memory-bound batch-1 decoding
on CPU (see its docstring); the CLI's torch backend applies it.

What it is not: tokenisation (the engine knows ids only), beam search, speculative decoding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from salesai.errors import SalesAIError
from salesai.model.cache import StaticKVCache
from salesai.sampling import check_sampling


def _prepare(
    model: Any, input_ids: Any, attention_mask: torch.Tensor | None, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(ids (B, T) long, mask (B, T) bool or None when nothing is padded)."""
    device = model.device
    if isinstance(input_ids, torch.Tensor):
        ids = input_ids.unsqueeze(0) if input_ids.dim() == 1 else input_ids
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise SalesAIError(
                f"input_ids: expected a non-empty (batch, tokens) tensor, got {tuple(input_ids.shape)}"
            )
        ids = ids.to(device=device, dtype=torch.long)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.to(device).bool().reshape(ids.shape)
            if not bool(mask[:, -1].all()):
                raise SalesAIError(
                    "attention_mask: expected left padding (every prompt's last position is a token)"
                )
            if bool(mask.all()):
                mask = None
        return ids, mask
    rows: list[list[int]]
    if isinstance(input_ids, Sequence) and input_ids and all(isinstance(i, int) for i in input_ids):
        rows = [list(input_ids)]
    else:
        rows = [list(r) for r in input_ids]
    if not rows or any(len(r) == 0 for r in rows):
        raise SalesAIError("input_ids: expected non-empty prompts (lists of token ids)")
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long, device=device)
    if all(len(r) == width for r in rows):
        return ids, None
    mask = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in rows], device=device)
    return ids, mask


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token per row from logits (B, V): greedy when temperature == 0. Returns (B,) long."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        values, candidates = torch.topk(logits, top_k, dim=-1)  # (B, k), sorted descending
    else:
        values, candidates = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        if top_p is None or top_p >= 1.0:
            probs = torch.softmax(logits, dim=-1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    if top_p is not None and top_p < 1.0:
        probs = torch.softmax(values, dim=-1)
        cumulative = probs.cumsum(dim=-1)
        drop = (cumulative - probs) > top_p  # keep the smallest prefix whose mass exceeds top_p
        values = values.masked_fill(drop, float("-inf"))
    probs = torch.softmax(values, dim=-1)  # (B, k)
    choice = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
    return candidates.gather(-1, choice).squeeze(-1)


def decode_layout(model: Any) -> int:
    """Store every CPU `nn.Linear` weight column-major, for faster batch-1 decoding; returns how many.

    Same values and shape (out, in); only the strides change to (1, out), so `F.linear`'s
    `x @ W.T` reads W.T as a contiguous (in, out) matrix. At one token per step every matmul
    is a matrix-vector product bound by memory bandwidth, and oneMKL streams that layout much
    faster: 1.4-1.6x more decode tokens/s on the `base` preset at 1 thread (bench/vs_llamacpp.py),
    logits equal to 1e-6 (summation order). Checkpoints are saved contiguous as before. Meant for
    inference (the CLI's torch backend calls it); call it on a model you are about to train and
    weight `.view()`s (e.g. LoRA merges) would need `.contiguous()` first.
    """
    from torch import nn

    count = 0
    for module in model.modules():
        w = getattr(module, "weight", None)
        if isinstance(module, nn.Linear) and w is not None and w.device.type == "cpu" and w.is_contiguous():
            module.weight.data = w.data.t().contiguous().t()  # (out, in), strides (1, out)
            count += 1
    return count


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL penalty on tokens seen so far: divide positive logits, multiply negative ones."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def _tokens(
    model: Any,
    input_ids: Any,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop_token_ids: Sequence[int] | None = None,
    seed: int | None = None,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    media: Any = None,
) -> Iterator[tuple[list[int], list[bool]]]:
    """Yield (token per row, row finished before this step) for each generated position."""
    cfg = model.config
    pad = cfg.pad_token_id if pad_token_id is None else pad_token_id
    stops = {cfg.eos_token_id} if stop_token_ids is None else set(stop_token_ids)
    ids, mask = _prepare(model, input_ids, attention_mask, pad)
    embeds = None
    if media:
        with torch.inference_mode():
            sp = model.splice_media(ids, media, None if mask is None else mask.long(), padding_side="left")
        ids, embeds = sp.input_ids, sp.inputs_embeds  # (B, L), (B, L, D): placeholders expanded
        mask = None if bool(sp.attention_mask.all()) else sp.attention_mask.bool()
    b, t = ids.shape
    check_sampling(t, model.config.max_seq_len, max_new_tokens, temperature, top_k, top_p, repetition_penalty)
    if max_new_tokens == 0:
        return
    generator = None
    if seed is not None:
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed)
    with torch.inference_mode():
        cache = StaticKVCache.for_model(model, b, t + max_new_tokens)
        key_valid = positions = next_pos = None
        if mask is not None:
            key_valid = torch.ones(b, t + max_new_tokens, dtype=torch.bool, device=ids.device)
            key_valid[:, :t] = mask
            positions = (mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, T)
            next_pos = mask.long().sum(-1, keepdim=True)  # (B, 1) next position per row
        seen = None
        if repetition_penalty != 1.0:
            seen = torch.zeros(b, cfg.vocab_size, dtype=torch.bool)
            seen.scatter_(1, ids.cpu(), mask.cpu() if mask is not None else True)
        logits = model.step(ids, cache, positions, None if key_valid is None else key_valid[:, :t], embeds)
        done = [False] * b
        for i in range(max_new_tokens):
            scores = logits.float().cpu()  # (B, V)
            if seen is not None:
                scores = apply_repetition_penalty(scores, seen, repetition_penalty)
            token = sample_next(scores, temperature, top_k, top_p, generator)  # (B,)
            row_tokens = token.tolist()
            yield row_tokens, list(done)
            for r, tok in enumerate(row_tokens):
                if tok in stops:
                    done[r] = True
            if all(done) or i == max_new_tokens - 1:
                return
            if seen is not None:
                seen.scatter_(1, token.unsqueeze(-1), True)
            step_ids = token.view(b, 1).to(ids.device)
            if key_valid is None:
                logits = model.step(step_ids, cache)
            else:
                assert next_pos is not None
                logits = model.step(step_ids, cache, next_pos, key_valid[:, : cache.length + 1])
                next_pos += 1


def _media(images: Any, audio: Any, media: Any) -> dict[str, Any] | None:
    """One {modality: items} mapping from the `images=` / `audio=` shortcuts and `media=`."""
    out = dict(media or {})
    for modality, items in (("image", images), ("audio", audio)):
        if items is not None:
            if modality in out:
                raise SalesAIError(f"pass the {modality} inputs once: as a keyword or in media=, not both")
            out[modality] = items
    return out or None


def generate(
    model: Any,
    input_ids: Any,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop_token_ids: Sequence[int] | None = None,
    seed: int | None = None,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    images: Any = None,
    audio: Any = None,
    media: Any = None,
) -> Any:
    """Generate up to `max_new_tokens` per prompt.

    input_ids: a (B, T) / (T,) tensor (optionally with a left-padded `attention_mask`), a list
    of ids, or a list of id lists of different lengths. stop_token_ids: None = [eos_token_id],
    [] = never stop early; a stop token is kept in the output and ends that row.
    Returns, for a tensor: a (B, T + n) LongTensor of prompt + completion (rows that stopped
    early padded with pad_token_id), like transformers; for lists: a list of completion-only
    id lists (one per prompt).
    """
    rows: list[list[int]] | None = None
    for tokens, done in _tokens(model, input_ids, max_new_tokens, temperature, top_k, top_p,
                                repetition_penalty, stop_token_ids, seed, attention_mask, pad_token_id,
                                _media(images, audio, media)):
        if rows is None:
            rows = [[] for _ in tokens]
        for r, tok in enumerate(tokens):
            if not done[r]:
                rows[r].append(tok)
    if not isinstance(input_ids, torch.Tensor):
        if rows is None:
            n = 1 if input_ids and isinstance(input_ids[0], int) else len(input_ids)
            return [[] for _ in range(n)]
        return rows
    prompt = input_ids.unsqueeze(0) if input_ids.dim() == 1 else input_ids
    if rows is None:
        return prompt.clone()
    pad = model.config.pad_token_id if pad_token_id is None else pad_token_id
    width = max(len(r) for r in rows)
    new = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=prompt.dtype, device=prompt.device)
    return torch.cat((prompt, new), dim=1)


def stream(
    model: Any,
    input_ids: Any,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop_token_ids: Sequence[int] | None = None,
    seed: int | None = None,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    images: Any = None,
    audio: Any = None,
    media: Any = None,
) -> Iterator[Any]:
    """Same arguments as `generate`; yields tokens as they are produced.

    One prompt: yields ints (the stop token included, then the stream ends). Several prompts:
    yields a list per step with one entry per prompt, None for prompts that already stopped.
    """
    single = (isinstance(input_ids, torch.Tensor) and (input_ids.dim() == 1 or input_ids.shape[0] == 1)) or (
        not isinstance(input_ids, torch.Tensor) and (not input_ids or isinstance(input_ids[0], int)
                                                     or len(input_ids) == 1)
    )
    for tokens, done in _tokens(model, input_ids, max_new_tokens, temperature, top_k, top_p,
                                repetition_penalty, stop_token_ids, seed, attention_mask, pad_token_id,
                                _media(images, audio, media)):
        if single:
            yield tokens[0]
        else:
            yield [None if d else tok for tok, d in zip(tokens, done, strict=True)]


__all__ = ["apply_repetition_penalty", "decode_layout", "generate", "sample_next", "stream"]
