"""Labelled text for classification: CSV, TSV, JSON and JSON Lines files with named columns.

    read_labelled("train.csv", text_column="text", label_column="label") -> LabelledData
    label_names(train, declared=None) -> the class names (metadata order, else sorted)
    classification_summary(train, val, tokenizer, max_len) -> counts, imbalance, duplicates, leakage

Formats, by suffix: `.csv` and `.tsv` (a header row names the columns), `.jsonl` (one object per
line), `.json` (a list of objects, or `{"metadata": {...}, "data": [...]}`). A JSON Lines file may
start with a `{"metadata": {...}}` record (the one `salesai data inspect` reads) declaring
`task: classify`, `text_column`, `label_column` and `labels` (the class names in order); columns
given on the command line win. Labels are read as strings (`1` and `"1"` are the same class).

Bad rows fail with one line naming the file and row (the line number in CSV/TSV/JSONL files,
the record number in a JSON file): a missing label or text, a value that is not text, bytes that
are not UTF-8, a label at evaluation time that the training data never had. `strict=False`
collects these as problems instead (for `salesai data inspect`). This module imports neither
torch nor the model.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesai.data.sources import is_metadata
from salesai.errors import SalesAIError

SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")
DEFAULT_TEXT_COLUMN = "text"
DEFAULT_LABEL_COLUMN = "label"
Found = tuple[str, "int | None", str, str]  # a problem: (path, row or None, kind, message)


@dataclass
class LabelledData:
    """The rows of one labelled file: parallel lists of texts, labels and row numbers."""

    path: str
    text_column: str
    label_column: str
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # line (CSV/TSV/JSONL) or record (JSON) number
    metadata: dict[str, Any] | None = None
    problems: list[tuple[int | None, str, str]] = field(default_factory=list)  # (row, kind, message)

    def __len__(self) -> int:
        return len(self.texts)

    def where(self, row: int | None) -> str:
        """`file:row` as used in messages (`file, record N` for JSON)."""
        if row is None:
            return self.path
        return f"{self.path}, record {row}" if self.path.lower().endswith(".json") else f"{self.path}:{row}"


def is_labelled_file(path: str | os.PathLike[str]) -> bool:
    """True for CSV/TSV files and for JSON/JSONL files whose metadata declares `task: classify`."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return True
    if suffix not in (".json", ".jsonl") or not p.is_file():
        return False
    meta = _peek_metadata(p)
    return meta is not None and meta.get("task") == "classify"


def read_labelled(path: str | os.PathLike[str], text_column: str | None = None,
                  label_column: str | None = None, strict: bool = True,
                  require_label: bool = True) -> LabelledData:
    """Read one labelled file (see the module docstring); bad rows raise unless `strict=False`.
    `require_label=False` reads texts to classify: a row without a label gets the label ""."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise SalesAIError(f"{p}: unsupported labelled-data format {suffix or '(none)'!r}; expected "
                           f"{', '.join(SUFFIXES)}")
    if not p.is_file():
        raise SalesAIError(f"{p}: no such file")
    text = _decode(p)
    records: list[tuple[int, Any]]
    metadata: dict[str, Any] | None = None
    if suffix in (".csv", ".tsv"):
        records = _csv_records(p, text, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".jsonl":
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                why = f"malformed JSON ({exc.msg} at column {exc.colno})"
                raise SalesAIError(f"{p}:{lineno}: {why}") from None
            if is_metadata(obj) and metadata is None and not records:
                metadata = obj["metadata"]
                continue
            records.append((lineno, obj))
    else:
        metadata, items = _json_records(p, text)
        records = list(enumerate(items, start=1))
    meta = metadata or {}
    columns: dict[str, Any] = meta["columns"] if isinstance(meta.get("columns"), dict) else {}
    text_col = text_column or meta.get("text_column") or columns.get("text") or DEFAULT_TEXT_COLUMN
    label_col = label_column or meta.get("label_column") or columns.get("label") or DEFAULT_LABEL_COLUMN
    data = LabelledData(str(p), str(text_col), str(label_col), metadata=metadata)
    for row, obj in records:
        problem = _add_row(data, row, obj, require_label)
        if problem is not None:
            if strict:
                raise SalesAIError(f"{data.where(row)}: {problem[1]}")
            data.problems.append((row, *problem))
    if strict and not data.texts:
        what = f"columns {text_col!r} and {label_col!r}" if require_label else f"column {text_col!r}"
        raise SalesAIError(f"{p}: no rows with texts ({what})")
    return data


def label_names(train: LabelledData, declared: Sequence[str] | None = None) -> list[str]:
    """Class names: the metadata's `labels` (or `declared`) in their order, else the sorted set seen."""
    names = declared or (train.metadata or {}).get("labels")
    if names:
        names = [str(n) for n in names]
        unknown = sorted(set(train.labels) - set(names))
        if unknown:
            row = train.rows[train.labels.index(unknown[0])]
            raise SalesAIError(f"{train.where(row)}: label {unknown[0]!r} is not among the declared labels "
                               f"{names}")
        return names
    found = sorted(set(train.labels))
    if len(found) < 2:
        raise SalesAIError(f"{train.path}: a classifier needs at least 2 labels, found {found}")
    return found


def label_ids(data: LabelledData, names: Sequence[str]) -> list[int]:
    """Class index of every row; a label the training data never had fails naming the row."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for label, row in zip(data.labels, data.rows, strict=True):
        if label not in index:
            raise SalesAIError(f"{data.where(row)}: label {label!r} was not seen in training; expected one "
                               f"of {', '.join(names)}")
        out.append(index[label])
    return out


def classification_summary(train: LabelledData, val: LabelledData | None = None, tokenizer: Any = None,
                           max_len: int | None = None) -> dict[str, Any]:
    """Label counts and imbalance, duplicates (and conflicting labels), empty texts, train/val leakage,
    texts longer than `max_len` tokens (with a tokenizer)."""
    def one(data: LabelledData) -> dict[str, Any]:
        counts = Counter(data.labels)
        seen: dict[str, str] = {}
        duplicates = conflicts = 0
        for text, label in zip(data.texts, data.labels, strict=True):
            if text in seen:
                duplicates += 1
                conflicts += seen[text] != label
            else:
                seen[text] = label
        out: dict[str, Any] = {
            "path": data.path, "rows": len(data), "text_column": data.text_column,
            "label_column": data.label_column, "label_counts": dict(sorted(counts.items())),
            "imbalance": (max(counts.values()) / min(counts.values())) if counts else None,
            "majority_share": (max(counts.values()) / len(data)) if counts else None,
            "duplicates": duplicates, "conflicting_duplicates": conflicts,
            "empty_texts": sum(1 for t in data.texts if not t.strip()),
            "bad_rows": len(data.problems),
        }
        out["characters"] = sum(len(t) for t in data.texts)
        out["words"] = sum(len(t.split()) for t in data.texts)
        if tokenizer is not None:
            lengths = [len(tokenizer.encode(t)) for t in data.texts]
            out["tokens"] = sum(lengths)
            if max_len is not None:  # BOS + text + EOS must fit
                out["max_len"] = max_len
                out["too_long"] = sum(1 for n in lengths if n + 2 > max_len)
        return out

    summary: dict[str, Any] = {"task": "classify", "train": one(train)}
    if val is not None:
        summary["val"] = one(val)
        train_texts = set(train.texts)
        summary["leakage"] = sum(1 for t in val.texts if t in train_texts)
        summary["val_unseen_labels"] = sorted(set(val.labels) - set(train.labels))
    return summary


# -- reading ---------------------------------------------------------------------------------
def _decode(p: Path) -> str:
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SalesAIError(f"{p}:{line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the file as "
                           "UTF-8") from None


def _csv_records(p: Path, text: str, delimiter: str) -> list[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    records = []
    try:
        for row in reader:
            records.append((reader.line_num, row))
    except csv.Error as exc:
        raise SalesAIError(f"{p}:{reader.line_num}: malformed {'CSV' if delimiter == ',' else 'TSV'} "
                           f"({exc})") from None
    if reader.fieldnames is None:
        raise SalesAIError(f"{p}: empty file (expected a header row naming the columns)")
    return records


def _json_records(p: Path, text: str) -> tuple[dict[str, Any] | None, list[Any]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SalesAIError(f"{p}:{exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(obj, list):
        if obj and is_metadata(obj[0]):
            return obj[0]["metadata"], obj[1:]
        return None, obj
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        meta = obj.get("metadata")
        return (meta if isinstance(meta, dict) else None), obj["data"]
    raise SalesAIError(f"{p}: expected a JSON list of records or {{\"metadata\": ..., \"data\": [...]}}")


def _peek_metadata(p: Path) -> dict[str, Any] | None:
    obj: Any = None
    try:
        with open(p, encoding="utf-8", errors="replace") as fh:
            if p.suffix.lower() == ".jsonl":
                first = next((line for line in fh if line.strip()), "")
                obj = json.loads(first) if first else None
                return obj["metadata"] if is_metadata(obj) else None
            obj = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(obj, list) and obj and is_metadata(obj[0]):
        return obj[0]["metadata"]
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        return obj["metadata"]
    return None


def _add_row(data: LabelledData, row: int, obj: Any, require_label: bool = True) -> tuple[str, str] | None:
    """Append one record's text and label; (kind, message) of what is wrong with it otherwise."""
    if not isinstance(obj, dict):
        return "not_an_object", f"expected an object with {data.text_column!r} and {data.label_column!r}, " \
                                f"got {type(obj).__name__}"
    text, label = obj.get(data.text_column), obj.get(data.label_column)
    if text is None:
        return "missing_text", f"missing text (column {data.text_column!r})"
    if not isinstance(text, str):
        return "bad_text", f"text (column {data.text_column!r}) is a {type(text).__name__}, expected a string"
    if label is None or (isinstance(label, str) and not label.strip()):
        if require_label:
            return "missing_label", f"missing label (column {data.label_column!r})"
        label = ""
    if isinstance(label, (dict, list, float)) and not (isinstance(label, float) and label.is_integer()):
        return "bad_label", f"label (column {data.label_column!r}) {label!r} is not a class name"
    data.texts.append(text)
    data.labels.append(str(int(label)) if isinstance(label, float) else str(label).strip())
    data.rows.append(row)
    return None




def inspect_labelled(files: Sequence[str | os.PathLike[str]], val: str | os.PathLike[str] | None = None,
                     tokenizer: Any = None, text_column: str | None = None, label_column: str | None = None,
                     max_len: int | None = None) -> tuple[dict[str, Any], list[Found]]:
    """(classification summary, problems as (path, row, kind, message)) for `salesai data inspect`:
    the first file is the training data, `val` the validation data (leakage, unseen labels)."""
    problems: list[Found] = []

    def read(path: str | os.PathLike[str]) -> LabelledData | None:
        try:
            data = read_labelled(path, text_column, label_column, strict=False)
        except SalesAIError as exc:  # not UTF-8, malformed: the whole file
            problems.append((os.fspath(path), None, "unreadable", str(exc)))
            return None
        problems.extend((data.path, row, kind, msg) for row, kind, msg in data.problems)
        return data

    parts = [d for d in (read(f) for f in files) if d is not None]
    if not parts:
        return {"task": "classify"}, problems
    train = parts[0]
    for extra in parts[1:]:  # several training files: one table
        train.texts += extra.texts
        train.labels += extra.labels
        train.rows += extra.rows
        train.problems += extra.problems
    val_data = read(val) if val is not None else None
    if val_data is not None:
        known = set(train.labels)
        for label, row in zip(val_data.labels, val_data.rows, strict=True):
            if label not in known:
                problems.append((val_data.path, row, "unseen_label",
                                 f"label {label!r} does not occur in the training data"))
    summary = classification_summary(train, val_data, tokenizer, max_len)
    return summary, problems


__all__ = ["LabelledData", "classification_summary", "inspect_labelled", "is_labelled_file", "label_ids",
           "label_names", "read_labelled"]
