"""`salesai data inspect`: what a data path holds and the problems in it, with line numbers.

Records, modalities present (from a `{"metadata": {...}}` record when the file has one,
otherwise detected from the records), token counts when a tokenizer is given (otherwise
characters and words), and problems: missing media files, empty records, malformed JSON lines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from salesai.data.sources import MEDIA_KEYS, PathLike, is_metadata, iter_jsonl, read_text, resolve_sources
from salesai.data.tokens import TokenizerLike


@dataclass
class Problem:
    """Something wrong in a data file, with its line number (None: the whole file)."""

    path: str
    line: int | None
    kind: str  # malformed_json | not_an_object | empty_record | bad_field | missing_image | ...
    message: str


@dataclass
class InspectReport:
    """What `salesai data inspect` prints: counts, modalities, and problems."""

    path: str
    files: int = 0
    records: int = 0
    empty_records: int = 0
    media: dict[str, int] = field(default_factory=lambda: {k: 0 for k in MEDIA_KEYS})
    modalities: list[str] = field(default_factory=list)
    modalities_source: str = "detected"  # or "metadata"
    metadata: dict[str, Any] | None = None
    characters: int = 0
    words: int = 0
    tokens: int | None = None  # with a tokenizer
    tokenizer_vocab_size: int | None = None
    problems: list[Problem] = field(default_factory=list)
    classification: dict[str, Any] | None = None  # labelled data: label counts, imbalance, leakage, ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inspect_data(
    path: PathLike | Sequence[PathLike], tokenizer: TokenizerLike | None = None,
    val: PathLike | None = None, text_column: str | None = None, label_column: str | None = None,
    max_len: int = 256,
) -> InspectReport:
    """Count records, characters, words (and tokens with a tokenizer); find problems by line.

    Labelled files (CSV/TSV, JSON/JSONL whose metadata says `task: classify`, or any of these with
    `text_column`/`label_column` given) get a classification summary (`salesai.data.tabular`):
    label counts and imbalance, duplicates, empty texts, texts longer than `max_len` tokens, and
    with `val` the texts in both (leakage) and labels unseen in training."""
    from salesai.data.tabular import SUFFIXES, inspect_labelled, is_labelled_file

    files = resolve_sources(path)
    labelled: list[Path] = []
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    report = InspectReport(path=", ".join(os.fspath(p) for p in paths))
    report.files = len(files)
    if tokenizer is not None:
        report.tokens, report.tokenizer_vocab_size = 0, len(tokenizer)
    detected: set[str] = set()
    declared: list[str] | None = None

    def count(text: str) -> None:
        report.characters += len(text)
        report.words += len(text.split())
        if tokenizer is not None and report.tokens is not None:
            report.tokens += len(tokenizer.encode(text))

    for f in files:
        if is_labelled_file(f) or ((text_column or label_column) and f.suffix.lower() in SUFFIXES):
            labelled.append(f)
            continue
        if f.suffix.lower() != ".jsonl":
            report.records += 1
            text = read_text(f)
            if text.strip():
                detected.add("text")
                count(text)
            else:
                report.empty_records += 1
                report.problems.append(Problem(str(f), None, "empty_record", "empty file"))
            continue
        for lineno, obj, error in iter_jsonl(f):
            problem = _record_problems(f, lineno, obj, error, report, detected, count)
            report.problems.extend(problem)
            if is_metadata(obj):
                if report.metadata is not None:
                    report.problems.append(Problem(str(f), lineno, "duplicate_metadata",
                                                   "second metadata record (only the first counts)"))
                    continue
                report.metadata = obj["metadata"]
                mods = obj["metadata"].get("modalities")
                if isinstance(mods, list) and all(isinstance(m, str) for m in mods):
                    declared = list(mods)
    if labelled:
        report.classification, found_problems = inspect_labelled(labelled, val, tokenizer, text_column,
                                                                 label_column, max_len)
        train = report.classification.get("train", {})
        report.records += train.get("rows", 0) + train.get("bad_rows", 0)
        report.empty_records += train.get("empty_texts", 0)
        report.characters += train.get("characters", 0)
        report.words += train.get("words", 0)
        if report.tokens is not None:
            report.tokens += train.get("tokens", 0)
        detected.add("text")
        report.problems.extend(Problem(p, row, kind, msg) for p, row, kind, msg in found_problems)
    order = ["text", *MEDIA_KEYS]
    found = sorted(detected, key=lambda m: order.index(m) if m in order else len(order))
    if declared is not None:
        report.modalities, report.modalities_source = declared, "metadata"
        for m in found:
            if m not in declared:
                report.problems.append(Problem(report.path, None, "undeclared_modality",
                                               f"records have {m} but the metadata record does not list it"))
    else:
        report.modalities = found
    return report


def _record_problems(f: Path, lineno: int, obj: Any, error: str | None, report: InspectReport,
                     detected: set[str], count: Any) -> list[Problem]:
    if error is not None:
        return [Problem(str(f), lineno, "malformed_json", error)]
    if not isinstance(obj, dict):
        return [Problem(str(f), lineno, "not_an_object", f"expected a JSON object, got {type(obj).__name__}")]
    if is_metadata(obj):
        return []
    report.records += 1
    problems = []
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        why = f"'text' is a {type(text).__name__}, expected a string"
        problems.append(Problem(str(f), lineno, "bad_field", why))
        text = None
    has_media = False
    for key in MEDIA_KEYS:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            problems.append(Problem(str(f), lineno, "bad_field", f"'{key}' should be a file path string"))
            continue
        has_media = True
        detected.add(key)
        report.media[key] += 1
        media = f.parent / value
        if not media.is_file():
            problems.append(Problem(str(f), lineno, f"missing_{key}", f"{key} file not found: {media}"))
    if text and text.strip():
        detected.add("text")
        count(text)
    elif not has_media:
        report.empty_records += 1
        problems.append(Problem(str(f), lineno, "empty_record", "no text and no media"))
    return problems
