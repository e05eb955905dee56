"""Training-step throughput: salesai's `base` preset against transformers' MixtralForCausalLM.

Same shapes (our config mapped 1:1 onto MixtralConfig, same weights copied over), same batch
(8 x 256; `--quick`: 2 x 128 with 2 layers), same thread count, one process; the two libraries
alternate step by step and the median step time is reported. A step = forward with labels
(cross-entropy + router aux loss), backward, gradient clipping, AdamW (the fused kernel for both).

Prints JSON lines (ratio = salesai tokens/s / transformers tokens/s):
  {"bench": "train", "precision": "fp32", "salesai_tokens_per_s": ..., "transformers_tokens_per_s": ...,
   "ratio": ...}
  {"bench": "train", "precision": "salesai-default", ...}  # ours as `auto` picks; transformers in fp32
  {"bench": "train", "precision": "bf16-both", ...}        # both under bf16 autocast, for reference

Usage: python bench/train.py [--quick] [--threads 2] [--steps 5] [--only fp32 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


def mixtral_from_ours(model: Any) -> Any:
    """A MixtralForCausalLM with our config and weights (through the `hf` exporter's mapping if present)."""
    from transformers import MixtralConfig, MixtralForCausalLM

    c = model.config
    hf_cfg = MixtralConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_dim, intermediate_size=c.intermediate_dim,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps, num_local_experts=c.num_experts,
        num_experts_per_tok=c.top_k, router_aux_loss_coef=c.aux_loss_coef, output_router_logits=True,
        tie_word_embeddings=c.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        use_cache=False,
    )
    hf_cfg._attn_implementation = "sdpa"
    hf = MixtralForCausalLM(hf_cfg)
    from salesai.export.hf import hf_state_dict

    missing, unexpected = hf.load_state_dict(hf_state_dict(model, layout="stacked"), strict=False)
    if unexpected or [m for m in missing if "rotary" not in m]:
        print(f"note: weight copy incomplete (missing {missing[:3]}, unexpected {unexpected[:3]})",
              file=sys.stderr)
    return hf.train()


def make_step(model: nn_Module, ids: torch.Tensor, precision: str) -> Callable[[], float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ctx: Callable[[], Any] = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext

    def step() -> float:
        t0 = time.perf_counter()
        with ctx():
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step


nn_Module = torch.nn.Module


def measure(pairs: list[tuple[str, Callable[[], float]]], steps: int, warmup: int) -> dict[str, float]:
    """Alternate the step functions; median seconds per step of each."""
    for _ in range(warmup):
        for _, fn in pairs:
            fn()
    times: dict[str, list[float]] = {name: [] for name, _ in pairs}
    for _ in range(steps):
        for name, fn in pairs:
            times[name].append(fn())
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 x 128 tokens, 2 layers: a fast smoke run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per library and precision")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--seq", type=int, default=None)
    ap.add_argument("--only", choices=["fp32", "salesai-default", "bf16-both"], action="append",
                    help="run only these comparisons (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import salesai
    from salesai.train.trainer import cpu_bf16_speedup, resolve_precision

    overrides: dict[str, Any] = {"num_layers": 2} if args.quick else {}
    batch = args.batch or (2 if args.quick else 8)
    seq = args.seq or (128 if args.quick else 256)
    torch.manual_seed(0)
    ours = salesai.SalesAIModel(salesai.ModelConfig.from_name("base", **overrides)).train()
    theirs = mixtral_from_ours(ours)
    ids = torch.randint(4, ours.config.vocab_size, (batch, seq))
    tokens = batch * seq
    default = resolve_precision("auto", torch.device("cpu"))
    common = {"bench": "train", "preset": "base", "layers": ours.config.num_layers, "batch": batch,
              "seq": seq,
              "threads": args.threads, "steps": args.steps, "torch": torch.__version__,
              "cpu_bf16_matmul_speedup": round(cpu_bf16_speedup(), 2)}
    import transformers

    common["transformers"] = transformers.__version__
    runs = [("fp32", "fp32", "fp32"), ("salesai-default", default, "fp32"), ("bf16-both", "bf16", "bf16")]
    for label, ours_prec, their_prec in runs:
        if args.only and label not in args.only:
            continue
        pair = [("salesai", make_step(ours, ids, ours_prec)),
                ("transformers", make_step(theirs, ids, their_prec))]
        t = measure(pair, args.steps, args.warmup)
        line = {**common, "precision": label, "salesai_precision": ours_prec,
                "transformers_precision": their_prec,
                "salesai_tokens_per_s": round(tokens / t["salesai"], 1),
                "transformers_tokens_per_s": round(tokens / t["transformers"], 1),
                "ratio": round(t["transformers"] / t["salesai"], 2)}
        print(json.dumps(line), flush=True)
        print(f"{label}: salesai {line['salesai_tokens_per_s']} tok/s, transformers "
              f"{line['transformers_tokens_per_s']} tok/s, ratio {line['ratio']}x", file=sys.stderr)


if __name__ == "__main__":
    main()
