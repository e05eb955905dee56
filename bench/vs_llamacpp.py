"""Benchmark: salesai's CPU engines against llama.cpp on the same weights (issue 16's table).

What: builds the `base` preset with random weights (seed 0), writes it three ways into
`--work` (a salesai checkpoint; an ONNX export with int8, q8 and q4 decoders; a `--format hf`
export with a small SentencePiece tokenizer), converts the hf export to GGUF f32 and q8_0
with the `convert_hf_to_gguf.py` that the llama-cpp-python source package vendors (and
q4_0 through llama.cpp's own quantiser), then measures every engine in its own process:
  - decode tokens/s at batch 1: 16-token prompt, 64 greedy tokens, timed from the first
    generated token to the last (prefill excluded);
  - prefill tokens/s: one 512-token prompt, time to its last position's logits;
  - batched decode (`--batches`, default 8 and 16 sequences, the server's case; at the
    largest `--threads` only): summed
    tokens/s of that many 16-token prompts decoded together (llama.cpp: one llama_batch with
    one token per sequence per step, its parallel-decoding API);
  - accuracy (1 thread, once): greedy tokens equal to PyTorch fp32's (of 32) and the max
    logit difference against PyTorch fp32, teacher-forced on the same 48 tokens.
Engines alternate round by round (each round starts every engine as a fresh process, in a
rotated order), medians of `--rounds` (>= 3), at each of `--threads` (default 1 and 2), with
OMP_WAIT_POLICY=PASSIVE for every engine. One JSON line per measurement, then the table.

llama.cpp comes from llama-cpp-python, which this script never builds: install it from source
for this CPU (15-50 minutes on 2 cores) with the bench extra's instructions in docs/export.md.
Without it the salesai engines are measured alone and the script says how to get it.

Run: python bench/vs_llamacpp.py [--rounds 3] [--threads 1 2] [--llama-python PY] [--llama-sdist TGZ]
What it is not: a test; on a shared machine only ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SALESAI = ["torch", "ort-fp32", "ort-int8", "ort-q8", "ort-q4"]
LLAMA = ["llama-f32", "llama-q8_0", "llama-q4_0"]
PROMPT_LEN, NEW_TOKENS, PREFILL_LEN, CHECK_TOKENS = 16, 64, 512, 32
BUILD_HELP = ("llama-cpp-python is not installed for {py}; build it from source for this CPU (15-50 minutes "
              "on 2 cores):\n  CMAKE_ARGS=\"-DGGML_NATIVE=ON -DGGML_OPENMP=ON -DLLAVA_BUILD=OFF\" "
              "CMAKE_BUILD_PARALLEL_LEVEL=2 \\\n    pip install --no-binary llama-cpp-python "
              "llama-cpp-python==0.3.36 gguf\n"
              "then rerun (or pass --llama-python /path/to/that/venv/bin/python).")


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def prompt_ids(length: int, seed: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(11, 32000, length)]


# ----------------------------------------------------------------------------- preparation
def prepare(work: Path, sdist: Path | None, llama_python: str | None) -> dict[str, Any]:
    """Checkpoint, ONNX export, hf export, GGUF files (when llama.cpp is there); reused when present."""
    import torch

    from salesai import ModelConfig, SalesAIModel
    from salesai.export.hf import export_hf
    from salesai.export.onnx import export_onnx
    from salesai.tokenizer import Tokenizer

    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = SalesAIModel(ModelConfig.from_name("base")).eval()
    if not (work / "ckpt" / "config.json").is_file():
        model.save_pretrained(work / "ckpt")
    if not (work / "onnx" / "decoder.q4.onnx").is_file():
        export_onnx(model, None, work / "onnx", quantize="int8,q8,q4", force=True)
    files: dict[str, Any] = {"ckpt": str(work / "ckpt"), "onnx": str(work / "onnx")}
    if llama_python is None:
        return files
    if not (work / "hf" / "config.json").is_file():
        corpus = ["def f(x):\n    return x + 1\n", "the quick brown fox jumps over the lazy dog\n"] * 50
        tok = Tokenizer.train(iter(corpus), vocab_size=300, num_threads=1, verbose=False)
        export_hf(model, tok, work / "hf")  # the converter pads the vocabulary to the model's 32000
    converter = find_converter(work, sdist)
    for outtype in ("f32", "q8_0"):
        gguf = work / f"base-{outtype}.gguf"
        if not gguf.is_file():
            subprocess.run([sys.executable, str(converter), str(work / "hf"), "--outtype", outtype,
                            "--outfile", str(gguf)], check=True, capture_output=True)
        files[f"llama-{outtype}"] = str(gguf)
    q4 = work / "base-q4_0.gguf"
    if not q4.is_file():  # llama.cpp's own quantiser, through the library's API
        code = ("import llama_cpp, sys\np = llama_cpp.llama_model_quantize_default_params()\n"
                "p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0\n"
                "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p))\n")
        subprocess.run([llama_python, "-c", code, files["llama-f32"], str(q4)], check=False,
                       capture_output=True)
    if q4.is_file():
        files["llama-q4_0"] = str(q4)
    return files


def find_converter(work: Path, sdist: Path | None) -> Path:
    """convert_hf_to_gguf.py from the llama-cpp-python sdist (a .tar.gz or an unpacked directory)."""
    if sdist is None:
        got = list(work.glob("llama_cpp_python-*.tar.gz"))
        if not got:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "-d", str(work), "llama-cpp-python==0.3.36"], check=True, capture_output=True)
            got = list(work.glob("llama_cpp_python-*.tar.gz"))
        sdist = got[0]
    if sdist.is_file():
        root = work / sdist.name.removesuffix(".tar.gz")
        if not root.is_dir():
            with tarfile.open(sdist) as tar:
                tar.extractall(work, filter="data")
        sdist = root
    path = sdist / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (expected an unpacked llama-cpp-python sdist)")
    return path


# ---------------------------------------------------------------------------- engine workers
class Engine:
    """One engine in this process: `logits(ids, keep_all)` over a fresh context, and a decode loop."""

    def __init__(self, name: str, files: dict[str, Any], threads: int, logits_all: bool = False) -> None:
        self.name = name
        if name == "torch":
            import torch

            from salesai import SalesAIModel
            from salesai.model.cache import StaticKVCache

            torch.set_num_threads(threads)
            from salesai.model.generation import decode_layout

            self.model = SalesAIModel.from_pretrained(files["ckpt"]).eval()
            decode_layout(self.model)  # what `salesai generate --backend torch` runs
            self.cache_cls = StaticKVCache
        elif name.startswith("ort-"):
            from salesai.ort_runtime import OrtDecoder

            self.dec = OrtDecoder(files["onnx"], variant=name.split("-")[1], threads=threads)
        else:
            import llama_cpp

            self.llm = llama_cpp.Llama(model_path=files[name], n_ctx=1024, n_batch=PREFILL_LEN,
                                       n_ubatch=PREFILL_LEN, n_threads=threads, n_threads_batch=threads,
                                       logits_all=logits_all, verbose=False)
            self.logits_all = logits_all
            self.vocab = self.llm.n_vocab()

    def _llama_last(self) -> np.ndarray:
        """The last evaluated position's logits (V,): from `scores` with logits_all, else the context."""
        if self.logits_all:
            return np.asarray(self.llm.scores[self.llm.n_tokens - 1])
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.vocab,))

    def prefill(self, ids: list[int], keep_all: bool = False) -> np.ndarray:
        """Start a new sequence with `ids`; return the last logits (V,) or all (T, V)."""
        if self.name == "torch":
            import torch

            self.cache = self.cache_cls.for_model(self.model, 1, len(ids) + NEW_TOKENS + 1)
            with torch.inference_mode():
                if keep_all:
                    return self.model(torch.tensor([ids])).logits[0].numpy()
                return self.model.step(torch.tensor([ids]), self.cache)[0].numpy()
        if self.name.startswith("ort-"):
            from salesai.ort_runtime import positions

            self.mask = np.ones((1, len(ids)), np.int64)
            logits, self.past = self.dec.step(np.array([ids]), self.mask, positions(self.mask),
                                              self.dec.empty_past(1), logits_to_keep=0 if keep_all else 1)
            return logits[0] if keep_all else logits[0, -1]
        self.llm.reset()
        self.llm.eval(ids)
        return np.asarray(self.llm.scores[: len(ids)]).copy() if keep_all else self._llama_last()

    def step(self, token: int) -> np.ndarray:
        """Feed one token; return the next logits (V,)."""
        if self.name == "torch":
            import torch

            with torch.inference_mode():
                return self.model.step(torch.tensor([[token]]), self.cache)[0].numpy()
        if self.name.startswith("ort-"):
            self.mask = np.concatenate([self.mask, np.ones((1, 1), np.int64)], 1)
            pos = np.array([[self.mask.shape[1] - 1]], np.int64)
            logits, self.past = self.dec.step(np.array([[token]]), self.mask, pos, self.past,
                                              logits_to_keep=1)
            return logits[0, -1]
        self.llm.eval([token])
        return self._llama_last()

    def greedy(self, ids: list[int], n: int) -> tuple[list[int], float]:
        """n greedy tokens after `ids`; seconds from the first generated token to the last."""
        logits = self.prefill(ids)
        out = [int(np.argmax(logits))]
        t0 = time.perf_counter()
        for _ in range(n - 1):
            out.append(int(np.argmax(self.step(out[-1]))))
        return out, time.perf_counter() - t0


def batched_decode(engine: str, files: dict[str, Any], threads: int, n_seq: int) -> float:
    """Aggregate decode tokens/s of `n_seq` sequences (16-token prompts, 64 greedy tokens each)."""
    prompts = [prompt_ids(PROMPT_LEN, 10 + s) for s in range(n_seq)]
    if engine.startswith("llama"):
        return llama_batched(files[engine], threads, prompts)
    kwargs: dict[str, Any] = {"max_new_tokens": NEW_TOKENS, "temperature": 0.0, "stop_token_ids": []}
    if engine == "torch":
        import torch

        from salesai import SalesAIModel
        from salesai.model.generation import decode_layout

        torch.set_num_threads(threads)
        model = SalesAIModel.from_pretrained(files["ckpt"]).eval()
        decode_layout(model)
        stream: Any = lambda: model.stream(prompts, **kwargs)  # noqa: E731
    else:
        from salesai.ort_runtime import OrtGenerator

        gen = OrtGenerator.from_export(files["onnx"], variant=engine.split("-")[1], threads=threads)
        stream = lambda: gen.stream(prompts, **kwargs)  # noqa: E731
    for _ in stream():  # warm-up
        break
    first = last = time.perf_counter()
    for i, _ in enumerate(stream()):
        last = time.perf_counter()
        if i == 0:
            first = last
    return n_seq * (NEW_TOKENS - 1) / (last - first)


def llama_batched(path: str, threads: int, prompts: list[list[int]]) -> float:
    """llama.cpp's own parallel decoding (one llama_batch of one token per sequence per step)."""
    import llama_cpp as lc

    n_seq, plen = len(prompts), len(prompts[0])
    lc.llama_backend_init()
    model = lc.llama_model_load_from_file(path.encode(), lc.llama_model_default_params())
    cp = lc.llama_context_default_params()
    cp.n_ctx = n_seq * (plen + NEW_TOKENS) + 64
    cp.n_batch = cp.n_ubatch = max(PREFILL_LEN, n_seq * plen)
    cp.n_seq_max, cp.kv_unified = n_seq, True
    cp.n_threads = cp.n_threads_batch = threads
    ctx = lc.llama_init_from_model(model, cp)
    vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
    batch = lc.llama_batch_init(cp.n_batch, 0, n_seq)

    def decode(items: list[tuple[int, int, int, bool]]) -> None:
        batch.n_tokens = len(items)
        for i, (tok, pos, seq, want) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, pos, 1, want
            batch.seq_id[i][0] = seq
        if lc.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def argmax(i: int) -> int:
        return int(np.argmax(np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(vocab,))))

    decode([(t, p, s, p == plen - 1) for s, row in enumerate(prompts) for p, t in enumerate(row)])
    tokens = [argmax(s * plen + plen - 1) for s in range(n_seq)]
    t0 = time.perf_counter()
    for step in range(NEW_TOKENS - 1):
        decode([(tokens[s], plen + step, s, True) for s in range(n_seq)])
        tokens = [argmax(s) for s in range(n_seq)]
    elapsed = time.perf_counter() - t0
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    return n_seq * (NEW_TOKENS - 1) / elapsed


def worker(args: argparse.Namespace) -> None:
    files = json.loads(Path(args.files).read_text())
    args.threads = args.threads[0]  # one value for a worker
    if args.worker_mode.startswith("batch"):
        n_seq = int(args.worker_mode[5:])
        print(json.dumps({"decode": batched_decode(args.worker, files, args.threads, n_seq)}))
        return
    if args.worker_mode == "speed":
        eng = Engine(args.worker, files, args.threads)
        eng.greedy(prompt_ids(PROMPT_LEN, 1), 8)  # warm-up
        _, decode_s = eng.greedy(prompt_ids(PROMPT_LEN, 0), NEW_TOKENS)
        long = prompt_ids(PREFILL_LEN, 2)
        t0 = time.perf_counter()
        eng.prefill(long)
        prefill_s = time.perf_counter() - t0
        print(json.dumps({"decode": (NEW_TOKENS - 1) / decode_s, "prefill": PREFILL_LEN / prefill_s}))
        return
    eng = Engine(args.worker, files, 1, logits_all=True)  # accuracy: the tokens, then teacher-forced logits
    prompt = prompt_ids(PROMPT_LEN, 0)
    tokens, _ = eng.greedy(prompt, CHECK_TOKENS)
    reference = json.loads(Path(args.reference).read_text()) if args.reference else None
    forced = prompt + (reference["tokens"] if reference else tokens)
    logits = eng.prefill(forced, keep_all=True)  # (48, V)
    np.save(Path(args.files).parent / f"logits-{args.worker}.npy", logits.astype(np.float32))
    print(json.dumps({"tokens": tokens}))


def run_worker(engine: str, mode: str, threads: int, files_json: Path, python: str,
               reference: Path | None = None) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [python, __file__, "--worker", engine, "--worker-mode", mode, "--threads", str(threads),
           "--files", str(files_json)]
    if reference is not None:
        cmd += ["--reference", str(reference)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} ({mode}, {threads} threads) failed:\n{proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------------------------ driver
def has_llama(python: str) -> bool:
    return subprocess.run([python, "-c", "import llama_cpp"], capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", type=Path, default=Path(".bench-vs-llamacpp"), help="cache of the model files")
    ap.add_argument("--llama-python", default=None, help="a python with llama_cpp (default: this one)")
    ap.add_argument("--llama-sdist", type=Path, default=None, help="llama-cpp-python sdist (.tar.gz or dir)")
    ap.add_argument("--engines", nargs="+", default=None, help="subset of engines to run")
    ap.add_argument("--batches", type=int, nargs="*", default=[8, 16], help="parallel sequences (decode)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-mode", default="speed", help=argparse.SUPPRESS)
    ap.add_argument("--files", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reference", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.rounds < 3:
        print("bench/vs_llamacpp.py: --rounds below 3 gives no meaningful median", file=sys.stderr)
    llama_py = args.llama_python or sys.executable
    llama_ok = has_llama(llama_py)
    if not llama_ok:
        emit({"bench": "vs_llamacpp", "skipped": "llama.cpp", "reason": BUILD_HELP.format(py=llama_py)})
        print(BUILD_HELP.format(py=llama_py), file=sys.stderr)
    files = prepare(args.work.resolve(), args.llama_sdist, llama_py if llama_ok else None)
    files_json = args.work.resolve() / "files.json"
    files_json.write_text(json.dumps(files))
    engines = [e for e in SALESAI + LLAMA if e in files or e in SALESAI]
    engines = [e for e in engines if args.engines is None or e in args.engines]
    py = {e: (llama_py if e.startswith("llama") else sys.executable) for e in engines}
    load = os.getloadavg()
    emit({"bench": "vs_llamacpp", "what": "setup", "engines": engines, "rounds": args.rounds,
          "threads": args.threads, "loadavg_start": [round(x, 2) for x in load],
          "omp_wait_policy": "PASSIVE", "prompt": PROMPT_LEN, "new_tokens": NEW_TOKENS,
          "prefill": PREFILL_LEN})

    # accuracy, once: PyTorch fp32 first (the reference tokens), then everyone teacher-forced on them
    ref_tokens = run_worker("torch", "accuracy", 1, files_json, sys.executable)
    ref_path = args.work.resolve() / "reference.json"
    ref_path.write_text(json.dumps(ref_tokens))
    ref_logits = np.load(args.work.resolve() / "logits-torch.npy")
    accuracy: dict[str, dict[str, Any]] = {}
    for e in engines:
        got = run_worker(e, "accuracy", 1, files_json, py[e], ref_path)
        logits = np.load(args.work.resolve() / f"logits-{e}.npy")
        equal = sum(a == b for a, b in zip(got["tokens"], ref_tokens["tokens"], strict=True))
        forced = int((logits[PROMPT_LEN - 1: -1].argmax(-1) == np.array(ref_tokens["tokens"])).sum())
        accuracy[e] = {"equal_tokens": equal, "teacher_forced_equal": forced,
                       "max_abs_logit_diff": float(np.abs(logits - ref_logits).max()),
                       "median_position_logit_diff": float(np.median(np.abs(logits - ref_logits).max(-1)))}
        emit({"bench": "vs_llamacpp", "what": "accuracy", "engine": e, "of": CHECK_TOKENS, **accuracy[e]})

    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    for threads in args.threads:
        for r in range(args.rounds):
            order = engines[r % len(engines):] + engines[: r % len(engines)]
            for e in order:
                got = run_worker(e, "speed", threads, files_json, py[e])
                slot = results.setdefault((e, threads), {"decode": [], "prefill": []})
                slot["decode"].append(got["decode"])
                slot["prefill"].append(got["prefill"])
        for n_seq in args.batches if threads == max(args.threads) else []:  # batched: the most threads only
            for r in range(args.rounds):
                for e in engines[r % len(engines):] + engines[: r % len(engines)]:
                    got = run_worker(e, f"batch{n_seq}", threads, files_json, py[e])
                    results[(e, threads)].setdefault(f"batch{n_seq}", []).append(got["decode"])
        for e in engines:
            slot = results[(e, threads)]
            emit({"bench": "vs_llamacpp", "what": "speed", "engine": e, "threads": threads,
                  "decode_tokens_s": round(statistics.median(slot["decode"]), 1),
                  "prefill_tokens_s": round(statistics.median(slot["prefill"]), 1),
                  "decode_runs": [round(v, 1) for v in slot["decode"]],
                  "prefill_runs": [round(v, 1) for v in slot["prefill"]], "loadavg": os.getloadavg()[0],
                  **{f"{k}_tokens_s": round(statistics.median(v), 1) for k, v in slot.items()
                     if k.startswith("batch")}})
    table(engines, results, accuracy, args.threads, load, os.getloadavg())


def table(engines: list[str], results: dict[tuple[str, int], dict[str, list[float]]],
          accuracy: dict[str, dict[str, Any]], threads: list[int], start: Any, end: Any) -> None:
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in results.items()}
    print("\n| case | threads | " + " | ".join(engines) + " |")
    print("|---|---|" + "---|" * len(engines))
    for t in threads:
        print(f"| decode tok/s | {t} | " + " | ".join(f"{med[(e, t)]['decode']:.1f}" for e in engines) + " |")
    batches = sorted({k for d in med.values() for k in d if k.startswith("batch")}, key=lambda k: int(k[5:]))
    for b in batches:
        for t in (t for t in threads if b in med[(engines[0], t)]):
            print(f"| decode tok/s, {b[5:]} sequences (sum) | {t} | "
                  + " | ".join(f"{med[(e, t)][b]:.1f}" for e in engines) + " |")
    for t in threads:
        print(f"| prefill {PREFILL_LEN} tok/s | {t} | "
              + " | ".join(f"{med[(e, t)]['prefill']:.1f}" for e in engines) + " |")
    print(f"| greedy tokens equal to torch fp32 (of {CHECK_TOKENS}) | 1 | "
          + " | ".join(str(accuracy[e]["equal_tokens"]) for e in engines) + " |")
    print(f"| teacher-forced argmax equal to torch fp32 (of {CHECK_TOKENS}) | 1 | "
          + " | ".join(str(accuracy[e]["teacher_forced_equal"]) for e in engines) + " |")
    print("| median over positions of the max logit difference | | "
          + " | ".join(f"{accuracy[e]['median_position_logit_diff']:.3g}" for e in engines) + " |")
    print("| max logit difference vs torch fp32 | | "
          + " | ".join(f"{accuracy[e]['max_abs_logit_diff']:.3g}" for e in engines) + " |")
    print(f"\nload average at start {[round(x, 2) for x in start]}, at end {[round(x, 2) for x in end]}")
    ours = [e for e in engines if not e.startswith("llama")]
    if "llama-q8_0" in engines and "llama-f32" in engines and "torch" in engines:
        for t in threads:
            best = max(ours, key=lambda e: med[(e, t)]["decode"])
            ratio = med[(best, t)]["decode"] / med[("llama-q8_0", t)]["decode"]
            torch_ratio = med[("torch", t)]["decode"] / med[("llama-f32", t)]["decode"]
            print(f"{t} thread(s): fastest salesai decode {best} = {ratio:.2f}x llama.cpp q8_0 "
                  f"(goal >= 1.2x); torch = {torch_ratio:.2f}x llama.cpp f32 (goal >= 1)")


if __name__ == "__main__":
    main()
