"""Text classification with ONNX Runtime from a classifier export, in numpy only (no torch import).

    clf = OrtTextClassifier("clf-onnx")          # `salesai export CLF --format onnx --out clf-onnx`
    clf.predict(["def f(): pass"])               # same output as salesai.model.TextClassifier.predict

The export's manifest.json (`task: classify`) names the labels, the graph (`classifier.onnx`, or
`classifier.int8.onnx` with `variant="int8"`) and how texts are encoded: BOS + text + EOS cut to
`max_len` tokens, right padding with the pad id, `attention_mask` 1 for real tokens — the
encoding of `salesai.model.classifier.encode_texts`, so labels agree with PyTorch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from salesai.errors import SalesAIError
from salesai.ort_runtime import MANIFEST_FILENAME, load_tokenizer, session_options

CLASSIFIER_FORMAT = "salesai-onnx-classifier"


def is_classifier_export(path: str | Path) -> bool:
    """True when `path` is a directory with a classifier manifest.json."""
    manifest = Path(path) / MANIFEST_FILENAME
    if not manifest.is_file():
        return False
    try:
        return bool(json.loads(manifest.read_text(encoding="utf-8")).get("format") == CLASSIFIER_FORMAT)
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


class OrtTextClassifier:
    """`predict(texts)` with ONNX Runtime; see the module docstring."""

    backend = "onnxruntime"

    def __init__(self, export_dir: str | Path, variant: str = "fp32", threads: int = 2,
                 providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        d = Path(export_dir)
        if not is_classifier_export(d):
            raise SalesAIError(f"{d}: not an ONNX classifier export (manifest.json with format "
                               f"{CLASSIFIER_FORMAT!r}); create one with `salesai export CLF --format onnx`")
        self.manifest = json.loads((d / MANIFEST_FILENAME).read_text(encoding="utf-8"))
        key = {"fp32": "classifier", "int8": "classifier_int8"}.get(variant)
        graph = self.manifest["graphs"].get(key) if key else None
        if graph is None:
            raise SalesAIError(f"{d}: no {variant!r} classifier graph (export with quantize=int8 for int8)")
        if not self.manifest.get("tokenizer"):
            raise SalesAIError(f"{d}: the export has no tokenizer.model")
        self.tokenizer = load_tokenizer(d / self.manifest["tokenizer"])
        self.session = ort.InferenceSession(str(d / graph["file"]), session_options(threads),
                                            providers=list(providers or ["CPUExecutionProvider"]))
        enc = self.manifest["encoding"]
        self.max_len = int(enc["max_len"])
        self.pad_id = int(self.manifest["special_tokens"]["pad"])

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(N, num_labels) float32 logits."""
        tok = self.tokenizer
        seqs = [[tok.bos_id, *tok.encode(t)[: self.max_len - 2], tok.eos_id] for t in texts]
        t = max(len(s) for s in seqs)
        ids = np.full((len(seqs), t), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), t), dtype=np.int64)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        (out,) = self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(out, dtype=np.float32)

    def predict(self, texts: str | Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        items = [texts] if isinstance(texts, str) else list(texts)
        names = self.labels
        out: list[dict[str, Any]] = []
        for i in range(0, len(items), batch_size):
            logits = self.logits(items[i : i + batch_size])
            z = np.exp(logits - logits.max(-1, keepdims=True))
            probs = z / z.sum(-1, keepdims=True)  # (B, C)
            for row in probs.tolist():
                best = int(np.argmax(row))
                out.append({"label": names[best], "score": row[best],
                            "probabilities": dict(zip(names, row, strict=True))})
        return out


__all__ = ["OrtTextClassifier", "is_classifier_export"]
