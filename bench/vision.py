"""Image-to-text benchmarks for salesai-vision: captions and questions on procedural data, speed, ONNX.

Budgets are optimizer steps; seeds are fixed; every figure is one JSON line with its step count and
wall time, beside the goal of issue 8:

  {"bench": "vision", "task": "shapes-captions-heldout-triples", "metric": "exact", "value": ...,
   "goal": ">= 0.99", "steps": 3000, "seed": 0, "wall_s": ...}

Tasks (`--tasks`, default all):
- `shapes`: tiny-vision trained on shapes/train.jsonl (captions + questions); exact captions on
  held-out triples (median over seeds), exact / per-word captions on held-out objects, exact answers;
- `digits`: the same on digit grids (needs scikit-learn): 4-digit exact / per digit, answers;
- `speed`: images/s of `vit` vs transformers' ViTModel with the same weights and threads;
- `onnx`: encoder images/s in ONNX Runtime fp32/int8 vs torch, and the int8 caption-accuracy drop
  (greedy captions of a trained shapes model through the exported graphs).

Usage: python bench/vision.py [--tasks shapes,digits,speed,onnx] [--steps 3000] [--seeds 0,1,2]
       [--n 2000] [--threads 1] [--quick]     (--quick: 150 steps, 1 seed, n=400, 100 test records)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

# `python bench/vision.py` puts bench/ first on sys.path, where bench/onnx.py would shadow the onnx package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

GOALS = {
    "shapes-captions-heldout-triples": ">= 0.99 exact (median of 3 seeds) within 3000 steps",
    "shapes-captions-heldout-objects": "report; aim >= 0.60 exact",
    "digits-captions-unseen-handwriting": ">= 0.95 exact / >= 0.985 per digit",
    "questions": ">= 0.97 exact",
    "encoder-speed": ">= 1x transformers ViTModel",
    "onnx": ">= 1x torch; int8 caption drop <= 1 point",
}


def emit(**record: Any) -> None:
    print(json.dumps({"bench": "vision", **record}), flush=True)


def make_data(kind: str, out: Path, n: int, seed: int) -> Path:
    from salesai_vision.data import make_data as build

    d = out / f"{kind}-{seed}"
    if not (d / "train.jsonl").is_file():
        build(kind, d, n=n, seed=seed)
    return d


def train(data: Path, steps: int, seed: int, out: Path, batch_size: int = 32) -> tuple[Any, Any, float]:
    """tiny-vision trained on data/train.jsonl for `steps`; returns (model, tokenizer, wall seconds)."""
    from salesai import ModelConfig, SalesAIModel, Tokenizer
    from salesai.data.records import RecordDataset, iter_record_texts
    from salesai.train.trainer import TrainConfig, Trainer

    t0 = time.perf_counter()
    tok = Tokenizer.train(iter_record_texts([data / "train.jsonl"]), vocab_size=512, verbose=False)
    torch.manual_seed(seed)
    model = SalesAIModel(ModelConfig.from_name("tiny-vision", vocab_size=len(tok)))
    ds = RecordDataset.from_files([data / "train.jsonl"], tok, 64, model)
    cfg = TrainConfig(max_steps=steps, batch_size=batch_size, seq_len=64, lr=3e-3, min_lr=3e-4,
                      warmup_steps=max(1, steps // 20), eval_every=0, save_every=0, precision="fp32",
                      out_dir=str(out / f"run-{data.name}-{steps}"), log_every=10**9, seed=seed)
    Trainer(model, cfg, ds, None, tokenizer=tok, progress=False, log=lambda _m: None).fit()
    return model, tok, time.perf_counter() - t0


def scored(model: Any, tok: Any, file: Path, task: str, limit: int, parts: bool = False) -> dict[str, Any]:
    """Exact / per-word scores of `task` records; `parts`: colour/shape/relation accuracy of captions too."""
    from salesai_vision.data.shapes import caption_parts
    from salesai_vision.evaluate import answer, read_records, score

    records = read_records(file, task=task, limit=limit)
    completions = answer(model, tok, records, max_new_tokens=40)
    result = score(records, completions)
    if parts:
        result["parts"] = caption_parts([r["response"] for r in records], completions)
    return result


def bench_shapes(args: argparse.Namespace, tmp: Path) -> None:
    triples: list[float] = []
    for seed in args.seeds:
        d = make_data("shapes", tmp, args.n, seed)
        model, tok, wall = train(d, args.steps, seed, tmp)
        common = {"steps": args.steps, "seed": seed, "train_wall_s": round(wall, 1)}
        s = scored(model, tok, d / "test.jsonl", "caption", args.limit, parts=True)
        triples.append(s["exact"])
        emit(task="shapes-captions-heldout-triples", metric="exact", value=s["exact"], per_word=s["per_word"],
             parts=s["parts"], n=s["n"], goal=GOALS["shapes-captions-heldout-triples"], **common)
        s = scored(model, tok, d / "test_objects.jsonl", "caption", args.limit, parts=True)
        emit(task="shapes-captions-heldout-objects", metric="exact", value=s["exact"], per_word=s["per_word"],
             parts=s["parts"], n=s["n"], goal=GOALS["shapes-captions-heldout-objects"], **common)
        s = scored(model, tok, d / "test.jsonl", "question", args.limit)
        emit(task="questions", data="shapes", metric="exact", value=s["exact"], tasks=s["tasks"], n=s["n"],
             goal=GOALS["questions"], **common)
    emit(task="shapes-captions-heldout-triples", metric="median_exact", value=statistics.median(triples),
         seeds=args.seeds, steps=args.steps, goal=GOALS["shapes-captions-heldout-triples"])


def bench_digits(args: argparse.Namespace, tmp: Path) -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        emit(task="digits", skipped="scikit-learn is not installed (pip install 'salesai-vision[data]')")
        return
    for seed in args.seeds[:1]:
        d = make_data("digits", tmp, args.n, seed)
        model, tok, wall = train(d, args.steps, seed, tmp)
        common = {"steps": args.steps, "seed": seed, "train_wall_s": round(wall, 1)}
        s = scored(model, tok, d / "test.jsonl", "caption", args.limit)
        emit(task="digits-captions-unseen-handwriting", metric="exact", value=s["exact"],
             per_digit=s["per_word"], n=s["n"], goal=GOALS["digits-captions-unseen-handwriting"], **common)
        s = scored(model, tok, d / "test.jsonl", "question", args.limit)
        emit(task="questions", data="digits", metric="exact", value=s["exact"], tasks=s["tasks"], n=s["n"],
             goal=GOALS["questions"], **common)


def _images_per_s(fn: Any, x: Any, repeats: int) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(times)


def bench_speed(args: argparse.Namespace) -> None:
    try:
        import transformers
    except ImportError:
        emit(task="encoder-speed", skipped="transformers is not installed (pip install 'salesai-vision[hf]')")
        return
    from salesai_vision.vit import vit

    shapes = (("vit-ti16-224", 224, 192, 12, 3), ("tiny-vision-64", 64, 64, 2, 4))
    for name, size, dim, layers, heads in shapes:
        cfg = transformers.ViTConfig(image_size=size, patch_size=16, hidden_size=dim,
                                     num_hidden_layers=layers, num_attention_heads=heads,
                                     intermediate_size=4 * dim, layer_norm_eps=1e-6)
        ref = transformers.ViTModel(cfg, add_pooling_layer=False).eval()
        ours = vit(image_size=size, hidden_dim=dim, num_layers=layers, num_heads=heads, cls_token=True).eval()
        ours.load_hf_state_dict(ref.state_dict())
        x = torch.randn(8, 3, size, size)

        def theirs(t: torch.Tensor, ref: Any = ref) -> torch.Tensor:
            return ref(pixel_values=t).last_hidden_state

        with torch.inference_mode():
            a = _images_per_s(ours, x, args.repeats)
            b = _images_per_s(theirs, x, args.repeats)
        emit(task="encoder-speed", model=name, batch=8, threads=torch.get_num_threads(),
             salesai_images_per_s=a, transformers_images_per_s=b, ratio=a / b, goal=GOALS["encoder-speed"])


def bench_onnx(args: argparse.Namespace, tmp: Path) -> None:
    from salesai.export.onnx import export_onnx
    from salesai.ort_runtime import OrtEncoder, OrtGenerator, read_manifest
    from salesai_vision.evaluate import read_records, score

    d = make_data("shapes", tmp, args.n, args.seeds[0])
    model, tok, wall = train(d, args.steps, args.seeds[0], tmp)
    out = export_onnx(model, tok, tmp / "onnx", quantize="int8", force=True)
    manifest = read_manifest(out)
    x = torch.randn(8, 3, 64, 64)
    with torch.inference_mode():
        torch_rate = _images_per_s(lambda t: model.projectors["image"](model.encoders["image"](t)), x,
                                   args.repeats)
    for variant in ("fp32", "int8"):
        enc = OrtEncoder(out, "image", manifest, variant=variant, threads=torch.get_num_threads())
        rate = _images_per_s(enc.encode, x.numpy(), args.repeats)
        emit(task="onnx-encoder-speed", variant=variant, images_per_s=rate, torch_images_per_s=torch_rate,
             ratio=rate / torch_rate, goal=GOALS["onnx"])
    records = read_records(d / "test.jsonl", task="caption", limit=args.limit)
    results = {}
    for variant in ("fp32", "int8"):
        gen = OrtGenerator.from_export(out, variant=variant, threads=torch.get_num_threads())
        t0 = time.perf_counter()
        completions = [gen.generate_text(r["prompt"], media={"image": [r["image"]]}, max_new_tokens=40,
                                         temperature=0).strip() for r in records]
        results[variant] = score(records, completions)["exact"]
        emit(task="onnx-captions", variant=variant, exact=results[variant], n=len(records), steps=args.steps,
             train_wall_s=round(wall, 1), wall_s=round(time.perf_counter() - t0, 1))
    emit(task="onnx-int8-caption-drop", points=100 * (results["fp32"] - results["int8"]), goal=GOALS["onnx"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="shapes,digits,speed,onnx")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--n", type=int, default=2000, help="training images per data set")
    p.add_argument("--limit", type=int, default=500, help="test records scored per figure")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        args.steps, args.seeds, args.n, args.limit, args.repeats = 150, args.seeds[:1], 400, 100, 3
    torch.set_num_threads(args.threads)
    tasks = args.tasks.split(",")
    with tempfile.TemporaryDirectory(prefix="salesai-bench-vision-") as tmp:
        if "shapes" in tasks:
            bench_shapes(args, Path(tmp))
        if "digits" in tasks:
            bench_digits(args, Path(tmp))
        if "speed" in tasks:
            bench_speed(args)
        if "onnx" in tasks:
            bench_onnx(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
