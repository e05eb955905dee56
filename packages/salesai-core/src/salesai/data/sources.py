"""Training data sources: files, folders, globs, JSON Lines records, and the stdlib default corpus.

`resolve_sources` expands files, folders and globs; `iter_records` reads them (a text file is one
document; a JSON Lines file gives one record per line, `{"text", "image", "audio"}` with media paths
relative to the file, plus an optional `{"metadata": {...}}` record). The default corpus is the
Python standard library's own source (`stdlib_corpus`), present on every Python install, split
into train/validation by a hash of each file's relative path; `heldout_signatures` picks function
signatures from validation files as completion prompts.

What it is not: an image/audio loader (records keep media paths; the modality plugins load them)
or a streaming/remote dataset library.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import random
import sysconfig
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from salesai.errors import SalesAIError

PathLike = Union[str, "os.PathLike[str]"]

# File suffixes read when a folder is given as a source.
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".py", ".jsonl", ".json", ".c", ".h", ".js", ".ts", ".rs",
                 ".go", ".java", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".html", ".css", ".sh")
MEDIA_KEYS = ("image", "audio")
# Standard-library folders left out of the default corpus: tests, IDE/2to3 code, generated tables.
STDLIB_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "lib2to3", "site-packages",
                                  "dist-packages", "__pycache__", "encodings", "pydoc_data", "turtledemo"})

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
