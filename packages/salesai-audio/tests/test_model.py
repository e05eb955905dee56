"""The `audio` encoder inside a salesai model: config, splice, checkpoints (the gate: test_transcribe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.model import load_checkpoint, save_checkpoint
from salesai_audio.io import encode_wav

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
FIRST = 20  # response token of tone k: FIRST + k


def tiny_audio_model(seed: int = 0) -> SalesAIModel:
    torch.manual_seed(seed)
    return SalesAIModel(ModelConfig.from_name("tiny", encoders={"audio": ENCODER}))


def tones(ks: list[int], rng: np.random.Generator) -> np.ndarray:
    """Two 0.15 s tones in a row (random amplitude, phase and a little noise): (6400,) at 16 kHz."""
    t = np.arange(2400) / 16000
    parts = [rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * FREQS[k] * t + rng.uniform(0, 6.3)) for k in ks]
    clip = np.concatenate([*parts, np.zeros(1600)]) + 0.01 * rng.standard_normal(6400)
    return clip.astype(np.float32)


def test_model_carries_the_audio_encoder() -> None:
    model = tiny_audio_model().eval()
    assert model.config.audio_token_id == AUDIO
    assert model.projectors["audio"].linear_1.in_features == 32
    ids = torch.tensor([[2, AUDIO, 7, 8]])
    clip = tones([0, 1], np.random.default_rng(0))
    out = model(ids, media={"audio": [clip]})
    assert out.logits.shape == (1, 4 - 1 + 10, model.config.vocab_size)  # the placeholder became 10 positions


def test_checkpoint_round_trip_keeps_encoder_weights(tmp_path: Path) -> None:
    model = tiny_audio_model().eval()
    wav = tmp_path / "clip.wav"
    wav.write_bytes(encode_wav(tones([2, 3], np.random.default_rng(1)), 16000, 16))
    ids = torch.tensor([[2, AUDIO, 7]])
    with torch.no_grad():
        expected = model(ids, media={"audio": [wav]}).logits
    save_checkpoint(tmp_path / "ckpt", model)
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    loaded.eval()
    assert loaded.config.encoders["audio"]["patch_size"] == 4
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, media={"audio": [str(wav)]}).logits, expected)
