"""SentencePiece tokenizer for salesai models: training, loading, encoding, decoding.

A thin, faithful wrapper over SentencePiece (Kudo & Richardson 2018, arXiv:1808.06226): BPE by
default (Sennrich et al. 2016), unigram optional (Kudo 2018). It is configured for lossless
text, code above all: identity normalisation, whitespace kept as written (runs of spaces, leading
spaces, tabs, newlines), digits split, and byte fallback so that any Unicode string encodes without
`<unk>` and `decode(encode(s)) == s` holds. Ids are fixed for every model it trains:

    0 <pad>   1 <unk>   2 <s> (bos)   3 </s> (eos)
    4 <image> 5 <audio> 6 <code>   7 <|system|> 8 <|user|> 9 <|assistant|> 10 <|end|>
    11 "\\n" (a newline is always its own piece)   12.. the 256 byte pieces, then learned pieces

The user-defined symbols always encode to their single id wherever they appear in text; the
control tokens (pad/unk/bos/eos) are never produced from text, only by `add_bos`/`add_eos`.

Training reads files (text, code, JSON Lines through `salesai.data`) or any iterator of strings
through SentencePiece's `sentence_iterator` and receives the model through `model_writer`, so
nothing is written to disk unless `out_dir` is given. When the data supports fewer pieces than
asked for, the vocabulary shrinks to what it supports and a notice says so.

What it is not: a Hugging Face `tokenizers` object, a chat-template engine, or a normaliser; a
foreign SentencePiece model loads, but only models trained here promise the ids and round trip.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Union, cast

from salesai.atomic import write_bytes_atomic
from salesai.errors import SalesAIError

# Reserved ids, identical in every tokenizer trained by salesai.
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
CONTROL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
MODALITY_TOKENS = ("<image>", "<audio>", "<code>")
CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
NEWLINE = "\n"
MODEL_FILENAME = "tokenizer.model"
MODEL_TYPES = ("bpe", "unigram")
# SentencePiece's meta symbol for a space; a literal one in user text is encoded as bytes.
_SPACE_META = "\u2581"
# Training lines longer than this are cut into chunks (SentencePiece skips over-long sentences).
_MAX_LINE_CHARS = 8192

PathLike = Union[str, "os.PathLike[str]"]


class Tokenizer:
    """A trained SentencePiece model with fixed special ids; see the module docstring."""

    def __init__(self, model_proto: bytes, source: str | None = None) -> None:
        import sentencepiece as spm

        self._proto = bytes(model_proto)
        self._source = source or "<memory>"
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except Exception:  # sentencepiece raises RuntimeError/OSError with C++ text
            raise SalesAIError(f"{self._source}: not a SentencePiece model file (does not parse)") from None
        self._space_bytes = self._byte_ids(_SPACE_META)
        # Messages from training, e.g. that the vocabulary was shrunk (empty after loading).
        self.notices: list[str] = []

    # ----------------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        files_or_iterator: PathLike | Sequence[PathLike] | Iterator[str],
        vocab_size: int = 8000,
        out_dir: PathLike | None = None,
        model_type: str = "bpe",
        *,
        character_coverage: float = 0.9995,
        extra_symbols: Sequence[str] = (),
        num_threads: int = 1,
        input_sentence_size: int = 1_000_000,
        seed: int = 0,
        verbose: bool = True,
        **sentencepiece_options: Any,
    ) -> Tokenizer:
        """Train a tokenizer on files or an iterator of strings; save it to `out_dir` if given.

        `files_or_iterator`: a path, a list/tuple of paths (files, folders or globs; `.jsonl` files
        contribute their records' `text`), or an iterator (generator, `iter(list)`) of texts. Each
        text is split into lines, the lines are SentencePiece's sentences. `vocab_size` is shrunk,
        with a notice in `tok.notices` (printed to stderr when `verbose`), when the data supports
        fewer pieces. The result is deterministic for the same data, `seed` and `num_threads`
        (the default of 1 thread gives the same tokenizer on every machine; more threads train
        somewhat faster on large data but learn slightly different pieces). `sentencepiece_options`
        are passed to the trainer unchanged (expert use).
        """
        import sentencepiece as spm

        if model_type not in MODEL_TYPES:
            raise SalesAIError(f"model_type {model_type!r}: expected one of {', '.join(MODEL_TYPES)}")
        symbols = [*MODALITY_TOKENS, *CHAT_TOKENS, NEWLINE]
        symbols += [s for s in extra_symbols if s not in symbols]
        minimum = len(CONTROL_TOKENS) + len(symbols) + 256 + 1
        if vocab_size < minimum:
            raise SalesAIError(
                f"vocab_size {vocab_size}: expected at least {minimum} "
                f"(4 control tokens, {len(symbols)} symbols, 256 byte pieces, and pieces learned from data)"
            )
        texts = _training_texts(files_or_iterator)
        counter = _Counter()
        options: dict[str, Any] = dict(
            model_type=model_type,
            vocab_size=vocab_size,
            hard_vocab_limit=False,  # shrink to what the data supports instead of failing
            byte_fallback=True,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            pad_piece=CONTROL_TOKENS[0],
            unk_piece=CONTROL_TOKENS[1],
            bos_piece=CONTROL_TOKENS[2],
            eos_piece=CONTROL_TOKENS[3],
            user_defined_symbols=symbols,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            split_by_whitespace=True,
            character_coverage=character_coverage,
            max_sentence_length=4 * _MAX_LINE_CHARS,  # bytes; a code line fits whole
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            train_extremely_large_corpus=False,
            num_threads=max(1, num_threads),
            minloglevel=2,
        )
        options.update(sentencepiece_options)
        spm.set_random_generator_seed(seed)
        writer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=_sentences(texts, counter), model_writer=writer, **options
            )
        except Exception as exc:
            if counter.error is not None:  # raised by the data: re-raise it, not sentencepiece's wrapper
                raise counter.error from None
            if isinstance(exc, SalesAIError):
                raise
            raise SalesAIError(_explain_training_error(exc, vocab_size, counter, files_or_iterator)) from None
        if counter.sentences == 0 or not writer.getvalue():
            raise SalesAIError(f"{_describe(files_or_iterator)}: no text to train a tokenizer on")
        tok = cls(writer.getvalue(), source=f"trained on {_describe(files_or_iterator)}")
        if len(tok) < vocab_size:
            tok.notices.append(
                f"vocabulary shrunk from {vocab_size} to {len(tok)}: the training data "
                f"({counter.chars:,} characters) supports no more {model_type} pieces; "
                "give more data for a larger vocabulary"
            )
        if verbose:
            for notice in tok.notices:
                print(f"notice: {notice}", file=sys.stderr)
        if out_dir is not None:
            tok.save_pretrained(out_dir)
        return tok

    # --------------------------------------------------------------------------- loading / saving
    @classmethod
    def from_pretrained(cls, path: PathLike) -> Tokenizer:
        """Load from a directory holding `tokenizer.model`, or from the `.model` file itself."""
        p = Path(path)
        file = p / MODEL_FILENAME if p.is_dir() else p
        if not file.is_file():
            where = f"{p} has no {MODEL_FILENAME}" if p.is_dir() else f"{file}: no such file"
            raise SalesAIError(f"{where}: expected a SentencePiece model ({MODEL_FILENAME})")
        return cls(file.read_bytes(), source=str(file))

    def save_pretrained(self, directory: PathLike) -> Path:
        """Write `directory/tokenizer.model` atomically; return its path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        target = out / MODEL_FILENAME
        write_bytes_atomic(target, self._proto)
        return target

    # ----------------------------------------------------------------------- encoding / decoding
    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of `text`; `add_bos`/`add_eos` put `<s>`/`</s>` around them."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = self._encode_body(text)
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def encode_batch(
        self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False, num_threads: int = 1
    ) -> list[list[int]]:
        """`encode` over many texts; SentencePiece parallelises over `num_threads`."""
        texts = list(texts)
        plain = [i for i, t in enumerate(texts) if _SPACE_META not in t]
        out: list[list[int]] = [[] for _ in texts]
        if plain:
            encoded = self._sp.encode([texts[i] for i in plain], num_threads=num_threads)
            for i, ids in zip(plain, encoded, strict=True):
                out[i] = list(ids)
        for i, t in enumerate(texts):
            if _SPACE_META in t:
                out[i] = self._encode_body(t)
        for ids in out:
            if add_bos:
                ids.insert(0, self.bos_id)
            if add_eos:
                ids.append(self.eos_id)
        return out

    def decode(self, ids: Iterable[int] | Any) -> str:
        """Text of `ids` (a list, numpy array or tensor); control tokens decode to nothing."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = [int(i) for i in ids]
        n = len(self)
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise SalesAIError(f"token id {bad[0]}: expected 0 <= id < {n} (the vocabulary size)")
        return str(self._sp.decode(ids))

    def _encode_body(self, text: str) -> list[int]:
        # SentencePiece reads a literal U+2581 as a space; encode it as its UTF-8 bytes instead.
        if _SPACE_META not in text:
            return list(self._sp.encode(text))
        ids: list[int] = []
        for k, part in enumerate(text.split(_SPACE_META)):
            if k:
                ids.extend(self._space_bytes)
            if part:
                ids.extend(self._sp.encode(part))
        return ids

    def _byte_ids(self, char: str) -> list[int]:
        ids = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in char.encode("utf-8")]
        return ids if all(self._sp.is_byte(i) for i in ids) else list(self._sp.encode(char))

    # ---------------------------------------------------------------------------------- vocabulary
    def __len__(self) -> int:
        return int(self._sp.get_piece_size())

    @property
    def vocab_size(self) -> int:
        return len(self)

    def token_to_id(self, token: str) -> int:
        """Id of a vocabulary piece (e.g. `"<image>"`); KeyError if it is not one."""
        i = int(self._sp.piece_to_id(token))
        if i == self.unk_id and token != self._sp.id_to_piece(self.unk_id):
            raise KeyError(f"{token!r} is not a token of this tokenizer")
        return i

    def id_to_token(self, token_id: int) -> str:
        """The piece with id `token_id` (spaces appear as U+2581, bytes as `<0xNN>`)."""
        if not 0 <= int(token_id) < len(self):
            raise IndexError(f"token id {token_id}: expected 0 <= id < {len(self)}")
        return str(self._sp.id_to_piece(int(token_id)))

    @property
    def pad_id(self) -> int:
        return int(self._sp.pad_id())

    @property
    def unk_id(self) -> int:
        return int(self._sp.unk_id())

    @property
    def bos_id(self) -> int:
        return int(self._sp.bos_id())

    @property
    def eos_id(self) -> int:
        return int(self._sp.eos_id())

    @property
    def special_tokens(self) -> dict[str, int]:
        """Control tokens and user-defined symbols (modalities, chat roles) -> id."""
        piece = _pb().ModelProto.SentencePiece
        kinds = (piece.CONTROL, piece.UNKNOWN, piece.USER_DEFINED)
        return {
            p.piece: i for i, p in enumerate(self._model().pieces) if p.type in kinds and p.piece != NEWLINE
        }

    def _model(self) -> Any:
        if not hasattr(self, "_model_pb"):
            m = _pb().ModelProto()
            m.ParseFromString(self._proto)
            self._model_pb = m
        return self._model_pb

    @property
    def model_type(self) -> str:
        """`"bpe"` or `"unigram"` (or another SentencePiece type for a foreign model)."""
        return str(_pb().TrainerSpec.ModelType.Name(self._model().trainer_spec.model_type)).lower()

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the serialized model: equal fingerprints, equal tokenisation."""
        return hashlib.sha256(self._proto).hexdigest()

    def serialized_model(self) -> bytes:
        return self._proto

    def __repr__(self) -> str:
        return f"Tokenizer({self.model_type}, vocab_size={len(self)}, source={self._source!r})"

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers
        return {"proto": self._proto, "source": self._source, "notices": self.notices}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["proto"], state["source"])  # type: ignore[misc]
        self.notices = list(state["notices"])


# ------------------------------------------------------------------------------------- helpers
def _pb() -> Any:
    """SentencePiece's protobuf module (ModelProto), untyped."""
    from sentencepiece import sentencepiece_model_pb2

    return sentencepiece_model_pb2


class _Counter:
    sentences = 0
    chars = 0
    error: BaseException | None = None  # an exception raised while reading the data


def _training_texts(source: PathLike | Sequence[PathLike] | Iterator[str]) -> Iterator[str]:
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if isinstance(source, (list, tuple)):
        from salesai.data import iter_texts, resolve_sources

        return iter_texts(resolve_sources(source))
    if isinstance(source, Iterable):
        return iter(cast("Iterable[str]", source))
    raise SalesAIError(
        f"{type(source).__name__}: expected a path, a list of paths, or an iterator of strings"
    )


def _sentences(texts: Iterator[str], counter: _Counter) -> Iterator[str]:
    try:
        for text in texts:
            if not isinstance(text, str):
                raise SalesAIError(f"training iterator yielded {type(text).__name__}: expected str")
            counter.chars += len(text)
            for line in text.split("\n"):
                for start in range(0, len(line), _MAX_LINE_CHARS):
                    piece = line[start : start + _MAX_LINE_CHARS]
                    if piece.strip():
                        counter.sentences += 1
                        yield piece
    except Exception as exc:
        counter.error = exc
        raise


def _explain_training_error(exc: Exception, vocab_size: int, counter: _Counter, source: Any) -> str:
    text = str(exc)
    if "smaller than required_chars" in text:
        # "... Vocabulary size is smaller than required_chars. 300 vs 363. ..."
        need = text.split("required_chars.")[-1].split("vs")[-1].split(".")[0].strip()
        return (
            f"vocab_size {vocab_size}: the data has more distinct characters than fit; "
            f"expected at least {need} (or lower character_coverage)"
        )
    if counter.sentences == 0:
        return f"{_describe(source)}: no text to train a tokenizer on"
    return f"sentencepiece training failed: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (list, tuple)):
        more = f" (+{len(source) - 3} more)" if len(source) > 3 else ""
        return ", ".join(str(s) for s in source[:3]) + more
    return "an iterator of texts"
