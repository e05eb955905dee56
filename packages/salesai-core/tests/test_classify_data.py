"""Labelled data for classification (salesai.data.tabular) and its `salesai data inspect` report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salesai.data.inspection import inspect_data
from salesai.data.tabular import (
    classification_summary,
    is_labelled_file,
    label_ids,
    label_names,
    read_labelled,
)
from salesai.errors import SalesAIError
from salesai.testing import run_cli

ROWS = [("good film", "pos"), ("bad film", "neg"), ("fine, really", "pos")]


def _write_all(tmp: Path) -> dict[str, Path]:
    files = {
        "csv": tmp / "d.csv",
        "tsv": tmp / "d.tsv",
        "jsonl": tmp / "d.jsonl",
        "json": tmp / "d.json",
    }
    files["csv"].write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in ROWS), encoding="utf-8")
    files["tsv"].write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in ROWS), encoding="utf-8")
    meta = {"metadata": {"task": "classify", "text_column": "review", "label_column": "y",
                         "labels": ["neg", "pos"]}}
    records = [{"review": t, "y": lab} for t, lab in ROWS]
    files["jsonl"].write_text("\n".join(json.dumps(x) for x in [meta, *records]), encoding="utf-8")
    files["json"].write_text(json.dumps({"metadata": meta["metadata"], "data": records}), encoding="utf-8")
    return files


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "json"])
def test_every_format_reads_the_same_rows(tmp_path: Path, kind: str) -> None:
    path = _write_all(tmp_path)[kind]
    data = read_labelled(path)
    assert list(zip(data.texts, data.labels, strict=True)) == ROWS
    assert is_labelled_file(path)
    assert label_names(data) == ["neg", "pos"]
    assert label_ids(data, ["neg", "pos"]) == [1, 0, 1]
    if kind in ("csv", "tsv"):
        assert data.rows == [2, 3, 4]  # line numbers (the header is line 1)
    if kind == "jsonl":
        assert (data.text_column, data.label_column, data.rows) == ("review", "y", [2, 3, 4])


def test_command_line_columns_win_and_numbers_are_labels(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text('{"body": "a", "stars": 1}\n{"body": "b", "stars": 5.0}\n', encoding="utf-8")
    data = read_labelled(path, text_column="body", label_column="stars")
    assert data.labels == ["1", "5"]
    assert not is_labelled_file(path)  # no metadata: only with columns given


def test_bad_rows_name_the_file_and_row(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("text,label\nok,pos\nno label,\nfine,neg\n", encoding="utf-8")
    with pytest.raises(SalesAIError, match=r"bad\.csv:3: missing label \(column 'label'\)"):
        read_labelled(csv)
    lenient = read_labelled(csv, strict=False)
    assert lenient.texts == ["ok", "fine"] and lenient.problems == [(3, "missing_label",
                                                                   "missing label (column 'label')")]
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(b"text\tlabel\nfine\tpos\ncaf\xe9\tneg\n")
    with pytest.raises(SalesAIError, match=r"latin\.tsv:3: not UTF-8 text"):
        read_labelled(latin)
    js = tmp_path / "r.json"
    js.write_text(json.dumps([{"text": "a", "label": "x"}, {"text": 5, "label": "y"}]), encoding="utf-8")
    with pytest.raises(SalesAIError, match=r"r\.json, record 2: text \(column 'text'\) is a int"):
        read_labelled(js)
    train = read_labelled(csv, strict=False)
    val = tmp_path / "val.csv"
    val.write_text("text,label\nx,pos\ny,neutral\n", encoding="utf-8")
    with pytest.raises(SalesAIError, match=r"val\.csv:3: label 'neutral' was not seen in training"):
        label_ids(read_labelled(val), label_names(train))
    with pytest.raises(SalesAIError, match=r"unsupported labelled-data format '\.txt'"):
        read_labelled(tmp_path / "x.txt")


def test_summary_counts_imbalance_duplicates_leakage_and_long_texts(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\na,x\na,y\nb,x\nc,x\n ,x\nlong long long text,y\n", encoding="utf-8")
    val = tmp_path / "val.csv"
    val.write_text("text,label\nb,x\nnew,z\n", encoding="utf-8")

    class Chars:  # one token per character
        def encode(self, text: str) -> list[int]:
            return [ord(c) for c in text]

    s = classification_summary(read_labelled(train), read_labelled(val), Chars(), max_len=10)
    t = s["train"]
    assert t["label_counts"] == {"x": 4, "y": 2} and t["imbalance"] == 2.0
    assert (t["duplicates"], t["conflicting_duplicates"], t["empty_texts"], t["too_long"]) == (1, 1, 1, 1)
    assert s["leakage"] == 1 and s["val_unseen_labels"] == ["z"]

    report = inspect_data(train, val=val)
    assert report.classification is not None and report.classification["train"]["rows"] == 6
    assert [(p.line, p.kind) for p in report.problems] == [(3, "unseen_label")]
    result = run_cli(["data", "inspect", str(train), "--val", str(val), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["classification"]["leakage"] == 1
    text = run_cli(["data", "inspect", str(train), "--val", str(val)])
    assert "leakage" in text.stdout and "imbalance" in text.stdout
