"""`salesai quickstart` with a tiny budget and corpus: every report field, the files, the scoring helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from salesai.quickstart import cut_function, parses, unigram_baseline
from salesai.testing import run_cli


def test_unigram_baseline_known_values() -> None:
    uniform = unigram_baseline(np.array([0, 1, 2, 3] * 5), vocab_size=10)
    assert uniform["loss"] == pytest.approx(math.log(4)) and uniform["perplexity"] == pytest.approx(4.0)
    assert unigram_baseline(np.array([7] * 9), vocab_size=10)["loss"] == pytest.approx(0.0)


def test_cut_function_and_parse_scoring() -> None:
    prompt = "def f(x):\n"
    closed = cut_function(prompt, "    y = x + 1\n    return y\n\ndef g():\n    pass\n", finished=True)
    assert closed == "def f(x):\n    y = x + 1\n    return y\n" and parses(closed)
    # stopped at the token limit inside the function: the possibly cut last line is dropped
    cut = cut_function(prompt, "    y = x + 1\n    return (y +", finished=False)
    assert cut == "def f(x):\n    y = x + 1\n" and parses(cut)
    assert not parses(cut_function(prompt, "    return (x +\n\nz = 1\n", finished=True))
    method = cut_function("def m(self):\n", "        return self.x\n    def n(self):\n", finished=True)
    assert parses(method)  # a body indented deeper than the dedented header still parses
    in_class = cut_function("class A:\n    def m(self):\n        \"\"\"Doc.\"\"\"\n",
                            "        return 1\n\n    def n(self):\n", finished=True)
    assert in_class == "class A:\n    def m(self):\n        \"\"\"Doc.\"\"\"\n        return 1\n"
    assert parses(in_class)
    # a body deeper than its docstring is an indentation error, as Python says
    deeper = cut_function("def m(self):\n    \"\"\"Doc.\"\"\"\n", "        return 1\n", finished=True)
    assert not parses(deeper)


def test_contextual_prompt_puts_methods_in_their_class(tmp_path: Path) -> None:
    from salesai.data import heldout_signatures
    from salesai.quickstart import contextual_prompt

    src = tmp_path / "m.py"
    src.write_text("class Box:\n    def get(self, key):\n        \"\"\"Return key.\"\"\"\n        x = 1\n"
                   "        return self.items[key]\n\n\ndef top(a):\n    b = a\n    return b\n")
    sigs = {s.name: s for s in heldout_signatures([src], n=5, include_docstring=True)}
    expected = 'class Box:\n    def get(self, key):\n        """Return key."""\n'
    assert contextual_prompt(sigs["get"]) == expected
    assert contextual_prompt(sigs["top"]) == "def top(a):\n"


def test_thread_tuner_follows_the_faster_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from salesai.quickstart import ThreadTuner

    current = {"n": 1}
    monkeypatch.setattr(ThreadTuner, "set", lambda self, n: current.__setitem__("n", n))
    monkeypatch.setattr(torch, "get_num_threads", lambda: current["n"])
    tuner = ThreadTuner([2, 1], every=3)
    assert tuner.current == 1
    speed = {1: 1.0, 2: 0.5}  # two free cores: 2 threads are faster
    for _ in range(10):
        tuner(None, {"step_s": speed[current["n"]]})
    assert (tuner.current, tuner.switches, current["n"]) == (2, 1, 2)
    speed = {1: 1.0, 2: 8.0}  # another process takes a core: 2 threads stall
    for _ in range(40):
        tuner(None, {"step_s": speed[current["n"]]})
    assert (tuner.current, tuner.switches, current["n"]) == (1, 2, 1)
    assert tuner.interval > 3  # failed trials of 2 threads back off


def test_quickstart_tiny_budget_reports_everything(tmp_path: Path) -> None:
    """A short run beside an artificial competing load (a busy process): a step budget, not a time
    budget, so the result does not depend on the load, and the report says the run was contended."""
    import subprocess
    import sys

    out = tmp_path / "qs"
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        r = run_cli(["quickstart", "--out", str(out), "--minutes", "0.5", "--max-corpus-mb", "0.4",
                     "--threads", "1", "--no-export", "--max-steps", "6", "--json"])
    finally:
        busy.kill()
        busy.wait()
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    v, base, tr = report["validation"], report["unigram_baseline"], report["training"]
    assert math.isfinite(v["loss"]) and v["perplexity"] == pytest.approx(math.exp(v["loss"]))
    assert v["tokens"] > 0
    assert 0 < base["loss"] < math.log(report["model"]["vocab_size"])
    assert base["perplexity"] == pytest.approx(math.exp(base["loss"]))
    assert tr["steps"] == 2 + 6 and tr["tokens"] == tr["steps"] * 16 * 256  # 2 probe steps (1 thread) + 6
    assert tr["shape"] == "default" and tr["shape_notes"] == []
    assert tr["precision"] in ("fp32", "bf16") and tr["threads"] == 1
    assert math.isfinite(tr["final_train_loss"])
    comp = report["completions"]
    assert 4 <= comp["count"] <= 16 and 0.0 <= comp["parse_rate"] <= 1.0  # 16, or all the small corpus has
    samples = [json.loads(x) for x in Path(comp["file"]).read_text().splitlines()]
    assert len(samples) == comp["count"]
    assert all(s["prompt"].lstrip().startswith(("def ", "async def ", "class ")) for s in samples)
    assert sum(s["parses"] for s in samples) / len(samples) == comp["parse_rate"]
    experts = report["experts"]
    assert len(experts["per_layer"]) == report["model"]["num_layers"]
    assert all(sum(layer["share"]) == pytest.approx(1.0, abs=0.01) for layer in experts["per_layer"])
    assert 0.0 < experts["mean_utilisation"] <= 1.0
    assert report["onnx"]["status"].startswith("skipped")
    paths = report["paths"]
    for key in ("checkpoint", "tokenizer", "metrics", "samples", "report"):
        assert Path(paths[key]).exists(), key
    ckpt = Path(paths["checkpoint"])
    assert {"config.json", "model.safetensors", "tokenizer.model"} <= {p.name for p in ckpt.iterdir()}
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["others_cores_during"] > 0.5
    assert machine["contended"] is True and "contended" in machine["note"]
    assert "validation loss" in r.stderr or "val loss" in r.stderr  # progress went to stderr


def test_contention_meter_sees_a_busy_process() -> None:
    import subprocess
    import sys
    import time

    from salesai.contention import CpuMeter, describe

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        meter = CpuMeter().start()
        time.sleep(1.0)
        others = meter.read(own_threads=0)
    finally:
        busy.kill()
        busy.wait()
    assert others > 0.5  # the busy loop kept (most of) a core
    report = describe(0.0, others, cores=2)
    assert report["contended"] is True and "contended" in str(report["note"])
    assert describe(0.1, 0.2, cores=2)["contended"] is False


def test_smaller_shapes_when_too_few_steps_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow machine (simulated: every step reports 50 s) gets the smallest shape, said in the report."""
    from salesai import quickstart as Q

    monkeypatch.setattr(Q, "_probe", lambda trainer, tuner: (50.0, [trainer.train_step()["loss"]]))
    opts = Q.QuickstartOptions(out_dir=tmp_path / "qs", minutes=0.5, threads=1, max_corpus_bytes=300_000,
                               export=False, num_samples=2, max_new_tokens=8)
    report = Q.run_quickstart(opts, log=lambda _m: None)
    tr = report["training"]
    assert tr["shape"] == "smaller" and len(tr["shape_notes"]) == 2
    assert "would train only" in tr["shape_notes"][0]
    assert report["model"]["hidden_dim"] == 128 and report["model"]["num_layers"] == 2
