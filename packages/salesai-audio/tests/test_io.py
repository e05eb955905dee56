"""Reading audio: every WAV sample format, FLAC/OGG, mono mixing, resampling, and every bad input."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from salesai.errors import SalesAIError
from salesai_audio.io import decode, encode_wav, read_audio, resample

RATE = 16000


def tone(seconds: float = 0.1, rate: int = RATE, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("bits", "tolerance"), [(8, 1 / 127), (16, 1 / 32767), (24, 1 / 8e6), (32, 1e-7), (-32, 0.0), (-64, 0.0)]
)
def test_wav_sample_formats_round_trip(bits: int, tolerance: float) -> None:
    x = tone()
    got = read_audio(encode_wav(x, RATE, bits))
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, x, atol=tolerance + 1e-7)


def test_stdlib_wave_writes_what_we_read(tmp_path: Path) -> None:
    import wave

    x = tone()
    path = tmp_path / "clip.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(3)
        w.setframerate(RATE)
        w.writeframes(encode_wav(x, RATE, 24)[44:])  # the raw 24-bit frames
    np.testing.assert_allclose(read_audio(path), x, atol=2e-7)
    np.testing.assert_allclose(read_audio(str(path)), read_audio(path.read_bytes()))


def test_extensible_format_and_extra_chunks() -> None:
    x = tone()
    payload = x.astype("<f4").tobytes()
    guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHHHHIH", 0xFFFE, 1, RATE, RATE * 4, 4, 32, 22, 32, 4, 0x0003) + guid_tail
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk, padded
    body += b"data" + struct.pack("<I", len(payload)) + payload
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    np.testing.assert_array_equal(read_audio(data), x)


def test_stereo_is_averaged_to_mono() -> None:
    left, right = tone(freq=440.0), tone(freq=660.0, amp=0.25)
    got = read_audio(encode_wav(np.stack([left, right], axis=1), RATE, -32))
    np.testing.assert_allclose(got, (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_duration_and_pitch(rate: int) -> None:
    x = tone(seconds=0.5, rate=rate, freq=1000.0)
    got = read_audio(encode_wav(x, rate, -32))
    assert got.shape[0] == pytest.approx(8000, abs=1)
    spectrum = np.abs(np.fft.rfft(got * np.hanning(got.shape[0])))
    peak_hz = np.argmax(spectrum) * RATE / got.shape[0]
    assert peak_hz == pytest.approx(1000.0, abs=4.0)
    middle = got[1000:-1000]  # away from the filter's edge effects
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.01)


def test_resample_removes_content_above_the_new_nyquist() -> None:
    x = tone(seconds=0.5, rate=48000, freq=12000.0)  # above 8 kHz: must be filtered, not aliased
    got = resample(x, 48000, RATE)
    assert np.abs(got[1000:-1000]).max() < 0.01


def test_arrays_are_taken_as_16khz_samples() -> None:
    import torch

    x = tone()
    np.testing.assert_array_equal(read_audio(x), x)
    np.testing.assert_array_equal(read_audio(torch.from_numpy(x)), x)
    np.testing.assert_allclose(read_audio(np.stack([x, x], axis=1)), x)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG"])
def test_flac_and_ogg_through_soundfile(tmp_path: Path, fmt: str) -> None:
    soundfile = pytest.importorskip("soundfile")
    x = tone(seconds=0.5, rate=44100)
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(str(path), x, 44100, format=fmt)
    got = read_audio(path)
    assert got.shape[0] == pytest.approx(8000, abs=1)
    expected = resample(x, 44100, RATE)
    tolerance = 1e-3 if fmt == "FLAC" else 0.1  # Vorbis is lossy
    assert np.abs(got - expected)[500:-500].max() < tolerance


def _wav_header(rate: int = RATE, bits: int = 16, channels: int = 1, code: int = 1) -> bytes:
    fmt = struct.pack(
        "<HHIIHH", code, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits
    )
    return b"fmt " + struct.pack("<I", 16) + fmt


def _riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body


BAD_INPUTS = {
    "not audio": (b"hello, this is plain text\n" * 4, "not an audio file"),
    "png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an audio file"),
    "zero-byte file": (b"", "empty file"),
    "zero-length clip": (_riff(_wav_header() + b"data" + struct.pack("<I", 0)), "zero-length clip"),
    "truncated header": (encode_wav(tone())[:30], "truncated"),
    "riff only": (b"RIFF\x10\x00\x00\x00WA", "truncated or invalid WAV header"),
    "truncated data": (encode_wav(tone())[:-100], "truncated WAV: the data chunk declares"),
    "no data chunk": (_riff(_wav_header()), "no data chunk"),
    "NaN samples": (encode_wav(np.array([0.1, np.nan, 0.2]), RATE, -32), "NaN or infinite"),
    "inf samples": (encode_wav(np.array([0.1, np.inf]), RATE, -64), "NaN or infinite"),
    "absurd rate": (_riff(_wav_header(rate=7)) + b"", "absurd sample rate 7 Hz"),
    "huge rate": (_riff(_wav_header(rate=4_000_000)), "absurd sample rate 4000000 Hz"),
    "0 channels": (_riff(_wav_header(channels=0)), "0 channels"),
    "12-bit": (_riff(_wav_header(bits=12)), "12-bit PCM WAV is not supported"),
    "mu-law": (_riff(_wav_header(code=7, bits=8)), "format code 0x0007 is not supported"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    data, expected = BAD_INPUTS[case]
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    with pytest.raises(SalesAIError) as info:
        read_audio(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_file_and_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(SalesAIError, match=r"nope\.wav: audio file not found"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(SalesAIError, match="on_long='drop'"):
        read_audio(tone(), on_long="drop")


def test_corrupt_flac_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("soundfile")
    path = tmp_path / "broken.flac"
    path.write_bytes(b"fLaC" + b"\x00" * 64)
    with pytest.raises(SalesAIError, match=r"broken\.flac: unreadable FLAC audio") as info:
        read_audio(path)
    assert "\n" not in str(info.value)


def test_long_clip_is_truncated_with_a_notice(caplog: pytest.LogCaptureFixture) -> None:
    x = tone(seconds=1.5)
    with caplog.at_level(logging.WARNING, logger="salesai_audio"):
        got = read_audio(x, max_seconds=1.0, name="long.wav")
    assert got.shape[0] == RATE
    np.testing.assert_array_equal(got, x[:RATE])
    assert "long.wav: 1.50 s clip truncated to the 1 s window" in caplog.text


def test_long_clip_is_refused_when_asked() -> None:
    with pytest.raises(SalesAIError, match=r"long\.wav: the clip lasts 1\.50 s, longer than the model's 1 s"):
        read_audio(tone(seconds=1.5), max_seconds=1.0, on_long="refuse", name="long.wav")


def test_decode_returns_channels_and_rate() -> None:
    samples, rate = decode(encode_wav(np.zeros((10, 2)), 22050, 16), "x")
    assert samples.shape == (10, 2) and rate == 22050
