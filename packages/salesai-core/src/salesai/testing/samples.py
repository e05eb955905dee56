"""Tiny, valid media files built with the standard library, for encoder tests.

`sample_png_bytes()` is an RGB gradient PNG; `sample_wav_bytes()` is a 16-bit mono sine
WAV. Both are deterministic, so a test can compare two preprocessing runs byte for byte.
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def sample_png_bytes(width: int = 32, height: int = 32) -> bytes:
    """An 8-bit RGB PNG of `width` x `height` pixels holding a colour gradient."""
    rows = []
    for y in range(height):
        pixels = bytes(
            c
            for x in range(width)
            for c in ((x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1), 128)
        )
        rows.append(b"\x00" + pixels)  # filter type 0 (none) per row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # depth 8, colour type 2 = RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + _png_chunk(b"IEND", b"")
    )


def sample_wav_bytes(seconds: float = 0.25, sample_rate: int = 16000, frequency: float = 440.0) -> bytes:
    """A mono 16-bit PCM WAV holding a sine tone."""
    n = int(seconds * sample_rate)
    frames = b"".join(
        struct.pack("<h", int(0.5 * 32767 * math.sin(2 * math.pi * frequency * i / sample_rate)))
        for i in range(n)
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(frames)
    return buf.getvalue()
