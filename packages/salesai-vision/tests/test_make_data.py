"""`salesai vision make-data`: seeded, held-out splits as documented, records the trainer reads."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from PIL import Image

from salesai.testing import run_cli
from salesai_vision.data.shapes import COLOURS, SHAPES, splits


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def objects_in(caption: str) -> set[str]:
    words = caption.split()
    return {f"{c} {s}" for c, s in itertools.pairwise(words) if c in COLOURS and s in SHAPES}


def test_shapes_splits_and_records(tmp_path: Path) -> None:
    result = run_cli(["vision", "make-data", "shapes", "--out", str(tmp_path / "a"), "--n", "40"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    d = tmp_path / "a"
    train, test, novel = (read(d / f) for f in ("train.jsonl", "test.jsonl", "test_objects.jsonl"))
    assert summary["files"]["train.jsonl"] == {"images": 40, "records": 80}
    assert len(test) == len(novel) == 20
    for r in train[:4]:
        assert r["prompt"].startswith("<image> ") and r["response"]
        with Image.open(d / r["image"]) as im:
            assert im.size == (64, 64) and im.mode == "RGB"
    captions = {r["response"] for r in train if r["task"] == "caption"}
    held = set(summary["held_out_objects"])
    seen_objects = set().union(*(objects_in(c) for c in captions))
    assert not held & seen_objects  # held-out objects never appear in training
    for r in novel:
        if r["task"] == "caption":
            assert held & objects_in(r["response"])
    test_captions = {r["response"] for r in test if r["task"] == "caption"}
    assert not test_captions & captions  # held-out triples are unseen
    assert "held-out" in (d / "README.md").read_text()


def test_shapes_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert run_cli(["vision", "make-data", "shapes", "--out", str(tmp_path / name), "--n", "12",
                        "--seed", "3"]).exit_code == 0
    assert (tmp_path / "a/train.jsonl").read_bytes() == (tmp_path / "b/train.jsonl").read_bytes()
    assert (tmp_path / "a/images/00005.png").read_bytes() == (tmp_path / "b/images/00005.png").read_bytes()
    held, train, test = splits(3)
    assert len(held) == 2 and not set(train) & set(test)


def test_caption_names_top_or_left_object_first(tmp_path: Path) -> None:
    run_cli(["vision", "make-data", "shapes", "--out", str(tmp_path), "--n", "10"])
    record = next(r for r in read(tmp_path / "train.jsonl") if r["task"] == "caption")
    colour = record["response"].split()[1]
    with Image.open(tmp_path / record["image"]) as im:
        a = im.convert("RGB").load()
    first_half = [a[x, y] for x in range(64) for y in range(64)
                  if (y < 32 if " above " in record["response"] else x < 32)]
    assert COLOURS[colour] in first_half


def test_digits_grids(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    result = run_cli(["vision", "make-data", "digits", "--out", str(tmp_path), "--n", "12"])
    assert result.exit_code == 0, result.stderr
    train = read(tmp_path / "train.jsonl")
    caption = next(r for r in train if r["task"] == "caption")
    assert len(caption["response"].split()) == 4 and all(c.isdigit() for c in caption["response"].split())
    with Image.open(tmp_path / caption["image"]) as im:
        assert im.size == (64, 64) and im.mode == "L"
    assert "unseen handwriting" in (tmp_path / "README.md").read_text()


def test_bad_arguments(tmp_path: Path) -> None:
    result = run_cli(["vision", "make-data", "circles", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "expected shapes or digits" in result.stderr
    result = run_cli(["vision", "make-data", "shapes", "--out", str(tmp_path), "--n", "3"])
    assert result.exit_code == 2 and "at least 10" in result.stderr
