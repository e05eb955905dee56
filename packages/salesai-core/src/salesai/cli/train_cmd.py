"""`salesai train`, `salesai eval` and `salesai quickstart` (the main job).

Results go to stdout (a summary, or one JSON object with `--json`); progress and notices go to
stderr. torch is imported inside the commands so `salesai --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from salesai.errors import SalesAIError

PRECISION_HELP = "auto (bf16 autocast where this machine runs it faster), fp32 or bf16."


def _notice(msg: str) -> None:
    print(msg, file=sys.stderr)


def train(
    data: list[str] = typer.Option(
        ..., "--data", help="Training text: files, folders, globs, .jsonl (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoints, metrics.jsonl, token cache."),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="Model preset (tiny, base, multimodal, tiny-vision, tiny-audio)."),
    config: Optional[Path] = typer.Option(
        None, "--config", help="YAML/JSON/TOML file with preset:, model: and training: sections."),
    val: Optional[list[str]] = typer.Option(
        None, "--val", help="Validation data (default: the last 2% of the training tokens)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimizer steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/latest (exactly)."),
    tokenizer: Optional[Path] = typer.Option(
        None, "--tokenizer", help="Tokenizer dir or .model file (default: train one on --data)."),
    vocab_size: Optional[int] = typer.Option(
        None, "--vocab-size", help="Vocabulary of the tokenizer trained here (default: the model's)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Sequences per micro-batch."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Tokens per sequence."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
    precision: Optional[str] = typer.Option(None, "--precision", help=PRECISION_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    init: Optional[Path] = typer.Option(
        None, "--init", help="Start from this checkpoint (its model, weights and tokenizer)."),
    lora: Optional[str] = typer.Option(
        None, "--lora", help="Train LoRA adapters on the frozen --init model, e.g. "
                             "r=16,alpha=32,targets=attn,experts (docs/lora.md)."),
    freeze_encoder: bool = typer.Option(
        False, "--freeze-encoder", help="Multimodal: keep the modality encoders' weights fixed."),
    freeze_decoder: bool = typer.Option(
        False, "--freeze-decoder", help="Multimodal: keep the decoder fixed (with --freeze-encoder: "
                                        "train the projectors only, LLaVA stage 1)."),
    task: str = typer.Option("lm", "--task", help="lm (language model) or classify (a text classifier "
                             "from a labelled CSV/TSV/JSON/JSONL file, docs/classification.md)."),
    text_column: Optional[str] = typer.Option(
        None, "--text-column", help="classify: the column of the texts (default: text)."),
    label_column: Optional[str] = typer.Option(
        None, "--label-column", help="classify: the column of the labels (default: label)."),
    class_weights: str = typer.Option(
        "none", "--class-weights", help="classify: none or balanced (loss weights n / (classes * count))."),
) -> None:
    """Train a model on your data (a tokenizer too, unless --tokenizer or --init is given)."""
    from salesai.train.config import RunConfig, load_run_config
    from salesai.train.run import train_from_files

    run = load_run_config(config) if config is not None else RunConfig(preset=preset or "base")
    if config is not None and preset is not None:
        run.preset = preset
    overrides: dict[str, Any] = dict(out_dir=str(out), max_steps=max_steps, batch_size=batch_size,
                                     seq_len=seq_len, num_threads=threads, precision=precision)
    run.training = run.training.replace(**overrides)
    if task != "lm" and lora is not None:
        raise SalesAIError(f"--lora: with --task lm only for now, not {task!r} (a classifier's adapters: "
                           "salesai.lora in Python, train=score; see docs/lora.md)")
    if task != "lm":
        from salesai.cli.classify_cmd import train_task

        return train_task(task, run, data, val, resume, tokenizer, vocab_size, json_output, init, text_column,
                          label_column, class_weights)
    summary = train_from_files(run, data, val_paths=val, resume=resume, tokenizer_path=tokenizer,
                               vocab_size=vocab_size, log=_notice, init=init, lora=lora,
                               freeze=[p for p, on in (("encoder", freeze_encoder),
                                                       ("decoder", freeze_decoder)) if on])
    ev = (summary or {}).get("eval") or {}
    print_train_summary(summary, json_output, [
        f"trained {summary['steps']} steps ({summary['tokens']:,} tokens, "
        f"{summary['tokens_per_s']:,.0f} tokens/s, {summary['precision']})" if summary else "",
        f"validation loss {ev['val_loss']:.4f}, perplexity {ev['val_perplexity']:.2f}"
        if "val_loss" in ev else "",
    ])


def print_train_summary(summary: dict[str, Any] | None, json_output: bool, lines: list[str]) -> None:
    """What `salesai train` prints at the end (rank 0 only): the JSON summary, or `lines` (empty ones
    skipped) followed by where the checkpoint and the metrics are."""
    if summary is None:  # not rank 0
        return
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
        return
    lines = [x for x in lines if x]
    lines += [f"checkpoint: {summary['checkpoint']}", f"metrics: {summary['metrics']}"]
    typer.echo("\n".join(lines))


def eval_cmd(
    checkpoint: Path = typer.Argument(..., help="Checkpoint dir (or a run dir: its latest checkpoint)."),
    data: list[str] = typer.Option(..., "--data", help="Text to evaluate on: files, folders, globs, .jsonl."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Sequences per batch."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Tokens per sequence (default 256)."),
    max_batches: int = typer.Option(50, "--max-batches", min=1, help="Evaluate at most this many batches."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or auto."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="A classifier: the text column."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="A classifier: the labels."),
) -> None:
    """Validation loss, perplexity and expert usage of a checkpoint on some data.

    A classifier checkpoint: accuracy, macro-F1, per-class precision/recall and the confusion matrix on
    a labelled file."""
    from salesai.cli.classify_cmd import eval_classifier, is_classifier_checkpoint
    from salesai.train.run import evaluate_checkpoint

    if is_classifier_checkpoint(checkpoint):
        return eval_classifier(checkpoint, data, batch_size, threads, precision, json_output, text_column,
                               label_column)

    result = evaluate_checkpoint(checkpoint, data, batch_size=batch_size, seq_len=seq_len,
                                 max_batches=max_batches, threads=threads, precision=precision)
    if json_output:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"loss {result['val_loss']:.4f}  perplexity {result['val_perplexity']:.2f}  "
               f"({result['val_tokens']:,} tokens, checkpoint {result['checkpoint']})")
    usage = result.get("expert_usage")
    if usage:
        typer.echo(f"expert usage: {json.dumps(usage)}")


def quickstart(
    out: Path = typer.Option(Path("salesai-quickstart"), "--out", help="Where everything is written."),
    minutes: float = typer.Option(10.0, "--minutes", min=0.1, help="Total time budget in minutes."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="torch CPU threads (default: all cores, at most 2)."),
    max_corpus_mb: Optional[float] = typer.Option(
        None, "--max-corpus-mb", help="Cap the stdlib corpus (tests, slow machines)."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    no_export: bool = typer.Option(False, "--no-export", help="Skip the ONNX export and parity check."),
    max_steps: Optional[int] = typer.Option(
        None, "--max-steps", min=1,
        help="Train exactly this many steps instead of fitting the time budget (tests, scripts)."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """The main job: tokenizer + small MoE model on the Python stdlib, evaluated, sampled, exported."""
    from salesai.quickstart import QuickstartOptions, print_report, run_quickstart

    if precision not in ("auto", "fp32", "bf16"):
        raise SalesAIError(f"--precision {precision!r}: expected auto, fp32 or bf16")
    opts = QuickstartOptions(out_dir=out, minutes=minutes, threads=threads, precision=precision,
                             export=not no_export, max_steps=max_steps)
    if max_corpus_mb is not None:
        opts.max_corpus_bytes = int(max_corpus_mb * 1e6)
    report = run_quickstart(opts, log=_notice)
    if json_output:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_report(report)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(eval_cmd)
    app.command("quickstart")(quickstart)
