"""`ByteTokenizer`: a byte-level tokenizer with the `salesai.Tokenizer` interface, for tests.

No training, no files, no SentencePiece: every UTF-8 byte is a token. Its special ids are
those of every tokenizer that `salesai.Tokenizer.train` makes, so code under test sees the
same `<image>`/`<audio>` ids with either:

    0 <pad>   1 <unk>   2 <s> (bos)   3 </s> (eos)
    4 <image> 5 <audio> 6 <code>   7 <|system|> 8 <|user|> 9 <|assistant|> 10 <|end|>
    11 + b for each byte b in 0..255   ->  267 ids in all

The special symbols (ids 4..10) are recognised in text, like SentencePiece user-defined
symbols; control tokens are never produced from text. `decode(encode(s)) == s` for every
string. `save_pretrained(dir)` writes `dir/tokenizer.model` as a small JSON document that
only `ByteTokenizer.from_pretrained` reads (it is not a SentencePiece model).

What it is not: a tokenizer to train models with (sequences are ~4x longer than BPE's).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

PathLike = Union[str, "os.PathLike[str]"]

CONTROL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
SYMBOLS = ("<image>", "<audio>", "<code>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
BYTE_OFFSET = len(CONTROL_TOKENS) + len(SYMBOLS)  # id of byte 0
FORMAT = "salesai-byte-tokenizer"
MODEL_FILENAME = "tokenizer.model"


class ByteTokenizer:
    """Bytes as tokens, with the fixed salesai special ids; see the module docstring."""

    pad_id = 0
    unk_id = 1
    bos_id = 2
    eos_id = 3

    def __init__(self) -> None:
        self._specials = {tok: i for i, tok in enumerate(CONTROL_TOKENS + SYMBOLS)}
        self._split = re.compile("(" + "|".join(re.escape(s) for s in SYMBOLS) + ")")

    # -- interface shared with salesai.Tokenizer -------------------------------------------
    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of `text`: symbols as their id, everything else as UTF-8 bytes."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = [self.bos_id] if add_bos else []
        for part in self._split.split(text):
            if part in self._specials:
                ids.append(self._specials[part])
            else:
                ids.extend(BYTE_OFFSET + b for b in part.encode("utf-8"))
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def encode_batch(
        self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False
    ) -> list[list[int]]:
        return [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]

    def decode(self, ids: Iterable[int] | Any) -> str:
        """Text of `ids`; control tokens are dropped, invalid UTF-8 becomes U+FFFD."""
        if hasattr(ids, "tolist"):  # a tensor or array
            ids = ids.tolist()
        out: list[str] = []
        pending = bytearray()
        for raw in ids:
            i = int(raw)
            if not 0 <= i < len(self):
                raise IndexError(f"token id {i}: expected 0 <= id < {len(self)}")
            if i >= BYTE_OFFSET:
                pending.append(i - BYTE_OFFSET)
                continue
            out.append(pending.decode("utf-8", errors="replace"))
            pending.clear()
            if i >= len(CONTROL_TOKENS):
                out.append(SYMBOLS[i - len(CONTROL_TOKENS)])
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)

    def __len__(self) -> int:
        return BYTE_OFFSET + 256

    @property
    def vocab_size(self) -> int:
        return len(self)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Control tokens and symbols -> id."""
        return dict(self._specials)

    def token_to_id(self, token: str) -> int:
        """Id of a special token (e.g. `"<image>"`) or of a single byte character; KeyError otherwise."""
        if token in self._specials:
            return self._specials[token]
        encoded = token.encode("utf-8")
        if len(encoded) == 1:
            return BYTE_OFFSET + encoded[0]
        raise KeyError(f"{token!r} is not a token of ByteTokenizer (specials: {', '.join(self._specials)})")

    def id_to_token(self, token_id: int) -> str:
        """The special token, or `<0xNN>` for a byte, with id `token_id`."""
        i = int(token_id)
        if not 0 <= i < len(self):
            raise IndexError(f"token id {i}: expected 0 <= id < {len(self)}")
        if i < BYTE_OFFSET:
            return (CONTROL_TOKENS + SYMBOLS)[i]
        return f"<0x{i - BYTE_OFFSET:02X}>"

    def save_pretrained(self, directory: PathLike) -> Path:
        """Write `directory/tokenizer.model` (JSON, see the module docstring); return its path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        target = out / MODEL_FILENAME
        target.write_text(json.dumps({"format": FORMAT, "version": 1, "vocab_size": len(self)}) + "\n")
        return target

    @classmethod
    def from_pretrained(cls, path: PathLike) -> ByteTokenizer:
        """Load from a directory written by `save_pretrained`, or from its `tokenizer.model`."""
        from salesai.errors import SalesAIError

        p = Path(path)
        file = p / MODEL_FILENAME if p.is_dir() else p
        try:
            doc = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SalesAIError(f"{file}: expected a ByteTokenizer {MODEL_FILENAME} ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SalesAIError(f"{file}: expected a ByteTokenizer {MODEL_FILENAME} (format {FORMAT!r})")
        return cls()

    def __repr__(self) -> str:
        return f"ByteTokenizer(vocab_size={len(self)})"
