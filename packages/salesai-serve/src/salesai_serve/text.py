"""Text around the engine: the chat template, and incremental decoding with stop strings.

Chat template (the tokenizer's role symbols, one turn per message):

    <s><|system|>\\n{system}<|end|>\\n<|user|>\\n{user}<|end|>\\n<|assistant|>\\n

i.e. for each message `<|{role}|>` + newline + content + `<|end|>` + newline, then
`<|assistant|>` + newline to open the reply. Generation stops at `</s>` (eos) or when the
model writes `<|end|>` (its id is a stop token for chat requests). Role symbols typed inside
a message's content are kept as plain text, never as role tokens (no role injection).

`TextStream` turns generated ids into text deltas: it decodes a sliding window (as TGI's
`decode_token`), holds back an incomplete UTF-8 sequence (U+FFFD at the end) and any suffix
that could be the start of a stop string, so a stop string is never emitted, not even in part,
and the concatenated deltas equal the final text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ROLES = ("system", "user", "assistant")
ROLE_SYMBOLS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END_SYMBOL = "<|end|>"


def _plain(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` with every special symbol spelled out as plain text (no injection)."""
    specials = [s for s in (*ROLE_SYMBOLS.values(), END_SYMBOL, "<image>", "<audio>", "<code>") if s in text]
    if not specials:
        return list(tokenizer.encode(text))
    ids: list[int] = []
    rest = text
    while rest:
        hits = [(rest.find(s), s) for s in specials if s in rest]
        if not hits:
            ids += tokenizer.encode(rest)
            break
        at, sym = min(hits)
        ids += tokenizer.encode(rest[:at]) if at else []
        ids += tokenizer.encode(sym[0]) + tokenizer.encode(sym[1:])  # "<" apart: not the symbol
        rest = rest[at + len(sym):]
    return ids


def _content_ids(tokenizer: Any, content: str | Sequence[str | int]) -> list[int]:
    if isinstance(content, str):
        return _plain(tokenizer, content)
    ids: list[int] = []
    for piece in content:  # text pieces and raw token ids (media placeholders)
        ids += [piece] if isinstance(piece, int) else _plain(tokenizer, piece)
    return ids


def chat_prompt_ids(tokenizer: Any, messages: Sequence[tuple[str, str | Sequence[str | int]]],
                    add_bos: bool = True) -> list[int]:
    """Token ids of `messages` ((role, content) pairs) in the chat template, ready for the reply.
    A content may be a list of text pieces and token ids (media placeholders, inserted as they are)."""
    ids = [tokenizer.bos_id] if add_bos else []
    newline = tokenizer.encode("\n")
    end = [tokenizer.token_to_id(END_SYMBOL)]
    for role, content in messages:
        role_id = tokenizer.token_to_id(ROLE_SYMBOLS[role])
        ids += [role_id, *newline, *_content_ids(tokenizer, content), *end, *newline]
    return [*ids, tokenizer.token_to_id(ROLE_SYMBOLS["assistant"]), *newline]


def chat_prompt_text(messages: Sequence[tuple[str, str]]) -> str:
    """The template as text (for docs and logs; `chat_prompt_ids` is what the server feeds)."""
    turns = "".join(f"{ROLE_SYMBOLS[r]}\n{c}{END_SYMBOL}\n" for r, c in messages)
    return f"<s>{turns}{ROLE_SYMBOLS['assistant']}\n"


class TextStream:
    """Incremental detokenizer with stop strings; see the module docstring."""

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self._prefix = 0  # window start (ids before it are already final text)
        self._read = 0  # ids decoded into `text` so far
        self.text = ""  # everything decoded so far
        self.emitted = 0  # characters of `text` handed out
        self.stopped = False

    def add(self, token: int) -> str:
        """Append one id; return the new text safe to emit (may be ""). Sets `stopped` on a stop string."""
        if self.stopped:
            return ""
        self.ids.append(token)
        before = self.tokenizer.decode(self.ids[self._prefix:self._read])
        after = self.tokenizer.decode(self.ids[self._prefix:])
        if after.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its next bytes
            return ""
        self.text += after[len(before):] if after.startswith(before) else after
        self._prefix, self._read = self._read, len(self.ids)
        return self._release()

    def _release(self) -> str:
        if self.stop:
            start = max(0, self.emitted - max(len(s) for s in self.stop))
            hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                end = min(hits)
                self.text = self.text[:end]
                self.stopped = True
                return self._take(end)
            text = self.text
            hold = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            return self._take(len(self.text) - hold)
        return self._take(len(self.text))

    def _take(self, end: int) -> str:
        piece = self.text[self.emitted:end] if end > self.emitted else ""
        self.emitted = max(self.emitted, end)
        return piece

    def flush(self) -> str:
        """The held-back rest at the end of generation (not after a stop string)."""
        if self.stopped:
            return ""
        tail = self.tokenizer.decode(self.ids[self._prefix:])
        before = self.tokenizer.decode(self.ids[self._prefix:self._read])
        if len(self.ids) > self._read:  # an incomplete UTF-8 sequence at the very end
            self.text += tail[len(before):] if tail.startswith(before) else tail
            self._read = len(self.ids)
        return self._take(len(self.text))


__all__ = ["END_SYMBOL", "ROLES", "ROLE_SYMBOLS", "TextStream", "chat_prompt_ids", "chat_prompt_text"]
