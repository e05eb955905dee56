"""Backends: one interface (`Backend`), a PyTorch and an ONNX Runtime implementation.

`load_backend(name, path, threads)` picks one by name: `pytorch` (a checkpoint directory),
`onnxruntime` / `onnxruntime-int8` / `onnxruntime-q8` / `onnxruntime-q4` (an ONNX export directory
and its fp32, int8, block-wise 8-bit or 4-bit decoder, as `salesai generate --backend` names them;
torch is never imported).
A classifier checkpoint or export (`is_classifier`) loads as a `ClassifierBackend` (POST /v1/classify).
"""

from __future__ import annotations

from pathlib import Path

from salesai.errors import SalesAIError
from salesai_serve.backends.base import Backend, Sampler, SamplingParams
from salesai_serve.backends.classifier import ClassifierBackend, is_classifier

BACKEND_NAMES = ("pytorch", "onnxruntime", "onnxruntime-int8", "onnxruntime-q8", "onnxruntime-q4")


def ort_variant(name: str) -> str:
    """The export's decoder variant a backend name serves: onnxruntime -> fp32, onnxruntime-q8 -> q8."""
    return name.removeprefix("onnxruntime").removeprefix("-") or "fp32"


def load_backend(name: str, path: str | Path, threads: int | None = None) -> Backend | ClassifierBackend:
    """Load `path` with backend `name`; a SalesAIError names a wrong backend or directory."""
    path = Path(path)
    if name not in BACKEND_NAMES and name != "torch":
        raise SalesAIError(f"--backend {name!r}: expected one of {', '.join(BACKEND_NAMES)}")
    if not path.is_dir():
        raise SalesAIError(f"{path}: checkpoint or export directory not found")
    if is_classifier(path):
        if name in ("pytorch", "torch") and not (path / "config.json").is_file():
            raise SalesAIError(f"{path}: an ONNX export; serve it with --backend onnxruntime")
        return ClassifierBackend.load(name, path, threads=threads)
    if name in ("pytorch", "torch"):
        if (path / "manifest.json").is_file() and not (path / "config.json").is_file():
            raise SalesAIError(f"{path}: an ONNX export; serve it with --backend onnxruntime")
        from salesai_serve.backends.torch_backend import TorchBackend

        return TorchBackend.load(path, threads=threads)
    from salesai_serve.backends.ort_backend import OrtBackend

    return OrtBackend.load(path, variant=ort_variant(name), threads=threads)


__all__ = ["BACKEND_NAMES", "Backend", "ClassifierBackend", "Sampler", "SamplingParams", "is_classifier",
           "load_backend", "ort_variant"]
