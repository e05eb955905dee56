"""Training data for salesai: sources, the stdlib default corpus, a token cache, packed windows.

Pipeline: `resolve_sources` (files, folders, globs) -> `iter_records` (text files are one document
each; JSON Lines files give one record per line, `{"text", "image", "audio"}` with media paths
relative to the file, plus an optional `{"metadata": {...}}` record) -> `tokenize_files` (encodes
once into a flat uint16/uint32 token file in a cache folder, keyed by the tokenizer's and the
sources' fingerprints, written atomically; documents as `<s> ... </s>`) -> `PackedDataset`
(non-overlapping windows of `seq_len + 1` tokens, shuffled per epoch from the seed, sharded over
ranks, addressed by an explicit `DataPosition(epoch, index)` so a trainer resumes exactly).

The default corpus is the Python standard library's own source (`stdlib_corpus`), present on
every Python install, split into train/validation by a hash of each file's relative path;
`heldout_signatures` picks function signatures from validation files as completion prompts.
`salesai.data_inspect.inspect_data` reports what a data path holds and its problems (`salesai data inspect`).

Packing follows nanoGPT's `train.py` (`x = w[:-1]`, `y = w[1:]`): `labels[t]` is the token that
follows `input_ids[t]`, already shifted. A model whose loss shifts labels itself (Hugging Face
style) should be given `labels=input_ids`, or the loss computed from logits and these labels.

What it is not: an image/audio loader (records keep media paths; the modality plugins load them),
a streaming/remote dataset library, or a document-masking (intra-document attention) packer.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import random
import re
import sysconfig
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Union

import numpy as np

from salesai.atomic import write_bytes_atomic
from salesai.errors import SalesAIError

if TYPE_CHECKING:
    import torch

PathLike = Union[str, "os.PathLike[str]"]

# File suffixes read when a folder is given as a source.
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".py", ".jsonl", ".json", ".c", ".h", ".js", ".ts", ".rs",
                 ".go", ".java", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".html", ".css", ".sh")
MEDIA_KEYS = ("image", "audio")
CACHE_VERSION = 1
# Standard-library folders left out of the default corpus: tests, IDE/2to3 code, generated tables.
STDLIB_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "lib2to3", "site-packages",
                                  "dist-packages", "__pycache__", "encodings", "pydoc_data", "turtledemo"})
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


# ----------------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Record:
    """One document: its text and, for JSON Lines records, media paths resolved against the file."""

    text: str
    source: Path
    line: int | None = None  # 1-based line in a .jsonl file; None for a whole text file
    image: Path | None = None
    audio: Path | None = None


def resolve_sources(specs: PathLike | Sequence[PathLike]) -> list[Path]:
    """Expand files, folders (recursively, `TEXT_SUFFIXES`) and globs into a sorted, unique list."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    out: dict[Path, None] = {}
    for spec in specs:
        text = os.fspath(spec)
        p = Path(text).expanduser()
        if p.is_file():
            out[p] = None
        elif p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                kinds = ", ".join(TEXT_SUFFIXES[:5])
                raise SalesAIError(f"{text}: folder has no text files (expected {kinds}, ...)")
            out.update(dict.fromkeys(found))
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise SalesAIError(f"{text}: no files match this pattern")
            out.update(dict.fromkeys(files))
        else:
            raise SalesAIError(f"{text}: no such file or folder")
    return list(out)


def read_text(path: PathLike) -> str:
    """A file's text as UTF-8 (undecodable bytes become U+FFFD); SalesAIError if unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SalesAIError(f"{path}: cannot read ({exc.strerror or exc})") from None


def iter_jsonl(path: PathLike) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed value, error) for every non-blank line of a JSON Lines file."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line.rstrip("\r\n")), None
            except json.JSONDecodeError as exc:
                yield lineno, None, f"malformed JSON ({exc.msg} at column {exc.colno})"


def is_metadata(obj: Any) -> bool:
    """True for the optional `{"metadata": {...}}` record of a JSON Lines file."""
    return isinstance(obj, dict) and set(obj) == {"metadata"} and isinstance(obj["metadata"], dict)


def iter_records(paths: PathLike | Sequence[PathLike]) -> Iterator[Record]:
    """Records of every source; malformed JSON lines raise (run `salesai data inspect` to list all)."""
    for path in resolve_sources(paths):
        if path.suffix.lower() != ".jsonl":
            yield Record(text=read_text(path), source=path)
            continue
        for lineno, obj, error in iter_jsonl(path):
            if error is not None or not isinstance(obj, dict):
                why = error or f"expected a JSON object, got {type(obj).__name__}"
                raise SalesAIError(f"{path}:{lineno}: {why} (run `salesai data inspect {path}`)")
            if is_metadata(obj):
                continue
            text = obj.get("text")
            media = {k: path.parent / obj[k] for k in MEDIA_KEYS if isinstance(obj.get(k), str) and obj[k]}
            yield Record(text=text if isinstance(text, str) else "", source=path, line=lineno,
                         image=media.get("image"), audio=media.get("audio"))


def iter_texts(paths: PathLike | Sequence[PathLike]) -> Iterator[str]:
    """The non-empty texts of `iter_records` (what a text-only tokenizer or model trains on)."""
    for record in iter_records(paths):
        if record.text.strip():
            yield record.text


# ------------------------------------------------------------------------- the stdlib corpus
@dataclass(frozen=True)
class CorpusSplit:
    """Files of a corpus split into train and validation (both sorted)."""

    root: Path
    train: list[Path]
    validation: list[Path]

    @property
    def train_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.train)

    @property
    def validation_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.validation)


def stdlib_root() -> Path:
    """The running Python's standard library folder (`sysconfig.get_paths()["stdlib"]`)."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: PathLike | None = None, max_file_bytes: int = 256_000) -> list[Path]:
    """The standard library's `.py` sources, sorted, without tests, site-packages and generated files."""
    base = Path(root) if root is not None else stdlib_root()
    if not base.is_dir():
        raise SalesAIError(f"{base}: standard library folder not found (expected Python's Lib folder)")
    out = []
    for path in base.rglob("*.py"):
        rel = path.relative_to(base)
        if any(part in STDLIB_EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        name = rel.name
        if name.startswith(("test_", "_test")) or name.startswith("_sysconfigdata"):
            continue
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if size == 0 or size > max_file_bytes or _looks_generated(path):
            continue
        out.append(path)
    return sorted(out)


def _looks_generated(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(600).lower()
    except OSError:
        return True
    return any(mark in head for mark in ("do not edit", "automatically generated", "auto-generated"))


def _split_key(rel: str) -> float:
    """A stable number in [0, 1) from a relative path (same split on every machine)."""
    return int.from_bytes(hashlib.sha256(rel.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_files(files: Sequence[Path], root: PathLike, val_fraction: float = 0.02) -> CorpusSplit:
    """Deterministic train/validation split by a hash of each file's path relative to `root`."""
    if not 0.0 < val_fraction < 1.0:
        raise SalesAIError(f"val_fraction {val_fraction}: expected a number between 0 and 1")
    base = Path(root)
    keyed = sorted(files, key=lambda p: _split_key(p.relative_to(base).as_posix()))
    val = [p for p in keyed if _split_key(p.relative_to(base).as_posix()) < val_fraction]
    if not val and len(keyed) > 1:  # always hold something out
        val = keyed[:1]
    chosen = set(val)
    return CorpusSplit(base, sorted(p for p in files if p not in chosen), sorted(val))


def stdlib_corpus(
    max_bytes: int | None = None, val_fraction: float = 0.02, root: PathLike | None = None,
    max_file_bytes: int = 256_000,
) -> CorpusSplit:
    """The default corpus: stdlib sources split train/validation; `max_bytes` caps both together.

    With a cap, files are taken in hash order (a spread over the library, the same on every run)
    until train holds about `(1 - val_fraction) * max_bytes` and validation the rest (at least one
    file each).
    """
    base = Path(root) if root is not None else stdlib_root()
    split = split_files(stdlib_files(base, max_file_bytes), base, val_fraction)
    if max_bytes is None:
        return split
    if max_bytes <= 0:
        raise SalesAIError(f"max_bytes {max_bytes}: expected a positive number of bytes")

    def take(files: list[Path], budget: float) -> list[Path]:
        keyed = sorted(files, key=lambda p: _split_key(p.relative_to(base).as_posix()))
        sizes = {p: p.stat().st_size for p in keyed}
        out, total = [], 0
        for p in keyed:
            if total + sizes[p] <= budget:
                out.append(p)
                total += sizes[p]
        if not out and keyed:
            out = [min(keyed, key=lambda p: sizes[p])]
        return sorted(out)

    return CorpusSplit(base, take(split.train, max_bytes * (1 - val_fraction)),
                       take(split.validation, max(max_bytes * val_fraction, 1)))


@dataclass(frozen=True)
class Signature:
    """A held-out function: the prompt (its `def` line), where it is from, and the body held out."""

    prompt: str  # e.g. "def name(a, b=1):\n" (dedented; with the docstring if asked for)
    name: str
    path: Path
    line: int  # 1-based line of the `def` in `path`
    reference: str  # the dedented body that followed the prompt in the source


def heldout_signatures(
    files: Sequence[PathLike], n: int = 8, seed: int = 0, include_docstring: bool = False,
    max_signature_chars: int = 100, max_body_lines: int = 30,
) -> list[Signature]:
    """Pick `n` functions from `files` (validation files) as code-completion prompts.

    Candidates: functions and methods whose `def` header is one line of at most
    `max_signature_chars` and whose body has 2..`max_body_lines` lines. The choice is
    deterministic for a seed; results are sorted by file and line.
    """
    candidates: list[Signature] = []
    for f in files:
        path = Path(f)
        source = read_text(path)
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.end_lineno is None:
                continue
            header = lines[node.lineno - 1]
            first = node.body[0]
            body_start = first.lineno
            if (body_start != node.lineno + 1 or len(header.strip()) > max_signature_chars
                    or not header.rstrip().endswith(":")):
                continue
            has_doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                       and isinstance(first.value.value, str))
            keep_until = (first.end_lineno or body_start) if include_docstring and has_doc else node.lineno
            body = lines[keep_until:node.end_lineno]
            if not 2 <= len(body) <= max_body_lines:
                continue
            prompt = textwrap.dedent("\n".join(lines[node.lineno - 1 : keep_until]) + "\n")
            indent = len(header) - len(header.lstrip())
            reference = "\n".join(line[indent:] for line in body) + "\n"
            candidates.append(Signature(prompt, node.name, path, node.lineno, reference))
    candidates.sort(key=lambda s: (str(s.path), s.line))
    chosen = random.Random(seed).sample(candidates, min(n, len(candidates)))
    return sorted(chosen, key=lambda s: (str(s.path), s.line))


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


# ---------------------------------------------------------------------------- packed windows
@dataclass(frozen=True)
class DataPosition:
    """Where a run is in the data: `index` windows of epoch `epoch`'s global order are consumed.

    The index counts windows over all ranks together, so a position saved by any rank resumes
    every rank, also with a different world size.
    """

    epoch: int = 0
    index: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataPosition:
        return cls(int(d["epoch"]), int(d["index"]))


@dataclass(frozen=True)
class Batch:
    """A batch for this rank; `position` is where the next batch starts (save it to resume)."""

    input_ids: np.ndarray  # (B, T) int64, window[:-1]
    labels: np.ndarray  # (B, T) int64, window[1:]: labels[b, t] follows input_ids[b, t]
    position: DataPosition
    windows: np.ndarray = field(repr=False)  # (B, T+1) int64, the raw windows

    def to_torch(self, device: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        return (torch.from_numpy(self.input_ids).to(device), torch.from_numpy(self.labels).to(device))


class PackedDataset:
    """Fixed-length training windows over a token stream, shuffled per epoch and sharded by rank.

    Window `w` is `tokens[w*seq_len : w*seq_len + seq_len + 1]` (consecutive windows share one
    boundary token). Epoch `e` visits windows in `order(e)` (a permutation seeded by `(seed, e)`, or
    in order when `shuffle=False`), cut to a multiple of `world_size`; rank `r` takes global items
    `r, r + world_size, ...`, so the ranks' shares are disjoint and equally long, and the union of
    the ranks' batch `k` is the single-process batch `k` of size `batch_size * world_size`.
    """

    def __init__(
        self, tokens: np.ndarray | TokenFile, seq_len: int, *, seed: int = 0, shuffle: bool = True,
        rank: int = 0, world_size: int = 1,
    ) -> None:
        self.tokens = tokens.tokens() if isinstance(tokens, TokenFile) else np.asarray(tokens)
        if self.tokens.ndim != 1:
            raise SalesAIError(f"tokens of shape {self.tokens.shape}: expected a 1-D token array")
        if seq_len < 1:
            raise SalesAIError(f"seq_len {seq_len}: expected a positive number of tokens")
        if world_size < 1 or not 0 <= rank < world_size:
            raise SalesAIError(f"rank {rank} of world_size {world_size}: expected 0 <= rank < world_size")
        self.seq_len, self.seed, self.shuffle = seq_len, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.num_windows = max(0, (len(self.tokens) - 1) // seq_len)  # per epoch, all ranks
        self.per_rank = self.num_windows // world_size
        if self.per_rank == 0:
            raise SalesAIError(
                f"{len(self.tokens)} tokens: too few for one window of {seq_len + 1} tokens per rank "
                f"({world_size} rank(s)); give more data or a smaller seq_len"
            )
        self.epoch = 0
        self._order_cache: tuple[int, np.ndarray] | None = None

    # map-style access for one epoch (a torch DataLoader can use it directly)
    def __len__(self) -> int:
        return self.per_rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not -self.per_rank <= i < self.per_rank:
            raise IndexError(f"sample {i}: expected 0 <= index < {self.per_rank}")
        w = self.window(int(self.order(self.epoch)[(i % self.per_rank) * self.world_size + self.rank]))
        return w[:-1], w[1:]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(self.per_rank):
            yield self[i]

    def order(self, epoch: int) -> np.ndarray:
        """Global window order of an epoch (length a multiple of `world_size`)."""
        if self._order_cache is not None and self._order_cache[0] == epoch:
            return self._order_cache[1]
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)
        else:
            order = np.arange(self.num_windows)
        order = order[: self.per_rank * self.world_size]
        self._order_cache = (epoch, order)
        return order

    def window(self, w: int) -> np.ndarray:
        """Window `w` as int64, shape `(seq_len + 1,)`."""
        start = w * self.seq_len
        return np.asarray(self.tokens[start : start + self.seq_len + 1], dtype=np.int64)

    def batches(
        self, batch_size: int, start: DataPosition | None = None, epochs: int | None = None,
    ) -> Iterator[Batch]:
        """This rank's batches from `start` on, across epochs (`epochs=None`: forever).

        An epoch's tail shorter than `batch_size * world_size` windows is skipped, so every rank
        yields the same number of batches.
        """
        if batch_size < 1:
            raise SalesAIError(f"batch_size {batch_size}: expected a positive number")
        pos = start or DataPosition()
        step = batch_size * self.world_size
        if step > self.per_rank * self.world_size:
            raise SalesAIError(
                f"batch_size {batch_size} x world_size {self.world_size}: more than the "
                f"{self.per_rank * self.world_size} windows in an epoch; use a smaller batch or more data"
            )
        epoch, index = pos.epoch, pos.index
        while epochs is None or epoch < pos.epoch + epochs:
            order = self.order(epoch)
            while index + step <= len(order):
                ids = order[index + self.rank : index + step : self.world_size]
                windows = np.stack([self.window(int(w)) for w in ids])  # (B, T+1)
                index += step
                nxt = DataPosition(epoch, index) if index + step <= len(order) else DataPosition(epoch + 1, 0)
                yield Batch(windows[:, :-1], windows[:, 1:], nxt, windows)
            epoch, index = epoch + 1, 0
