"""Log-mel spectrograms exactly as Whisper computes them, batched in torch.

What: `mel_filters()` builds the Slaney-style mel filterbank (Slaney mel scale, Slaney area
normalisation, 0-8 kHz) in float64 NumPy, and `log_mel(waveforms)` maps a batch of 16 kHz
waveforms (B, S) to features (B, n_mels, S // hop): a centred STFT (reflect padding, periodic
Hann window of n_fft samples, hop 160), power spectrum without the last frame, mel projection,
log10 clamped at 1e-10, per-clip clamp to 8 decades below the clip's maximum, then
(x + 4) / 4. References: openai/whisper `whisper/audio.py` (`log_mel_spectrogram`),
transformers `WhisperFeatureExtractor` (equal to 1e-4 on the same audio: a test), librosa
`filters.mel` (the filterbank).

Frames that lie wholly in trailing silence (the zero padding up to the window) are not
transformed: their power is exactly zero, so they are filled in, which gives the same numbers
and makes a 3 s clip in a 30 s window about ten times cheaper than the full window.

What it is not: no dithering, no zero-mean/unit-variance normalisation (Whisper uses neither),
no padding: the caller pads to the model's window first (Whisper pads to 30 s with zeros).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

N_FFT = 400  # 25 ms at 16 kHz
HOP_LENGTH = 160  # 10 ms at 16 kHz: 100 frames per second
N_MELS = 80


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa htk=False)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mel = hz / f_sp
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@lru_cache(maxsize=8)
def mel_filters(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = 16000,
    f_min: float = 0.0,
    f_max: float = 8000.0,
) -> np.ndarray:
    """Triangular mel filters with Slaney normalisation: (n_fft // 2 + 1, n_mels), float64."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)  # (F,)
    mel_points = np.linspace(_hz_to_mel(np.array(f_min)), _hz_to_mel(np.array(f_max)), n_mels + 2)
    hz_points = _mel_to_hz(mel_points)  # (n_mels + 2,)
    diffs = np.diff(hz_points)  # (n_mels + 1,)
    slopes = hz_points[None, :] - fft_freqs[:, None]  # (F, n_mels + 2)
    down = -slopes[:, :-2] / diffs[:-1]  # (F, n_mels)
    up = slopes[:, 2:] / diffs[1:]  # (F, n_mels)
    filters = np.maximum(0.0, np.minimum(down, up))  # (F, n_mels)
    enorm = 2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels])  # equal area per filter
    filters = filters * enorm[None, :]
    filters.setflags(write=False)
    return filters


def log_mel(
    waveforms: torch.Tensor,
    *,
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    sample_rate: int = 16000,
) -> torch.Tensor:
    """Whisper log-mel features of waveforms: (B, S) -> (B, n_mels, S // hop); (S,) -> (n_mels, S // hop)."""
    import torch
    import torch.nn.functional as F

    single = waveforms.dim() == 1
    x = waveforms.float()
    x = x[None] if single else x  # (B, S)
    batch, num_samples = x.shape
    frames = num_samples // hop_length  # the STFT gives one more; Whisper drops the last
    pad = n_fft // 2
    padded = F.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]  # (B, S + n_fft): centred frames
    # Frames lying wholly in trailing silence (the zero padding up to the window) have zero power:
    # skip their FFTs and fill them in. Exact, and most of a 30 s window is padding for short clips.
    nonzero = torch.nonzero(padded.ne(0).any(dim=0))
    last = int(nonzero[-1]) if nonzero.numel() else -1
    computed = min(frames, last // hop_length + 1) if last >= 0 else 0
    filters = torch.tensor(
        mel_filters(n_mels, n_fft, sample_rate), dtype=torch.float32, device=x.device
    )  # (F, M)
    mel = x.new_zeros(batch, n_mels, frames)  # (B, M, T)
    if computed > 0:
        window = torch.hann_window(n_fft, device=x.device)  # periodic, as in Whisper
        segment = padded[:, : (computed - 1) * hop_length + n_fft]
        stft = torch.stft(segment, n_fft, hop_length, window=window, center=False, return_complex=True)
        power = stft.abs().square()  # (B, F, computed)
        mel[..., :computed] = torch.matmul(filters.T, power)  # (B, M, computed)
    logs = mel.clamp_min(1e-10).log10()
    peak = logs.amax(dim=(1, 2), keepdim=True)  # (B, 1, 1): per clip
    logs = torch.maximum(logs, peak - 8.0)
    out = (logs + 4.0) / 4.0  # (B, M, T)
    return out[0] if single else out


def log_mel_numpy(
    waveform: np.ndarray,
    *,
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    sample_rate: int = 16000,
) -> np.ndarray:
    """The same features without torch (the ONNX Runtime path): (S,) -> (n_mels, S // hop), float32."""
    x = np.asarray(waveform, dtype=np.float32)
    frames = x.shape[0] // hop_length
    pad = n_fft // 2
    padded = np.pad(x, (pad, pad), mode="reflect")  # (S + n_fft,)
    nonzero = np.flatnonzero(padded)
    computed = min(frames, int(nonzero[-1]) // hop_length + 1) if nonzero.size else 0
    mel = np.zeros((n_mels, frames), np.float32)
    if computed > 0:
        window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(
            np.float32
        )  # periodic Hann
        starts = np.arange(computed) * hop_length
        chunks = padded[starts[:, None] + np.arange(n_fft)[None, :]] * window  # (computed, n_fft)
        spectrum = np.fft.rfft(chunks, axis=-1)  # (computed, F)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        filters = mel_filters(n_mels, n_fft, sample_rate).astype(np.float32)  # (F, M)
        mel[:, :computed] = (power @ filters).T  # (M, computed)
    logs = np.log10(np.maximum(mel, 1e-10))
    logs = np.maximum(logs, logs.max() - 8.0)
    return ((logs + 4.0) / 4.0).astype(np.float32)  # (M, T)


def num_frames(num_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Feature frames for `num_samples` samples (the last STFT frame is dropped)."""
    return num_samples // hop_length
