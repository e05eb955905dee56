"""The `audio` encoder: log-mel frames -> 1-D conv stack (total stride = patch) -> transformer.

What: Whisper's encoder generalised to any power-of-two audio patch size. A first conv
(kernel 3, stride 1) and log2(patch) convs (kernel 3, stride 2), each followed by GELU, turn
(B, n_mels, T) log-mel frames into (B, T / patch, D); fixed sinusoidal positions are added,
then pre-norm transformer blocks (LayerNorm, multi-head self-attention with biases on q/v/out,
LayerNorm, GELU MLP) and a final LayerNorm. With `patch_size=2` it *is* the Whisper encoder
architecture, parameter names included: the weights of transformers' `WhisperEncoder` load
with `load_whisper_state_dict` and give the same outputs (a test, to 1e-5). The default patch
is 4, the model card's audio patch size: half as many tokens for the decoder.

The module also carries the encoder contract of salesai (docs/plugins/hooks.md): `modality`,
`output_dim`, `preprocess(path | bytes | array)` (read, mono, 16 kHz, pad or cut to the window,
log-mel), `example_input()` and `preprocess_spec()` (recorded in the ONNX manifest).

References: openai/whisper `whisper/model.py` (AudioEncoder), transformers
`models/whisper/modeling_whisper.py` (WhisperEncoder). What it is not: no dropout/layerdrop
(small models on small data train without them here), no attention mask (clips are padded
with silence to a fixed window, as Whisper does), no decoder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from salesai.errors import SalesAIError
from salesai_audio.features import HOP_LENGTH, N_FFT, N_MELS, log_mel
from salesai_audio.io import ON_LONG, SAMPLE_RATE, Source, describe, read_audio

CONV_INIT_GAIN = 2.0  # each conv's He-normal init is scaled up: see AudioEncoder.reset_parameters


@dataclass
class AudioEncoderConfig:
    """Hyper-parameters of the `audio` encoder (defaults: Whisper-tiny widths, patch 4, 30 s window)."""

    hidden_dim: int = 384  # width D of the encoder (= output_dim; the core's projector maps it to the model)
    num_layers: int = 4  # transformer blocks
    num_heads: int = 6  # attention heads; divides hidden_dim
    intermediate_dim: int = 1536  # MLP width (4 x hidden_dim in Whisper)
    patch_size: int = 4  # log-mel frames per output token: the conv stack's total stride (a power of two)
    n_mels: int = N_MELS  # mel bins of the features
    sample_rate: int = SAMPLE_RATE  # audio is resampled to this rate
    n_fft: int = N_FFT  # STFT size (25 ms at 16 kHz)
    hop_length: int = HOP_LENGTH  # STFT hop (10 ms at 16 kHz: 100 frames per second)
    max_seconds: float = 30.0  # the window: clips are padded with silence to it, longer ones cut or refused
    on_long: str = "truncate"  # a clip longer than the window: "truncate" (logged) or "refuse"
    norm_eps: float = 1e-5  # LayerNorm epsilon

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "num_layers", "num_heads", "intermediate_dim", "patch_size", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SalesAIError(f"audio encoder: {name}={value!r}, expected a positive integer")
        if self.hidden_dim % self.num_heads:
            raise SalesAIError(
                f"audio encoder: hidden_dim={self.hidden_dim} is not divisible by num_heads={self.num_heads}"
            )
        if self.hidden_dim % 2:
            raise SalesAIError(
                f"audio encoder: hidden_dim={self.hidden_dim} must be even (sinusoidal positions)"
            )
        if self.patch_size & (self.patch_size - 1):
            raise SalesAIError(
                f"audio encoder: patch_size={self.patch_size}, expected a power of two (1, 2, 4, 8...)"
            )
        if not 0 < self.max_seconds <= 600:
            raise SalesAIError(f"audio encoder: max_seconds={self.max_seconds}, expected 0 < seconds <= 600")
        if self.on_long not in ON_LONG:
            raise SalesAIError(
                f"audio encoder: on_long={self.on_long!r}, expected one of {', '.join(ON_LONG)}"
            )
        if self.window_frames % self.patch_size:
            raise SalesAIError(
                f"audio encoder: the window of {self.window_frames} frames ({self.max_seconds:g} s) is not a "
                f"multiple of patch_size={self.patch_size}"
            )

    @property
    def window_samples(self) -> int:
        return round(self.max_seconds * self.sample_rate)

    @property
    def window_frames(self) -> int:
        """Log-mel frames of one (padded) clip."""
        return self.window_samples // self.hop_length

    @property
    def num_tokens(self) -> int:
        """Embeddings per clip: window frames / patch size."""
        return self.window_frames // self.patch_size


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's fixed positions: (length, channels), sines in the first half, cosines in the second."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2))  # (C/2,)
    scaled = torch.arange(length)[:, None] * inv_timescales[None, :]  # (L, C/2)
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)  # (L, C)


class SelfAttention(nn.Module):
    """Multi-head self-attention, Whisper layout: bias on q, v and out, none on k."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D)
        b, n, d = x.shape
        h = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, h, d // h).transpose(1, 2)  # (B, H, N, D/H)

        y = F.scaled_dot_product_attention(
            heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class EncoderBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x)), then x + fc2(gelu(fc1(LN(x))))."""

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(cfg.hidden_dim, eps=cfg.norm_eps)
        self.self_attn = SelfAttention(cfg.hidden_dim, cfg.num_heads)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_dim, eps=cfg.norm_eps)
        self.fc1 = nn.Linear(cfg.hidden_dim, cfg.intermediate_dim)
        self.fc2 = nn.Linear(cfg.intermediate_dim, cfg.hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D)
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))  # (B, N, D)


class AudioEncoder(nn.Module):
    """Log-mel frames (B, n_mels, T) -> embeddings (B, T / patch_size, hidden_dim)."""

    modality = "audio"

    def __init__(self, cfg: AudioEncoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or AudioEncoderConfig()
        c = self.cfg
        self.output_dim = c.hidden_dim
        strides = [1] + [2] * int(math.log2(c.patch_size))  # total stride = patch_size
        self.convs = nn.ModuleList(
            nn.Conv1d(c.n_mels if i == 0 else c.hidden_dim, c.hidden_dim, kernel_size=3, stride=s, padding=1)
            for i, s in enumerate(strides)
        )
        self.layers = nn.ModuleList(EncoderBlock(c) for _ in range(c.num_layers))
        self.layer_norm = nn.LayerNorm(c.hidden_dim, eps=c.norm_eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Convolutions He-normal x CONV_INIT_GAIN with zero biases; PyTorch defaults elsewhere.

        The fixed positions have amplitude 1. With PyTorch's default conv init the heard content
        is a few percent of that, and a small model spends hundreds of steps before it listens:
        on 2-tone sequences (the gate of tests/test_transcribe.py) the tiny model got 9/16 after
        300 steps with the default init and 16/16 after 200 with this one.
        """
        for conv in self.convs:
            assert isinstance(conv, nn.Conv1d) and conv.bias is not None
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            with torch.no_grad():
                conv.weight.mul_(CONV_INIT_GAIN)
            nn.init.zeros_(conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, n_mels, T)
        x = features
        for conv in self.convs:
            x = F.gelu(conv(x))  # (B, D, T / stride so far)
        x = x.transpose(1, 2)  # (B, N, D)
        if x.shape[1] > self.cfg.num_tokens:
            raise SalesAIError(
                f"audio encoder: {features.shape[-1]} frames exceed the {self.cfg.window_frames}-frame window"
            )
        # Computed per call, not a buffer: a model built on the meta device and loaded from a
        # checkpoint has no initialiser for non-persistent buffers. (N, D), a few microseconds.
        x = x + sinusoids(x.shape[1], self.cfg.hidden_dim).to(x.device, x.dtype)  # (B, N, D)
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)  # (B, N, D)

    @property
    def positions(self) -> torch.Tensor:
        """The fixed sinusoidal positions of the whole window: (num_tokens, D)."""
        return sinusoids(self.cfg.num_tokens, self.cfg.hidden_dim)

    # -- the encoder contract ---------------------------------------------------------------
    def preprocess(self, source: Source) -> torch.Tensor:
        """A path, bytes or a 16 kHz waveform -> log-mel of one padded clip: (n_mels, window_frames)."""
        c = self.cfg
        samples = read_audio(
            source,
            sample_rate=c.sample_rate,
            max_seconds=c.max_seconds,
            on_long=c.on_long,
            name=describe(source),
        )
        wave = torch.zeros(c.window_samples)
        wave[: samples.shape[0]] = torch.from_numpy(samples)  # silence-padded to the window, as Whisper
        return log_mel(
            wave, n_mels=c.n_mels, n_fft=c.n_fft, hop_length=c.hop_length, sample_rate=c.sample_rate
        )

    def example_input(self) -> torch.Tensor:
        """A batch of one preprocessed clip, (1, n_mels, window_frames): a quarter second of 440 Hz."""
        t = torch.arange(self.cfg.sample_rate // 4) / self.cfg.sample_rate
        return self.preprocess((0.5 * torch.sin(2 * math.pi * 440.0 * t)).numpy())[None]

    def preprocess_spec(self) -> dict[str, Any]:
        """How `preprocess` turns a file into the forward input, for programs that re-implement it."""
        c = self.cfg
        return {
            "modality": "audio",
            "input": {"name": "features", "shape": ["batch", c.n_mels, c.window_frames], "dtype": "float32"},
            "output_tokens": c.num_tokens,
            "channels": "mean of all channels (mono)",
            "formats": "WAV (PCM 8/16/24/32-bit, float 32/64-bit); FLAC and OGG through libsndfile",
            "sample_rate": c.sample_rate,
            "resample": "polyphase FIR (scipy.signal.resample_poly, Kaiser window 5.0)",
            "window_seconds": c.max_seconds,
            "pad": "zeros at the end to window_seconds",
            "too_long": c.on_long,
            "features": {
                "type": "whisper_log_mel",
                "n_fft": c.n_fft,
                "hop_length": c.hop_length,
                "window": "hann (periodic)",
                "center": "reflect padding of n_fft // 2; the last frame dropped",
                "power": 2.0,
                "n_mels": c.n_mels,
                "mel_scale": "slaney",
                "mel_norm": "slaney",
                "f_min": 0.0,
                "f_max": 8000.0,
                "log": "log10(max(mel, 1e-10))",
                "clamp": "max(x, max over the clip - 8)",
                "scale": "(x + 4) / 4",
            },
            "encoder": asdict(c),
        }

    def num_tokens(self, num_frames: int | None = None) -> int:
        """Embeddings for `num_frames` log-mel frames (default: the whole window)."""
        frames = self.cfg.window_frames if num_frames is None else num_frames
        return -(-frames // self.cfg.patch_size)


def build_audio_encoder(**options: Any) -> AudioEncoder:
    """The `audio` factory: keyword options are the fields of `AudioEncoderConfig`."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(AudioEncoderConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SalesAIError(
            f"audio encoder: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return AudioEncoder(AudioEncoderConfig(**options))


def load_whisper_state_dict(encoder: AudioEncoder, state: dict[str, torch.Tensor]) -> None:
    """Load the weights of a transformers `WhisperEncoder` (patch 2) into `encoder`, strictly.

    Keys may carry a `model.encoder.` or `encoder.` prefix; `embed_positions` is skipped (both
    use the same fixed sinusoids).
    """
    if encoder.cfg.patch_size != 2:
        raise SalesAIError(f"Whisper weights need patch_size=2, this encoder has {encoder.cfg.patch_size}")
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("model.encoder.", "encoder."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if key.startswith("embed_positions"):
            continue
        key = key.replace("conv1.", "convs.0.").replace("conv2.", "convs.1.")
        mapped[key] = value
    encoder.load_state_dict(mapped, strict=True)
