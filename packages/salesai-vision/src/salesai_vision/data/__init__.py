"""Procedural benchmark data for image-to-text models: `shapes` and `digits`.

Both write PNG files under `OUT/images/` and JSON Lines records (`prompt`, `response`,
`image` relative to the JSONL file, plus `task` and `split` for reports) with a README of the
split. Everything is generated from a seed, so two runs with the same arguments write the
same bytes. `salesai vision make-data {shapes,digits}` is the command-line front end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError

CAPTION_PROMPT = "<image> Describe the picture."


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records one per line; return how many."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def prepare_out(out: str | Path) -> Path:
    """Create OUT and OUT/images; refuse a path that is a file."""
    d = Path(out)
    if d.exists() and not d.is_dir():
        raise SalesAIError(f"{d}: exists and is not a directory")
    (d / "images").mkdir(parents=True, exist_ok=True)
    return d


def make_data(kind: str, out: str | Path, n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Generate a data set by name (`shapes` or `digits`); return a summary (files, counts)."""
    if n < 10:
        raise SalesAIError(f"--n {n}: expected at least 10 training images")
    if kind == "shapes":
        from salesai_vision.data.shapes import make_shapes

        return make_shapes(out, n=n, seed=seed)
    if kind == "digits":
        from salesai_vision.data.digits import make_digits

        return make_digits(out, n=n, seed=seed)
    raise SalesAIError(f"unknown data set {kind!r}; expected shapes or digits")


__all__ = ["CAPTION_PROMPT", "make_data", "prepare_out", "write_jsonl"]
