"""Audio benchmarks: log-mel speed against transformers' WhisperFeatureExtractor; digit transcription.

What, one JSON line per figure (then a summary line against the issue's goals):
- `features`: clips/s of salesai_audio's batched torch log-mel against transformers'
  `WhisperFeatureExtractor` on the same clips, same thread count: the extractor's own call
  (`extractor(clips)`, which uses its torch path when torch is installed) and its pure NumPy
  path (`_np_extract_fbank_features`), the "numpy reference". The outputs are checked to
  agree to 1e-4 first. Two scenarios, `--batch` clips per call: clips of 1-10 s padded to
  Whisper's 30 s window (the usual case: frames in the trailing silence cost nothing in
  salesai's version), and clips filling the whole 30 s (every frame transformed).
- `digits`: `salesai audio make-data digits` (espeak-ng, `--clips`, `--seed`), then
  `salesai train` of the tiny-audio model (`TINY_AUDIO`) for `--steps` optimizer steps, then
  `salesai_audio.transcribe`: exact-string accuracy and digit error rate on seen voices (a
  tenth of the training speakers' clips, kept out of training) and held-out voices (the test
  split's speakers); then the ONNX export: ONNX Runtime transcripts equal to torch's, and the
  int8 accuracy drop. Skipped, with the reason, without espeak-ng.
- `flite`: the same trained on espeak-ng + flite voices, held-out accuracy per engine.

Usage: python bench/audio.py [--tasks features,digits,flite] [--steps N] [--clips N] [--quick]
Figures from a busy shared machine are noisy: compare numbers from the same run only.
What it is not: a test; nothing here asserts.
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

import numpy as np
import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--tasks", default="features,digits,flite", help="comma list: features, digits, flite")
    p.add_argument("--threads", default="1", help="comma list of torch thread counts")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=16, help="clips per feature-extraction call")
    p.add_argument("--steps", type=int, default=2164, help="optimizer steps of the digits model")
    p.add_argument("--clips", type=int, default=3000, help="clips of the digits data set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="1 repeat, batch 4, 300 steps on 400 clips")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.batch, args.steps, args.clips = 1, 4, 300, 400
    return args


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of `fn()` over `repeats` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_features(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import WhisperFeatureExtractor

    from salesai_audio.features import log_mel

    extractor = WhisperFeatureExtractor()  # constructor defaults: 80 mels, 30 s, no download
    rng = np.random.default_rng(args.seed)
    scenarios = {  # name -> clip lengths in samples, each padded to Whisper's 30 s window
        "clips_1_to_10s": [int(n) for n in rng.integers(16000, 160000, args.batch)],
        "full_30s": [480000] * args.batch,
    }
    best: dict[str, Any] = {}
    for scenario, lengths in scenarios.items():
        clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]
        padded = np.zeros((args.batch, 480000), np.float32)
        for i, clip in enumerate(clips):
            padded[i, : clip.shape[0]] = clip
        waves = torch.from_numpy(padded)
        reference = extractor(clips, sampling_rate=16000, return_tensors="np").input_features
        diff = float(np.abs(log_mel(waves).numpy() - reference).max())
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            t_ours = timed(lambda waves=waves: log_mel(waves), args.repeats)
            t_hf = timed(
                lambda clips=clips: extractor(clips, sampling_rate=16000, return_tensors="np"), args.repeats
            )
            t_np = timed(
                lambda padded=padded: extractor._np_extract_fbank_features(padded, "cpu"), args.repeats
            )
            record = {
                "bench": "audio.features",
                "scenario": scenario,
                "threads": threads,
                "batch": args.batch,
                "window_seconds": 30,
                "audio_seconds_mean": round(sum(lengths) / len(lengths) / 16000, 2),
                "max_abs_diff": diff,
                "salesai_clips_s": round(args.batch / t_ours, 1),
                "whisper_extractor_clips_s": round(args.batch / t_hf, 1),
                "whisper_numpy_clips_s": round(args.batch / t_np, 1),
                "speedup_vs_extractor": round(t_hf / t_ours, 2),
                "speedup_vs_numpy": round(t_np / t_ours, 2),
            }
            emit(record)
            best.setdefault(scenario, record)
    return best["clips_1_to_10s"]


TINY_AUDIO = {  # the `tiny-audio` model: the tiny decoder plus a patch-4 audio encoder on a 3 s window
    "preset": "tiny",
    "model": {
        "encoders": {
            "audio": {
                "type": "audio",
                "hidden_dim": 64,
                "num_layers": 2,
                "num_heads": 4,
                "intermediate_dim": 128,
                "patch_size": 4,
                "max_seconds": 3.0,
            }
        }
    },
}


def score(records: list[dict[str, Any]], truth: dict[str, str]) -> dict[str, Any]:
    """Exact-string accuracy and digit error rate (edit distance / reference digits)."""
    exact, errors, digits = 0, 0, 0
    for r in records:
        ref, hyp = truth[r["file"]].split(), str(r.get("text", "")).split()
        exact += ref == hyp
        errors += edit_distance(ref, hyp)
        digits += len(ref)
    return {
        "n": len(records),
        "exact": round(exact / max(len(records), 1), 4),
        "der": round(errors / digits, 4),
    }


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def read_split(path: Any) -> tuple[list[str], dict[str, str], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    files = [str(path.parent / r["audio"]) for r in rows]
    return files, dict(zip(files, (r["response"] for r in rows), strict=True)), rows


def bench_digits(
    args: argparse.Namespace, engines: tuple[str, ...] = ("espeak-ng",)
) -> dict[str, Any] | None:
    """make-data digits -> salesai train (tiny-audio) -> transcribe seen / held-out voices, torch and ONNX."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from salesai_audio.digits import make_digits
    from salesai_audio.transcribe import transcribe

    missing = [e for e in engines if shutil.which(e) is None]
    if missing:
        emit({"bench": "audio.digits", "engines": engines, "skipped": f"{missing[0]} is not installed"})
        return None
    name = "+".join(engines)
    work = Path(tempfile.mkdtemp(prefix="salesai-audio-bench-"))
    start = time.perf_counter()
    make_digits(work / "speech", n=args.clips, seed=args.seed, engines=engines)
    fit = work / "speech" / "train.jsonl"
    lines = fit.read_text().splitlines()
    n_seen = max(1, len(lines) // 10)  # clips of training speakers kept out of training: "seen voices"
    (work / "speech" / "seen.jsonl").write_text("\n".join(lines[:n_seen]) + "\n")
    (work / "speech" / "fit.jsonl").write_text("\n".join(lines[n_seen:]) + "\n")
    (work / "tiny-audio.json").write_text(json.dumps(TINY_AUDIO))
    data_s = time.perf_counter() - start
    cmd = [
        "salesai",
        "train",
        "--config",
        str(work / "tiny-audio.json"),
        "--data",
        str(work / "speech/fit.jsonl"),
        "--val",
        str(work / "speech/test.jsonl"),
        "--out",
        str(work / "run"),
        "--max-steps",
        str(args.steps),
        "--json",
    ]
    start = time.perf_counter()
    trained = subprocess.run(cmd, capture_output=True, text=True, check=False)
    train_s = time.perf_counter() - start
    if trained.returncode != 0:
        emit({"bench": "audio.digits", "engines": name, "error": trained.stderr.strip().splitlines()[-1:]})
        return None
    result: dict[str, Any] = {
        "bench": "audio.digits",
        "engines": name,
        "steps": args.steps,
        "clips": args.clips,
        "seed": args.seed,
        "data_s": round(data_s, 1),
        "train_s": round(train_s, 1),
    }
    outputs = {}
    for split in ("seen", "test"):
        files, truth, rows = read_split(work / "speech" / f"{split}.jsonl")
        records = transcribe(work / "run", files, max_new_tokens=12)
        outputs[split] = [r.get("text") for r in records]
        result[split] = score(records, truth)
        for engine in engines if len(engines) > 1 else ():
            mine = [
                r for r, row in zip(records, rows, strict=True) if row["speaker"].startswith(engine + ":")
            ]
            result[f"{split}_{engine}"] = score(mine, truth)
    emit(result)
    export = subprocess.run(
        [
            "salesai",
            "export",
            str(work / "run"),
            "--format",
            "onnx",
            "--quantize",
            "int8",
            "--out",
            str(work / "onnx"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if export.returncode == 0:
        files, truth, _ = read_split(work / "speech" / "test.jsonl")
        fp32 = transcribe(work / "onnx", files, backend="onnxruntime", max_new_tokens=12)
        int8 = transcribe(work / "onnx", files, backend="onnxruntime-int8", max_new_tokens=12)
        onnx = {
            "bench": "audio.onnx",
            "engines": name,
            "ort_equals_torch": [r.get("text") for r in fp32] == outputs["test"],
            "fp32": score(fp32, truth),
            "int8": score(int8, truth),
        }
        onnx["int8_exact_drop_points"] = round(100 * (onnx["fp32"]["exact"] - onnx["int8"]["exact"]), 2)
        emit(onnx)
        result["onnx"] = onnx
    else:
        emit({"bench": "audio.onnx", "error": export.stderr.strip().splitlines()[-1:]})
    shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tasks = {t.strip() for t in args.tasks.split(",") if t.strip()}
    emit({"bench": "audio.env", "python": platform.python_version(), "torch": torch.__version__})
    summary: dict[str, Any] = {"bench": "audio.summary"}
    if "features" in tasks:
        feats = bench_features(args)
        summary["features_speedup_vs_numpy"] = feats["speedup_vs_numpy"]
        summary["features_goal_5x_met"] = feats["speedup_vs_numpy"] >= 5
    if "digits" in tasks:
        digits = bench_digits(args)
        if digits:
            summary["espeak_seen_exact"] = digits["seen"]["exact"]
            summary["espeak_heldout_exact"] = digits["test"]["exact"]
            summary["goals_met"] = digits["seen"]["exact"] >= 0.99 and digits["test"]["exact"] >= 0.97
            if "onnx" in digits:
                summary["ort_equals_torch"] = digits["onnx"]["ort_equals_torch"]
                summary["int8_exact_drop_points"] = digits["onnx"]["int8_exact_drop_points"]
    if "flite" in tasks:
        mixed = bench_digits(args, engines=("espeak-ng", "flite"))
        if mixed:
            summary["mixed_heldout_exact"] = {e: mixed[f"test_{e}"]["exact"] for e in ("espeak-ng", "flite")}
    emit(summary)


if __name__ == "__main__":
    main()
