"""Sequence classification benchmark: Python stdlib functions labelled with their top-level package.

The task (offline, real): every function and method of the standard library's packages (the
`--classes` largest by function count; tests excluded), its source as the text, its top-level
package (`email`, `asyncio`, ...) as the label. Split by file (a hash of the path), so no file
has functions on both sides; at most `--per-class` training functions per class.

Printed as JSON lines, side by side in one run:
  tfidf      TF-IDF (identifier tokens) + logistic regression (scikit-learn, a bench requirement only)
  scratch    salesai classifier, random init, `--steps` steps
  pretrained the same classifier from a language model (`--init CKPT`, e.g. salesai-quickstart/model;
             without it a small LM is pretrained here for `--pretrain-steps` on the training-side files
             only), the same steps, the same tokenizer
  referee    transformers' MixtralForSequenceClassification loaded from the `hf` export of the same
             initial classifier, trained with the same AdamW steps on the same batches as salesai:
             loss curves side by side (max difference) and seconds per step of each
  throughput texts/s of `predict` on the test texts: torch vs ONNX Runtime fp32 and int8

Usage: python bench/classify.py [--classes 10] [--per-class 200] [--steps 300] [--init CKPT]
       [--pretrain-steps 400] [--referee-steps 30] [--threads 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

# bench/onnx.py would shadow the onnx package (the script's folder is sys.path[0]).
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
FIELDS = ("text", "label")


def emit(**record: Any) -> None:
    print(json.dumps({"bench": "classify", **record}), flush=True)


# ------------------------------------------------------------------------------------- the data
def stdlib_functions() -> dict[str, list[tuple[str, str]]]:
    """{package: [(file, function source), ...]} for every package directory of the stdlib."""
    from salesai.data.sources import stdlib_files, stdlib_root

    root = stdlib_root()
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in stdlib_files(root):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:  # a top-level module, not a package
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_source_segment(source, node)
                if text and len(text) >= 40:
                    out[rel.parts[0]].append((rel.as_posix(), text))
    return out


def split(classes: int, per_class: int, out: Path) -> tuple[Path, Path, dict[str, Any]]:
    """train.csv / test.csv (split by file) and a description of the data."""
    functions = stdlib_functions()
    top = sorted(functions, key=lambda k: -len(functions[k]))[:classes]
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for package in top:
        side = {"train": [], "test": []}  # type: dict[str, list[tuple[str, str]]]
        for file, text in functions[package]:
            key = int(hashlib.sha1(file.encode()).hexdigest()[:8], 16) / 2**32
            side["test" if key < 0.25 else "train"].append((text, package))
        train += side["train"][:per_class]
        test += side["test"][: max(1, per_class // 3)]
    paths = []
    for name, rows in (("train.csv", train), ("test.csv", test)):
        with open(out / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(FIELDS)
            writer.writerows(rows)
        paths.append(out / name)
    info = {"classes": top, "train": len(train), "test": len(test),
            "train_counts": dict(Counter(lab for _, lab in train)),
            "test_counts": dict(Counter(lab for _, lab in test))}
    return paths[0], paths[1], info


# ---------------------------------------------------------------------------------- the contenders
def tfidf(train: Path, test: Path) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from salesai.data.tabular import read_labelled

    a, b = read_labelled(train), read_labelled(test)
    t0 = time.perf_counter()
    vec = TfidfVectorizer(token_pattern=r"[A-Za-z_][A-Za-z0-9_]+", sublinear_tf=True, min_df=2)
    clf = LogisticRegression(max_iter=2000, C=10.0).fit(vec.fit_transform(a.texts), a.labels)
    pred = clf.predict(vec.transform(b.texts))
    return {"accuracy": accuracy_score(b.labels, pred), "macro_f1": f1_score(b.labels, pred, average="macro"),
            "seconds": time.perf_counter() - t0}


def pretrain(train: Path, out: Path, steps: int, vocab: int, threads: int) -> Path:
    """A small LM on the training-side functions only (nothing of the test files), with its tokenizer."""
    import torch

    from salesai.data.tabular import read_labelled
    from salesai.model import save_checkpoint
    from salesai.model.config import ModelConfig
    from salesai.model.transformer import SalesAIModel
    from salesai.tokenizer import Tokenizer
    from salesai.train import TrainConfig, Trainer

    texts = read_labelled(train).texts
    tok = Tokenizer.train(iter(texts), vocab_size=vocab, out_dir=out / "tokenizer")
    ids = [i for t in texts for i in (*tok.encode(t), tok.eos_id)]
    torch.manual_seed(0)
    model = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tok), max_seq_len=512))
    cfg = TrainConfig(max_steps=steps, batch_size=8, seq_len=256, lr=2e-3, min_lr=2e-4,
                      warmup_steps=steps // 10, eval_every=0, save_every=0, precision="fp32",
                      num_threads=threads, out_dir=str(out / "lm-run"))
    result = Trainer(model, cfg, torch.tensor(ids), None, tokenizer=tok, progress=False).fit()
    emit(stage="pretrain", steps=steps, tokens=len(ids), final_loss=result.losses[-1],
         seconds=result.elapsed_s)
    return save_checkpoint(out / "lm", model, tok)


def finetune(name: str, init: Path, train: Path, test: Path, out: Path, steps: int, threads: int,
             scratch: bool, lr: float | None = None) -> dict[str, Any]:
    import json as _json

    from salesai.train.classify import train_classifier
    from salesai.train.config import RunConfig, TrainConfig

    model = _json.loads((init / "config.json").read_text())
    model.pop("labels", None)
    cfg = TrainConfig(max_steps=steps, batch_size=16, seq_len=256, warmup_steps=steps // 10, eval_every=0,
                      save_every=0, precision="fp32", num_threads=threads, out_dir=str(out / name))
    run = RunConfig(model=model, training=cfg)
    if lr is not None:  # else the width's default peak rate (salesai.train.config.default_lr)
        run = RunConfig(model=model, training=cfg.replace(lr=lr, min_lr=lr / 10),
                        explicit=frozenset({"lr", "min_lr"}))
    summary = train_classifier(run, train, test, init=None if scratch else init, tokenizer_path=init,
                               log=lambda _m: None)
    assert summary is not None
    ev = summary["eval"]
    return {"accuracy": ev["val_accuracy"], "macro_f1": ev["val_macro_f1"], "val_loss": ev["val_loss"],
            "steps": steps, "texts_per_s": summary["texts_per_s"], "checkpoint": summary["checkpoint"]}


def referee(init: Path, train: Path, steps: int, threads: int, out: Path) -> dict[str, Any]:
    """One initial classifier in salesai and in transformers, the same AdamW steps on the same batches."""
    import torch
    import transformers

    from salesai.data.tabular import label_ids, label_names, read_labelled
    from salesai.export.hf import export_hf
    from salesai.model import load_checkpoint
    from salesai.model.classifier import SalesAIForSequenceClassification, encode_texts, pad_batch

    torch.set_num_threads(threads)
    rows = read_labelled(train)
    names = label_names(rows)
    lm, tok = load_checkpoint(init)
    torch.manual_seed(0)
    ours = SalesAIForSequenceClassification.from_language_model(lm, names).train()
    ours.config.aux_loss_coef = ours.config.z_loss_coef = 0.0  # transformers' seq-cls loss is the CE alone
    hf_dir = export_hf(ours, None, out / "referee-hf")
    auto = transformers.AutoModelForSequenceClassification
    theirs = auto.from_pretrained(hf_dir, dtype=torch.float32).train()
    ids, labels = encode_texts(tok, rows.texts, 256), torch.tensor(label_ids(rows, names))
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(ids), generator=g)
    opt_a = torch.optim.AdamW(ours.parameters(), lr=1e-3)
    opt_b = torch.optim.AdamW(theirs.parameters(), lr=1e-3)
    losses: dict[str, list[float]] = {"salesai": [], "transformers": []}
    seconds = {"salesai": 0.0, "transformers": 0.0}
    for step in range(steps):
        pick = order[(step * 16) % len(ids):][:16].tolist()
        x, mask = pad_batch([ids[i] for i in pick], 0)
        y = labels[pick]
        for name, model, opt in (("salesai", ours, opt_a), ("transformers", theirs, opt_b)):
            t0 = time.perf_counter()
            out_ = model(input_ids=x, attention_mask=mask, labels=y)
            ce = torch.nn.functional.cross_entropy(out_.logits.detach().float(), y)
            out_.loss.backward()
            opt.step()
            opt.zero_grad()
            seconds[name] += time.perf_counter() - t0
            losses[name].append(float(ce))
    diff = max(abs(a - b) for a, b in zip(losses["salesai"], losses["transformers"], strict=True))
    return {"steps": steps, "first_ce": [losses["salesai"][0], losses["transformers"][0]],
            "last_ce": [losses["salesai"][-1], losses["transformers"][-1]], "max_ce_diff": diff,
            "s_per_step": {k: v / steps for k, v in seconds.items()}}


def throughput(checkpoint: str, test: Path, out: Path, threads: int) -> dict[str, Any]:
    import torch

    from salesai.data.tabular import read_labelled
    from salesai.export.onnx_classifier import export_classifier_onnx
    from salesai.model import load_classifier
    from salesai.ort_classify import OrtTextClassifier

    torch.set_num_threads(threads)
    texts = read_labelled(test).texts
    clf = load_classifier(checkpoint)
    export_classifier_onnx(clf.model, clf.tokenizer, out / "onnx", quantize="int8", force=True)
    results: dict[str, Any] = {}
    reference = None
    predictors = (("torch", clf), ("onnxruntime-fp32", OrtTextClassifier(out / "onnx", threads=threads)),
                  ("onnxruntime-int8", OrtTextClassifier(out / "onnx", variant="int8", threads=threads)))
    for name, predictor in predictors:
        predictor.predict(texts[:8])  # warm up
        t0 = time.perf_counter()
        preds = [p["label"] for p in predictor.predict(texts, batch_size=16)]
        elapsed = time.perf_counter() - t0
        reference = reference or preds
        same = sum(a == b for a, b in zip(preds, reference, strict=True)) / len(texts)
        results[name] = {"texts_per_s": len(texts) / elapsed, "same_label_as_torch": same}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--init", type=Path, default=None, help="a language-model checkpoint + tokenizer")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning peak lr (default: by width)")
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--referee-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["tfidf", "referee", "throughput", "scratch"])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="salesai-bench-classify-"))
    out.mkdir(parents=True, exist_ok=True)
    train, test, info = split(args.classes, args.per_class, out)
    emit(stage="data", **info, out=str(out))
    if "tfidf" not in args.skip:
        try:
            emit(stage="result", model="tfidf+logreg", **tfidf(train, test))
        except ImportError:
            emit(stage="result", model="tfidf+logreg", skipped="scikit-learn is not installed "
                 "(pip install './packages/salesai-core[bench]')")
    init = args.init or pretrain(train, out, args.pretrain_steps, args.vocab, args.threads)
    pre = finetune("pretrained", init, train, test, out, args.steps, args.threads, scratch=False, lr=args.lr)
    emit(stage="result", model="salesai-pretrained", init=str(init), lr=args.lr, **pre)
    if "scratch" not in args.skip:
        scratch = finetune("scratch", init, train, test, out, args.steps, args.threads, True, lr=args.lr)
        emit(stage="result", model="salesai-scratch", lr=args.lr, **scratch)
    if "referee" not in args.skip:
        emit(stage="referee", **referee(init, train, args.referee_steps, args.threads, out))
    if "throughput" not in args.skip:
        emit(stage="throughput", **throughput(pre["checkpoint"], test, out, args.threads))


if __name__ == "__main__":
    main()
