"""Prompt and preference files for LM RL: JSON Lines, validated line by line.

- Prompts (`salesai rl grpo --prompts`): one object per line with a string `"prompt"`; every
  other key (`"answer"`, ...) is a field handed to the rewards.
- Preferences (`salesai rl dpo --data`): one object per line with string `"prompt"`,
  `"chosen"` and `"rejected"`.
- Built-in prompt set `held-out-signatures[:N]` (where no such file exists): N (default 64)
  function headers with their docstrings from the validation files of `salesai quickstart`'s
  default corpus (the running Python's standard library), methods inside a stub of their
  class, as the quickstart samples them; for the `python-syntax` reward.
A bad file fails with one `SalesAIError` naming the file, the line and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError


def _records(path: str | Path, required: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise SalesAIError(f"{p}: no such {what} file (expected JSON Lines with {', '.join(required)})")
    records: list[dict[str, Any]] = []
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SalesAIError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise SalesAIError(f"{p}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            for key in required:
                if not isinstance(obj.get(key), str):
                    got = "missing" if key not in obj else f"a {type(obj[key]).__name__}"
                    raise SalesAIError(f"{p}:{lineno}: expected a string {key!r} field ({got})")
            obj["_line"] = lineno
            records.append(obj)
    if not records:
        raise SalesAIError(f"{p}: no records (expected JSON Lines with {', '.join(required)})")
    return records


SIGNATURES = "held-out-signatures"


def load_prompts(path: str | Path) -> list[dict[str, Any]]:
    """Prompt records; each keeps its 1-based line number under `_line` (for error messages)."""
    name = str(path)
    if name.split(":", 1)[0] == SIGNATURES and not Path(name).exists():
        return signature_prompts(name)
    return _records(path, ("prompt",), "prompts")


def signature_prompts(spec: str = SIGNATURES) -> list[dict[str, Any]]:
    """`held-out-signatures[:N]`: records {"prompt", "name", "source"} of N held-out functions."""
    from salesai.data import heldout_signatures, stdlib_corpus
    from salesai.quickstart import QuickstartOptions, contextual_prompt

    _, _, count = spec.partition(":")
    if count and not (count.isdigit() and int(count) > 0):
        raise SalesAIError(f"--prompts {spec!r}: expected {SIGNATURES} or {SIGNATURES}:N with N > 0")
    split = stdlib_corpus(max_bytes=QuickstartOptions().max_corpus_bytes)  # the quickstart's split
    sigs = heldout_signatures(split.validation, n=int(count or 64), seed=0, include_docstring=True)
    return [{"prompt": contextual_prompt(s), "name": s.name, "source": f"{s.path.name}:{s.line}",
             "_line": i + 1} for i, s in enumerate(sigs)]


def load_preferences(path: str | Path) -> list[dict[str, Any]]:
    """Preference records {"prompt", "chosen", "rejected"}, with `_line`."""
    return _records(path, ("prompt", "chosen", "rejected"), "preferences")


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Write records as JSON Lines (atomically); return the path."""
    from salesai.atomic import write_text_atomic

    return write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


__all__ = ["load_preferences", "load_prompts", "signature_prompts", "write_jsonl"]
