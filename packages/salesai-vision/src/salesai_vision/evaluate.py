"""Exact-match evaluation of image-to-text records (captions, answers) for tests and bench/vision.py.

`answer(model, tokenizer, records, ...)` generates greedily for each record's prompt and image
(in batches) and returns the completions; `score(records, completions)` gives exact-match and
per-word (or per-digit) accuracy overall and per task. Prompts are encoded as the Trainer's
records encode them (`salesai.data.records`), so what was trained is what is asked.

What it is not: a metric library (no BLEU/CIDEr); exact match is what the benchmarks ask for.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def read_records(path: str | Path, task: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Records of a JSONL file (image paths made absolute), optionally one task and the first `limit`."""
    p = Path(path)
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        kind = r.get("task")
        if task is not None and kind != task and not (task == "question" and kind != "caption"):
            continue  # task="question": every record but the captions
        r["image"] = str(p.parent / r["image"])
        out.append(r)
        if limit is not None and len(out) >= limit:
            break
    return out


def answer(model: Any, tokenizer: Any, records: list[dict[str, Any]], batch_size: int = 32,
           max_new_tokens: int = 16) -> list[str]:
    """Greedy completions (stripped) for each record's prompt + image."""
    import torch

    from salesai.data.records import encode_record

    placeholders = {m: model.config.placeholder_id(m) for m in model.config.encoders}
    out: list[str] = []
    model.eval()
    for i in range(0, len(records), batch_size):
        chunk = records[i : i + batch_size]
        prompts, images = [], []
        for r in chunk:
            sample = encode_record({"prompt": r["prompt"], "response": "", "image": r["image"]}, tokenizer,
                                   placeholders, Path("/"), "eval")
            prompts.append(sample.ids[:-1])  # without the eos a response would follow
            images.extend(sample.media["image"])
        with torch.inference_mode():
            pixels = [model.encoders["image"].preprocess(f) for f in images]
            rows = model.generate(prompts, images=pixels, max_new_tokens=max_new_tokens, temperature=0)
        out.extend(tokenizer.decode([t for t in row if t != tokenizer.eos_id]).strip() for row in rows)
    return out


def score(records: list[dict[str, Any]], completions: list[str]) -> dict[str, Any]:
    """Exact match and per-word accuracy, overall and per task."""
    tasks: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    for r, c in zip(records, completions, strict=True):
        want, got = r["response"].split(), c.split()
        words = sum(a == b for a, b in zip(want, got, strict=False)) / max(len(want), 1)
        tasks[r.get("task", "all")].append((c.strip() == r["response"].strip(), words))
    result: dict[str, Any] = {}
    every = [x for v in tasks.values() for x in v]
    result["exact"] = sum(e for e, _ in every) / max(len(every), 1)
    result["per_word"] = sum(w for _, w in every) / max(len(every), 1)
    result["n"] = len(every)
    result["tasks"] = {t: {"exact": sum(e for e, _ in v) / len(v), "per_word": sum(w for _, w in v) / len(v),
                           "n": len(v)} for t, v in sorted(tasks.items())}
    return result


__all__ = ["answer", "read_records", "score"]
