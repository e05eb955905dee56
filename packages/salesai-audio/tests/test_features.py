"""Log-mel features: shapes, the filterbank, and parity with transformers' WhisperFeatureExtractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salesai_audio.features import log_mel, mel_filters, num_frames


def noise_and_tone(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * (300 + 200 * seed) * t) + 0.05 * rng.standard_normal(t.shape)
    return x.astype(np.float32)


def test_shapes_batched_and_single() -> None:
    batch = torch.from_numpy(np.stack([noise_and_tone(1.0, s) for s in range(3)]))  # (3, 16000)
    out = log_mel(batch)
    assert out.shape == (3, 80, num_frames(16000)) == (3, 80, 100)
    torch.testing.assert_close(log_mel(batch[1]), out[1])  # one clip alone = its row in a batch


def test_clamp_is_per_clip_and_scaled() -> None:
    quiet = torch.from_numpy(noise_and_tone(1.0, 0)) * 1e-3
    loud = torch.from_numpy(noise_and_tone(1.0, 1))
    out = log_mel(torch.stack([quiet, loud]))  # (2, 80, 100)
    for row in out:
        assert float(row.max() - row.min()) <= 2.0 + 1e-6  # 8 decades / 4
    assert float(out[0].max()) < float(out[1].max())
    silence = log_mel(torch.zeros(16000))
    torch.testing.assert_close(silence, torch.full((80, 100), (-10.0 + 4.0) / 4.0))


def test_filterbank_is_slaney_normalised() -> None:
    filters = mel_filters()  # (201, 80)
    assert filters.shape == (201, 80)
    assert (filters >= 0).all() and (filters.max(axis=0) > 0).all()
    # Slaney normalisation: every triangle has area ~ 1 in Hz (2 / width * width / 2)
    areas = filters.sum(axis=0) * (8000 / 200)
    np.testing.assert_allclose(areas[5:], 1.0, rtol=0.1)


@pytest.mark.parametrize("seconds", [0.37, 3.0, 30.0])
def test_equals_whisper_feature_extractor(seconds: float) -> None:
    transformers = pytest.importorskip("transformers")
    extractor = transformers.WhisperFeatureExtractor()  # constructor defaults: no download
    clips = [noise_and_tone(seconds, seed) for seed in range(2)]
    reference = extractor(clips, sampling_rate=16000, return_tensors="np").input_features  # (2, 80, 3000)
    padded = np.zeros((2, 480000), np.float32)
    for i, clip in enumerate(clips):
        padded[i, : clip.shape[0]] = clip
    ours = log_mel(torch.from_numpy(padded)).numpy()
    assert ours.shape == reference.shape == (2, 80, 3000)
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)
    numpy_reference = extractor._np_extract_fbank_features(padded, "cpu")  # the pure NumPy path
    np.testing.assert_allclose(ours, numpy_reference, atol=1e-4, rtol=0)
    np.testing.assert_allclose(mel_filters(), extractor.mel_filters, atol=1e-12)
