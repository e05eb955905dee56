"""Export to a Hugging Face transformers directory (MixtralForCausalLM / LlamaForCausalLM).

A sequence classifier (`config.labels`, `salesai.model.classifier`) becomes
`MixtralForSequenceClassification` / `LlamaForSequenceClassification` with `num_labels`,
`id2label` and `label2id`: the same decoder tensors plus `score.weight`.

What: the built-in `hf` exporter. A MoE model with `swiglu` experts becomes
`MixtralForCausalLM`, a dense one (`num_experts == 1`) `LlamaForCausalLM`: config.json,
generation_config.json, model.safetensors and, when a tokenizer is given, its tokenizer.model.
The weights are renamed 1:1 (same maths, same RoPE convention), in one of two layouts:
- `layout="hub"` (default): one 2-D tensor per expert, `block_sparse_moe.experts.j.w1/w2/w3`,
  the layout of every Mixtral checkpoint on the Hub; transformers 4 loads it as is and
  transformers 5 converts it on load (its conversion mapping stacks the experts).
- `layout="stacked"`: transformers 5's in-memory layout, `mlp.experts.gate_up_proj`
  (E, 2I, D) = [w1; w3] and `mlp.experts.down_proj` (E, D, I); loads in transformers >= 5 only.
Options: `layout`, `dtype` ("float32", "bfloat16", "float16").
A LoRA adapter checkpoint (salesai.lora) exports as its base plus `adapter/`, a PEFT adapter
directory (`PeftModel.from_pretrained(base, "out/adapter")`, salesai.lora.peft).
Our aux-loss coefficient is written as `router_aux_loss_coef = aux_loss_coef / top_k`
(transformers' Mixtral loss is top_k times ours); the router z-loss has no HF counterpart.
References: transformers `configuration_mixtral.py`, `conversion_mapping.py` ("mixtral").

What it is not: GELU experts and shared experts have no Mixtral/Llama equivalent and are
refused with a clear error; transformers itself is not needed to export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from salesai.errors import SalesAIError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LAYOUTS = ("hub", "stacked")


def check_exportable(cfg: Any) -> None:
    """Raise SalesAIError when the model has no Mixtral/Llama counterpart."""
    if cfg.expert_type != "swiglu":
        raise SalesAIError(
            f"hf export: expert_type={cfg.expert_type!r} has no Mixtral/Llama equivalent (only 'swiglu'); "
            "use --format safetensors or onnx"
        )
    if cfg.num_shared_experts:
        raise SalesAIError(
            f"hf export: num_shared_experts={cfg.num_shared_experts} (DeepSeekMoE shared experts) has no "
            "Mixtral equivalent; use --format safetensors or onnx"
        )
    if getattr(cfg, "encoders", None):
        raise SalesAIError(
            f"hf export: the model carries encoders ({', '.join(cfg.encoders)}); the Mixtral/Llama layout "
            "holds a text decoder only; use --format safetensors or onnx"
        )


def hf_config(cfg: Any, dtype: str = "float32") -> dict[str, Any]:
    """config.json for transformers (v4 and v5 field names)."""
    common: dict[str, Any] = {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_dim,
        "intermediate_size": cfg.intermediate_dim,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "initializer_range": cfg.init_std,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,  # transformers 4
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},  # transformers 5
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_dropout": 0.0,
        "use_cache": True,
        "pad_token_id": cfg.pad_token_id,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "dtype": dtype,
    }
    labels = getattr(cfg, "labels", None)
    if labels:  # a sequence classifier (salesai.model.classifier): *ForSequenceClassification
        common.update({
            "num_labels": len(labels),
            "id2label": {str(i): name for i, name in enumerate(labels)},
            "label2id": {name: i for i, name in enumerate(labels)},
            "problem_type": "single_label_classification",
            "tie_word_embeddings": False,  # no output embedding to tie
        })
    head = "ForSequenceClassification" if labels else "ForCausalLM"
    if cfg.num_experts > 1:
        return {
            "architectures": [f"Mixtral{head}"],
            "model_type": "mixtral",
            **common,
            "num_local_experts": cfg.num_experts,
            "num_experts_per_tok": cfg.top_k,
            "router_aux_loss_coef": cfg.aux_loss_coef / cfg.top_k,
            "router_jitter_noise": 0.0,
            "output_router_logits": False,
            "sliding_window": None,
        }
    return {
        "architectures": [f"Llama{head}"],
        "model_type": "llama",
        **common,
        "attention_bias": False,
        "mlp_bias": False,
        "pretraining_tp": 1,
    }


def hf_state_dict(model: torch.nn.Module, layout: str = "hub") -> dict[str, torch.Tensor]:
    """Our parameter names -> transformers' (a new dict; tensors are shared, not copied)."""
    if layout not in LAYOUTS:
        raise SalesAIError(f"hf export: layout={layout!r}; expected one of: {', '.join(LAYOUTS)}")
    cfg: Any = model.config
    if getattr(cfg, "labels", None) and hasattr(model, "score"):  # classifier: decoder names + `score.weight`
        clf: Any = model
        return {**hf_state_dict(clf.model, layout), "score.weight": clf.score.weight}
    moe = cfg.num_experts > 1
    src = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    stacked: dict[int, dict[str, list[torch.Tensor]]] = {}
    for name, tensor in src.items():
        if name == "lm_head.weight":
            if not cfg.tie_embeddings:
                out[name] = tensor
            continue
        if not name.startswith("layers."):
            out[f"model.{name}"] = tensor  # embed_tokens, norm
            continue
        parts = name.split(".")  # layers.i.<module>...
        i = int(parts[1])
        rest = ".".join(parts[2:])
        if not rest.startswith("mlp."):
            out[f"model.layers.{i}.{rest}"] = tensor  # norms and attention
        elif not moe:
            dense = {"mlp.w1.weight": "mlp.gate_proj.weight", "mlp.w3.weight": "mlp.up_proj.weight",
                     "mlp.w2.weight": "mlp.down_proj.weight"}
            out[f"model.layers.{i}.{dense[rest]}"] = tensor
        elif layout == "hub":
            out[f"model.layers.{i}.block_sparse_moe.{rest[len('mlp.'):]}"] = tensor
        elif rest == "mlp.gate.weight":
            out[f"model.layers.{i}.mlp.gate.weight"] = tensor
        else:  # mlp.experts.j.wN.weight
            j, w = int(parts[4]), parts[5]
            slots = stacked.setdefault(i, {}).setdefault(w, [tensor] * cfg.num_experts)
            slots[j] = tensor
    for i, ws in stacked.items():
        gate_up = [torch.cat((a, b), dim=0) for a, b in zip(ws["w1"], ws["w3"], strict=True)]  # (2I, D) each
        out[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.stack(gate_up)  # (E, 2I, D)
        out[f"model.layers.{i}.mlp.experts.down_proj"] = torch.stack(ws["w2"])  # (E, D, I)
    return out


def export_hf(
    model: torch.nn.Module,
    tokenizer: Any,
    out_dir: Path,
    layout: str = "hub",
    dtype: str = "float32",
    **options: Any,
) -> Path:
    """The `hf` exporter: write a transformers-loadable directory into `out_dir`."""
    from safetensors.torch import save_file

    if options:
        raise SalesAIError(f"hf export: unknown option(s) {', '.join(sorted(options))}; known: layout, dtype")
    if callable(getattr(model, "adapter_state_dict", None)):  # LoRA (salesai.lora): base + PEFT adapter/
        from salesai.lora.peft import export_peft_adapter

        base: Any = model.base
        path = export_hf(base, tokenizer, out_dir, layout=layout, dtype=dtype)
        export_peft_adapter(model, Path(out_dir) / "adapter", DTYPES.get(dtype, torch.float32))
        return path
    cfg: Any = model.config
    check_exportable(cfg)
    if dtype not in DTYPES:
        raise SalesAIError(f"hf export: dtype={dtype!r}; expected one of: {', '.join(DTYPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(DTYPES[dtype]).contiguous().cpu()
               for k, v in hf_state_dict(model, layout).items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf_config(cfg, dtype), indent=2) + "\n", encoding="utf-8")
    generation = {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
                  "pad_token_id": cfg.pad_token_id}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


__all__ = ["check_exportable", "export_hf", "hf_config", "hf_state_dict"]
