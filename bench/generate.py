"""Generation speed: salesai vs transformers' MixtralForCausalLM on the same weights, same run.

What: builds the `base` preset (random weights, fp32), copies the identical weights into
transformers' `MixtralForCausalLM` (through the `hf` exporter's name mapping; the logits are
checked to agree first), then for each thread count in `--threads`, alternating the two
libraries inside every repeat, measures:
- prefill tokens/s: one 1 x 512 prompt through the model into a fresh KV cache, last-position
  logits only (what generation does);
- decode tokens/s: `generate()` wall time for a 16-token prompt and 128 new greedy tokens
  (no early stop), batch 1 and batch 8; tokens/s = batch x 128 / seconds;
- memory bandwidth: a copy of a 512 MiB float32 tensor, (bytes read + bytes written) / seconds;
- the memory-bandwidth bound of decoding: bandwidth / bytes touched per generated token (the
  weights each step reads: attention, router, the top-k experts at batch 1 or all experts at
  batch 8, norms, output head, shared by the batch; plus the KV cache read at the mean length).
Each figure is the median of `--repeats`; `*_tok_s` use wall time, `*_cpu_tok_s` the
process's CPU time (all threads), which other processes on a shared machine do not inflate.
One JSON line per (threads, measurement), then a summary line with the issue's goals
(decode batch 1 >= 3x transformers, >= 0.5 of the bound).

Usage: python bench/generate.py [--threads 1,2] [--repeats 3] [--quick] [--preset base]
The machine's load changes these figures a lot: compare numbers from the same run only.
What it is not: a quality benchmark (weights are random), nor a GPU benchmark.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="base")
    p.add_argument("--threads", default="1,2", help="comma list of torch thread counts")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--prefill-tokens", type=int, default=512)
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--batches", default="1,8", help="decode batch sizes")
    p.add_argument("--quick", action="store_true", help="1 repeat, 32 new tokens, prefill 256")
    p.add_argument("--skip-transformers", action="store_true", help="measure salesai only")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.new_tokens, args.prefill_tokens = 1, 32, 256
    return args


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- models ------------------------------------------------------------------------------------
def build_models(preset: str, with_hf: bool) -> tuple[Any, Any]:
    from salesai.export.hf import hf_config, hf_state_dict
    from salesai.model.config import ModelConfig
    from salesai.model.transformer import SalesAIModel

    torch.manual_seed(0)
    ours = SalesAIModel(ModelConfig.from_name(preset)).eval()
    if not with_hf:
        return ours, None
    import transformers

    transformers.logging.set_verbosity_error()
    cfg = hf_config(ours.config)
    arch = cfg.pop("architectures")[0]
    cfg.pop("dtype", None)
    config_cls = transformers.MixtralConfig if arch == "MixtralForCausalLM" else transformers.LlamaConfig
    model_cls = getattr(transformers, arch)
    hf = model_cls(config_cls(**{k: v for k, v in cfg.items() if k != "model_type"})).eval()
    stacked = any(k.endswith("experts.gate_up_proj") for k in hf.state_dict())
    weights = hf_state_dict(ours, "stacked" if stacked else "hub")
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not (cfg["tie_word_embeddings"] and k == "lm_head.weight")]
    if missing or unexpected:
        raise SystemExit(f"weight copy failed: missing {missing[:3]}, unexpected {unexpected[:3]}")
    ids = torch.randint(3, ours.config.vocab_size, (1, 24))
    with torch.inference_mode():
        diff = (ours(ids).logits - hf(ids).logits).abs().max().item()
    log(f"parity check: max |logit difference| = {diff:.2e} ({arch})")
    if diff > 1e-4:
        raise SystemExit(f"the two models disagree (max abs logit diff {diff}); not comparing speed")
    return ours, hf


# -- measurements ----------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_both(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds): CPU time is immune to other processes taking the CPU."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bandwidth_gb_s(repeats: int = 5, mib: int = 512) -> float:
    """Copy bandwidth, (read + written bytes) / s, median of `repeats`, at the current thread count."""
    src = torch.ones(mib * 1024 * 1024 // 4)
    dst = torch.zeros_like(src)  # both touched: no page faults inside the timing
    times = [timed(lambda: dst.copy_(src)) for _ in range(repeats)]
    return 2 * src.numel() * 4 / statistics.median(times) / 1e9


def ours_prefill(model: Any, ids: torch.Tensor) -> Callable[[], Any]:
    from salesai.model.cache import StaticKVCache

    def run() -> Any:
        with torch.inference_mode():
            cache = StaticKVCache.for_model(model, ids.shape[0], ids.shape[1])
            return model.step(ids, cache)

    return run


def hf_prefill(model: Any, ids: torch.Tensor) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return model(ids, use_cache=True, logits_to_keep=1).logits

    return run


def ours_decode(model: Any, ids: torch.Tensor, new: int) -> Callable[[], Any]:
    return lambda: model.generate(ids, max_new_tokens=new, temperature=0, stop_token_ids=[])


def hf_decode(model: Any, ids: torch.Tensor, new: int) -> Callable[[], Any]:
    mask = torch.ones_like(ids)

    def run() -> Any:
        with torch.inference_mode():
            return model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                  do_sample=False, pad_token_id=0)

    return run


def bytes_per_token(model: Any, batch: int, mean_len: float) -> float:
    """Bytes a decoding step reads per generated token (weights shared by the batch + KV cache)."""
    cfg = model.config
    size = next(model.parameters()).element_size()
    # batch 1 reads its top-k experts; a batch's tokens (nearly always) reach every expert
    params = model.num_parameters(active=batch == 1)
    if not cfg.tie_embeddings:  # the input table is read one row per token; a tied one by the head
        params -= cfg.vocab_size * cfg.hidden_dim
    cache = cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * mean_len * size  # per sequence
    return params * size / batch + cache


def median_rate(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t]
    batches = [int(b) for b in args.batches.split(",") if b]
    with_hf = not args.skip_transformers
    versions: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version()}
    if with_hf:
        import transformers

        versions["transformers"] = transformers.__version__
    torch.set_num_threads(max(threads))
    ours, hf = build_models(args.preset, with_hf)
    cfg = ours.config
    vocab = cfg.vocab_size
    prefill_ids = torch.randint(3, vocab, (1, args.prefill_tokens))
    prompts = {b: torch.randint(3, vocab, (b, args.prompt_tokens)) for b in batches}
    summary: dict[str, Any] = {"bench": "generate", "kind": "summary", "preset": args.preset}
    for n in threads:
        torch.set_num_threads(n)
        log(f"threads={n}: warming up")
        ours_decode(ours, prompts[batches[0]], 4)()
        if hf is not None:
            hf_decode(hf, prompts[batches[0]], 4)()
        results: dict[str, dict[str, list[float]]] = {}
        bws: list[float] = []
        for r in range(args.repeats):
            bws.append(bandwidth_gb_s())
            cases: list[tuple[str, int, Callable[[], Any], Callable[[], Any] | None]] = [
                ("prefill", args.prefill_tokens, ours_prefill(ours, prefill_ids),
                 hf_prefill(hf, prefill_ids) if hf is not None else None),
            ]
            for b in batches:
                mine = ours_decode(ours, prompts[b], args.new_tokens)
                theirs = hf_decode(hf, prompts[b], args.new_tokens) if hf is not None else None
                cases.append((f"decode_b{b}", b * args.new_tokens, mine, theirs))
            for name, tokens, mine, theirs in cases:
                slot = results.setdefault(name, {"salesai": [], "transformers": [],
                                                 "salesai_cpu": [], "transformers_cpu": []})
                order = [("salesai", mine), ("transformers", theirs)]
                if r % 2:  # alternate which library goes first
                    order.reverse()
                for lib, fn in order:
                    if fn is not None:
                        wall, cpu = timed_both(fn)
                        slot[lib].append(tokens / wall)
                        slot[f"{lib}_cpu"].append(tokens / cpu)
                hf_part = f", transformers {slot['transformers'][-1]:.1f}" if slot["transformers"] else ""
                log(f"threads={n} repeat={r} {name}: salesai {slot['salesai'][-1]:.1f} tok/s{hf_part}")
        bw = statistics.median(bws)
        emit({"bench": "generate", "kind": "bandwidth", "threads": n, "copy_gb_s": round(bw, 2),
              "samples_gb_s": [round(b, 2) for b in bws], "method": "512 MiB fp32 copy, (read+write)/s"})
        for name, slot in results.items():
            ours_rate, hf_rate = median_rate(slot["salesai"]), median_rate(slot["transformers"])
            has_hf = bool(slot["transformers"])
            record: dict[str, Any] = {
                "bench": "generate", "kind": name, "preset": args.preset, "threads": n, "dtype": "float32",
                "salesai_tok_s": round(ours_rate, 2),
                "transformers_tok_s": round(hf_rate, 2) if has_hf else None,
                "ratio": round(ours_rate / hf_rate, 2) if has_hf else None,
                "salesai_cpu_tok_s": round(median_rate(slot["salesai_cpu"]), 2),
                "transformers_cpu_tok_s": round(median_rate(slot["transformers_cpu"]), 2) if has_hf else None,
                "repeats": args.repeats,
            }
            if name.startswith("decode_b"):
                b = int(name[len("decode_b"):])
                per_token = bytes_per_token(ours, b, args.prompt_tokens + args.new_tokens / 2)
                bound = bw * 1e9 / per_token
                record.update({
                    "batch": b, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
                    "mb_per_token": round(per_token / 1e6, 1), "bound_tok_s": round(bound, 1),
                    "salesai_fraction_of_bound": round(ours_rate / bound, 2),
                    "transformers_fraction_of_bound": round(hf_rate / bound, 2) if has_hf else None,
                })
            else:
                record["tokens"] = args.prefill_tokens
            emit({**record, **versions})
            if name == "decode_b1":
                summary[f"threads_{n}"] = {
                    "decode_b1_ratio": record["ratio"],
                    "decode_b1_fraction_of_bound": record["salesai_fraction_of_bound"],
                    "goal_ratio_3x": record["ratio"] is not None and record["ratio"] >= 3.0,
                    "goal_half_bound": record["salesai_fraction_of_bound"] >= 0.5,
                }
    emit({**summary, **versions})


if __name__ == "__main__":
    main()
