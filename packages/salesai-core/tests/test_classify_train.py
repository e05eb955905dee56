"""Training a classifier through the Trainer (learning check, metrics, exact resume) and the
`salesai train --task classify` / `classify` / `eval` commands end to end. Tiny models, bytes or a
small SentencePiece vocabulary, a synthetic keyword task (which word decides the label)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch

from salesai.model.classifier import SalesAIForSequenceClassification, encode_texts
from salesai.model.config import ModelConfig
from salesai.testing import ByteTokenizer, run_cli
from salesai.train import TrainConfig, Trainer
from salesai.train.classify import ClassificationData, balanced_weights, classification_metrics

torch.set_num_threads(1)
LABELS = ["neg", "pos"]
KEYWORDS = {"neg": ["awful", "boring", "hate"], "pos": ["great", "lovely", "fun"]}
FILLER = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "was", "for", "on", "at", "one", "this"]


def keyword_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(LABELS)
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 6))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(KEYWORDS[label]))
        rows.append((" ".join(words), label))
    return rows


def dataset(rows: list[tuple[str, str]], tok: ByteTokenizer) -> ClassificationData:
    ids = encode_texts(tok, [t for t, _ in rows], 64)
    return ClassificationData(ids, [LABELS.index(lab) for _, lab in rows], 0, LABELS)


def make_trainer(out: Path, steps: int = 60, **overrides: object) -> Trainer:
    tok = ByteTokenizer()
    torch.manual_seed(0)
    config = ModelConfig.from_name("tiny", vocab_size=len(tok), labels=LABELS)
    model = SalesAIForSequenceClassification(config)
    cfg = TrainConfig(max_steps=steps, batch_size=16, seq_len=64, lr=2e-3, min_lr=2e-4, warmup_steps=4,
                      eval_every=steps // 2, save_every=0, log_every=5, precision="fp32", device="cpu",
                      out_dir=str(out), **overrides)  # type: ignore[arg-type]
    return Trainer(model, cfg, dataset(keyword_rows(320, 0), tok), dataset(keyword_rows(64, 1), tok),
                   progress=False, log=lambda _m: None)


def test_classifier_learns_a_keyword_task_and_logs_classification_metrics(tmp_path: Path) -> None:
    result = make_trainer(tmp_path).fit()
    first, last = result.evals[0], result.evals[-1]
    assert last["val_accuracy"] >= 0.85, last  # chance is 0.5; 0.94 measured
    assert last["val_macro_f1"] >= 0.85 and last["val_loss"] < first["val_loss"] + 0.05
    assert last["val_texts"] == 64 and sum(map(sum, last["confusion_matrix"])) == 64
    assert set(last["per_class"]) == set(LABELS)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [30, 60] and "confusion_matrix" in evals[-1]
    saved = SalesAIForSequenceClassification.from_pretrained(tmp_path / "step-000060")
    preds = saved.predict(["on the great one", "it was awful"], ByteTokenizer())
    assert [p["label"] for p in preds] == ["pos", "neg"]


def test_stopped_and_resumed_classifier_matches_uninterrupted(tmp_path: Path) -> None:
    full = make_trainer(tmp_path / "a", steps=8).fit()
    make_trainer(tmp_path / "b", steps=8).fit(stop_at_step=4)
    resumed = make_trainer(tmp_path / "b", steps=8).fit(resume=True)
    assert resumed.step == 8
    a = SalesAIForSequenceClassification.from_pretrained(tmp_path / "a" / "step-000008").state_dict()
    b = SalesAIForSequenceClassification.from_pretrained(tmp_path / "b" / "step-000008").state_dict()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name
    assert resumed.evals[-1]["val_loss"] == full.evals[-1]["val_loss"]


def test_metrics_from_a_confusion_matrix_and_balanced_weights() -> None:
    cm = torch.tensor([[3, 1], [0, 4]])  # rows = true, columns = predicted
    m = classification_metrics(cm, ["a", "b"])
    assert m["val_accuracy"] == pytest.approx(7 / 8)
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.75, "f1": pytest.approx(6 / 7), "support": 4}
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.8)
    assert m["val_macro_f1"] == pytest.approx((6 / 7 + 8 / 9) / 2)
    torch.testing.assert_close(balanced_weights(torch.tensor([30, 10, 0])),
                               torch.tensor([40 / 90, 40 / 30, 0.0]))


@pytest.fixture(scope="module")
def lm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny language-model checkpoint with a small SentencePiece tokenizer (the --init source)."""
    from salesai.model import save_checkpoint
    from salesai.model.transformer import SalesAIModel
    from salesai.tokenizer import Tokenizer

    root = tmp_path_factory.mktemp("lm")
    texts = [t for t, _ in keyword_rows(300, 5)] * 3
    tok = Tokenizer.train(iter(texts), vocab_size=300, out_dir=root / "tok")
    torch.manual_seed(0)
    lm = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tok), num_layers=1))
    return save_checkpoint(root / "lm", lm, tok)


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "sentiment"])
        writer.writerows(rows)
    return path


def test_cli_train_classify_then_predict_eval_and_export(tmp_path: Path, lm_checkpoint: Path) -> None:
    train = _write_csv(tmp_path / "train.csv", keyword_rows(320, 0))
    test = _write_csv(tmp_path / "test.csv", keyword_rows(48, 1))
    args = ["train", "--task", "classify", "--init", str(lm_checkpoint), "--data", str(train),
            "--val", str(test), "--text-column", "review", "--label-column", "sentiment",
            "--out", str(tmp_path / "clf"), "--max-steps", "40", "--batch-size", "16", "--precision", "fp32",
            "--json"]
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["labels"] == LABELS and summary["steps"] == 40
    assert summary["eval"]["val_accuracy"] >= 0.85, summary["eval"]
    clf = tmp_path / "clf"
    config = json.loads((clf / "step-000040" / "config.json").read_text())
    assert config["labels"] == LABELS and config["num_layers"] == 1  # the --init model's architecture

    one = run_cli(["classify", str(clf), "such a lovely film", "--json"])
    assert one.exit_code == 0, one.stderr
    pred = json.loads(one.stdout)
    assert pred["label"] == "pos" and set(pred["probabilities"]) == set(LABELS)
    piped = run_cli(["classify", str(clf)], input="i hate this\n\nthat was fun\n")
    assert piped.exit_code == 0
    assert [line.split("\t")[0] for line in piped.stdout.splitlines()] == ["neg", "pos"]
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"text": "boring and awful"}\n{"text": "great fun"}\n', encoding="utf-8")
    batch = run_cli(["classify", str(clf), "--file", str(inputs), "--json"])
    assert [json.loads(x)["label"] for x in batch.stdout.splitlines()] == ["neg", "pos"]

    ev = run_cli(["eval", str(clf), "--data", str(test), "--json"])  # the default column names
    assert ev.exit_code == 2 and "missing text (column 'text')" in ev.stderr
    ev = run_cli(["eval", str(clf), "--data", str(test), "--text-column", "review",
                  "--label-column", "sentiment", "--json"])
    assert ev.exit_code == 0, ev.stderr
    metrics = json.loads(ev.stdout)
    assert metrics["val_accuracy"] == pytest.approx(summary["eval"]["val_accuracy"])
    assert len(metrics["confusion_matrix"]) == 2

    onnx_dir = tmp_path / "clf-onnx"
    exported = run_cli(["export", str(clf), "--format", "onnx", "--out", str(onnx_dir)])
    assert exported.exit_code == 0, exported.stderr
    ort = run_cli(["classify", str(onnx_dir), "--backend", "onnxruntime", "--file", str(inputs), "--json"])
    assert ort.exit_code == 0, ort.stderr
    for a, b in zip(ort.stdout.splitlines(), batch.stdout.splitlines(), strict=True):
        pa, pb = json.loads(a), json.loads(b)
        assert pa["label"] == pb["label"] and pa["score"] == pytest.approx(pb["score"], abs=1e-4)


def test_cli_resume_continues_a_classifier_run(tmp_path: Path, lm_checkpoint: Path) -> None:
    train = _write_csv(tmp_path / "train.csv", keyword_rows(64, 0))
    base = ["train", "--task", "classify", "--init", str(lm_checkpoint), "--data", str(train),
            "--text-column", "review", "--label-column", "sentiment", "--out", str(tmp_path / "run"),
            "--batch-size", "8", "--precision", "fp32", "--json"]
    first = run_cli([*base, "--max-steps", "4"])
    assert first.exit_code == 0, first.stderr
    again = run_cli([*base, "--max-steps", "4"])
    assert again.exit_code == 2 and "already holds checkpoints; pass --resume" in again.stderr
    resumed = run_cli([*base, "--max-steps", "8", "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 8 and "resumed from" in resumed.stderr
    assert (tmp_path / "run" / "latest").read_text().strip() == "step-000008"
    plain = run_cli([*base[:-1], "--max-steps", "9", "--resume"])  # the readable summary, without --json
    assert plain.exit_code == 0, plain.stderr
    lines = plain.stdout.strip().splitlines()
    assert lines[0].startswith("trained 9 steps (") and lines[0].endswith(f"labels: {', '.join(LABELS)}")
    assert lines[-2:] == [f"checkpoint: {tmp_path / 'run' / 'step-000009'}",
                          f"metrics: {tmp_path / 'run' / 'metrics.jsonl'}"]


def test_cli_errors_are_one_line(tmp_path: Path, lm_checkpoint: Path) -> None:
    train = _write_csv(tmp_path / "t.csv", [("x", "a"), ("y", "")])
    bad = run_cli(["train", "--task", "classify", "--data", str(train), "--out", str(tmp_path / "o"),
                   "--text-column", "review", "--label-column", "sentiment", "--init", str(lm_checkpoint)])
    assert bad.exit_code == 2 and "t.csv:3: missing label (column 'sentiment')" in bad.stderr
    lm = run_cli(["classify", str(lm_checkpoint), "hello"])
    assert lm.exit_code == 2 and "a language model, not a classifier" in lm.stderr
    task = run_cli(["train", "--task", "regress", "--data", str(train), "--out", str(tmp_path / "o")])
    assert task.exit_code == 2 and "--task 'regress': expected one of lm, classify" in task.stderr


def test_docs_page_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = Path(__file__).resolve().parents[3] / "docs" / "classification.md"
    if not page.is_file():
        pytest.skip("runs from a repository checkout (docs/ not found)")
    import re

    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_classification"}
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page}[python block {i}]", "exec"), namespace)
    assert namespace["summary"]["eval"]["val_accuracy"] >= 0.9  # type: ignore[index]
    assert (tmp_path / "clf" / "latest").is_file()
