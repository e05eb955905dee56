"""Built-in exporters. Each registers here only once it works (see docs/exporters.md).

Factories import torch and the exporter module lazily:
`factory(model, tokenizer, out_dir, **options) -> Path`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salesai.hookspecs import Register, hookimpl


def safetensors(model: Any, tokenizer: Any, out_dir: Path, **options: Any) -> Path:
    """The native checkpoint: config.json + model.safetensors (+ tokenizer.model)."""
    from salesai.export.safetensors import export_safetensors

    return export_safetensors(model, tokenizer, out_dir, **options)


def hf(model: Any, tokenizer: Any, out_dir: Path, **options: Any) -> Path:
    """A transformers directory: MixtralForCausalLM (MoE) or LlamaForCausalLM (dense)."""
    from salesai.export.hf import export_hf

    return export_hf(model, tokenizer, out_dir, **options)


def onnx(model: Any, tokenizer: Any, out_dir: Path, **options: Any) -> Path:
    """ONNX decoder with an explicit KV cache + manifest, verified with ONNX Runtime (optional int8);
    a sequence classifier exports as one logits graph (salesai.export.onnx_classifier)."""
    if getattr(getattr(model, "config", None), "labels", None):
        from salesai.export.onnx_classifier import export_classifier_onnx

        return export_classifier_onnx(model, tokenizer, out_dir, **options)
    from salesai.export.onnx import export_onnx

    return export_onnx(model, tokenizer, out_dir, **options)


@hookimpl
def register_exporters(register: Register) -> None:
    register("safetensors", safetensors, description="native checkpoint (config.json + model.safetensors)",
             options={"dtype": "float32 | bfloat16 | float16"})
    register("hf", hf, description="Hugging Face transformers dir (MixtralForCausalLM / LlamaForCausalLM)",
             options={"layout": "hub | stacked", "dtype": "float32 | bfloat16 | float16"})
    register("onnx", onnx, description="ONNX decoder with KV cache + manifest for ONNX Runtime (+ int8)",
             options={"opset": "14..20 (default 17)", "quantize": "int8", "verify": "true | false",
                      "force": "replace a non-empty directory", "threads": "ORT threads for verification"})
