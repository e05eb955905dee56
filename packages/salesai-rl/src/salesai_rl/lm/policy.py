"""The policy side of LM RL: load a salesai checkpoint, sample completions, score tokens.

What:
- `load_policy(path)`: (SalesAIModel, tokenizer) from a checkpoint or run directory, with a
  SentencePiece `salesai.Tokenizer` or the test `ByteTokenizer` (JSON `tokenizer.model`).
- `encode_prompt(tokenizer, text, max_len)`: `[bos] + ids`, as `salesai train` starts every
  document; a prompt longer than `max_len` keeps its last `max_len` tokens (as the quickstart does).
- `sample(model, prompt_ids, ...)`: completions from the core's KV-cache generation engine
  (`salesai.model.generate`), all prompts of a step in one batch; a completion ends with its
  eos token (kept, so the policy learns to stop) or is truncated at `max_new_tokens`.
- `pad_pairs(prompts, completions, pad_id)`: left-padded prompts + right-padded completions
  as one (B, P + C) batch with its attention and completion masks.
- `completion_logprobs(model, batch, temperature)`: per-token log-probs and entropies of the
  completion tokens (B, C), computing logits for the last C + 1 positions only, plus the
  model's MoE auxiliary loss when it computes one (training mode).

What it is not: the RL update (see `grpo.py`, `dpo.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from salesai.errors import SalesAIError

BYTE_TOKENIZER_MAGIC = b"{"  # salesai.testing.ByteTokenizer writes its tokenizer.model as JSON


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer saved in a checkpoint directory (SentencePiece or the test ByteTokenizer)."""
    file = Path(path) / "tokenizer.model"
    if not file.is_file():
        raise SalesAIError(f"{path}: no tokenizer.model (LM RL needs the checkpoint's tokenizer)")
    if file.read_bytes()[:1] == BYTE_TOKENIZER_MAGIC:
        from salesai.testing import ByteTokenizer

        return ByteTokenizer.from_pretrained(file)
    from salesai import Tokenizer

    return Tokenizer.from_pretrained(file)


def load_policy(path: str | Path, device: str | torch.device | None = None) -> tuple[Any, Any, Path]:
    """(model, tokenizer, checkpoint dir) of a checkpoint or a run directory (its latest checkpoint)."""
    from salesai import SalesAIModel
    from salesai.model.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    model = SalesAIModel.from_pretrained(ckpt, device=device)
    return model, load_tokenizer(ckpt), ckpt


def encode_prompt(tokenizer: Any, text: str, max_len: int | None = None) -> list[int]:
    """`[bos] + ids` of a prompt, cut from the left to at most `max_len` tokens."""
    ids = list(tokenizer.encode(text, add_bos=True))
    return ids[-max_len:] if max_len is not None and max_len > 0 else ids


@dataclass
class Samples:
    """Completions of one sampling call, one entry per row (prompt repeated group_size times)."""

    completions: list[list[int]]  # token ids, the eos token included where the row stopped
    truncated: list[bool]  # hit max_new_tokens without an eos


def sample(
    model: Any,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    eos_id: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> Samples:
    """Sample one completion per prompt row through the batched KV-cache engine (eval mode)."""
    from salesai.model import generate

    was_training = model.training
    model.eval()
    try:
        rows = generate(model, prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature,
                        top_k=top_k, top_p=top_p, stop_token_ids=[eos_id], seed=seed)
    finally:
        model.train(was_training)
    truncated = [not (r and r[-1] == eos_id) for r in rows]
    return Samples([list(r) for r in rows], truncated)


@dataclass
class Batch:
    """Prompt + completion token batch: prompts left-padded, completions right-padded."""

    input_ids: torch.Tensor  # (B, P + C) long
    attention_mask: torch.Tensor  # (B, P + C) long, 1 = token
    completion_mask: torch.Tensor  # (B, C) float, 1 = completion token
    prompt_len: int  # P

    @property
    def completion_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len:]  # (B, C)

    def rows(self, index: slice) -> Batch:
        return Batch(self.input_ids[index], self.attention_mask[index], self.completion_mask[index],
                     self.prompt_len)


def pad_pairs(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> Batch:
    """One batch from prompt and completion id lists (same length; an empty completion gets one pad)."""
    if len(prompts) != len(completions) or not prompts:
        raise SalesAIError(f"pad_pairs: {len(prompts)} prompts for {len(completions)} completions")
    p = max(len(x) for x in prompts)
    c = max(1, max(len(x) for x in completions))
    ids = torch.full((len(prompts), p + c), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), p + c), dtype=torch.long)
    comp = torch.zeros((len(prompts), c))
    for i, (pr, co) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, p - len(pr):p] = torch.tensor(pr, dtype=torch.long)
        attn[i, p - len(pr):p] = 1
        if co:
            ids[i, p:p + len(co)] = torch.tensor(co, dtype=torch.long)
            attn[i, p:p + len(co)] = 1
            comp[i, :len(co)] = 1.0
    return Batch(ids, attn, comp, p)


def completion_logprobs(
    model: Any, batch: Batch, temperature: float = 1.0, with_entropy: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(log-probs (B, C), entropies (B, C) or None, aux_loss or None) of the completion tokens.

    Logits at position t predict token t + 1, so the C completion tokens are scored by the
    logits of the C positions before them; they are divided by `temperature` as when sampling.
    """
    device = model.device
    c = batch.completion_mask.shape[1]
    out = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                logits_to_keep=c + 1)
    logits = out.logits[:, :-1].float()  # (B, C, V): positions P-1 .. P+C-2
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)  # (B, C, V)
    target = batch.completion_ids.to(device).unsqueeze(-1)  # (B, C, 1)
    logps = logp_all.gather(-1, target).squeeze(-1)  # (B, C)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B, C)
    return logps, entropy, out.aux_loss


def sequence_logprobs(model: Any, batch: Batch) -> torch.Tensor:
    """Summed completion log-probs per row (B,), for DPO."""
    logps, _, _ = completion_logprobs(model, batch, with_entropy=False)
    return (logps * batch.completion_mask.to(logps.device)).sum(-1)


__all__ = [
    "Batch",
    "Samples",
    "completion_logprobs",
    "encode_prompt",
    "load_policy",
    "load_tokenizer",
    "pad_pairs",
    "sample",
    "sequence_logprobs",
]
