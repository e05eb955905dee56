"""Prompt and preference files for LM RL: JSON Lines, validated line by line.

- Prompts (`salesai rl grpo --prompts`): one object per line with a string `"prompt"`; every
  other key (`"answer"`, ...) is a field handed to the rewards.
- Preferences (`salesai rl dpo --data`): one object per line with string `"prompt"`,
  `"chosen"` and `"rejected"`.
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


def load_prompts(path: str | Path) -> list[dict[str, Any]]:
    """Prompt records; each keeps its 1-based line number under `_line` (for error messages)."""
    return _records(path, ("prompt",), "prompts")


def load_preferences(path: str | Path) -> list[dict[str, Any]]:
    """Preference records {"prompt", "chosen", "rejected"}, with `_line`."""
    return _records(path, ("prompt", "chosen", "rejected"), "preferences")


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Write records as JSON Lines (atomically); return the path."""
    from salesai.atomic import write_text_atomic

    return write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


__all__ = ["load_preferences", "load_prompts", "write_jsonl"]
