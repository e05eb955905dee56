"""Transcription end to end: train a tiny audio model, transcribe with torch and ONNX Runtime.

The CI-sized learning gate: clips of two tones in a row (4 pitches, so 16 classes, chance
6%) are transcribed to two letters after 120 optimizer steps. The same model is exported
to ONNX: ONNX Runtime transcribes exactly as torch does, without importing torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.model import save_checkpoint
from salesai.plugins import registry
from salesai.testing import ByteTokenizer, run_cli
from salesai_audio.io import encode_wav
from salesai_audio.transcribe import transcribe

AUDIO = 5  # <audio>
ENCODER = {
    "type": "audio",
    "hidden_dim": 32,
    "num_layers": 1,
    "num_heads": 4,
    "intermediate_dim": 64,
    "patch_size": 4,
    "max_seconds": 0.4,  # 40 frames -> 10 embeddings
}
FREQS = (300.0, 600.0, 1200.0, 2400.0)
LETTERS = "wxyz"  # tone k is transcribed as LETTERS[k]
PAIRS = [(a, b) for a in range(4) for b in range(4)]


def tones(ks: tuple[int, ...] | list[int], rng: np.random.Generator) -> np.ndarray:
    """Two 0.15 s tones in a row (random amplitude, phase and a little noise): (6400,) at 16 kHz."""
    t = np.arange(2400) / 16000
    parts = [rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * FREQS[k] * t + rng.uniform(0, 6.3)) for k in ks]
    clip = np.concatenate([*parts, np.zeros(1600)]) + 0.01 * rng.standard_normal(6400)
    return clip.astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny audio model trained 120 steps on tone pairs, its checkpoint, ONNX export and test clips."""
    root = tmp_path_factory.mktemp("transcribe")
    tok = ByteTokenizer()
    torch.manual_seed(0)
    model = SalesAIModel(ModelConfig.from_name("tiny", encoders={"audio": ENCODER}))
    encoder = model.encoders["audio"]
    rng = np.random.default_rng(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(120):
        pairs = [[int(k) for k in rng.integers(0, 4, 2)] for _ in range(8)]
        feats = torch.stack([encoder.preprocess(tones(p, rng)) for p in pairs])  # (8, 80, 40)
        ids = torch.tensor([[2, AUDIO, *tok.encode(LETTERS[a] + LETTERS[b]), 3] for a, b in pairs])
        labels = ids.clone()
        labels[:, :2] = -100  # the loss on the response only
        loss = model(ids, labels=labels, media={"audio": feats}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    save_checkpoint(root / "ckpt", model, tok)
    onnx_dir = root / "onnx"
    registry("exporters").get("onnx")(model, tok, onnx_dir, quantize="int8")
    test_rng = np.random.default_rng(123)
    files = []
    for a, b in PAIRS:
        path = root / f"{LETTERS[a]}{LETTERS[b]}.wav"
        path.write_bytes(encode_wav(tones((a, b), test_rng), 16000, 16))
        files.append(path)
    return {"ckpt": root / "ckpt", "onnx": onnx_dir, "files": files, "root": root}


def exact(records: list[dict[str, Any]]) -> int:
    return sum(r.get("text") == Path(r["file"]).stem for r in records)


def test_learns_tone_pairs_far_above_chance(trained: dict[str, Any]) -> None:
    records = transcribe(trained["ckpt"], trained["files"], backend="torch", max_new_tokens=4)
    assert [r["file"] for r in records] == [str(f) for f in trained["files"]]
    assert exact(records) >= 12, records  # chance: 1 in 16


def test_onnxruntime_equals_torch(trained: dict[str, Any]) -> None:
    torch_out = transcribe(trained["ckpt"], trained["files"], max_new_tokens=4)
    ort_out = transcribe(trained["onnx"], trained["files"], backend="onnxruntime", max_new_tokens=4)
    assert [r["text"] for r in ort_out] == [r["text"] for r in torch_out]
    int8 = transcribe(trained["onnx"], trained["files"], backend="onnxruntime-int8", max_new_tokens=4)
    assert exact(int8) >= exact(torch_out) - 2


def test_onnxruntime_path_never_imports_torch(trained: dict[str, Any]) -> None:
    code = (
        "import json, sys\n"
        "from salesai_audio.transcribe import transcribe\n"
        f"out = transcribe({str(trained['onnx'])!r}, {[str(f) for f in trained['files'][:3]]!r},\n"
        "                 backend='onnxruntime', max_new_tokens=4)\n"
        "print(json.dumps([[r['text'] for r in out], 'torch' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    texts, imported = json.loads(done.stdout)
    assert imported is False
    expected = transcribe(trained["ckpt"], trained["files"][:3], max_new_tokens=4)
    assert texts == [r["text"] for r in expected]


def test_cli_one_record_per_file_and_bad_files(trained: dict[str, Any]) -> None:
    bad = trained["root"] / "notes.wav"
    bad.write_text("not audio at all")
    good = trained["files"][:2]
    args = ["audio", "transcribe", str(trained["ckpt"]), str(good[0]), str(bad), str(good[1])]
    result = run_cli([*args, "--json", "--max-new-tokens", "4"])
    assert result.exit_code == 2
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(good[0]), str(bad), str(good[1])]
    assert records[1] == {"file": str(bad), "error": f"{bad}: not an audio file (expected WAV, FLAC or OGG)"}
    assert "text" in records[0] and "text" in records[2]
    plain = run_cli(["audio", "transcribe", str(trained["onnx"]), str(good[0]), "--backend", "onnxruntime"])
    assert plain.exit_code == 0, plain.stderr
    assert plain.stdout == f"{good[0]}\t{records[0]['text']}\n"


def test_bad_backend_and_model_without_audio(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="unknown backend 'tensorflow'"):
        transcribe(tmp_path, [], backend="tensorflow")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "text", SalesAIModel(ModelConfig.from_name("tiny")), ByteTokenizer())
    result = run_cli(["audio", "transcribe", str(tmp_path / "text"), "x.wav"])
    assert result.exit_code == 2 and "this model has no audio encoder" in result.stderr
