"""The `summary` exporter: a JSON file of parameter counts, per top-level module and in total.

What it is not: a model format. It shows the exporter contract — `factory(model, tokenizer,
out_dir, **options) -> Path` inside `out_dir`, unknown options refused with `SalesAIError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError

OPTIONS = {"indent": 2}  # option -> default


def export_summary(model: Any, tokenizer: Any, out_dir: Path, **options: Any) -> Path:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SalesAIError(
            f"unknown option(s) for the summary exporter: {', '.join(unknown)}; "
            f"expected: {', '.join(OPTIONS)}"
        )
    indent = options.get("indent", OPTIONS["indent"])
    if not isinstance(indent, int) or indent < 0:
        raise SalesAIError(f"summary exporter: indent={indent!r}; expected a non-negative integer")
    modules = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    doc = {
        "format": "salesai-example-summary",
        "model": type(model).__name__,
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "modules": modules,
        "vocab_size": len(tokenizer),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.json"
    path.write_text(json.dumps(doc, indent=indent) + "\n")
    return path
