"""`salesai quickstart`: the main job, end to end on the Python standard library, inside a time budget.

Steps (each timed, all inside `minutes`): corpus (the running Python's stdlib sources, split
train/validation by file, data.py) -> SentencePiece tokenizer -> token cache -> a short timing probe
that fixes the number of optimizer steps (the cosine schedule must know its length) -> training
(Trainer, with a hard time limit as a safety net) -> evaluation (perplexity against the
unigram-entropy baseline of the validation tokens) -> code completions from held-out function
signatures, scored by whether they parse with `ast` -> expert utilisation -> ONNX export and
parity (when an `onnx` exporter is registered) -> a report (stdout) and `report.json`.

The model shape (QUICKSTART_MODEL) was chosen by measurement on 2 CPU cores (docs/quickstart.md).
Not here: the training loop (trainer.py), data loading (data.py), generation (model/generation.py).
"""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import textwrap
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salesai import contention
from salesai.contention import CpuMeter

Log = Callable[[str], None]

# The model and training shape for 2 CPU cores and ~10 minutes (measurements in docs/quickstart.md).
QUICKSTART_MODEL: dict[str, Any] = dict(
    hidden_dim=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_dim=688,
    num_experts=4, top_k=2, max_seq_len=512, tie_embeddings=False,
)
QUICKSTART_VOCAB = 4096
PROBE_WARMUP = 50  # warmup steps assumed while the first steps are timed
QUICKSTART_TRAIN: dict[str, Any] = dict(
    lr=2e-3, min_lr=2e-4, batch_size=16, seq_len=256, grad_accum=1, weight_decay=0.1,
    grad_clip=1.0, eval_steps=8, keep_last=1, log_every=10, seed=1337,
)

# Smaller shapes for slow or busy machines, tried in order when fewer than MIN_STEPS steps of the
# default would fit in the budget: a model that trains 300 small steps beats one that trains 50.
MIN_STEPS = 250
SMALLER_SHAPES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("small", {**QUICKSTART_MODEL, "hidden_dim": 192, "num_layers": 3, "intermediate_dim": 512},
     {**QUICKSTART_TRAIN, "batch_size": 8}),
    ("smaller", {**QUICKSTART_MODEL, "hidden_dim": 128, "num_layers": 2, "intermediate_dim": 344},
     {**QUICKSTART_TRAIN, "batch_size": 8, "seq_len": 128}),
]


@dataclass
class QuickstartOptions:
    """What `salesai quickstart` takes."""

    out_dir: Path = Path("salesai-quickstart")  # everything is written here
    minutes: float = 10.0  # total wall-clock budget, tokenizer to export
    threads: int | None = None  # torch threads; None = min(2, cores)
    precision: str = "auto"  # auto / fp32 / bf16 for training
    max_corpus_bytes: int | None = 12_000_000  # cap on stdlib bytes (None: the whole library)
    num_samples: int = 16  # completions of held-out signatures
    max_new_tokens: int = 96  # tokens generated per completion
    export: bool = True  # ONNX export + parity when an `onnx` exporter is registered
    model: dict[str, Any] = field(default_factory=lambda: dict(QUICKSTART_MODEL))  # ModelConfig overrides
    train: dict[str, Any] = field(default_factory=lambda: dict(QUICKSTART_TRAIN))  # TrainConfig fields
    vocab_size: int = QUICKSTART_VOCAB  # tokenizer vocabulary (shrinks on small corpora)
    auto_shape: bool = True  # fall back to SMALLER_SHAPES when fewer than MIN_STEPS would fit
    max_steps: int | None = None  # a step budget instead of the clock (tests); None = fit the time budget


def unigram_baseline(tokens: np.ndarray, vocab_size: int) -> dict[str, float]:
    """Entropy (nats) of the tokens' own unigram distribution: the loss of a context-free model."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    h = float(-(p * np.log(p)).sum())
    return {"loss": h, "perplexity": math.exp(h)}


def cut_function(prompt: str, completion: str, finished: bool) -> str:
    """prompt + completion up to the end of the function: the first non-blank line indented less
    than its body (the indent of the first line after the `def` line, in the prompt or not).

    The prompt holds one `def` line (after an optional `class X:` line) and maybe a docstring.
    If the model never closed the function and stopped at the token limit, its last line may be
    cut mid-way and is dropped.
    """
    lines = (prompt + completion).split("\n")
    header = next((i for i, x in enumerate(lines) if x.lstrip().startswith(("def ", "async def "))), 0)
    start = header + 1
    body_indent = next((len(x) - len(x.lstrip()) for x in lines[start:] if x.strip()), 1)
    end, closed = len(lines), False
    for i in range(len(prompt.rstrip("\n").split("\n")), len(lines)):
        if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) < max(1, body_indent):
            end, closed = i, True
            break
    body = lines[:end]
    if not closed and not finished and len(body) > start:
        body = body[:-1]
    return "\n".join(body).rstrip() + "\n"


def contextual_prompt(sig: Any) -> str:
    """The held-out function as its file has it: a method goes inside a stub of its class
    (`class Name:` + the indented `def` line and docstring), so the model sees the indentation
    it learned; a top-level function stays as it is."""
    try:
        tree = ast.parse(Path(sig.path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return str(sig.prompt)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.lineno == sig.line:
                    return f"class {node.name}:\n" + textwrap.indent(sig.prompt, "    ")
    return str(sig.prompt)


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _threads(n: int | None) -> int:
    return n or max(1, min(2, os.cpu_count() or 1))


def run_quickstart(opts: QuickstartOptions, log: Log = print) -> dict[str, Any]:
    """Run the main job; returns the report (also written to out_dir/report.json)."""
    import torch

    from salesai.data import stdlib_corpus, tokenize_files
    from salesai.model.config import ModelConfig
    from salesai.model.transformer import SalesAIModel
    from salesai.tokenizer import Tokenizer
    from salesai.train.config import TrainConfig
    from salesai.train.trainer import Trainer, resolve_device, resolve_precision

    t_start = time.perf_counter()
    budget = opts.minutes * 60.0
    others_before = contention.sample_others(0.5)
    threads = _threads(opts.threads)
    torch.set_num_threads(threads)
    out = Path(opts.out_dir)
    _clean_previous_run(out)
    timings: dict[str, float] = {}

    def mark(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 2)
        return now

    # 1. corpus and tokenizer
    t = time.perf_counter()
    split = stdlib_corpus(max_bytes=opts.max_corpus_bytes)
    log(f"corpus: {len(split.train)} stdlib files ({split.train_bytes / 1e6:.1f} MB) for training, "
        f"{len(split.validation)} ({split.validation_bytes / 1e3:.0f} kB) held out, from {split.root}")
    tok_bytes = min(split.train_bytes, 4_000_000)  # tokenizer statistics settle well before this
    tok = Tokenizer.train([str(f) for f in split.train], vocab_size=opts.vocab_size,
                          out_dir=out / "tokenizer", input_sentence_size=max(1000, tok_bytes // 40),
                          num_threads=threads, verbose=False)
    for notice in tok.notices:
        log(f"notice: {notice}")
    t = mark("tokenizer_s", t)
    train_tokens = tokenize_files(split.train, tok, out / "cache", name="train", num_threads=threads).tokens()
    val_tokens = tokenize_files(split.validation, tok, out / "cache", name="val").tokens()
    t = mark("tokenize_s", t)
    log(f"tokenizer: {len(tok)} pieces; {len(train_tokens):,} training and {len(val_tokens):,} "
        "validation tokens")

    # 2. model; the first steps double as a timing probe that fixes the schedule's length. On a slow or
    #    busy machine, where too few steps of the default shape would fit, a smaller shape is tried.
    device = resolve_device("auto")
    precision = resolve_precision(opts.precision, device)
    shapes = [("default", opts.model, opts.train)] + (SMALLER_SHAPES if opts.auto_shape else [])
    shape_notes: list[str] = []
    for i, (shape, model_fields, train_fields) in enumerate(shapes):
        seq_len = int(train_fields["seq_len"])
        model_cfg = ModelConfig.from_dict({"preset": "tiny", **model_fields, "vocab_size": len(tok),
                                           "name": "quickstart"})
        cfg = TrainConfig(**{**train_fields, "max_steps": 10**6, "warmup_steps": PROBE_WARMUP,
                             "eval_every": 0, "save_every": 0, "precision": precision,
                             "num_threads": threads, "out_dir": str(out)})
        torch.manual_seed(cfg.seed)
        model = SalesAIModel(model_cfg)
        trainer = Trainer(model, cfg, train_tokens, val_tokens, tokenizer=tok)
        tuner = ThreadTuner([threads, 1])
        step_s, probe_losses = _probe(trainer, tuner)
        token_s = _generation_seconds_per_token(model, tok)
        reserve = _reserve_seconds(opts, step_s, token_s)
        train_budget = budget - (time.perf_counter() - t_start) - reserve
        fits = int(train_budget / step_s)
        if opts.max_steps is not None or fits >= MIN_STEPS or i == len(shapes) - 1:
            break
        note = (f"the {shape} shape would train only ~{max(fits, 0)} steps at {step_s:.2f} s/step "
                f"(fewer than {MIN_STEPS}); trying a smaller one")
        shape_notes.append(note)
        log(f"notice: {note}")
    t = mark("probe_s", t)
    if opts.max_steps is not None:  # a step budget (tests): no clock in the schedule
        max_steps = trainer.step + opts.max_steps
    else:
        max_steps = trainer.step + max(1, int(train_budget / step_s))
    trainer.config = cfg.replace(max_steps=max_steps, warmup_steps=min(PROBE_WARMUP, max(1, max_steps // 10)),
                                 eval_every=max(1, max_steps // 4))
    log(f"model ({shape} shape): {model_cfg.num_layers} layers x {model_cfg.hidden_dim} wide, "
        f"{model_cfg.num_experts} experts top-{model_cfg.top_k}, "
        f"{model.num_parameters() / 1e6:.1f}M parameters; "
        f"{precision}, {tuner.current} thread(s) now (re-checked during training, at most {threads}); "
        f"{step_s:.2f} s/step -> about {max_steps} steps ({train_budget:.0f} s of the {budget:.0f} s budget, "
        f"{reserve:.0f} s kept for evaluation, completions and export)")

    # 3. train: the schedule follows the clock (max_steps re-estimated every step), so the cosine ends
    #    when the budget does even on a machine that slows down; the time limit is a hard stop
    meter = CpuMeter().start()
    if opts.max_steps is not None:
        result = trainer.fit(on_step=tuner)
    else:
        result = trainer.fit(time_budget_s=train_budget, time_limit_s=max(1.0, train_budget * 1.1),
                             on_step=tuner)
    machine = contention.describe(others_before, meter.read(own_threads=tuner.current))
    result.losses = probe_losses + result.losses
    t = mark("train_s", t)
    final = result.evals[-1] if result.evals else {}
    baseline = unigram_baseline(val_tokens, len(tok))
    if machine["contended"]:
        log(f"notice: {machine['note']}")

    # a plain model directory at a stable path, for `salesai generate / eval / export / serve`
    from salesai.model.checkpoint import save_checkpoint

    model.eval()
    save_checkpoint(out / "model", model, tok)

    # 4. completions of held-out signatures
    export_reserve = _export_seconds(opts, step_s)
    deadline = None if opts.max_steps is not None else t_start + budget - export_reserve
    samples = _complete_signatures(model, tok, split.validation, opts, seq_len, deadline)
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    t = mark("samples_s", t)

    # 5. ONNX export and parity
    onnx: dict[str, Any] = {"status": "skipped (--no-export)", "path": None}
    if opts.export:
        onnx = _export_onnx(model, tok, out / "onnx", threads, log)
    t = mark("export_s", t)

    usage = final.get("expert_usage") or []
    parse_rate = sum(s["parses"] for s in samples) / len(samples) if samples else None
    model_keys = ("vocab_size", "hidden_dim", "num_layers", "num_heads", "num_kv_heads", "intermediate_dim",
                  "num_experts", "top_k")
    report: dict[str, Any] = {
        "validation": {"loss": final.get("val_loss"), "perplexity": final.get("val_perplexity"),
                       "tokens": final.get("val_tokens")},
        "unigram_baseline": baseline,
        "training": {
            "steps": result.step, "planned_steps": max_steps, "seconds_per_step": round(step_s, 3),
            "tokens": result.step * cfg.tokens_per_step, "tokens_per_s": round(result.tokens_per_s, 1),
            "precision": precision, "threads": tuner.current, "max_threads": threads,
            "thread_switches": tuner.switches, "shape": shape, "shape_notes": shape_notes,
            "final_train_loss": result.losses[-1] if result.losses else None,
            "parameters": model.num_parameters(), "active_parameters": model.num_parameters(active=True),
        },
        "completions": {"count": len(samples), "parse_rate": parse_rate, "file": str(out / "samples.jsonl")},
        "experts": {
            "per_layer": [{"layer": u["layer"], "share": [round(x, 3) for x in u["share"]],
                           "balance": round(u["balance"], 3), "utilisation": u["utilisation"]}
                          for u in usage],
            "mean_balance": float(np.mean([u["balance"] for u in usage])) if usage else None,
            "mean_utilisation": float(np.mean([u["utilisation"] for u in usage])) if usage else None,
        },
        "onnx": onnx,
        "machine": machine,
        "paths": {
            "model": str(out / "model"), "checkpoint": str(result.checkpoint),
            "tokenizer": str(out / "tokenizer" / "tokenizer.model"),
            "metrics": str(out / "metrics.jsonl"), "samples": str(out / "samples.jsonl"),
            "onnx": onnx.get("path"), "report": str(out / "report.json"),
        },
        "timings_s": timings,
        "model": {k: getattr(model_cfg, k) for k in model_keys},
        "samples": samples[:3],
    }
    report["timings_s"]["total_s"] = round(time.perf_counter() - t_start, 2)
    report["budget_s"] = budget
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _clean_previous_run(out: Path) -> None:
    """A re-run starts a new model; the token cache is kept (keyed, reused when still valid)."""
    from salesai.train import state as S

    for ckpt in S.list_checkpoints(out):
        shutil.rmtree(ckpt, ignore_errors=True)
    for name in ("latest", "metrics.jsonl", "samples.jsonl", "report.json"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "onnx", ignore_errors=True)
    shutil.rmtree(out / "model", ignore_errors=True)


def _generation_seconds_per_token(model: Any, tok: Any, new_tokens: int = 8) -> float:
    """Measured: seconds per generated token (greedy, batch 1, prefill of a short prompt included)."""
    import torch

    ids = torch.tensor([tok.encode("def example(value):\n    return", add_bos=True)])
    start = time.perf_counter()
    with torch.no_grad():
        model.eval()
        model.generate(ids, max_new_tokens=new_tokens, temperature=0.0)
        model.train()
    return (time.perf_counter() - start) / new_tokens


def _export_seconds(opts: QuickstartOptions, step_s: float) -> float:
    """The ONNX export and parity check cost about 7 training steps of the same model (measured on
    2 cores, quiet and busy: ~8 s against 1.2 s/step), at least 3 s; 0 without export."""
    return max(3.0, 7.0 * step_s) if opts.export else 0.0


def _reserve_seconds(opts: QuickstartOptions, step_s: float, token_s: float) -> float:
    """Time kept back after training, from measured costs: the final evaluation and checkpoint
    (~3 steps), the completions (measured seconds per token, +15%) and the export."""
    samples = opts.num_samples * opts.max_new_tokens * token_s * 1.15
    return 3.0 * step_s + 1.0 + samples + _export_seconds(opts, step_s)


class ThreadTuner:
    """Keeps the faster of `threads` and 1 torch threads during training, re-checked now and then.

    Measured, not guessed: alone on 2 cores, 2 threads train about 1.5x faster than 1; on a machine
    shared with other busy processes, 2 OpenMP threads were measured up to 8x slower than 1 (every
    parallel region waits for a descheduled thread). A trial runs two steps with the other count (the
    first after a switch pays for thread start-up) and switches when the faster of them beats the
    recent steps by 15%; after a failed trial the interval to the next doubles (a trial of the slow
    setting can cost many steps' time).
    """

    def __init__(self, options: list[int], every: int = 20, trial: int = 2) -> None:
        self.options = sorted(set(options))  # fewest threads first: the cheap one to try
        self.current = self.options[0]
        self.times: dict[int, deque[float]] = {n: deque(maxlen=5) for n in self.options}
        self.every = self.interval = every
        self.trial = trial
        self.trying: int | None = None
        self.since = self.left = self.switches = 0

    def set(self, n: int) -> None:
        import torch

        torch.set_num_threads(n)

    def choose(self, alt: int) -> bool:
        """Switch to `alt` if its recent step was clearly faster than the current count's."""
        mine, theirs = self.times[self.current], self.times[alt]
        better = bool(theirs and mine and min(theirs) < 0.85 * float(np.median(mine)))
        if better:
            self.current = alt
            self.switches += 1
        self.set(self.current)
        return better

    def __call__(self, trainer: Any, stats: dict[str, float]) -> None:
        import torch

        self.times[torch.get_num_threads()].append(stats["step_s"])
        if self.trying is not None:
            self.left -= 1
            if self.left <= 0:
                alt, self.trying = self.trying, None
                self.interval = self.every if self.choose(alt) else self.interval * 2
            return
        self.since += 1
        if len(self.options) > 1 and self.since >= self.interval:
            self.since = 0
            self.trying = next(o for o in self.options if o != self.current)
            self.times[self.trying].clear()
            self.left = self.trial
            self.set(self.trying)


def _probe(trainer: Any, tuner: ThreadTuner) -> tuple[float, list[float]]:
    """1 warm-up step, then 1 more step per thread count (fewest first; warmup learning rate);
    keeps the faster count; returns its seconds per step and the losses."""
    tuner.set(tuner.options[0])
    losses = [trainer.train_step()["loss"]]
    for n in tuner.options:
        tuner.set(n)
        stats = trainer.train_step()
        losses.append(stats["loss"])
        tuner.times[n].append(stats["step_s"])
    tuner.set(tuner.current)
    for alt in tuner.options[1:]:
        tuner.choose(alt)
    return float(min(tuner.times[tuner.current])) * 1.05, losses  # + a little for logging and evaluation


def _complete_signatures(model: Any, tok: Any, files: list[Path], opts: QuickstartOptions,
                         seq_len: int, deadline: float | None = None) -> list[dict[str, Any]]:
    """Greedy completions of held-out signatures, scored by `ast.parse`; stops early (fewer
    samples) when `deadline` (a `time.perf_counter()` value) has passed."""
    import torch

    from salesai.data import heldout_signatures

    sigs = heldout_signatures(files, n=opts.num_samples, seed=0, include_docstring=True)
    out: list[dict[str, Any]] = []
    for sig in sigs:
        if deadline is not None and out and time.perf_counter() > deadline:
            break
        prompt = contextual_prompt(sig)
        ids = tok.encode(prompt, add_bos=True)[-(model.config.max_seq_len - opts.max_new_tokens):]
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=opts.max_new_tokens, temperature=0.0,
                                 repetition_penalty=1.1, stop_token_ids=[tok.eos_id])
        new = [int(x) for x in gen[0].tolist()[len(ids):]]
        finished = tok.eos_id in new or len(new) < opts.max_new_tokens
        new = new[: new.index(tok.eos_id)] if tok.eos_id in new else new
        completion = tok.decode(new)
        code = cut_function(prompt, completion, finished)
        body = code[len(prompt):] if code.startswith(prompt) else completion
        out.append({"name": sig.name, "source": f"{sig.path.name}:{sig.line}", "prompt": prompt,
                    "completion": body, "parses": bool(body.strip()) and parses(code)})  # empty: a failure
    return out


def _export_onnx(model: Any, tok: Any, out: Path, threads: int, log: Log) -> dict[str, Any]:
    """Export with the registered `onnx` exporter (it verifies on random inputs) and compare ONNX
    Runtime with PyTorch once more on a real code prompt."""
    from salesai.plugins import registry

    reg = registry("exporters")
    if "onnx" not in reg:
        return {"status": "skipped (no onnx exporter registered)", "path": None}
    try:
        import torch

        from salesai.ort_runtime import OrtDecoder, read_manifest

        log("onnx: exporting and verifying against PyTorch")
        path = Path(reg.get("onnx")(model.eval(), tok, out, force=True, threads=threads))
        verification = read_manifest(path).get("verification", {})
        dec = OrtDecoder(path, threads=threads)
        ids = np.asarray([tok.encode("def fibonacci(n):\n    if n < 2:\n", add_bos=True)], dtype=np.int64)
        pos = np.arange(ids.shape[1], dtype=np.int64)[None]  # (1, T)
        ort_logits, _ = dec.step(ids, np.ones_like(ids), pos, dec.empty_past(1))  # (1, T, V)
        with torch.no_grad():
            pt_logits = model(torch.from_numpy(ids)).logits.float().numpy()  # (1, T, V)
        diff = float(np.abs(ort_logits - pt_logits).max())
        log(f"onnx: {path}; max |logit difference| vs PyTorch {diff:.2e} on a code prompt, "
            f"{verification.get('max_abs_logit_diff', float('nan')):.2e} in the exporter's check")
        return {"status": "ok" if diff <= 1e-4 else "mismatch", "path": str(path), "max_abs_diff": diff,
                "same_argmax": bool((ort_logits.argmax(-1) == pt_logits.argmax(-1)).all()),
                "exporter_verification": verification}
    except Exception as exc:  # the report still prints; the failure is in it
        first = str(exc).splitlines()[0] if str(exc) else ""
        return {"status": f"failed: {type(exc).__name__}: {first}", "path": None}


def print_report(report: dict[str, Any]) -> None:
    """The human-readable report on stdout."""
    from rich.console import Console

    c = Console(highlight=False, soft_wrap=True)
    v, b, tr = report["validation"], report["unigram_baseline"], report["training"]
    comp, ex, onnx, paths = report["completions"], report["experts"], report["onnx"], report["paths"]
    c.print("[bold]salesai quickstart: report[/bold]")
    if v["loss"] is not None:
        c.print(f"validation loss       {v['loss']:.3f}  (perplexity {v['perplexity']:.1f})")
    c.print(f"unigram baseline      {b['loss']:.3f}  (perplexity {b['perplexity']:.1f})")
    c.print(f"training              {tr['steps']} steps, {tr['tokens']:,} tokens, "
            f"{tr['tokens_per_s']:,.0f} tokens/s "
            f"({tr['precision']}, {tr['threads']} thread(s), {tr['shape']} shape)")
    c.print(f"machine               {report['machine']['note']}")
    if comp["parse_rate"] is not None:
        c.print(f"completions parsing   {comp['parse_rate']:.0%} of {comp['count']} (ast.parse)")
    if ex["mean_utilisation"] is not None:
        c.print(f"experts               utilisation {ex['mean_utilisation']:.0%}, "
                f"balance {ex['mean_balance']:.2f} (1.0 = uniform)")
        for layer in ex["per_layer"]:
            c.print(f"  layer {layer['layer']}: shares {layer['share']}")
    diff = onnx.get("max_abs_diff")
    extra = f", max |diff| {diff:.2e}" if diff is not None else ""
    c.print(f"onnx                  {onnx['status']}{extra}")
    for s in report.get("samples", [])[:2]:
        c.print(f"\n[dim]# {s['source']} ({'parses' if s['parses'] else 'does not parse'})[/dim]")
        c.print(s["prompt"] + s["completion"], markup=False)
    c.print("\n[bold]where everything is[/bold]")
    for key, value in paths.items():
        if value:
            c.print(f"  {key:<11} {value}")
    c.print(f"total time {report['timings_s']['total_s']:.0f} s of {report['budget_s']:.0f} s")
