"""Sequence classification through the Trainer: labelled files -> tokenizer, labels, classifier -> fit.

    data = ClassificationData(token_ids, label_ids, pad_id)     # batch(indices) -> dict of tensors
    Trainer(SalesAIForSequenceClassification(cfg), train_config, data, val_data).fit()

`ClassificationData` is a dataset of ready batches: `batch(indices)` returns the model's keyword
arguments (`input_ids` and `attention_mask` (B, T) right-padded to the longest text of the batch,
`labels` (B,), optional `class_weights` (C,)), which the Trainer passes to the model as they are;
its `evaluate(...)` is the Trainer's evaluation for it: loss, accuracy, macro-F1, per-class
precision/recall/F1 and the confusion matrix (rows = true label, columns = prediction) over the
whole validation set, summed over ranks under torchrun. The data order, checkpoints and exact
resume are the Trainer's own.

`train_classifier(...)` is what `salesai train --task classify` runs; `evaluate_classifier_checkpoint`
what `salesai eval` runs on a classifier checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from salesai.errors import SalesAIError
from salesai.train.config import RunConfig

Log = Callable[[str], None]
CLASS_WEIGHTS = ("none", "balanced")


class ClassificationData:
    """Encoded texts and class indices; `batch` gives model keyword arguments (see the module docstring)."""

    def __init__(self, token_ids: Sequence[Sequence[int]], label_ids: Sequence[int], pad_id: int,
                 labels: Sequence[str], class_weights: torch.Tensor | None = None) -> None:
        if len(token_ids) != len(label_ids):
            raise SalesAIError(f"classification data: {len(token_ids)} texts but {len(label_ids)} labels")
        if not token_ids:
            raise SalesAIError("classification data: no labelled texts")
        self.token_ids = [list(t) for t in token_ids]
        self.label_ids = torch.as_tensor(list(label_ids), dtype=torch.long)
        self.pad_id = pad_id
        self.labels = list(labels)  # class names, index = class id
        self.num_labels = len(self.labels)
        self.class_weights = class_weights

    def __len__(self) -> int:
        return len(self.token_ids)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        from salesai.model.classifier import pad_batch

        ids, mask = pad_batch([self.token_ids[i] for i in indices], self.pad_id)  # (B, T) each
        out = {"input_ids": ids, "attention_mask": mask, "labels": self.label_ids[list(indices)]}
        if self.class_weights is not None:
            out["class_weights"] = self.class_weights
        return out

    def label_counts(self) -> torch.Tensor:
        return torch.bincount(self.label_ids, minlength=self.num_labels)  # (C,)

    def evaluate(self, model: torch.nn.Module, batch_size: int, device: torch.device, precision: str = "fp32",
                 info: Any = None) -> dict[str, Any]:
        """The Trainer's evaluation of this data: see `evaluate_classifier`."""
        return evaluate_classifier(model, self, batch_size, device, precision, info)


@torch.no_grad()
def evaluate_classifier(model: torch.nn.Module, data: ClassificationData, batch_size: int,
                        device: torch.device, precision: str = "fp32", info: Any = None) -> dict[str, Any]:
    """Mean cross-entropy (unweighted, no aux loss), accuracy, macro-F1, per-class metrics and the
    confusion matrix of `model` on all of `data` (each rank takes every world_size-th text)."""
    from salesai.train import distributed as D
    from salesai.train.trainer import autocast, expert_usage, unwrap

    info = info or D.DistInfo()
    net = unwrap(model)
    was_training = net.training
    net.eval()
    c = data.num_labels
    confusion = torch.zeros(c, c, dtype=torch.float64, device=device)  # (true, predicted)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=device)
    mine = list(range(info.rank, len(data), info.world_size))
    for i in range(0, len(mine), batch_size):
        batch = data.batch(mine[i : i + batch_size])
        with autocast(device, precision):
            logits = net(input_ids=batch["input_ids"].to(device),
                         attention_mask=batch["attention_mask"].to(device)).logits.float()  # (B, C)
        target = batch["labels"].to(device)
        loss_sum += torch.nn.functional.cross_entropy(logits, target, reduction="sum").double()
        flat = target * c + logits.argmax(-1)  # (B,) index into the flattened (C, C) matrix
        confusion += torch.bincount(flat, minlength=c * c).view(c, c).double()
    totals = D.all_reduce_sum(torch.cat([loss_sum, confusion.flatten()]), info)
    net.train(was_training)
    confusion = totals[1:].view(c, c).cpu()
    n = float(confusion.sum())
    return {"val_loss": float(totals[0]) / max(n, 1.0), **classification_metrics(confusion, data.labels),
            "expert_usage": expert_usage(net)}


def classification_metrics(confusion: torch.Tensor, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support from a (true, predicted) matrix."""
    cm = confusion.double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    n = float(cm.sum())
    per_class = {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                        "support": int(support[i])} for i, name in enumerate(labels)}
    return {"val_accuracy": float(tp.sum()) / n if n else 0.0, "val_macro_f1": float(f1.mean()),
            "val_texts": int(n), "per_class": per_class, "labels": list(labels),
            "confusion_matrix": [[int(x) for x in row] for row in cm.tolist()]}


def balanced_weights(counts: torch.Tensor) -> torch.Tensor:
    """scikit-learn's "balanced" class weights n / (C * count_c) (C,) float32; absent classes get 0."""
    counts = counts.double()
    weights = counts.sum() / (len(counts) * counts.clamp(min=1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights)).float()


# ------------------------------------------------------------------------------- files -> Trainer
def _tokenizer_and_base(init: str | Path | None, tokenizer_path: Any, texts: Sequence[str],
                        run: RunConfig, out: Path, vocab_size: int | None, info: Any,
                        say: Log) -> tuple[Any, Any]:
    """(tokenizer, the language model or classifier to start from or None); under torchrun rank 0
    trains the tokenizer and the other ranks read it from the disk."""
    from salesai.model.checkpoint import load_checkpoint
    from salesai.tokenizer import Tokenizer
    from salesai.train import distributed as D

    base, tok = None, None
    if init is not None:
        base, tok = load_checkpoint(init)
        say(f"init: decoder weights from {init}")
    if tokenizer_path is not None:
        tok = Tokenizer.from_pretrained(tokenizer_path)
    if tok is None and base is not None:
        raise SalesAIError(f"--init {init}: the checkpoint has no tokenizer.model; pass --tokenizer")
    if tok is None:
        if info.is_main:
            want = vocab_size or run.model_config().vocab_size
            say(f"training a {want}-piece tokenizer on {len(texts)} training texts")
            Tokenizer.train(iter(texts), vocab_size=want, out_dir=out / "tokenizer")
        D.barrier(info)
        tok = Tokenizer.from_pretrained(out / "tokenizer")
    return tok, base


def train_classifier(run: RunConfig, data: str | os.PathLike[str], val: str | os.PathLike[str] | None = None,
                     text_column: str | None = None, label_column: str | None = None,
                     init: str | Path | None = None, resume: bool = False,
                     tokenizer_path: str | os.PathLike[str] | None = None, vocab_size: int | None = None,
                     class_weights: str = "none", log: Log = print) -> dict[str, Any] | None:
    """What `salesai train --task classify` runs; a summary dict on rank 0 (None on other ranks)."""
    from salesai.data.tabular import label_ids, label_names, read_labelled
    from salesai.model.classifier import SalesAIForSequenceClassification, encode_texts
    from salesai.tokenizer import Tokenizer
    from salesai.train import distributed as D
    from salesai.train import state as S
    from salesai.train.trainer import Trainer, resolve_device

    if class_weights not in CLASS_WEIGHTS:
        raise SalesAIError(f"--class-weights {class_weights!r}: expected one of {', '.join(CLASS_WEIGHTS)}")
    cfg = run.training
    out = Path(cfg.out_dir)
    info = D.init_distributed(resolve_device(cfg.device).type)
    say: Log = log if info.is_main else (lambda _msg: None)
    ckpt = S.latest_checkpoint(out) if resume else None
    if not resume and ckpt is None and S.latest_checkpoint(out) is not None:
        raise SalesAIError(f"--out {out}: already holds checkpoints; pass --resume to continue, "
                           "or choose a new --out")
    if resume and ckpt is None:
        say(f"notice: nothing to resume in {out}; starting a new run")
    train_rows = read_labelled(data, text_column, label_column)
    val_rows = None
    if val is not None:
        val_rows = read_labelled(val, train_rows.text_column, train_rows.label_column)

    model: torch.nn.Module
    if ckpt is not None:  # resume: tokenizer, labels and architecture are the checkpoint's
        tok = Tokenizer.from_pretrained(ckpt)
        model = SalesAIForSequenceClassification.from_pretrained(ckpt).train()
        names = label_names(train_rows, declared=model.config.labels)
    else:
        names = label_names(train_rows)
        tok, base = _tokenizer_and_base(init, tokenizer_path, train_rows.texts, run, out, vocab_size,
                                        info, say)
        torch.manual_seed(cfg.seed)
        if base is not None and getattr(base.config, "labels", None) == names:
            model = base  # a classifier with the same labels: fine-tune it further
        elif base is not None:
            lm = base.model if isinstance(base, SalesAIForSequenceClassification) else base
            model = SalesAIForSequenceClassification.from_language_model(lm, names)
        else:
            model_cfg = run.model_config()
            if len(tok) != model_cfg.vocab_size:
                say(f"notice: model vocab_size set to the tokenizer's {len(tok)} "
                    f"(was {model_cfg.vocab_size})")
            model = SalesAIForSequenceClassification(model_cfg.replace(vocab_size=len(tok), labels=names))
    mcfg: Any = model.config
    max_len = min(cfg.seq_len, mcfg.max_seq_len)
    if len(tok) > mcfg.vocab_size:
        raise SalesAIError(f"tokenizer: {len(tok)} pieces, more than the model's vocab_size "
                           f"{mcfg.vocab_size}")
    train_ids = label_ids(train_rows, names)
    train_set = ClassificationData(encode_texts(tok, train_rows.texts, max_len), train_ids, mcfg.pad_token_id,
                                   names)
    if class_weights == "balanced":
        train_set.class_weights = balanced_weights(train_set.label_counts())
    val_set = None
    if val_rows is not None:
        val_set = ClassificationData(encode_texts(tok, val_rows.texts, max_len), label_ids(val_rows, names),
                                     mcfg.pad_token_id, names)
    longest = max(len(ids) for ids in train_set.token_ids)  # batches are padded to their longest text
    train_cfg = run.fit_to_model(mcfg.hidden_dim).replace(seq_len=max(2, longest))
    trainer = Trainer(model, train_cfg, train_set, val_set, tokenizer=tok)
    counts = ", ".join(f"{n}: {int(k)}" for n, k in zip(names, train_set.label_counts(), strict=True))
    say(f"data: {len(train_set)} training texts ({counts}), "
        f"{len(val_set) if val_set is not None else 0} validation texts, max {max_len} tokens each")
    result = trainer.fit(resume=ckpt is not None)
    if not info.is_main:
        return None
    texts_per_step = train_cfg.batch_size * train_cfg.grad_accum * info.world_size
    return {
        "task": "classify",
        "labels": names,
        "steps": result.step,
        "texts": result.step * texts_per_step,
        "texts_per_s": (len(result.losses) * texts_per_step) / max(result.elapsed_s, 1e-9),
        "precision": result.precision,
        "world_size": info.world_size,
        "final_train_loss": result.losses[-1] if result.losses else None,
        "eval": result.evals[-1] if result.evals else {},
        "checkpoint": str(result.checkpoint or S.latest_checkpoint(out)),
        "metrics": str(out / "metrics.jsonl"),
    }


def evaluate_classifier_checkpoint(checkpoint: str | os.PathLike[str], data: str | os.PathLike[str],
                                   text_column: str | None = None, label_column: str | None = None,
                                   batch_size: int = 32, threads: int | None = None,
                                   precision: str = "fp32") -> dict[str, Any]:
    """Loss, accuracy, macro-F1, per-class metrics and confusion matrix of a classifier on a labelled file."""
    from salesai.data.tabular import label_ids, read_labelled
    from salesai.model.classifier import SalesAIForSequenceClassification, encode_texts
    from salesai.tokenizer import Tokenizer
    from salesai.train import state as S
    from salesai.train.trainer import resolve_device, resolve_precision

    if threads:
        torch.set_num_threads(threads)
    ckpt = S.resolve_checkpoint(checkpoint, notice=True)
    model = SalesAIForSequenceClassification.from_pretrained(ckpt)
    tok = Tokenizer.from_pretrained(ckpt)
    rows = read_labelled(data, text_column, label_column)
    names = model.labels
    device = resolve_device("auto")
    max_len = model.config.max_seq_len
    dataset = ClassificationData(encode_texts(tok, rows.texts, max_len), label_ids(rows, names),
                                 model.config.pad_token_id, names)
    result = evaluate_classifier(model.to(device), dataset, batch_size, device,
                                 resolve_precision(precision, device))
    result["checkpoint"] = str(ckpt)
    result["val_loss"] = result["val_loss"] if math.isfinite(result["val_loss"]) else None
    return result


__all__ = ["ClassificationData", "balanced_weights", "classification_metrics", "evaluate_classifier",
           "evaluate_classifier_checkpoint", "train_classifier"]
