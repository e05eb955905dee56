"""Token log-probabilities in OpenAI's two response shapes (chat and legacy completions).

What is reported: for each generated token (a final stop token such as `</s>` or `<|end|>`
excepted), its log-probability under the model's distribution at that step, i.e. the
log-softmax of the raw logits (before temperature, top-k/top-p and the repetition penalty,
as vLLM reports by default), and the `k` most likely tokens with theirs (k = chat's
`top_logprobs`, or completions' `logprobs`; at most `max_logprobs`, 5 by default).

Token strings are the tokenizer's pieces with SentencePiece's space mark as a space; a
byte-fallback piece `<0xNN>` (part of a multi-byte character) is written `bytes:\\xNN`, as vLLM
does, and `bytes` always holds the token's own bytes.

An entry is `(token_id, logprob, [(top_id, top_logprob), ...])`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

Entry = tuple[int, float, list[tuple[int, float]]]
_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def token_text(tokenizer: Any, token_id: int) -> tuple[str, list[int]]:
    """(display string, bytes) of one token; see the module docstring."""
    piece = str(tokenizer.id_to_token(int(token_id)))
    byte = _BYTE.fullmatch(piece)
    if byte:
        value = int(byte.group(1), 16)
        return f"bytes:\\x{value:02x}", [value]
    text = piece.replace("\u2581", " ")
    return text, list(text.encode("utf-8"))


def chat_logprobs(tokenizer: Any, entries: Sequence[Entry]) -> dict[str, Any]:
    """`choices[i].logprobs` of a chat completion (or of one chunk's tokens)."""
    def item(token_id: int, logprob: float) -> dict[str, Any]:
        text, raw = token_text(tokenizer, token_id)
        return {"token": text, "logprob": logprob, "bytes": raw}

    content = [{**item(t, lp), "top_logprobs": [item(i, v) for i, v in top]} for t, lp, top in entries]
    return {"content": content, "refusal": None}


def completion_logprobs(tokenizer: Any, entries: Sequence[Entry], offset: int = 0) -> dict[str, Any]:
    """`choices[i].logprobs` of a text completion: tokens, token_logprobs, top_logprobs, text_offset
    (character offsets of each token from the completion's start; `offset` for later chunks)."""
    tokens: list[str] = []
    offsets: list[int] = []
    for token_id, _, _ in entries:
        text = token_text(tokenizer, token_id)[0]
        offsets.append(offset)
        offset += 1 if text.startswith("bytes:") else len(text)
        tokens.append(text)
    tops = [{token_text(tokenizer, i)[0]: v for i, v in top} for _, _, top in entries]
    return {"tokens": tokens, "token_logprobs": [lp for _, lp, _ in entries], "top_logprobs": tops,
            "text_offset": offsets}


def next_offset(tokenizer: Any, entries: Sequence[Entry], offset: int) -> int:
    """The text offset after `entries` (streamed completions continue from it)."""
    for token_id, _, _ in entries:
        text = token_text(tokenizer, token_id)[0]
        offset += 1 if text.startswith("bytes:") else len(text)
    return offset


__all__ = ["Entry", "chat_logprobs", "completion_logprobs", "next_offset", "token_text"]
