"""Write a LoRA adapter as a Hugging Face PEFT adapter directory (no peft import needed to write it).

    hf-adapter/                      the base, `salesai.export.hf` (MixtralForCausalLM / LlamaForCausalLM)
      adapter/adapter_config.json    peft_type LORA, r, lora_alpha, target_modules, target_parameters
      adapter/adapter_model.safetensors

    base = AutoModelForCausalLM.from_pretrained("hf-adapter")
    model = PeftModel.from_pretrained(base, "hf-adapter/adapter")     # logits equal ours to 1e-5

Mapping (transformers >= 5 module names, which PEFT sees in memory):
- attention projections and `lm_head`: `nn.Linear` targets (`target_modules`), A and B as they are;
- a dense model's expert (`w1`/`w3`/`w2`): Llama's `mlp.gate_proj`/`up_proj`/`down_proj`;
- MoE experts: transformers 5 keeps them stacked, `mlp.experts.gate_up_proj` (E, 2I, D) = [w1; w3]
  and `mlp.experts.down_proj` (E, D, I), which PEFT adapts through `target_parameters`
  (`lora.ParamWrapper`): lora_A (E*r', in) holds expert e's rows at [e*r', (e+1)*r'), lora_B
  (out, r'*E) its columns k*E + e. The stacked gate_up delta [B1 A1; B3 A3] has rank 2r, so when
  w1 and w3 are both adapted the export uses r' = 2r and lora_alpha' = 2 alpha everywhere (same
  scaling alpha/r, unused rank slots zero), A' = [A1; A3], B' = [[B1, 0], [0, B3]];
- the router `mlp.gate` (a plain weight in transformers 5): `target_parameters` "mlp.gate.weight".
When one module holds two adapted parameters, PEFT nests the wrappers; the first registered
(`gate_up_proj`) becomes `experts.base_layer`. PEFT refuses dropout with `target_parameters`, so
the exported `lora_dropout` is 0 there (it only matters for training).

What it is not: no classifier adapters (SEQ_CLS), no transformers-4 (`block_sparse_moe`) names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from salesai.errors import SalesAIError

PREFIX = "base_model.model."
ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
DENSE_MLP = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}


def _pad(a: torch.Tensor, b: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (r0, in), B (out, r0) -> A (r, in), B (out, r), zero rows/columns added."""
    r0 = a.shape[0]
    if r0 == r:
        return a, b
    return (torch.cat([a, a.new_zeros(r - r0, a.shape[1])]),
            torch.cat([b, b.new_zeros(b.shape[0], r - r0)], dim=1))


def peft_tensors(model: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The adapter as PEFT's state dict (keys with `base_model.model.`) and adapter_config.json fields."""
    cfg = model.base.config
    if getattr(cfg, "labels", None):
        raise SalesAIError("hf export: PEFT adapters of sequence classifiers are not supported yet; "
                           "merge the adapter (salesai lora merge) and export the merged checkpoint")
    lora = model.lora_config
    if lora.train:
        raise SalesAIError(f"hf export: modules trained in full (train={','.join(lora.train)}) have no "
                           "PEFT export yet; merge the adapter (salesai lora merge) and export the merged "
                           "checkpoint")
    adapters = {path: (a.lora_A.weight.detach().float().cpu(), a.lora_B.weight.detach().float().cpu())
                for path, a in model.named_adapters()}
    moe = cfg.num_experts > 1
    layers = {int(p.split(".")[1]) for p in adapters if p.startswith("layers.")}
    both = moe and any({f"layers.{i}.mlp.experts.{e}.{w}" for w in ("w1", "w3")} <= adapters.keys()
                       for i in layers for e in range(cfg.num_experts))
    r = 2 * lora.r if both else lora.r
    out: dict[str, torch.Tensor] = {}
    modules: list[str] = []
    params: list[str] = []
    stacked: dict[tuple[int, str], list[tuple[int, str, torch.Tensor, torch.Tensor]]] = {}
    for path, (a, b) in adapters.items():
        parts = path.split(".")
        if path == "lm_head":
            name = "lm_head"
        elif parts[0] != "layers" or len(parts) < 4:
            raise SalesAIError(f"hf export: no transformers counterpart for the adapter on {path!r}")
        elif parts[2] == "self_attn" and parts[3] in ATTN:
            name = f"model.{path}"
        elif parts[2] == "mlp" and not moe and parts[3] in DENSE_MLP:
            name = f"model.layers.{parts[1]}.mlp.{DENSE_MLP[parts[3]]}"
        elif parts[2:] == ["mlp", "gate"]:
            name = f"model.layers.{parts[1]}.mlp.gate"
            params.append(f"{name}.weight")
            a, b = _pad(a, b, r)
            out[f"{PREFIX}{name}.lora_A.weight"], out[f"{PREFIX}{name}.lora_B.weight"] = a, b
            continue
        elif parts[2:4] == ["mlp", "experts"] and len(parts) == 6:
            kind = "gate_up_proj" if parts[5] in ("w1", "w3") else "down_proj"
            stacked.setdefault((int(parts[1]), kind), []).append((int(parts[4]), parts[5], a, b))
            continue
        else:
            raise SalesAIError(f"hf export: no transformers counterpart for the adapter on {path!r}")
        modules.append(name)
        a, b = _pad(a, b, r)
        out[f"{PREFIX}{name}.lora_A.weight"], out[f"{PREFIX}{name}.lora_B.weight"] = a, b
    n_e, inter, hidden, r0 = cfg.num_experts, cfg.intermediate_dim, cfg.hidden_dim, lora.r
    for (i, kind), items in sorted(stacked.items()):
        d_in, d_out = (hidden, 2 * inter) if kind == "gate_up_proj" else (inter, hidden)
        big_a = torch.zeros(n_e, r, d_in)  # (E, r', in)
        big_b = torch.zeros(d_out, r, n_e)  # (out, r', E): PEFT's column k*E + e
        for e, w, a, b in items:
            slot = slice(r - r0, r) if w == "w3" else slice(0, r0)  # w3: the second half when r' = 2r
            rows = slice(inter, 2 * inter) if w == "w3" else slice(0, b.shape[0])
            big_a[e, slot] = a
            big_b[rows, slot, e] = b
        base_layer = ".base_layer" if kind == "gate_up_proj" and (i, "down_proj") in stacked else ""
        name = f"model.layers.{i}.mlp.experts"
        params.append(f"{name}.{kind}")
        out[f"{PREFIX}{name}{base_layer}.lora_A.weight"] = big_a.reshape(n_e * r, d_in)
        out[f"{PREFIX}{name}{base_layer}.lora_B.weight"] = big_b.reshape(d_out, r * n_e)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "..",
        "r": r,
        "lora_alpha": float(lora.alpha) * r / lora.r,
        "lora_dropout": 0.0 if params else float(lora.dropout),
        "target_modules": sorted(modules) or None,
        "target_parameters": sorted(params) or None,
        "bias": "none",
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
    }
    return out, config


def export_peft_adapter(model: Any, out_dir: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write adapter_config.json + adapter_model.safetensors (PEFT's names) into `out_dir`."""
    from safetensors.torch import save_file

    tensors, config = peft_tensors(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in tensors.items()},
              str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


__all__ = ["export_peft_adapter", "peft_tensors"]
