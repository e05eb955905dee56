"""Serving throughput and latency: `salesai serve` under concurrent clients vs sequential `generate`.

What: builds a model (default: the `base` preset with random weights and the 267-id byte
tokenizer, context 512; or `--checkpoint DIR`), saves it as a checkpoint (and, for the ONNX
Runtime backends, exports it), starts `salesai serve` in a subprocess with `--threads`, and
drives it closed-loop with N concurrent streaming clients (N in `--concurrency`), each request
a fixed prompt of `--prompt-tokens` token ids and `--output-tokens` new tokens (`ignore_eos`,
temperature 0), warm-up requests excluded. Client-side figures follow vLLM's
`benchmark_serving.py`: TTFT (first chunk with text), ITL (gaps between text chunks), TPOT
((E2EL - TTFT) / (output - 1)), E2EL, as mean / p50 / p90 / p99 in ms; request and output-token
throughput (tokens from the server's `usage`); errors by status. Rows:
- `sequential_generate`: the same requests one after another through `model.generate` in this
  process (the reference without a server);
- `serve` with `--max-batch-size 1` (the server answering one request at a time) and with
  `--max-batch-size` (continuous batching), at each concurrency;
- `overload`: 3x (batch + queue) requests at once against `--max-queue`; every excess request
  should get 503 quickly, accepted ones complete (`reject_ms_p99`, `accepted_ok`);
  `floor_health_ms_p99` times as many GET /health at once, right after, on the same
  connections: the HTTP stack's own floor on this machine, for comparison.
Every `serve` row also carries `health_probe_*_ms`: GET /health every 0.1 s from another thread
during that run (liveness probes under load, HL-05's < 100 ms).
A summary line gives batching's speed-up at the highest concurrency (goal >= 3x). With several
backends (`--backend pytorch,onnxruntime-int8`) the same model runs on each in turn and a
`backends` line gives their batched output rates and ratios (goal: int8 >= 2x PyTorch).
With `--llamacpp-python PY` (a python with llama-cpp-python and its server extra) the same
weights, converted to GGUF (`--llamacpp-quant`, default q8_0), are served by llama.cpp's
OpenAI-compatible server with the same threads, driven by the same clients with the same prompt
token ids and output length (bench/serve_llamacpp.py says how, and that this server answers one
request at a time); its `serve` rows (backend `llama.cpp-q8_0`) are followed by a `vs_llamacpp`
line (our batched output tokens/s / llama.cpp's at each concurrency, aim >= 1x at 16) and a table.

Usage: python bench/serve.py [--quick] [--backend pytorch|onnxruntime|onnxruntime-int8[,...]]
       [--concurrency 1,4,16] [--threads 1] [--checkpoint DIR] [--max-prefill-tokens N]
       [--llamacpp-python PY [--llamacpp-quant q8_0] [--llamacpp-sdist DIR]]
The machine's load changes these figures a lot: compare numbers from the same run only.
What it is not: a quality benchmark (random weights), nor a GPU benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/onnx.py would shadow the onnx package (the exporter imports it): drop this script's folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
# Passive OpenMP waiting before torch loads: spinning threads collapse throughput on a shared machine
# (the `salesai` CLI, and so the server subprocess, does the same).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--checkpoint", type=Path, help="a checkpoint directory (default: random `--preset`)")
    p.add_argument("--preset", default="base")
    p.add_argument("--backend", default="pytorch",
                   help="pytorch, onnxruntime or onnxruntime-int8; several comma-separated = one run each, "
                        "same model and machine minutes, then a `backends` line with their ratios")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--requests", type=int, default=32, help="requests per level (at least 2 per client)")
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--max-queue", type=int, default=16)
    p.add_argument("--max-prefill-tokens", type=int, default=None,
                   help="server joint-prefill size (1 = each prompt prefilled alone)")
    p.add_argument("--threads", type=int, default=1, help="backend threads (1 is steadiest when shared)")
    p.add_argument("--quick", action="store_true", help="16 requests, 32 output tokens")
    p.add_argument("--llamacpp-python", default=None,
                   help="a python with llama-cpp-python[server]: also serve the same weights with llama.cpp")
    p.add_argument("--llamacpp-quant", default="q8_0", help="GGUF type for llama.cpp (converter --outtype)")
    p.add_argument("--llamacpp-sdist", type=Path, default=None,
                   help="unpacked llama-cpp-python sdist or its .tar.gz (its convert_hf_to_gguf.py); "
                        "default: downloaded once into .bench-vs-llamacpp/")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.output_tokens = 16, 32
    return args


def bench_module(name: str) -> Any:
    """bench/<name>.py as a module (this folder is off sys.path, see above)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def summary(name: str, values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    out = {f"{name}_mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan")}
    for q in (50, 90, 99):
        out[f"{name}_p{q}_ms"] = round(pct(ms, q), 2)
    return out


# -------------------------------------------------------------------------------------- the model
def build_checkpoint(args: argparse.Namespace, out: Path) -> Path:
    import torch

    from salesai import ModelConfig, SalesAIModel
    from salesai.testing import ByteTokenizer

    if args.checkpoint:
        return Path(args.checkpoint)
    torch.manual_seed(0)
    tok = ByteTokenizer()
    cfg = ModelConfig.from_name(args.preset, vocab_size=len(tok), max_seq_len=512)
    model = SalesAIModel(cfg).eval()
    ckpt = out / "model"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    return ckpt


def export(ckpt: Path, out: Path, backend: str) -> Path:
    if backend == "pytorch":
        return ckpt
    from salesai import SalesAIModel
    from salesai.export.onnx import export_onnx
    from salesai.ort_runtime import load_tokenizer

    model = SalesAIModel.from_pretrained(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "onnx"
    export_onnx(model, load_tokenizer(ckpt / "tokenizer.model"), target,
                quantize="int8" if backend.endswith("int8") else None)
    return target


# ------------------------------------------------------------------------------------ the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(source: Path, args: argparse.Namespace, batch: int, queue: int,
                 backend: str) -> tuple[Any, str]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "SALESAI_API_KEY": ""}
    cmd = [sys.executable, "-m", "salesai", "serve", str(source), "--backend", backend,
           "--port", str(port), "--max-batch-size", str(batch), "--max-queue", str(queue),
           "--threads", str(args.threads), "--served-model-name", "bench", "--log-level", "warning"]
    if args.max_prefill_tokens is not None:
        cmd += ["--max-prefill-tokens", str(args.max_prefill_tokens)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, "/ready", "salesai serve")
    return proc, url


def wait_ready(proc: Any, url: str, path: str, name: str, timeout: float = 300.0) -> None:
    """Poll `url + path` until it answers 200; exit with the process's stderr tail if it dies first."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise SystemExit(f"{name} exited with {proc.returncode}" + (f":\n{err[-2000:]}" if err else ""))
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"{name} did not answer {path} within {timeout:.0f} s")


def stop_server(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------------------------ the clients
async def one_request(client: Any, url: str, body: dict[str, Any],
                      lengths: tuple[int, int] | None = None) -> dict[str, Any]:
    """One streamed completion. `lengths` = (prompt, output) tokens, checked beforehand, for a server
    whose streams carry no `usage` (llama.cpp): then every chunk counts as a token event, text or not."""
    start = time.perf_counter()
    chunks: list[float] = []
    usage = None
    async with client.stream("POST", f"{url}/v1/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"status": r.status_code, "e2e": time.perf_counter() - start}
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage = data["usage"]
            elif data["choices"] and (data["choices"][0]["text"] or lengths):
                chunks.append(time.perf_counter())
    end = time.perf_counter()
    if lengths and not usage:
        usage = {"prompt_tokens": lengths[0], "completion_tokens": lengths[1]}
    out = usage["completion_tokens"] if usage else len(chunks)
    return {"status": 200, "ttft": (chunks[0] if chunks else end) - start, "e2e": end - start,
            "itl": [b - a for a, b in itertools.pairwise(chunks)], "output": out,
            "input": usage["prompt_tokens"] if usage else 0}


def probe_health(url: str, stop: Any, out: list[float]) -> None:
    """GET /health every 0.1 s from its own thread and connection until `stop` is set (HL-05: probes
    under load); latencies in seconds go to `out`."""
    import httpx

    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            t = time.perf_counter()
            client.get(f"{url}/health")
            out.append(time.perf_counter() - t)
            stop.wait(0.1)


async def closed_loop(url: str, body: dict[str, Any], concurrency: int, total: int,
                      probes: list[float] | None = None,
                      lengths: tuple[int, int] | None = None) -> tuple[list[Any], float]:
    import httpx

    results: list[dict[str, Any]] = []
    todo = list(range(total))
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        warm_up = (one_request(client, url, body, lengths) for _ in range(concurrency))
        await asyncio.gather(*warm_up)

        async def worker() -> None:
            while todo:
                todo.pop()
                results.append(await one_request(client, url, body, lengths))

        import threading

        stop = threading.Event()
        prober = threading.Thread(target=probe_health, args=(url, stop, probes), daemon=True)
        if probes is not None:
            prober.start()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        stop.set()
        if probes is not None:
            prober.join(30)
        return results, wall


def report(label: str, results: list[dict[str, Any]], wall: float, **extra: Any) -> dict[str, Any]:
    ok = [r for r in results if r["status"] == 200]
    errors: dict[str, int] = {}
    for r in results:
        if r["status"] != 200:
            errors[str(r["status"])] = errors.get(str(r["status"]), 0) + 1
    tpot = [(r["e2e"] - r["ttft"]) / (r["output"] - 1) for r in ok if r["output"] > 1]
    row = {"bench": label, **extra, "requests": len(results), "wall_s": round(wall, 3),
           "req_s": round(len(ok) / wall, 3), "output_tok_s": round(sum(r["output"] for r in ok) / wall, 1),
           "total_tok_s": round(sum(r["output"] + r["input"] for r in ok) / wall, 1),
           "error_rate": round(1 - len(ok) / max(1, len(results)), 4), "errors_by_status": errors,
           **summary("ttft", [r["ttft"] for r in ok]), **summary("itl", [x for r in ok for x in r["itl"]]),
           **summary("tpot", tpot), **summary("e2el", [r["e2e"] for r in ok]),
           "loadavg_1m": round(os.getloadavg()[0], 2)}
    emit(row)
    return row


def sequential_generate(ckpt: Path, args: argparse.Namespace, prompt: list[int], n: int) -> dict[str, Any]:
    import torch

    from salesai import SalesAIModel

    torch.set_num_threads(args.threads)
    model = SalesAIModel.from_pretrained(ckpt)
    model.generate([prompt], max_new_tokens=4, temperature=0.0)  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        model.generate([prompt], max_new_tokens=args.output_tokens, temperature=0.0, stop_token_ids=[])
    wall = time.perf_counter() - start
    row = {"bench": "sequential_generate", "backend": "pytorch (in-process)", "requests": n,
           "wall_s": round(wall, 3), "req_s": round(n / wall, 3),
           "output_tok_s": round(n * args.output_tokens / wall, 1)}
    emit(row)
    return row


async def overload(url: str, body: dict[str, Any], bound: int) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=3 * bound + 4)) as client:
        async def call() -> tuple[int, float]:
            t = time.perf_counter()
            plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
            r = await client.post(f"{url}/v1/completions", json=plain)
            return r.status_code, time.perf_counter() - t

        got = await asyncio.gather(*(call() for _ in range(3 * bound)))

        async def probe() -> float:  # the floor: as many requests at once to the cheapest route
            t = time.perf_counter()
            await client.get(f"{url}/health")
            return time.perf_counter() - t

        floor = await asyncio.gather(*(probe() for _ in range(3 * bound)))
    rejected = [dt for code, dt in got if code == 503]
    accepted = [code for code, _ in got if code != 503]
    statuses: dict[str, int] = {}
    for code, _ in got:
        statuses[str(code)] = statuses.get(str(code), 0) + 1
    emit({"bench": "overload", "sent": len(got), "bound": bound, "statuses": statuses,
          "rejected_503": len(rejected),
          "reject_ms_p50": round(pct(rejected, 50) * 1000, 1),
          "reject_ms_p99": round(pct(rejected, 99) * 1000, 1),
          "accepted": len(accepted), "accepted_ok": all(c == 200 for c in accepted),
          "floor_health_ms_p99": round(pct(floor, 99) * 1000, 1)})


def run_llamacpp(args: argparse.Namespace, ckpt: Path, out: Path, prompt: list[int],
                 levels: list[int]) -> dict[int, dict[str, Any]]:
    """llama.cpp's server on the same weights (GGUF), the same clients at each level; {} (and a skip
    line saying how to get it) when `--llamacpp-python` cannot run it."""
    ll = bench_module("serve_llamacpp")
    why = ll.missing(args.llamacpp_python)
    if why:
        emit({"bench": "vs_llamacpp", "skipped": "llama.cpp server", "reason": why})
        print(f"bench/serve.py: llama.cpp comparison skipped: {why}", file=sys.stderr)
        return {}
    gguf = ll.to_gguf(ckpt, out / "llamacpp", args.llamacpp_quant, args.llamacpp_sdist)
    body = ll.request_body(prompt, args.output_tokens)
    lengths = (args.prompt_tokens, args.output_tokens)
    n_ctx = max(512, args.prompt_tokens + args.output_tokens)
    proc, url = ll.start(args.llamacpp_python, gguf, args.threads, n_ctx, free_port())
    wait_ready(proc, url, "/v1/models", "llama_cpp.server")
    rows: dict[int, dict[str, Any]] = {}
    try:
        emit({"bench": "llamacpp_setup", "server": f"llama_cpp.server {ll.version(args.llamacpp_python)}",
              "gguf": gguf.name, "gguf_mb": round(gguf.stat().st_size / 2**20, 1), "threads": args.threads,
              "n_ctx": n_ctx, "usage_check": ll.check(url, body, *lengths), "prompt": body["prompt"],
              "parallel_requests": "one at a time: one llama.cpp context behind a lock, the other clients "
                                   "wait (interrupt_requests=false so none is cut short); no batching"})
        for c in levels:
            results, wall = asyncio.run(closed_loop(url, body, c, max(args.requests, 2 * c), None, lengths))
            rows[c] = report("serve", results, wall, backend=f"llama.cpp-{args.llamacpp_quant}",
                             max_batch_size=1, concurrency=c)
    finally:
        stop_server(proc)
    return rows


def compare_llamacpp(ours: dict[str, dict[int, dict[str, Any]]], llama: dict[int, dict[str, Any]],
                     quant: str, top: int) -> None:
    """The `vs_llamacpp` line (our batched output tokens/s / llama.cpp's) and a side-by-side table."""
    ratio = {b: {c: round(rows[c]["output_tok_s"] / max(llama[c]["output_tok_s"], 1e-9), 2) for c in llama}
             for b, rows in ours.items()}
    emit({"bench": "vs_llamacpp", "reference": f"llama.cpp-{quant}",
          "llamacpp_output_tok_s": {c: r["output_tok_s"] for c, r in llama.items()},
          "ours_batched_output_tok_s": {b: {c: rows[c]["output_tok_s"] for c in llama}
                                        for b, rows in ours.items()},
          "ratio": ratio, "goal": f">= 1x at {top} clients",
          "loadavg": [round(x, 2) for x in os.getloadavg()]})
    print("\n| server | clients | output tok/s | TTFT p50 / p99 ms | TPOT p50 ms | vs llama.cpp |")
    print("|---|---|---|---|---|---|")
    for c in llama:
        for name, row in [*((b, rows[c]) for b, rows in ours.items()), (f"llama.cpp {quant}", llama[c])]:
            vs = f"{ratio[name][c]:.2f}x" if name in ratio else "1x"
            ttft = f"{row['ttft_p50_ms']:.0f} / {row['ttft_p99_ms']:.0f}"
            print(f"| {name} | {c} | {row['output_tok_s']} | {ttft} | {row['tpot_p50_ms']:.1f} | {vs} |")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    known = ("pytorch", "onnxruntime", "onnxruntime-int8")
    if not backends or any(b not in known for b in backends):
        raise SystemExit(f"--backend {args.backend!r}: expected one or more of {', '.join(known)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        ckpt = build_checkpoint(args, out)
        prompt = [2] + [100 + (i % 150) for i in range(args.prompt_tokens - 1)]
        body = {"model": "bench", "prompt": prompt, "max_tokens": args.output_tokens, "temperature": 0,
                "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
        emit({"bench": "setup", "backend": args.backend, "preset": args.preset,
              "checkpoint": str(args.checkpoint), "prompt_tokens": args.prompt_tokens,
              "output_tokens": args.output_tokens, "threads": args.threads, "machine": platform.machine(),
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "loadavg": [round(x, 2) for x in os.getloadavg()]})
        seq = sequential_generate(ckpt, args, prompt, max(4, args.requests // 4))
        top = max(levels)
        batched_rates: dict[str, float] = {}
        batched_rows: dict[str, dict[int, dict[str, Any]]] = {}
        for backend in backends:
            source = export(ckpt, out / backend, backend)
            rows: dict[tuple[int, int], dict[str, Any]] = {}
            for batch in (1, args.max_batch_size):
                proc, url = start_server(source, args, batch, max(levels) + args.max_queue, backend)
                try:
                    for c in levels:
                        total = max(args.requests, 2 * c)  # every client sends at least two requests
                        probes: list[float] = []
                        results, wall = asyncio.run(closed_loop(url, body, c, total, probes))
                        rows[(batch, c)] = report("serve", results, wall, backend=backend,
                                                  max_batch_size=batch, concurrency=c,
                                                  **summary("health_probe", probes))
                finally:
                    stop_server(proc)
            proc, url = start_server(source, args, 4, 4, backend)
            try:
                asyncio.run(overload(url, body, 8))
            finally:
                stop_server(proc)
            batched, single = rows[(args.max_batch_size, top)], rows[(1, top)]
            batched_rows[backend] = {c: rows[(args.max_batch_size, c)] for c in levels}
            batched_rates[backend] = batched["output_tok_s"]
            emit({"bench": "summary", "backend": backend, "concurrency": top,
                  "batched_output_tok_s": batched["output_tok_s"],
                  "one_at_a_time_output_tok_s": single["output_tok_s"],
                  "speedup": round(batched["output_tok_s"] / max(single["output_tok_s"], 1e-9), 2),
                  "goal_speedup": 3.0,
                  "sequential_generate_output_tok_s": seq["output_tok_s"],
                  "ttft_p99_ms": batched["ttft_p99_ms"]})
        if len(backends) > 1:
            first = backends[0]
            emit({"bench": "backends", "concurrency": top, "batched_output_tok_s": batched_rates,
                  f"ratio_vs_{first}": {b: round(r / max(batched_rates[first], 1e-9), 2)
                                        for b, r in batched_rates.items()},
                  "goal_int8_vs_pytorch": 2.0})
        if args.llamacpp_python:
            llama = run_llamacpp(args, ckpt, out, prompt, levels)
            if llama:
                compare_llamacpp(batched_rows, llama, args.llamacpp_quant, top)


if __name__ == "__main__":
    main()
