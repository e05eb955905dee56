"""Image preprocessing: every Pillow mode to RGB, EXIF, resize modes, arrays, and bad files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from salesai.errors import SalesAIError
from salesai.testing import sample_png_bytes
from salesai_vision.preprocess import ImageSpec, open_image, preprocess_image, to_rgb

SPEC = ImageSpec(size=(8, 8), resize="squash", resample="nearest")


def encode(image: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def pixels(source: object, spec: ImageSpec = SPEC) -> np.ndarray:
    """Preprocessed image back in 0..255 RGB, (H, W, 3), for readable assertions."""
    x = preprocess_image(source, spec)
    assert x.shape == (3, *spec.size) and x.dtype == np.float32
    return np.rint((x.transpose(1, 2, 0) * 0.5 + 0.5) * 255)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + _png_chunk(b"IEND", b""))


# -- modes ---------------------------------------------------------------------------------
def test_rgba_alpha_is_composited_on_white() -> None:
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent blue -> background
    image.putpixel((1, 0), (0, 0, 0, 128))  # half-transparent black -> grey
    out = pixels(encode(image))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == pytest.approx([127, 127, 127], abs=1)
    assert out[4, 4].tolist() == [255, 0, 0]


def test_la_mode() -> None:
    image = Image.new("LA", (8, 8), (100, 255))
    image.putpixel((0, 0), (0, 0))
    out = pixels(encode(image))
    assert out[0, 0].tolist() == [255, 255, 255] and out[3, 3].tolist() == [100, 100, 100]


def test_palette_with_and_without_transparency() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    assert pixels(encode(image))[3, 3].tolist() == [10, 200, 30]
    assert pixels(encode(image))[0, 0].tolist() == [0, 0, 0]
    out = pixels(encode(image, transparency=0))
    assert out[0, 0].tolist() == [255, 255, 255] and out[3, 3].tolist() == [10, 200, 30]


def test_greyscale_and_bilevel() -> None:
    assert pixels(encode(Image.new("L", (8, 8), 77)))[2, 2].tolist() == [77, 77, 77]
    assert pixels(encode(Image.new("1", (8, 8), 1)))[2, 2].tolist() == [255, 255, 255]


def test_16_bit_greyscale_is_scaled_by_bit_depth() -> None:
    a = np.full((8, 8), 65535, dtype=np.uint16)
    a[0, 0] = 0
    a[0, 1] = 32896  # 128.5 / 255 of the range
    image = Image.fromarray(a)
    assert image.mode.startswith("I;16")
    out = pixels(encode(image))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[5, 5].tolist() == [255, 255, 255]
    assert abs(out[0, 1, 0] - 128) <= 1


def test_32_bit_integer_mode() -> None:
    image = Image.fromarray(np.full((8, 8), 40000, dtype=np.int32))
    assert image.mode == "I"
    assert pixels(image)[1, 1].tolist() == [156, 156, 156]  # 40000 / 65535 * 255


def test_cmyk_tiff_and_jpeg() -> None:
    image = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    assert pixels(encode(image, "TIFF"))[3, 3].tolist() == [255, 0, 0]
    jpeg = pixels(encode(image, "JPEG", quality=95))
    assert jpeg[3, 3, 0] > 230 and jpeg[3, 3, 1:].max() < 30


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (20, 10), (0, 0, 0))
    image.paste((255, 0, 0), (0, 0, 10, 10))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=95)
    upright = to_rgb(open_image(data))
    assert upright.size == (10, 20)  # width, height swapped
    top = np.asarray(upright)[2, 5]
    assert top[0] > 200 and top[1] < 50  # the red half is now on top


# -- resize modes, arrays --------------------------------------------------------------------
def _two_halves() -> Image.Image:
    image = Image.new("RGB", (16, 8), (255, 0, 0))
    image.paste((0, 0, 255), (8, 0, 16, 8))  # left red, right blue
    return image


def test_pad_keeps_the_whole_image() -> None:
    spec = ImageSpec(size=(8, 8), resize="pad", resample="nearest", pad_value=(0, 255, 0))
    out = pixels(_two_halves(), spec)
    assert out[0, 0].tolist() == [0, 255, 0]  # padding on top
    assert out[4, 0].tolist() == [255, 0, 0] and out[4, 7].tolist() == [0, 0, 255]


def test_crop_takes_the_centre() -> None:
    out = pixels(_two_halves(), ImageSpec(size=(8, 8), resize="crop", resample="nearest"))
    assert out[0, 0].tolist() == [255, 0, 0] and out[7, 7].tolist() == [0, 0, 255]
    assert (out[:, :4] == [255, 0, 0]).all()


def test_squash_ignores_aspect_ratio() -> None:
    out = pixels(_two_halves(), ImageSpec(size=(8, 8), resize="squash", resample="nearest"))
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 7].tolist() == [0, 0, 255]


def test_arrays_uint8_float_and_greyscale() -> None:
    a = np.zeros((8, 8, 3), dtype=np.uint8)
    a[..., 1] = 200
    assert pixels(a)[1, 1].tolist() == [0, 200, 0]
    assert pixels(np.full((8, 8), 0.5, dtype=np.float32))[1, 1].tolist() == [128, 128, 128]
    with pytest.raises(SalesAIError, match=r"<array \(8, 8, 5\) uint8>: expected an array"):
        preprocess_image(np.zeros((8, 8, 5), dtype=np.uint8))


def test_paths_and_bytes_agree(tmp_path: Path) -> None:
    data = sample_png_bytes(20, 12)
    (tmp_path / "x.png").write_bytes(data)
    assert np.array_equal(preprocess_image(data), preprocess_image(tmp_path / "x.png"))
    assert np.array_equal(preprocess_image(data), preprocess_image(str(tmp_path / "x.png")))
    assert preprocess_image(data).shape == (3, 224, 224)


def test_spec_round_trips_through_its_dict() -> None:
    spec = ImageSpec(size=(32, 48), resize="crop", mean=(0.4, 0.5, 0.6))
    assert ImageSpec.from_dict(spec.as_dict()) == spec


# -- bad files: one line naming the file and the problem ------------------------------------
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty"),
        (b"hello, I am a text file\n", "not an image"),
        (sample_png_bytes(64, 64)[:-120], "truncated"),
        (encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:300], "truncated"),
        (bomb_png(100_000, 100_000), "decompression bomb"),
        (bomb_png(7_000, 7_000), "decompression bomb"),
    ],
    ids=["zero-byte", "not-an-image", "truncated-png", "truncated-jpeg", "bomb", "bomb-between-limits"],
)
def test_bad_files_fail_in_one_line(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.img"
    path.write_bytes(content)
    with pytest.raises(SalesAIError) as info:
        preprocess_image(path)
    message = str(info.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_pixel_limit_is_a_setting(tmp_path: Path) -> None:
    data = encode(Image.new("RGB", (100, 100)))
    with pytest.raises(SalesAIError, match="100x100 = 10000 pixels exceeds the limit of 5000"):
        preprocess_image(data, ImageSpec(size=(8, 8), max_pixels=5000))


def test_missing_file_and_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(SalesAIError, match=r"nope\.png: image file not found"):
        preprocess_image(tmp_path / "nope.png")
    with pytest.raises(SalesAIError, match="expected an image path"):
        preprocess_image(12)  # type: ignore[arg-type]
