"""Reading audio: WAV with the standard library, FLAC/OGG through soundfile, to mono 16 kHz float32.

What: `read_audio(source)` turns a path, `bytes` or an array into a 1-D float32 NumPy array at
the target sample rate (16 kHz by default): channels averaged to mono, resampled with a
polyphase filter (`scipy.signal.resample_poly`), optionally cut to a window. WAV is parsed
here, chunk by chunk with `struct`, because the standard library's `wave` module reads
integer PCM only: PCM 8 (unsigned), 16, 24 and 32-bit, IEEE float 32/64-bit, plain or
WAVE_FORMAT_EXTENSIBLE. Other containers (FLAC, OGG/Vorbis, OGG/Opus) go through the optional
`soundfile` package (`pip install 'salesai-audio[formats]'`).

Every bad input (not audio, zero-length, a truncated header, NaN/inf samples, an absurd sample
rate, a clip longer than the window when refusing) raises one `SalesAIError` line naming the
source and the problem. A clip longer than the window with `on_long="truncate"` is cut and
logged once as a warning on the `salesai_audio` logger.

What it is not: no MP3 decoder, no streaming reader (clips are short), no loudness normalisation.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from salesai.errors import SalesAIError

SAMPLE_RATE = 16000  # Whisper's and the encoder's sample rate
MIN_SAMPLE_RATE = 1000  # a rate outside [MIN, MAX] is "absurd": a corrupt header, not audio
MAX_SAMPLE_RATE = 384000
MAX_CHANNELS = 64
ON_LONG = ("truncate", "refuse")

log = logging.getLogger("salesai_audio")

# WAVE format codes (the `wFormatTag` of the fmt chunk, or the first 2 bytes of the extensible GUID).
_PCM, _IEEE_FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE

Source = str | Path | bytes | bytearray | Any  # Any: a NumPy array or a torch tensor (mono, at 16 kHz)


def describe(source: Any) -> str:
    """How an input is named in messages: the path, or a short description of in-memory data."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def read_audio(
    source: Source,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    on_long: str = "truncate",
    name: str | None = None,
) -> np.ndarray:
    """Decode `source` to mono float32 samples at `sample_rate`: (num_samples,).

    `source`: a path, the bytes of a file, or an array of samples already at `sample_rate`
    (1-D mono, or 2-D (samples, channels)). `max_seconds`: the window; a longer clip is cut
    (`on_long="truncate"`, logged) or refused (`on_long="refuse"`, SalesAIError).
    `name`: what messages call the input (default: the path or "<N bytes>").
    """
    label = name or describe(source)
    if on_long not in ON_LONG:
        raise SalesAIError(f"on_long={on_long!r}: expected one of {', '.join(ON_LONG)}")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise SalesAIError(f"{label}: audio file not found")
        samples, rate = decode(path.read_bytes(), label)
    elif isinstance(source, (bytes, bytearray)):
        samples, rate = decode(bytes(source), label)
    else:
        samples, rate = _from_array(source, label), sample_rate
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]  # (num_samples,)
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if max_seconds is not None:
        limit = round(max_seconds * sample_rate)
        if mono.shape[0] > limit:
            seconds = mono.shape[0] / sample_rate
            if on_long == "refuse":
                raise SalesAIError(
                    f"{label}: the clip lasts {seconds:.2f} s, longer than the model's {max_seconds:g} s "
                    "window (cut it, or use on_long='truncate')"
                )
            log.warning("%s: %.2f s clip truncated to the %g s window", label, seconds, max_seconds)
            mono = mono[:limit]
    return mono


def decode(data: bytes, label: str) -> tuple[np.ndarray, int]:
    """The samples of a file's bytes as float32 (num_samples, channels), and the sample rate."""
    if len(data) == 0:
        raise SalesAIError(f"{label}: empty file (0 bytes), expected audio")
    if data[:4] in (b"RIFF", b"RIFX", b"RF64"):
        samples, rate = _decode_wav(data, label)
    elif data[:4] in (b"fLaC", b"OggS"):
        samples, rate = _decode_soundfile(data, label)
    else:
        raise SalesAIError(f"{label}: not an audio file (expected WAV, FLAC or OGG)")
    if samples.shape[0] == 0:
        raise SalesAIError(f"{label}: the audio has no samples (zero-length clip)")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise SalesAIError(f"{label}: {bad} sample(s) are NaN or infinite")
    return samples, rate


def _decode_wav(data: bytes, label: str) -> tuple[np.ndarray, int]:
    """Parse a RIFF/WAVE file: walk the chunks, read `fmt `, decode `data`."""
    if data[:4] != b"RIFF":
        raise SalesAIError(f"{label}: {data[:4].decode('latin-1')} WAV files are not supported (only RIFF)")
    if len(data) < 12 or data[8:12] != b"WAVE":
        raise SalesAIError(f"{label}: truncated or invalid WAV header (no RIFF/WAVE signature)")
    fmt: tuple[int, int, int, int] | None = None  # (format, channels, rate, bits)
    payload: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body_start = pos + 8
        if chunk_id == b"data":
            if fmt is None:
                raise SalesAIError(f"{label}: invalid WAV: the data chunk comes before the fmt chunk")
            if size == 0xFFFFFFFF:  # a streaming writer did not know the length: read to the end
                size = len(data) - body_start
            if body_start + size > len(data):
                raise SalesAIError(
                    f"{label}: truncated WAV: the data chunk declares {size} bytes, "
                    f"the file holds {len(data) - body_start}"
                )
            payload = data[body_start : body_start + size]
            break
        if body_start + size > len(data):
            raise SalesAIError(
                f"{label}: truncated WAV header (the {chunk_id.decode('latin-1')!r} chunk is cut short)"
            )
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body_start : body_start + size], label)
        pos = body_start + size + (size & 1)  # chunks are padded to an even size
    if fmt is None:
        raise SalesAIError(f"{label}: truncated or invalid WAV header (no fmt chunk)")
    if payload is None:
        raise SalesAIError(f"{label}: truncated WAV (no data chunk)")
    code, channels, rate, bits = fmt
    width = bits // 8
    frame = width * channels
    payload = payload[: len(payload) - len(payload) % frame]  # drop a trailing partial frame
    if code == _IEEE_FLOAT:
        samples = np.frombuffer(payload, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    elif bits == 8:
        samples = (np.frombuffer(payload, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 16:
        samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
    elif bits == 24:
        raw = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3).astype(np.int32)  # (n, 3) little-endian
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        value = (value << 8) >> 8  # sign-extend 24 -> 32 bits (arithmetic shift)
        samples = value.astype(np.float32) / 8388608.0
    else:  # 32-bit integer PCM
        samples = (np.frombuffer(payload, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    return samples.reshape(-1, channels), rate  # (num_samples, channels)


def _parse_fmt(body: bytes, label: str) -> tuple[int, int, int, int]:
    """(format code, channels, sample rate, bits per sample) from a fmt chunk, validated."""
    if len(body) < 16:
        raise SalesAIError(f"{label}: truncated WAV header (fmt chunk of {len(body)} bytes, expected 16+)")
    code, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
    if code == _EXTENSIBLE:
        if len(body) < 26:
            raise SalesAIError(f"{label}: truncated WAV header (WAVE_FORMAT_EXTENSIBLE without a sub-format)")
        code = struct.unpack("<H", body[24:26])[0]  # the first 2 bytes of the sub-format GUID
    if code not in (_PCM, _IEEE_FLOAT):
        raise SalesAIError(
            f"{label}: WAV format code 0x{code:04x} is not supported (expected PCM or IEEE float; "
            "compressed WAV such as ADPCM or mu-law is not read)"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise SalesAIError(f"{label}: invalid WAV header: {channels} channels (expected 1..{MAX_CHANNELS})")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise SalesAIError(
            f"{label}: absurd sample rate {rate} Hz (expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)"
        )
    allowed = (32, 64) if code == _IEEE_FLOAT else (8, 16, 24, 32)
    if bits not in allowed:
        kind = "float" if code == _IEEE_FLOAT else "PCM"
        raise SalesAIError(
            f"{label}: {bits}-bit {kind} WAV is not supported (expected {'/'.join(map(str, allowed))}-bit)"
        )
    return code, channels, rate, bits


def _decode_soundfile(data: bytes, label: str) -> tuple[np.ndarray, int]:
    kind = "FLAC" if data[:4] == b"fLaC" else "OGG"
    try:
        import soundfile
    except ImportError:  # pragma: no cover - depends on the environment
        raise SalesAIError(
            f"{label}: reading {kind} needs the soundfile package: pip install 'salesai-audio[formats]'"
        ) from None
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's errors: RuntimeError, LibsndfileError, ...
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SalesAIError(f"{label}: unreadable {kind} audio ({detail})") from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise SalesAIError(
            f"{label}: absurd sample rate {rate} Hz (expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)"
        )
    return np.asarray(samples, dtype=np.float32), int(rate)


def _from_array(array: Any, label: str) -> np.ndarray:
    """An in-memory waveform (NumPy array or torch tensor), 1-D or (samples, channels), as float32."""
    if hasattr(array, "detach"):  # a torch tensor, without importing torch
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise SalesAIError(f"{label}: expected a path, bytes or an array of samples")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise SalesAIError(
            f"{label}: expected a 1-D array of samples (or (samples, channels)), got shape {array.shape} "
            f"of {array.dtype}"
        )
    samples = array.astype(np.float32)
    if samples.shape[0] == 0:
        raise SalesAIError(f"{label}: the audio has no samples (zero-length clip)")
    if not np.isfinite(samples).all():
        raise SalesAIError(f"{label}: {int((~np.isfinite(samples)).sum())} sample(s) are NaN or infinite")
    return samples


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling of a 1-D signal from `rate` to `target` Hz (Kaiser-windowed FIR)."""
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    out = resample_poly(samples.astype(np.float64), target // g, rate // g)
    return out.astype(np.float32)


def encode_wav(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, bits: int = 16) -> bytes:
    """A WAV file's bytes for float samples in [-1, 1], (num_samples,) or (num_samples, channels).

    `bits`: 8, 16, 24 or 32 for integer PCM, or -32 / -64 for IEEE float. Used by tests and
    `make-data`; values outside [-1, 1] are clipped for integer formats.
    """
    x = np.asarray(samples, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    channels = x.shape[1]
    if bits < 0:
        code, width = _IEEE_FLOAT, -bits // 8
        payload = x.astype("<f4" if bits == -32 else "<f8").tobytes()
    else:
        code, width = _PCM, bits // 8
        scale = 2.0 ** (bits - 1)
        ints = np.clip(np.round(x * scale), -scale, scale - 1).astype(np.int64)
        if bits == 8:
            payload = (ints + 128).astype(np.uint8).tobytes()
        elif bits == 24:
            b = (ints & 0xFFFFFF).astype("<u4").reshape(-1, 1).view(np.uint8)[:, :3]  # (n, 3)
            payload = np.ascontiguousarray(b).tobytes()
        else:
            payload = ints.astype("<i2" if bits == 16 else "<i4").tobytes()
    fmt = struct.pack(
        "<HHIIHH", code, channels, sample_rate, sample_rate * channels * width, channels * width, abs(bits)
    )
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload))
    body += payload + (b"\x00" if len(payload) & 1 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body
