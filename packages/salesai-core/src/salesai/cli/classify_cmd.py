"""`salesai classify`: label texts with a trained classifier (one text, a file, or interactively).

    salesai classify clf "def read_config(path): ..."      # label + probabilities
    salesai classify clf                                     # interactive: one line in, prediction out
    salesai classify clf --file inputs.jsonl --json          # batch: one JSON object per input
    salesai classify clf-onnx --backend onnxruntime "text"   # an ONNX export (salesai export --format onnx)

Also the classification side of `salesai train --task classify` and `salesai eval` on a
classifier checkpoint (`train_task`, `eval_classifier`), which `train_cmd` hands over to.
Predictions go to stdout, notices to stderr. torch is imported inside the functions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer

from salesai.errors import SalesAIError

BACKENDS = ("torch", "onnxruntime")
TASKS = ("lm", "classify")


def load_predictor(path: Path, backend: str, threads: int | None = None) -> Any:
    """A TextClassifier (torch) or OrtTextClassifier (onnxruntime) with `labels` and `predict(texts)`."""
    if backend not in BACKENDS:
        raise SalesAIError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    from salesai.ort_classify import OrtTextClassifier, is_classifier_export

    if backend == "onnxruntime" or is_classifier_export(path):
        return OrtTextClassifier(path, threads=threads or 2)
    import torch

    from salesai.model.classifier import load_classifier

    if threads:
        torch.set_num_threads(threads)
    return load_classifier(path)


def read_inputs(file: Path, text_column: str) -> list[str]:
    """Texts of a .csv/.tsv/.json/.jsonl file (column `text_column`; a JSONL file of plain strings
    too) or of a text file (one text per line)."""
    if not file.is_file():
        raise SalesAIError(f"--file {file}: no such file")
    try:
        lines = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        lines = []  # read_labelled names the row
    if file.suffix.lower() == ".jsonl" and lines and lines[0].lstrip().startswith('"'):
        try:
            return [str(json.loads(line)) for line in lines]
        except json.JSONDecodeError as exc:
            raise SalesAIError(f"--file {file}: malformed JSON ({exc.msg})") from None
    if file.suffix.lower() in (".csv", ".tsv", ".json", ".jsonl"):
        from salesai.data.tabular import read_labelled

        return read_labelled(file, text_column=text_column, require_label=False).texts
    if not lines:
        raise SalesAIError(f"--file {file}: no text (expected UTF-8 text, one input per line)")
    return lines


def _show(pred: dict[str, Any], json_output: bool, text: str | None = None) -> None:
    if json_output:
        record = {"text": text, **pred} if text is not None else pred
        typer.echo(json.dumps(record, ensure_ascii=False))
        return
    probs = "  ".join(f"{k} {v:.3f}" for k, v in sorted(pred["probabilities"].items(), key=lambda kv: -kv[1]))
    typer.echo(f"{pred['label']}\t({probs})")


def _lines() -> Iterator[str]:
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return
        yield line.rstrip("\r\n")


def classify(
    checkpoint: Path = typer.Argument(
        ..., help="Classifier checkpoint or run dir (or an ONNX classifier export)."),
    text: Optional[str] = typer.Argument(None, help="Text to classify; none: read lines from stdin."),
    file: Optional[Path] = typer.Option(
        None, "--file", help="Classify each input of a .jsonl/.json/.csv/.tsv (--text-column) or .txt file."),
    text_column: str = typer.Option("text", "--text-column", help="Column of the texts in --file."),
    backend: str = typer.Option("torch", "--backend", help="torch or onnxruntime (an ONNX export dir)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Texts per forward pass (--file)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads."),
    json_output: bool = typer.Option(
        False, "--json", help="One JSON object per input (label, score, probabilities)."),
) -> None:
    """Label text with a classifier trained by `salesai train --task classify`."""
    if text is not None and file is not None:
        raise SalesAIError("give either a TEXT argument or --file, not both")
    predictor = load_predictor(checkpoint, backend, threads)
    if text is not None:
        _show(predictor.predict([text])[0], json_output)
        return
    if file is not None:
        texts = read_inputs(file, text_column)
        for t, pred in zip(texts, predictor.predict(texts, batch_size=batch_size), strict=True):
            _show(pred, json_output, t if json_output else None)
        return
    if sys.stdin.isatty():
        print(f"labels: {', '.join(predictor.labels)}; one text per line, Ctrl-D to end", file=sys.stderr)
    for line in _lines():
        if line.strip():
            _show(predictor.predict([line])[0], json_output)
            sys.stdout.flush()


# ----------------------------------------------------------------------- train / eval (classify)
def train_task(task: str, run: Any, data: list[str], val: list[str] | None, resume: bool,
               tokenizer: Path | None, vocab_size: int | None, json_output: bool, init: Path | None,
               text_column: str | None, label_column: str | None, class_weights: str) -> None:
    """`salesai train --task classify`: one labelled file for --data and at most one for --val."""
    if task not in TASKS:
        raise SalesAIError(f"--task {task!r}: expected one of {', '.join(TASKS)}")
    if len(data) != 1 or (val is not None and len(val) > 1):
        raise SalesAIError("--task classify: expected one --data file and at most one --val file "
                           "(CSV, TSV, JSON or JSONL with text and label columns)")
    from salesai.train.classify import train_classifier

    summary = train_classifier(run, data[0], val[0] if val else None, text_column=text_column,
                               label_column=label_column, init=init, resume=resume, tokenizer_path=tokenizer,
                               vocab_size=vocab_size, class_weights=class_weights,
                               log=lambda msg: print(msg, file=sys.stderr))
    from salesai.cli.train_cmd import print_train_summary

    ev = (summary or {}).get("eval") or {}
    print_train_summary(summary, json_output, [
        f"trained {summary['steps']} steps ({summary['texts']:,} texts, {summary['texts_per_s']:,.1f} "
        f"texts/s, {summary['precision']}); labels: {', '.join(summary['labels'])}" if summary else "",
        f"validation loss {ev['val_loss']:.4f}, accuracy {ev['val_accuracy']:.4f}, "
        f"macro-F1 {ev['val_macro_f1']:.4f}" if "val_accuracy" in ev else "",
    ])


def is_classifier_checkpoint(path: Path) -> bool:
    """True for a checkpoint (or run) directory whose config.json names labels."""
    from salesai.model.checkpoint import CONFIG_FILE, resolve_checkpoint

    try:
        config = json.loads((resolve_checkpoint(path) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (SalesAIError, OSError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and bool(config.get("labels"))


def eval_classifier(checkpoint: Path, data: list[str], batch_size: int, threads: int | None, precision: str,
                    json_output: bool, text_column: str | None = None,
                    label_column: str | None = None) -> None:
    """`salesai eval` on a classifier: accuracy, macro-F1, per-class metrics, confusion matrix."""
    if len(data) != 1:
        raise SalesAIError("eval of a classifier: expected one --data file with text and label columns")
    from salesai.train.classify import evaluate_classifier_checkpoint

    result = evaluate_classifier_checkpoint(checkpoint, data[0], text_column, label_column,
                                            batch_size=batch_size, threads=threads, precision=precision)
    if json_output:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"accuracy {result['val_accuracy']:.4f}  macro-F1 {result['val_macro_f1']:.4f}  "
               f"loss {result['val_loss']:.4f}  ({result['val_texts']} texts, "
               f"checkpoint {result['checkpoint']})")
    for name, m in result["per_class"].items():
        typer.echo(f"  {name}: precision {m['precision']:.3f}  recall {m['recall']:.3f}  f1 {m['f1']:.3f}  "
                   f"support {m['support']}")
    typer.echo(f"confusion matrix (rows = true, columns = predicted; {', '.join(result['labels'])}):")
    for row in result["confusion_matrix"]:
        typer.echo("  " + " ".join(f"{x:5d}" for x in row))


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)


def print_classification_summary(console: Any, summary: dict[str, Any]) -> None:
    """The classification part of `salesai data inspect`: label counts per split, data checks."""
    from rich.table import Table

    splits = [s for s in ("train", "val") if s in summary]
    if not splits:
        return
    labels = sorted({k for s in splits for k in summary[s]["label_counts"]})
    table = Table(title="labels")
    table.add_column("label")
    for s in splits:
        table.add_column(s, justify="right")
    for name in labels:
        table.add_row(name, *(str(summary[s]["label_counts"].get(name, 0)) for s in splits))
    console.print(table)
    checks = Table(title="classification checks", show_header=False)
    checks.add_column("check")
    checks.add_column("value")
    for s in splits:
        d = summary[s]
        imbalance = f"{d['imbalance']:.2f}x" if d.get("imbalance") else "-"
        checks.add_row(f"{s}: rows", f"{d['rows']} (columns {d['text_column']!r} / {d['label_column']!r})")
        checks.add_row(f"{s}: imbalance (largest / smallest class)", imbalance)
        dupes = f"{d['duplicates']} ({d['conflicting_duplicates']})"
        checks.add_row(f"{s}: duplicates (conflicting labels)", dupes)
        checks.add_row(f"{s}: empty texts", str(d["empty_texts"]))
        if "too_long" in d:
            checks.add_row(f"{s}: texts over {d['max_len']} tokens", str(d["too_long"]))
    if "leakage" in summary:
        checks.add_row("validation texts also in training (leakage)", str(summary["leakage"]))
        unseen = ", ".join(summary["val_unseen_labels"]) or "none"
        checks.add_row("validation labels unseen in training", unseen)
    console.print(checks)
