"""Training on audio prompt/response records through the core's Trainer: learning and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.data.records import RecordDataset
from salesai.testing import ByteTokenizer
from salesai.train.trainer import TrainConfig, Trainer
from salesai_audio.io import encode_wav

ENCODER = {"type": "audio", "hidden_dim": 32, "num_layers": 1, "num_heads": 4, "intermediate_dim": 64,
           "patch_size": 4, "max_seconds": 0.4}  # fmt: skip
TOK = ByteTokenizer()


def write_records(tmp: Path) -> Path:
    """8 clips (a tone of one of 4 pitches, two amplitudes) with prompt/response records."""
    rng = np.random.default_rng(0)
    (tmp / "clips").mkdir()
    rows = []
    for i in range(8):
        k = i % 4
        t = np.arange(6400) / 16000
        clip = (0.3 + 0.2 * (i // 4)) * np.sin(2 * np.pi * 300 * 2**k * t) + 0.01 * rng.standard_normal(6400)
        (tmp / "clips" / f"{i}.wav").write_bytes(encode_wav(clip, 16000, 16))
        rows.append({"prompt": "<audio>", "response": "wxyz"[k], "audio": f"clips/{i}.wav", "speaker": "s"})
    path = tmp / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def trainer(data: Path, out: Path, seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    model = SalesAIModel(ModelConfig.from_name("tiny", encoders={"audio": ENCODER}))
    ds = RecordDataset.from_files(data, TOK, seq_len=32, model=model)
    config = TrainConfig(max_steps=8, batch_size=4, seq_len=32, grad_accum=1, warmup_steps=2, lr=3e-3,
                         min_lr=3e-4, eval_every=4, eval_steps=1, save_every=4, keep_last=2, log_every=1,
                         precision="fp32", out_dir=str(out), seed=3)  # fmt: skip
    return Trainer(model, config, ds, ds, progress=False, log=lambda _m: None)


def test_audio_records_train_and_resume_exactly(tmp_path: Path) -> None:
    data = write_records(tmp_path)
    full = trainer(data, tmp_path / "a").fit()
    assert full.losses[-1] < full.losses[0]
    first = trainer(data, tmp_path / "b").fit(stop_at_step=4)
    second = trainer(data, tmp_path / "b", seed=99).fit(resume=True)
    np.testing.assert_allclose(first.losses + second.losses, full.losses, rtol=0, atol=1e-6)
    a = SalesAIModel.from_pretrained(tmp_path / "a" / "step-000008").state_dict()
    b = SalesAIModel.from_pretrained(tmp_path / "b" / "step-000008").state_dict()
    assert any(k.startswith("encoders.audio.convs.") for k in a)
    assert all(torch.equal(a[k], b[k]) or torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
