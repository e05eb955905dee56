"""Benchmark: PyTorch generation vs ONNX Runtime fp32 vs ONNX Runtime int8, same run.

What: builds the `base` preset with random weights (or loads `--ckpt`), exports it with the
`onnx` exporter (fp32 + int8, verified), then measures, alternating the three backends and
taking medians over `--repeats` rounds, at `--threads` threads (default 2):
  - decode tokens/s at batch 1 and batch 8 (prompt 16 tokens, `--new-tokens` greedy tokens,
    timed from the first generated token to the last, so prefill is excluded);
  - prefill tokens/s (1 x `--prefill-len` prompt, time to the first token).
It measures the machine's copy bandwidth and prints the memory-bandwidth bound of a decode
step (bytes of weights touched per token + KV cache, divided by bandwidth), then one JSON
line per measurement and a summary line with the ratios.
With `--ckpt` and `--data FILE` it also measures validation perplexity of PyTorch and of every
ONNX decoder in the export (fp32, int8 and whatever else `--quantize` adds, e.g. `int8,q8,q4`)
on up to `--ppl-chunks` chunks of `--ppl-len` tokens of FILE, with each one's change vs fp32.

Run: python bench/onnx_export.py [--threads 2] [--repeats 3] [--ckpt DIR --data FILE]
     python bench/onnx_export.py --ckpt DIR --data FILE --quantize int8,q8,q4 --no-speed
What it is not: a test; numbers on a shared machine are noisy (medians, alternating order).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This file is named onnx.py: drop its directory from the import path, or `import onnx`
# (inside torch.onnx and salesai) would import this script instead of the onnx package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def copy_bandwidth(mb: int = 256, repeats: int = 5) -> float:
    """Bytes/s of a large copy, counting read + write (STREAM "copy" convention): the faster of a
    numpy copy (one thread) and a torch copy (its thread pool), so the bound is not understated."""
    import torch

    src = np.ones(mb * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    tsrc, tdst = torch.from_numpy(src), torch.from_numpy(dst)
    best = math.inf
    for _ in range(repeats):
        for copy in (lambda: np.copyto(dst, src), lambda: tdst.copy_(tsrc)):
            t0 = time.perf_counter()
            copy()
            best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best


def bytes_per_token(cfg: Any, context: int, weight_bytes: float) -> float:
    """Weights one decode token touches (attention, top_k experts, router, head) + its KV cache reads."""
    d, hd = cfg.hidden_dim, cfg.head_dim
    attn = d * hd * (2 * cfg.num_heads + 2 * cfg.num_kv_heads)
    expert = (3 if cfg.expert_type == "swiglu" else 2) * d * cfg.intermediate_dim
    ffn = cfg.top_k * expert + d * cfg.num_experts if cfg.num_experts > 1 else expert
    ffn += cfg.num_shared_experts * (3 * d * (cfg.shared_intermediate_dim or cfg.intermediate_dim))
    weights = cfg.num_layers * (attn + ffn) + d * cfg.vocab_size + d  # + one embedding row
    kv = cfg.num_layers * 2 * cfg.num_kv_heads * hd * context * 4
    return weights * weight_bytes + kv


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="base")
    ap.add_argument("--ckpt", type=Path, default=None, help="checkpoint dir (default: random weights)")
    ap.add_argument("--data", type=Path, default=None, help="text file for validation perplexity (+ --ckpt)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--prefill-len", type=int, default=512)
    ap.add_argument("--ppl-len", type=int, default=256)
    ap.add_argument("--ppl-chunks", type=int, default=64)
    ap.add_argument("--quantize", default="int8",
                    help="decoders to export besides fp32 (int8 is always added: the speed runs use it)")
    ap.add_argument("--out", type=Path, default=None, help="keep the export here (default: a temp dir)")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed runs (perplexity only)")
    ap.add_argument("--spinning", action="store_true", help="let ONNX Runtime's idle threads busy-wait")
    args, unknown = ap.parse_known_args(argv)
    if unknown:
        print(f"bench/onnx_export.py: ignoring arguments {unknown}", file=sys.stderr)

    import torch

    torch.set_num_threads(args.threads)
    from salesai import ModelConfig, SalesAIModel
    from salesai.export.onnx import export_onnx
    from salesai.ort_runtime import OrtGenerator

    if args.ckpt is not None:
        from salesai.model.checkpoint import load_checkpoint

        model, tokenizer = load_checkpoint(args.ckpt)
        source = str(args.ckpt)
    else:
        torch.manual_seed(0)
        model = SalesAIModel(ModelConfig.from_name(args.preset))
        tokenizer, source = None, f"{args.preset} (random)"
    model.eval()
    cfg = model.config
    tmp = tempfile.TemporaryDirectory(prefix="salesai-bench-onnx-")
    out = args.out or Path(tmp.name) / "export"
    t0 = time.perf_counter()
    variants = ["int8", *(v for v in args.quantize.split(",") if v.strip() not in ("", "int8"))]
    export_onnx(model, tokenizer, out, quantize=",".join(variants), force=True,
                progress=lambda m: print(f"[bench] {m}", file=sys.stderr))
    manifest = json.loads((out / "manifest.json").read_text())
    q = manifest["quantization"]
    emit({"bench": "onnx", "what": "export", "model": source, "seconds": round(time.perf_counter() - t0, 1),
          "fp32_mb": round(q["fp32_bytes"] / 1e6, 1), "int8_mb": round(q["int8_bytes"] / 1e6, 1),
          "int8_weight_share": round(q["weights"]["int8_share"], 4),
          "verify_fp32_max_abs_logit_diff": manifest["verification"]["max_abs_logit_diff"],
          "verify_int8_max_abs_logit_diff": q["verification"]["max_abs_logit_diff"],
          **{f"{v}_mb": round(e["bytes"] / 1e6, 1) for v, e in manifest.get("quantizations", {}).items()
             if v != "int8"},
          **{f"verify_{v}_max_abs_logit_diff": e["verification"]["max_abs_logit_diff"]
             for v, e in manifest.get("quantizations", {}).items() if v != "int8"}})

    ort = {v: OrtGenerator.from_export(out, variant=v, threads=args.threads, spinning=args.spinning)
           for v in ("fp32", *variants)}
    rng = np.random.default_rng(0)
    lo = 11  # past the special tokens

    def prompts(batch: int, length: int) -> list[list[int]]:
        return [list(map(int, rng.integers(lo, cfg.vocab_size, length))) for _ in range(batch)]

    def timed(stream: Any) -> tuple[float, float, int]:
        """(seconds to the first token, seconds from the first to the last, tokens yielded)."""
        t = time.perf_counter()
        first = last = t
        n = 0
        for _ in stream:
            last = time.perf_counter()
            if n == 0:
                first = last
            n += 1
        return first - t, last - first, n

    def backend_stream(name: str, ids: list[list[int]], new: int) -> Any:
        kw = {"max_new_tokens": new, "temperature": 0.0, "stop_token_ids": []}
        if name == "torch":
            return model.stream(ids, **kw)
        return ort[name.split("_")[1]].stream(ids, **kw)

    backends = ["torch", "ort_fp32", "ort_int8"]
    bandwidth = copy_bandwidth()
    context = args.prompt_len + args.new_tokens // 2
    bound = {"fp32": bandwidth / bytes_per_token(cfg, context, 4),
             "int8": bandwidth / bytes_per_token(cfg, context, 1)}
    emit({"bench": "onnx", "what": "bandwidth", "copy_gb_s": round(bandwidth / 1e9, 2),
          "mb_per_token_fp32": round(bytes_per_token(cfg, context, 4) / 1e6, 1),
          "bound_tokens_s_fp32": round(bound["fp32"], 1), "bound_tokens_s_int8": round(bound["int8"], 1),
          "context": context, "threads": args.threads})

    results: dict[tuple[str, str, int], float] = {}
    summary: dict[str, Any] = {"bench": "onnx", "what": "summary", "threads": args.threads, "model": source,
                               "size_int8_vs_fp32": round(q["int8_bytes"] / q["fp32_bytes"], 3)}

    def decode_case(batch: int) -> Callable[[str], float]:
        ids = prompts(batch, args.prompt_len)

        def run(name: str) -> float:
            _, decode_s, n = timed(backend_stream(name, ids, args.new_tokens))
            return batch * (n - 1) / decode_s

        return run

    def prefill_case() -> Callable[[str], float]:
        ids = prompts(1, args.prefill_len)

        def run(name: str) -> float:
            first_s, _, _ = timed(backend_stream(name, ids, 1))
            return args.prefill_len / first_s

        return run

    cases: list[tuple[str, int, Callable[[str], float]]] = [
        ("decode", 1, decode_case(1)), ("decode", 8, decode_case(8)), ("prefill", 1, prefill_case())]
    for what, batch, run in [] if args.no_speed else cases:
        for name in backends:  # warm-up
            run(name)
        values: dict[str, list[float]] = {b: [] for b in backends}
        for r in range(args.repeats):
            for name in backends[r % 3:] + backends[: r % 3]:  # alternate the order
                values[name].append(run(name))
        for name in backends:
            med = statistics.median(values[name])
            results[(name, what, batch)] = med
            rec = {"bench": "onnx", "what": what, "backend": name, "batch": batch, "tokens_s": round(med, 1),
                   "runs": [round(v, 1) for v in values[name]], "threads": args.threads, "model": source}
            if name != "torch":
                rec["ort_spinning"] = args.spinning
            if what == "decode" and batch == 1 and name != "torch":
                rec["share_of_bound"] = round(med / bound[name.split("_")[1]], 3)
            if what == "decode":
                rec["new_tokens"] = args.new_tokens
                rec["prompt_len"] = args.prompt_len
            else:
                rec["prompt_len"] = args.prefill_len
            emit(rec)

    for what, batch in [] if args.no_speed else [("decode", 1), ("decode", 8), ("prefill", 1)]:
        key = f"{what}_b{batch}"
        t, f, i = (results[(b, what, batch)] for b in backends)
        summary[f"{key}_tokens_s"] = {"torch": round(t, 1), "ort_fp32": round(f, 1), "ort_int8": round(i, 1)}
        summary[f"{key}_ort_fp32_vs_torch"] = round(f / t, 2)
        summary[f"{key}_int8_vs_fp32"] = round(i / f, 2)
    if results:
        share = results[("ort_fp32", "decode", 1)] / bound["fp32"]
        summary["decode_b1_fp32_share_of_bound"] = round(share, 3)

    if args.data is not None:
        if tokenizer is None:
            print("bench/onnx_export.py: --data needs --ckpt (a tokenizer); skipping perplexity",
                  file=sys.stderr)
        else:
            ppl = perplexity(model, ort, tokenizer, args.data, args.ppl_len, args.ppl_chunks)
            emit({"bench": "onnx", "what": "perplexity", "model": source, "data": str(args.data), **ppl})
            for v in variants:
                summary[f"ppl_{v}_vs_fp32_change"] = ppl[f"{v}_vs_fp32_change"]
    emit(summary)
    tmp.cleanup()


def perplexity(model: Any, ort: dict[str, Any], tokenizer: Any, data: Path, length: int, chunks: int
               ) -> dict[str, Any]:
    """Token-level perplexity of torch and every ORT decoder variant on the same chunks of `data`."""
    import torch

    ids = tokenizer.encode(data.read_text(encoding="utf-8", errors="replace"))
    n = min(chunks, len(ids) // length)
    if n == 0:
        raise SystemExit(f"{data}: fewer than {length} tokens")
    nll = {"torch": 0.0, **{v: 0.0 for v in ort}}
    count = 0
    for c in range(n):
        x = np.asarray([ids[c * length:(c + 1) * length]], np.int64)  # (1, L)
        target = x[0, 1:]
        with torch.no_grad():
            logits_t = model(torch.from_numpy(x)).logits[0, :-1].double().numpy()
        outputs = [("torch", logits_t)]
        for v, g in ort.items():
            dec = g.decoder
            logits = dec.step(x, np.ones_like(x), np.arange(length)[None], dec.empty_past(1))[0]  # (1, L, V)
            outputs.append((v, logits[0, :-1]))
        for name, logits in outputs:
            lg = logits.astype(np.float64)
            lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
            nll[name] += float((lse - lg[np.arange(len(target)), target]).sum())
        count += len(target)
    ppl = {k: math.exp(v / count) for k, v in nll.items()}
    report: dict[str, Any] = {"tokens": count, "ppl_torch": round(ppl["torch"], 4)}
    report.update({f"ppl_ort_{v}": round(ppl[v], 4) for v in ort})
    report.update({f"{v}_vs_fp32_change": round(ppl[v] / ppl["fp32"] - 1, 5) for v in ort if v != "fp32"})
    return report


if __name__ == "__main__":
    main()
