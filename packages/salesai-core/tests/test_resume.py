"""Exact resume, pickle-free trainer state, and crash safety (SIGKILL in the middle of a save)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import salesai
from salesai.train import state as S
from salesai.train.trainer import TrainConfig, Trainer

TOKENS_SEED = 0


def tokens(n: int = 5000) -> torch.Tensor:
    g = torch.Generator().manual_seed(TOKENS_SEED)
    return torch.randint(4, 512, (n,), generator=g)


def make_trainer(out: Path, model_seed: int = 0, **kw: object) -> Trainer:
    torch.manual_seed(model_seed)
    model = salesai.SalesAIModel(salesai.ModelConfig.from_name("tiny"))
    base = dict(max_steps=10, batch_size=3, seq_len=24, grad_accum=2, warmup_steps=3, lr=2e-3, min_lr=2e-4,
                eval_every=5, eval_steps=2, save_every=4, keep_last=2, log_every=1, precision="fp32",
                out_dir=str(out), seed=7)
    base.update(kw)
    data = tokens()
    return Trainer(model, TrainConfig(**base), data, data[:600], progress=False,  # type: ignore[arg-type]
                   log=lambda _m: None)


def test_stopped_and_resumed_run_matches_uninterrupted(tmp_path: Path) -> None:
    full = make_trainer(tmp_path / "a").fit()
    first = make_trainer(tmp_path / "b").fit(stop_at_step=4)  # ends with a checkpoint at step 4
    assert first.step == 4 and (tmp_path / "b" / "step-000004").is_dir()
    # a different initialisation proves the weights come from the checkpoint
    second = make_trainer(tmp_path / "b", model_seed=123).fit(resume=True)
    assert second.step == 10 and len(second.losses) == 6
    np.testing.assert_allclose(first.losses + second.losses, full.losses, rtol=0, atol=1e-6)
    assert second.evals[-1]["val_loss"] == pytest.approx(full.evals[-1]["val_loss"], abs=1e-6)
    a = salesai.SalesAIModel.from_pretrained(tmp_path / "a" / "step-000010").state_dict()
    b = salesai.SalesAIModel.from_pretrained(tmp_path / "b" / "step-000010").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    kinds = [json.loads(x)["kind"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert "resume" in kinds


def test_trainer_state_is_safetensors_and_json_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer(tmp_path)
    trainer.fit(stop_at_step=4)
    ckpt = S.latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.name == "step-000004"
    state = json.loads((ckpt / "trainer_state" / "state.json").read_text())
    assert state["step"] == 4 and state["data"]["samples_seen"] == 4 * 3 * 2
    assert state["train_config"]["grad_accum"] == 2
    from safetensors import safe_open

    with safe_open(str(ckpt / "trainer_state" / "optimizer.safetensors"), "pt") as f:
        keys = set(f.keys())
    n_params = len(list(trainer.model.parameters()))
    assert {f"state.{i}.exp_avg" for i in range(n_params)} <= keys
    # loading must not unpickle anything
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    monkeypatch.setattr("pickle.loads", lambda *a, **k: pytest.fail("pickle.loads called"))
    resumed = make_trainer(tmp_path, model_seed=5)
    resumed.load_checkpoint(ckpt)
    assert resumed.step == 4
    opt_a, opt_b = trainer.optimizer.state_dict(), resumed.optimizer.state_dict()
    for pid, st in opt_a["state"].items():
        for name, value in st.items():
            assert torch.equal(value, opt_b["state"][pid][name]), (pid, name)
    assert opt_a["param_groups"] == opt_b["param_groups"]


def test_keep_last_and_latest_pointer(tmp_path: Path) -> None:
    make_trainer(tmp_path, save_every=2, keep_last=2, eval_every=0).fit()
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("step-"))
    assert names == ["step-000008", "step-000010"]
    assert (tmp_path / "latest").read_text() == "step-000010\n"
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".latest*"))
    (tmp_path / "latest").unlink()  # a lost pointer falls back to the newest complete directory
    assert S.latest_checkpoint(tmp_path) == tmp_path / "step-000010"
    assert S.resolve_checkpoint(tmp_path) == tmp_path / "step-000010"


CRASH_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_resume import make_trainer
torch.set_num_threads(1)
make_trainer(__import__("pathlib").Path({out!r})).fit()
"""


def test_sigkill_during_save_leaves_previous_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    marker = tmp_path / "saving"
    env = {**os.environ, "SALESAI_TEST_SAVE_SLEEP": "60", "SALESAI_TEST_SAVE_SLEEP_AT": "8",
           "SALESAI_TEST_SAVE_MARKER": str(marker), "OMP_NUM_THREADS": "1"}
    script = CRASH_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the save hook was never reached"
            time.sleep(0.1)
        half = Path(marker.read_text().strip())
        assert half.is_dir() and (half / "model.safetensors").is_file()  # weights written, state not yet
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # the interrupted save is invisible: latest still points at the previous, complete checkpoint
    assert (out / "latest").read_text().strip() == "step-000004"
    assert not (out / "step-000008").exists()
    ckpt = S.latest_checkpoint(out)
    assert ckpt == out / "step-000004"
    model = salesai.SalesAIModel.from_pretrained(ckpt)
    assert model.config.name == "tiny"
    # and the run resumes from it, cleans the half-written directory, and matches an uninterrupted run
    before = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in before) >= 8  # the killed run logged steps past its checkpoint
    resumed = make_trainer(out, model_seed=99).fit(resume=True)
    assert not half.exists()
    train_steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()
                   if json.loads(x)["kind"] == "train"]
    assert train_steps == list(range(1, 11))  # records after step 4 were dropped, then rewritten once
    full = make_trainer(tmp_path / "full").fit()
    np.testing.assert_allclose(resumed.losses, full.losses[4:], rtol=0, atol=1e-6)
