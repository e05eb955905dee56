"""The `audio` encoder: contract, token counts, options, and parity with transformers' WhisperEncoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from salesai.errors import SalesAIError
from salesai.plugins import registry
from salesai.testing import check_encoder, sample_wav_bytes
from salesai_audio.encoder import (
    AudioEncoder,
    AudioEncoderConfig,
    build_audio_encoder,
    load_whisper_state_dict,
)

SMALL = {"hidden_dim": 32, "num_layers": 2, "num_heads": 4, "intermediate_dim": 64, "max_seconds": 1.0}


def test_registered_and_conformant() -> None:
    factory = registry("encoders").get("audio")
    encoder = check_encoder(factory, **SMALL)
    assert encoder.modality == "audio" and encoder.output_dim == 32


def test_conformant_with_defaults() -> None:
    encoder = check_encoder(build_audio_encoder, batch_size=1)  # Whisper-tiny widths, 30 s window
    assert encoder.preprocess(sample_wav_bytes()).shape == (80, 3000)


@pytest.mark.parametrize("patch", [1, 2, 4, 8])
def test_token_count_is_frames_over_patch(patch: int) -> None:
    encoder = build_audio_encoder(**{**SMALL, "max_seconds": 0.8}, patch_size=patch).eval()
    item = encoder.preprocess(sample_wav_bytes())  # (80, 80): 0.8 s window, 100 frames per second
    assert item.shape == (80, 80)
    with torch.no_grad():
        out = encoder(item[None])
    assert out.shape == (1, 80 // patch, 32) == (1, encoder.cfg.num_tokens, 32)
    assert encoder.num_tokens() == 80 // patch and encoder.num_tokens(37) == -(-37 // patch)
    assert len(encoder.convs) == 1 + {1: 0, 2: 1, 4: 2, 8: 3}[patch]


def test_example_input_and_preprocess_spec() -> None:
    encoder = build_audio_encoder(**SMALL)
    example = encoder.example_input()
    assert example.shape == (1, 80, 100) and torch.isfinite(example).all()
    assert encoder(example).shape == (1, 25, 32)
    spec = json.loads(json.dumps(encoder.preprocess_spec()))  # JSON-ready for the ONNX manifest
    assert spec["sample_rate"] == 16000 and spec["output_tokens"] == 25
    assert spec["input"]["shape"] == ["batch", 80, 100]
    assert spec["features"]["n_fft"] == 400 and spec["features"]["hop_length"] == 160
    assert spec["encoder"]["patch_size"] == 4


def test_preprocess_pads_with_silence_and_accepts_arrays() -> None:
    encoder = build_audio_encoder(**SMALL)
    t = np.arange(4000) / 16000
    clip = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # 0.25 s
    features = encoder.preprocess(clip)  # (80, 100)
    assert features.shape == (80, 100)
    torch.testing.assert_close(features, encoder.preprocess(sample_wav_bytes()), atol=1e-2, rtol=0)  # 16-bit
    assert float(features[:, 40:].max()) == pytest.approx(float(features.max()) - 2.0)  # silence: the floor


@pytest.mark.parametrize("source", ["wav", "long", "array"])
def test_numpy_preprocessing_equals_torch(tmp_path, source: str) -> None:
    from salesai_audio.io import encode_wav
    from salesai_audio.plugin import preprocess_numpy

    encoder = build_audio_encoder(**SMALL)
    rng = np.random.default_rng(0)
    if source == "wav":
        item = sample_wav_bytes()
    elif source == "long":  # 1.5 s at 44.1 kHz stereo: resampled, mixed, truncated to the 1 s window
        path = tmp_path / "long.wav"
        path.write_bytes(encode_wav(0.3 * rng.standard_normal((66150, 2)), 44100, 16))
        item = path
    else:
        item = (0.2 * rng.standard_normal(9000)).astype(np.float32)
    spec = json.loads(json.dumps(encoder.preprocess_spec()))  # as read back from a manifest
    ours = preprocess_numpy(item, spec)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32 and ours.shape == (80, 100)
    np.testing.assert_allclose(ours, encoder.preprocess(item).numpy(), atol=2e-5, rtol=0)


def test_long_clip_refused_when_configured() -> None:
    encoder = build_audio_encoder(**SMALL, on_long="refuse")
    with pytest.raises(SalesAIError, match=r"<ndarray>: the clip lasts 2\.00 s, longer than the model's 1 s"):
        encoder.preprocess(np.zeros(32000, np.float32))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patch_size": 3}, "patch_size=3, expected a power of two"),
        ({"hidden_dim": 30, "num_heads": 4}, "hidden_dim=30 is not divisible by num_heads=4"),
        ({"max_seconds": 0.0}, "max_seconds=0.0"),
        ({"on_long": "drop"}, "on_long='drop'"),
        ({"max_seconds": 1.01, "patch_size": 4}, "window of 101 frames"),
        ({"widht": 3}, "unknown option(s) widht"),
    ],
)
def test_bad_options_are_one_line(options: dict, message: str) -> None:
    with pytest.raises(SalesAIError) as info:
        build_audio_encoder(**options)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_patch_2_equals_whisper_encoder() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.WhisperConfig(
        d_model=64,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=128,
        num_mel_bins=80,
        max_source_positions=50,  # 100 frames / 2
        dropout=0.0,
        activation_function="gelu",
    )
    torch.manual_seed(0)
    reference = transformers.models.whisper.modeling_whisper.WhisperEncoder(config).eval()
    with torch.no_grad():  # random non-trivial norms and biases, so a swapped parameter shows
        for name, param in reference.named_parameters():
            if "embed_positions" not in name:
                param.add_(0.05 * torch.randn_like(param))
    ours = AudioEncoder(
        AudioEncoderConfig(
            hidden_dim=64, num_layers=2, num_heads=4, intermediate_dim=128, patch_size=2, max_seconds=1.0
        )
    ).eval()
    load_whisper_state_dict(ours, reference.state_dict())
    torch.testing.assert_close(ours.positions, reference.embed_positions.weight, atol=1e-6, rtol=0)
    features = torch.stack([ours.preprocess(sample_wav_bytes()), torch.randn(80, 100)])  # (2, 80, 100)
    with torch.no_grad():
        expected = reference(features).last_hidden_state
        got = ours(features)
    assert got.shape == expected.shape == (2, 50, 64)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for n, p in reference.named_parameters() if "embed_positions" not in n)
    assert n_ours == n_ref


def test_numpy_preprocessing_never_imports_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from salesai.testing import sample_wav_bytes\n"
        "from salesai_audio.plugin import preprocess_numpy\n"
        "spec = {'sample_rate': 16000, 'window_seconds': 1.0,\n"
        "        'features': {'n_mels': 80, 'n_fft': 400, 'hop_length': 160}}\n"
        "print(preprocess_numpy(sample_wav_bytes(), spec).shape, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "(80, 100) False"
