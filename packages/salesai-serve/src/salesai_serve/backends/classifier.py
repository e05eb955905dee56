"""Classifier backend: a sequence-classification checkpoint or ONNX export behind POST /v1/classify.

A classifier does not generate, so it does not go through the engine's KV-cache batching:
`predict(texts)` runs one padded forward per request (the core's `TextClassifier.predict` or
`OrtTextClassifier.predict`), one request at a time (a lock), in a worker thread.
`is_classifier(path)`: a checkpoint whose config.json has labels, or an ONNX export whose
manifest says `format: salesai-onnx-classifier`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def is_classifier(path: str | Path) -> bool:
    """True for a classifier checkpoint (config.json with labels) or ONNX classifier export."""
    d = Path(path)
    if (d / "config.json").is_file():
        from salesai.model.weights import read_config

        return bool(read_config(d).labels)
    from salesai.ort_classify import is_classifier_export

    return is_classifier_export(d)


class ClassifierBackend:
    """A loaded text classifier: `labels`, `predict(texts)`, `token_counts(texts)`, `describe()`."""

    task = "classify"
    modalities: tuple[str, ...] = ("text",)

    def __init__(self, classifier: Any, name: str, max_len: int) -> None:
        self.classifier = classifier
        self.name = name
        self.max_seq_len = max_len  # texts are cut to this many tokens (BOS + text + EOS)
        self.tokenizer = classifier.tokenizer
        self._lock = threading.Lock()

    @classmethod
    def load(cls, backend: str, path: str | Path, threads: int | None = None) -> ClassifierBackend:
        """`backend`: pytorch (a checkpoint), onnxruntime or onnxruntime-int8 (an ONNX export; classifier
        exports have no q8/q4 graph, and asking for one names the missing graph)."""
        if backend in ("pytorch", "torch"):
            import torch

            from salesai.model import load_classifier

            if threads:
                torch.set_num_threads(threads)
            clf = load_classifier(path)
            return cls(clf, "pytorch", int(clf.model.config.max_seq_len))
        from salesai.ort_classify import OrtTextClassifier

        variant = backend.removeprefix("onnxruntime").removeprefix("-") or "fp32"
        ort = OrtTextClassifier(path, variant=variant, threads=threads or 2)
        return cls(ort, backend, ort.max_len)

    @property
    def labels(self) -> list[str]:
        return list(self.classifier.labels)

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """[{"label", "score", "probabilities": {label: p}}] per text (thread-safe)."""
        with self._lock:
            return list(self.classifier.predict(list(texts)))

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text is classified with: BOS + text + EOS, cut to the context length."""
        return [min(len(self.tokenizer.encode(t)) + 2, self.max_seq_len) for t in texts]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "task": self.task, "labels": self.labels,
                "context_length": self.max_seq_len, "modalities": list(self.modalities)}


__all__ = ["ClassifierBackend", "is_classifier"]
