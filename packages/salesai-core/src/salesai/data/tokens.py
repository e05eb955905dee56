"""The token cache: documents encoded once into a flat, memory-mapped uint16/uint32 token file.

`tokenize_files` encodes the documents of `salesai.data.sources` (each as `<s> ... </s>`) into a
cache folder, keyed by the tokenizer's and the sources' fingerprints, written atomically, and
reused when nothing changed. The Trainer reads the flat array through
`salesai.data.windows.TokenSequences` (windows) in `SampleOrder` (the one data ordering).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from salesai.atomic import write_bytes_atomic
from salesai.data.sources import PathLike, iter_records, resolve_sources
from salesai.errors import SalesAIError

CACHE_VERSION = 1
_ENCODE_CHUNK_CHARS = 1 << 18  # documents are encoded in newline-aligned chunks of this size
_FILE_MODE = 0o644  # mkstemp creates 0600 files; cache files are ordinary readable files


class TokenizerLike(Protocol):
    """What the pipeline needs from a tokenizer (`salesai.Tokenizer` or the testing byte tokenizer)."""

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]: ...
    def __len__(self) -> int: ...

    @property
    def bos_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...


# ------------------------------------------------------------------------------ the token cache
@dataclass(frozen=True)
class TokenFile:
    """A cached token file: raw little-endian uint16/uint32 tokens plus a JSON sidecar."""

    path: Path  # <cache_dir>/<name>-<key>.bin
    dtype: str  # "uint16" or "uint32"
    num_tokens: int
    num_documents: int
    key: str  # hash of tokenizer + sources + format; part of the file name
    created: bool = False  # True when this call tokenised; False when the cache was reused

    @property
    def meta_path(self) -> Path:
        return self.path.with_suffix(".json")

    def tokens(self) -> np.ndarray:
        """The tokens, memory-mapped read-only (shape `(num_tokens,)`)."""
        if self.num_tokens == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.num_tokens,))


def tokenizer_fingerprint(tokenizer: TokenizerLike) -> str:
    """`tokenizer.fingerprint` when it has one, else a description (type, size, specials)."""
    fp = getattr(tokenizer, "fingerprint", None)
    if isinstance(fp, str):
        return fp
    return f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}:{len(tokenizer)}:" \
           f"{tokenizer.bos_id}:{tokenizer.eos_id}"


def sources_fingerprint(files: Sequence[Path]) -> list[list[Any]]:
    """(absolute path, size, mtime in ns) of each file: what invalidates a cache."""
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def tokenize_files(
    sources: PathLike | Sequence[PathLike], tokenizer: TokenizerLike, cache_dir: PathLike,
    *, name: str = "tokens", add_bos: bool = True, progress: bool | None = None, num_threads: int = 1,
) -> TokenFile:
    """Tokenise `sources` once into `cache_dir`; later calls with the same inputs reuse the file.

    Each document becomes `[bos] + ids + [eos]` (`add_bos=False` drops the bos). The cache key
    covers the tokenizer fingerprint, each file's path/size/mtime and these options; a stale file
    of the same `name` is removed. `progress=None` shows a bar on stderr above 4 MB of input.
    """
    files = resolve_sources(sources)
    vocab = len(tokenizer)
    dtype = "uint16" if vocab <= 1 << 16 else "uint32"
    key_src = {"version": CACHE_VERSION, "tokenizer": tokenizer_fingerprint(tokenizer), "add_bos": add_bos,
               "bos": tokenizer.bos_id, "eos": tokenizer.eos_id, "dtype": dtype,
               "files": sources_fingerprint(files)}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:20]
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{name}-{key}.bin"
    cached = _load_meta(target, key)
    if cached is not None:
        return cached

    total_bytes = sum(f.stat().st_size for f in files)
    show = total_bytes > 4_000_000 if progress is None else progress
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".bin.tmp", dir=cache)
    num_tokens = num_docs = 0
    try:
        label = f"tokenising {len(files)} file(s)"
        with os.fdopen(fd, "wb") as fh, _progress(show, total_bytes, label) as bar:
            for batch, nbytes in _document_batches(files):
                for ids in _encode_documents(tokenizer, batch, add_bos, num_threads):
                    arr = np.asarray(ids, dtype=dtype)
                    arr.tofile(fh)
                    num_tokens += arr.size
                    num_docs += 1
                bar(nbytes)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta = {"key": key, "dtype": dtype, "num_tokens": num_tokens, "num_documents": num_docs,
            "vocab_size": vocab, **key_src}
    write_bytes_atomic(target.with_suffix(".json"), json.dumps(meta, indent=1).encode())
    for stale in cache.glob(f"{name}-*.bin"):
        if stale != target and re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{20}}", stale.stem):
            stale.unlink(missing_ok=True)
            stale.with_suffix(".json").unlink(missing_ok=True)
    return TokenFile(target, dtype, num_tokens, num_docs, key, created=True)


def load_token_file(path: PathLike) -> TokenFile:
    """Open a cached token file (`.bin` or its `.json` sidecar) written by `tokenize_files`."""
    p = Path(path).with_suffix(".bin")
    meta = p.with_suffix(".json")
    if not meta.is_file() or not p.is_file():
        raise SalesAIError(f"{p}: no token file with a .json sidecar (expected output of tokenize_files)")
    key = json.loads(meta.read_text())["key"]
    loaded = _load_meta(p, key)
    if loaded is None:
        raise SalesAIError(f"{p}: size does not match its .json sidecar (truncated token file)")
    return loaded


def _load_meta(target: Path, key: str) -> TokenFile | None:
    meta_path = target.with_suffix(".json")
    if not (target.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        size = meta["num_tokens"] * np.dtype(meta["dtype"]).itemsize
        ok = meta["key"] == key and target.stat().st_size == size
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not ok:
        return None
    return TokenFile(target, meta["dtype"], int(meta["num_tokens"]), int(meta["num_documents"]), key)


def _document_batches(files: list[Path], batch_chars: int = 1 << 20) -> Iterator[tuple[list[str], int]]:
    """Non-empty document texts in groups of about `batch_chars`, with the bytes of files finished."""
    batch: list[str] = []
    chars = done = 0
    for path in files:
        for record in iter_records(path):
            if record.text.strip():
                batch.append(record.text)
                chars += len(record.text)
            if chars >= batch_chars:
                yield batch, done
                batch, chars, done = [], 0, 0
        done += path.stat().st_size
    if batch or done:
        yield batch, done


def _encode_documents(tokenizer: TokenizerLike, docs: list[str], add_bos: bool,
                      num_threads: int) -> Iterator[list[int]]:
    # Split long documents at newlines into chunks: "\n" is always its own token in a salesai
    # tokenizer (a byte in the testing one), so encoding the chunks separately gives the same ids
    # as encoding the whole text, with bounded memory.
    chunks: list[str] = []
    owners: list[int] = []
    for i, doc in enumerate(docs):
        for chunk in _newline_chunks(doc, _ENCODE_CHUNK_CHARS):
            chunks.append(chunk)
            owners.append(i)
    encode_batch = getattr(tokenizer, "encode_batch", None)
    if encode_batch is not None and num_threads > 1:
        encoded = encode_batch(chunks, num_threads=num_threads)
    elif encode_batch is not None:
        encoded = encode_batch(chunks)
    else:
        encoded = [tokenizer.encode(c) for c in chunks]
    out: list[list[int]] = [[tokenizer.bos_id] if add_bos else [] for _ in docs]
    for i, ids in zip(owners, encoded, strict=True):
        out[i].extend(ids)
    for ids in out:
        ids.append(tokenizer.eos_id)
        yield ids


def _newline_chunks(text: str, size: int) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut >= start else end
        yield text[start:end]
        start = end


class _progress:
    """A rich progress bar on stderr (or nothing); call the object with bytes done."""

    def __init__(self, show: bool, total: int, label: str) -> None:
        self.show, self.total, self.label = show, total, label
        self._bar: Any = None

    def __enter__(self) -> _progress:
        if self.show:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def __call__(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, nbytes)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
