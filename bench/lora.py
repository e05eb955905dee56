"""LoRA fine-tuning: peak memory and speed against full fine-tuning and against PEFT on transformers.

Each variant runs in its own process (peak RSS = that process's ru_maxrss), on the `base` preset
(`--quick`: 2 layers), same random weights, same batch (4 x 256), same thread count; a step =
forward with labels, backward, AdamW on the trainable parameters. Variants:
  full              every parameter trained (fp32)
  lora              salesai LoRA r=16 alpha=32 on attn + experts, fp32 frozen base
  lora-bf16-base    the same adapters (fp32) on a base held in bf16
  lora-int8-base    the same adapters on a base held in int8 (per-row scales), dequantised per call
                    (QLoRA-style experiment: it is built here only, not in salesai, unless it wins)
  peft              transformers MixtralForCausalLM + PEFT LoRA, the same adapter config
                    (attention as target_modules, the stacked experts as target_parameters)
  peft-bf16-base    the same with the transformers model in bf16 (PEFT keeps adapters in fp32)
Quality (`--quality`): a small model pretrained on part of the stdlib, then LoRA vs full fine-tuning
for the same steps on a held-out package; validation loss on that package.

Prints JSON lines: {"bench": "lora", "variant": ..., "peak_rss_mb": ..., "tokens_per_s": ...,
"trainable": ...}, then {"bench": "lora", "summary": {memory ratio, speed ratios, ...}}.
Usage: python bench/lora.py [--quick] [--threads 1] [--steps 4] [--only lora full]
       [--interleaved] [--quality | --quality-only [--quality-steps 60]]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

VARIANTS = ("full", "lora", "lora-bf16-base", "lora-int8-base", "peft", "peft-bf16-base")
LORA_SPEC = "r=16,alpha=32,targets=attn,experts"


def _model(quick: bool) -> Any:
    import torch

    from salesai import ModelConfig, SalesAIModel

    torch.manual_seed(0)
    return SalesAIModel(ModelConfig.from_name("base", **({"num_layers": 2} if quick else {})))


def _int8_base(model: Any) -> dict[str, Any]:
    """Replace every frozen linear weight by int8 + per-row scale, dequantised in each call;
    returns {path: new module}."""
    import torch
    from torch import nn

    class Int8Linear(nn.Module):
        def __init__(self, lin: nn.Linear) -> None:
            super().__init__()
            w = lin.weight.detach()
            scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / 127.0  # (out, 1)
            self.register_buffer("q", torch.round(w / scale).to(torch.int8))  # (out, in)
            self.register_buffer("scale", scale)
            self.in_features, self.out_features = lin.in_features, lin.out_features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(x, self.q.to(x.dtype) * self.scale.to(x.dtype))

    new: dict[str, Any] = {}
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.Linear) and child_name != "lm_head":
                new[f"{name}.{child_name}" if name else child_name] = Int8Linear(child)
                setattr(mod, child_name, new[f"{name}.{child_name}" if name else child_name])
    return new


def _training_peak_reset() -> None:
    """Free what setup left behind and restart the peak-RSS counter (Linux: clear_refs 5)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _vm_mb(key: str = "VmHWM") -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def build_step(variant: str, quick: bool, batch: int, seq: int) -> tuple[Any, Any]:
    """(model, step()): one optimizer step of `variant` on a fixed batch."""
    import torch

    from salesai.lora import LoraConfig, apply_lora

    config = LoraConfig.parse(LORA_SPEC)
    model = _model(quick)
    ids = torch.randint(3, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(1))
    if variant.startswith("peft"):
        model, peft_forward = _peft(model, config, bf16=variant == "peft-bf16-base")

        def forward() -> Any:
            return peft_forward(ids)
    else:
        if variant == "lora-bf16-base":
            model = model.to(torch.bfloat16)
        if variant != "full":
            model = apply_lora(model, config)
            if variant == "lora-int8-base":
                replaced = _int8_base(model.base)
                for path, a in model.named_adapters():
                    a.detach()
                    a.attach(replaced[path])
            for _, a in model.named_adapters():
                a.float()
        model.train()

        def forward() -> Any:
            return model(ids, labels=ids).loss

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, foreach=True)

    def step() -> float:
        t0 = time.perf_counter()
        forward().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return model, step


def run_variant(variant: str, quick: bool, steps: int, batch: int, seq: int) -> dict[str, Any]:
    import torch

    model, step = build_step(variant, quick, batch, seq)
    params = [p for p in model.parameters() if p.requires_grad]
    _training_peak_reset()
    before = _vm_mb("VmRSS")
    times = [step() for _ in range(steps + 1)]
    step_s = statistics.median(times[1:])
    return {"bench": "lora", "variant": variant, "quick": quick, "threads": torch.get_num_threads(),
            "tokens_per_s": batch * seq / step_s, "step_s": step_s,
            "trainable": sum(p.numel() for p in params),
            "peak_rss_mb": _vm_mb(),  # during training (setup transients excluded where the kernel allows)
            "rss_before_training_mb": before,
            "peak_rss_incl_setup_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _peft(model: Any, config: Any, bf16: bool = False) -> tuple[Any, Any]:
    """transformers Mixtral with our weights + PEFT LoRA of the same shape (bench/train.py's mapping)."""
    import peft
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    from salesai.export.hf import hf_state_dict

    c = model.config
    hf_cfg = MixtralConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_dim, intermediate_size=c.intermediate_dim,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps, num_local_experts=c.num_experts,
        num_experts_per_tok=c.top_k, router_aux_loss_coef=c.aux_loss_coef / c.top_k,
        output_router_logits=True,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta}, use_cache=False)
    hf_cfg._attn_implementation = "sdpa"
    hf = MixtralForCausalLM(hf_cfg)
    hf.load_state_dict(hf_state_dict(model, layout="stacked"), strict=False)
    del model
    if bf16:
        hf = hf.to(torch.bfloat16)  # PEFT keeps the adapters in fp32 (autocast_adapter_dtype)
    # the same r on every target (PEFT's stacked gate_up_proj then has rank r where ours has r on w1 and w3)
    peft_cfg = peft.LoraConfig(r=config.r, lora_alpha=config.alpha, target_modules=["q_proj", "k_proj",
                               "v_proj", "o_proj"], target_parameters=["mlp.experts.gate_up_proj",
                               "mlp.experts.down_proj"], lora_dropout=0.0)
    pm = peft.get_peft_model(hf, peft_cfg).train()

    def forward(ids: torch.Tensor) -> torch.Tensor:
        return pm(input_ids=ids, labels=ids).loss

    return pm, forward


# ------------------------------------------------------------------------------------- quality
def quality(steps: int, threads: int) -> dict[str, Any]:
    """Pretrain a small model on stdlib files outside `json/`+`email/`, fine-tune on those, both ways."""
    import sysconfig
    import tempfile
    from pathlib import Path

    import torch

    from salesai import ModelConfig, SalesAIModel, Tokenizer
    from salesai.lora.checkpoint import lora_for_training
    from salesai.model import save_checkpoint
    from salesai.train.trainer import TrainConfig, Trainer

    torch.set_num_threads(threads)
    lib = Path(sysconfig.get_paths()["stdlib"])
    held = sorted((lib / "email").rglob("*.py")) + sorted((lib / "json").rglob("*.py"))
    pre = [p for p in sorted(lib.glob("*.py")) if p.stat().st_size < 200_000][:60]
    with tempfile.TemporaryDirectory() as tmp:
        tok = Tokenizer.train([str(p) for p in pre], vocab_size=2000, out_dir=Path(tmp) / "tok")

        def ids(files: list[Path]) -> torch.Tensor:
            texts = [f.read_text(errors="replace") for f in files]
            return torch.tensor([t for text in texts for t in tok.encode(text, add_bos=True)])

        pre_ids, held_ids = ids(pre), ids(held)
        cut = int(len(held_ids) * 0.8)
        ft_train, ft_val = held_ids[:cut], held_ids[cut:]
        cfg = ModelConfig.from_name("tiny", vocab_size=len(tok), hidden_dim=128, num_layers=4, num_heads=4,
                                    num_kv_heads=2, intermediate_dim=256)
        torch.manual_seed(0)
        base = SalesAIModel(cfg)
        common = dict(batch_size=8, seq_len=128, precision="fp32", eval_every=0, eval_steps=8, save_every=0,
                      log_every=10_000, warmup_steps=10)
        Trainer(base, TrainConfig(max_steps=3 * steps, lr=2e-3, min_lr=2e-4, out_dir=f"{tmp}/pre", **common),
                pre_ids, ft_val, progress=False, log=lambda _m: None).fit()
        save_checkpoint(f"{tmp}/base", base)
        state = {k: v.clone() for k, v in base.state_dict().items()}
        out: dict[str, Any] = {"bench": "lora", "quality": True, "steps": steps}
        for name in ("none", "full", "lora", "lora-bf16-base"):
            run: Any = SalesAIModel(cfg)
            run.load_state_dict(state)
            if name.startswith("lora"):
                spec = LORA_SPEC + (",base=bf16" if name == "lora-bf16-base" else "")
                run = lora_for_training(spec, f"{tmp}/base", log=lambda _m: None)
            lr = 2e-3 if name.startswith("lora") else 5e-4
            trainer = Trainer(run, TrainConfig(max_steps=max(steps, 1), lr=lr, min_lr=lr / 10,
                                               out_dir=f"{tmp}/{name}", **common),
                              ft_train, ft_val, progress=False, log=lambda _m: None)
            if name == "none":
                out["val_loss_before"] = trainer.evaluate()["val_loss"]
                continue
            out[f"val_loss_{name}"] = trainer.fit().evals[-1]["val_loss"]
        out["lora_vs_full"] = out["val_loss_lora"] / out["val_loss_full"]
        out["lora_bf16_base_vs_full"] = out["val_loss_lora-bf16-base"] / out["val_loss_full"]
        return out


def interleaved(variants: list[str], quick: bool, steps: int, batch: int, seq: int) -> dict[str, Any]:
    """Speed only: every variant in this one process, one step each in turn (a busy machine slows all
    of them alike); median step times."""
    steppers = {v: build_step(v, quick, batch, seq)[1] for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for i in range(steps + 1):
        for v, step in steppers.items():
            t = step()
            if i:
                times[v].append(t)
    tps = {v: batch * seq / statistics.median(t) for v, t in times.items()}
    out: dict[str, Any] = {"bench": "lora", "interleaved": True, "quick": quick, "tokens_per_s": tps}
    if "lora" in tps:
        out.update({f"speed_lora_over_{v}": tps["lora"] / tps[v] for v in tps if v != "lora"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 layers instead of 8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--only", nargs="*", choices=VARIANTS)
    ap.add_argument("--quality", action="store_true", help="also the held-out-domain loss comparison")
    ap.add_argument("--quality-steps", type=int, default=60)
    ap.add_argument("--quality-only", action="store_true", help="only the quality comparison")
    ap.add_argument("--interleaved", action="store_true",
                    help="speed only: the variants in one process, steps in turn (fairer on a busy machine)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    if args.variant:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(run_variant(args.variant, args.quick, args.steps, args.batch, args.seq)))
        return
    if args.interleaved:
        import torch

        torch.set_num_threads(args.threads)
        chosen = list(args.only or ("lora", "full", "peft", "lora-bf16-base"))
        print(json.dumps(interleaved(chosen, args.quick, args.steps, args.batch, args.seq)))
        return
    if args.quality_only:
        print(json.dumps(quality(args.quality_steps, args.threads)))
        return
    results: dict[str, dict[str, Any]] = {}
    for variant in args.only or VARIANTS:
        cmd = [sys.executable, __file__, "--variant", variant, "--threads", str(args.threads),
               "--steps", str(args.steps), "--batch", str(args.batch), "--seq", str(args.seq)]
        proc = subprocess.run(cmd + (["--quick"] if args.quick else []), capture_output=True, text=True)
        if proc.returncode != 0:
            error = proc.stderr.strip().splitlines()[-1:]
            print(json.dumps({"bench": "lora", "variant": variant, "error": error}))
            continue
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(results[variant]), flush=True)
    summary: dict[str, Any] = {}
    if "full" in results and "lora" in results:
        summary["rss_lora_over_full"] = results["lora"]["peak_rss_mb"] / results["full"]["peak_rss_mb"]
        summary["training_rss_growth_lora_over_full"] = (
            (results["lora"]["peak_rss_mb"] - results["lora"]["rss_before_training_mb"])
            / (results["full"]["peak_rss_mb"] - results["full"]["rss_before_training_mb"]))
        summary["speed_lora_over_full"] = results["lora"]["tokens_per_s"] / results["full"]["tokens_per_s"]
    if "peft" in results and "lora" in results:
        summary["speed_lora_over_peft"] = results["lora"]["tokens_per_s"] / results["peft"]["tokens_per_s"]
    for v in ("lora-bf16-base", "lora-int8-base"):
        if v in results and "lora" in results:
            summary[f"rss_{v}_over_lora"] = results[v]["peak_rss_mb"] / results["lora"]["peak_rss_mb"]
            summary[f"speed_{v}_over_lora"] = results[v]["tokens_per_s"] / results["lora"]["tokens_per_s"]
    if summary:
        print(json.dumps({"bench": "lora", "summary": summary}))
    if args.quality:
        print(json.dumps(quality(args.quality_steps, args.threads)))


if __name__ == "__main__":
    main()
