"""Torch-free preprocessing from a `preprocess_spec()`: what ONNX Runtime inference uses.

`preprocess_numpy(source, spec)` reproduces `AudioEncoder.preprocess` with NumPy and SciPy only
(read, mono, resample to the spec's rate, pad with silence or cut to the window, Whisper
log-mel), so `salesai generate ONNXDIR --audio clip.wav --backend onnxruntime` never imports
torch. It is registered as the `preprocess_numpy` metadata of the `audio` encoder; its output
equals the torch path to float32 rounding (a test).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from salesai.errors import SalesAIError
from salesai_audio.features import log_mel_numpy
from salesai_audio.io import Source, describe, read_audio


def pad_to_window(samples: np.ndarray, window_samples: int) -> np.ndarray:
    """Samples (S,) padded with trailing zeros (or cut) to exactly `window_samples`."""
    out = np.zeros(window_samples, np.float32)
    n = min(samples.shape[0], window_samples)
    out[:n] = samples[:n]
    return out


def preprocess_numpy(source: Source, spec: dict[str, Any]) -> np.ndarray:
    """One clip -> log-mel features (n_mels, window_frames), float32, following `spec`."""
    try:
        rate = int(spec["sample_rate"])
        seconds = float(spec["window_seconds"])
        feats = spec["features"]
        n_mels, n_fft, hop = int(feats["n_mels"]), int(feats["n_fft"]), int(feats["hop_length"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SalesAIError(f"audio preprocess_spec is incomplete ({exc!r} missing or invalid)") from None
    samples = read_audio(
        source,
        sample_rate=rate,
        max_seconds=seconds,
        on_long=str(spec.get("too_long", "truncate")),
        name=describe(source),
    )
    wave = pad_to_window(samples, round(seconds * rate))
    return log_mel_numpy(wave, n_mels=n_mels, n_fft=n_fft, hop_length=hop, sample_rate=rate)
