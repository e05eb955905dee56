"""Image reading and preprocessing with Pillow and numpy only (no torch, no torchvision).

`preprocess_image(source, spec) -> np.ndarray (3, H, W) float32` is what the `vit` encoder's
`preprocess` wraps, and what `salesai generate --backend onnxruntime` calls (through the
encoder's registry metadata) so that the ONNX path never imports torch. The steps, each
recorded in the spec that the ONNX manifest carries:

1. read: a path (`str`/`Path`), `bytes`, a numpy array (H, W) or (H, W, C) (uint8, or float
   in 0..1) or a `PIL.Image`;
2. open with Pillow, refusing images above `max_pixels` *before* decoding (decompression
   bombs never allocate), then decode fully (a truncated file fails here);
3. apply the EXIF orientation;
4. convert any mode to RGB: alpha (RGBA, LA, PA, P with transparency) is composited on a
   white background; 16/32-bit greyscale (I;16, I) is scaled to 8 bit by its bit depth;
   CMYK, YCbCr, L, 1 through Pillow's conversion;
5. resize with `resample` so the image fits `size` (H, W) according to `resize`:
   `pad` (default: whole image kept, shorter side padded with `pad_value`, as LLaVA-1.5),
   `crop` (shorter side fills, centre crop, as CLIP), or `squash` (aspect ratio ignored,
   as transformers' ViTImageProcessor);
6. to float: x / 255, then (x - mean) / std per channel; layout (3, H, W).

Every failure is one `SalesAIError` line naming the input and the problem.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salesai.errors import SalesAIError

RESIZE_MODES = ("pad", "crop", "squash")
RESAMPLING = ("bicubic", "bilinear", "nearest", "lanczos", "box")
DEFAULT_MAX_PIXELS = 40_000_000  # ~ 6300 x 6300; larger files are refused before decoding


@dataclass
class ImageSpec:
    """How an image becomes the encoder's input; `as_dict()` is the manifest's preprocess_spec."""

    size: tuple[int, int] = (224, 224)  # output (height, width) in pixels
    resize: str = "pad"  # pad | crop | squash (see the module docstring)
    resample: str = "bicubic"  # Pillow resampling filter for the resize
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per-channel mean after x / 255
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per-channel std after x / 255
    pad_value: tuple[int, int, int] = (255, 255, 255)  # RGB fill of the padding (resize=pad)
    background: tuple[int, int, int] = (255, 255, 255)  # RGB under transparent pixels
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images (decompression bombs)

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise SalesAIError(f"resize={self.resize!r}: expected one of {', '.join(RESIZE_MODES)}")
        if self.resample not in RESAMPLING:
            raise SalesAIError(f"resample={self.resample!r}: expected one of {', '.join(RESAMPLING)}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise SalesAIError(f"size={self.size!r}: expected (height, width), both >= 1")
        if any(s <= 0 for s in self.std):
            raise SalesAIError(f"std={self.std!r}: every value must be > 0")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description a program in another language can follow."""
        d = asdict(self)
        d.update(
            modality="image",
            layout="NCHW",
            dtype="float32",
            channels="RGB",
            rescale=1 / 255,
            exif_transpose=True,
            size=list(self.size),
            mean=list(self.mean),
            std=list(self.std),
            pad_value=list(self.pad_value),
            background=list(self.background),
        )
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSpec:
        """Inverse of `as_dict` (unknown keys ignored), e.g. from an ONNX manifest."""
        keys = {"size", "resize", "resample", "mean", "std", "pad_value", "background", "max_pixels"}
        values: dict[str, Any] = {k: data[k] for k in keys if k in data}
        for k in ("size", "mean", "std", "pad_value", "background"):
            if k in values:
                values[k] = tuple(values[k])
        return cls(**values)


def _name(source: Any) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    return f"<{type(source).__name__}>"


def _from_array(array: np.ndarray, name: str) -> Any:
    from PIL import Image

    a = array
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise SalesAIError(f"{name}: expected an array (H, W), (H, W, 3) or (H, W, 4)")
    if a.size == 0:
        raise SalesAIError(f"{name}: the array is empty")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise SalesAIError(f"{name}: expected uint8 or float pixel values, got {a.dtype}")
        if np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all():
                raise SalesAIError(f"{name}: the array holds NaN or infinite values")
            a = np.clip(a, 0.0, 1.0) * 255.0  # floats are read as 0..1
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def open_image(source: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """A fully decoded `PIL.Image` (any mode) from a path, bytes, array or image; SalesAIError otherwise."""
    from PIL import Image, UnidentifiedImageError

    name = _name(source)
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, name)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise SalesAIError(f"{name}: image file not found")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        raise SalesAIError(f"{name}: expected an image path, bytes, a numpy array or a PIL image")
    if not data:
        raise SalesAIError(f"{name}: the file is empty (0 bytes), not an image")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        width, height = image.size
        if width * height > max_pixels:  # refused before any pixel is decoded
            raise SalesAIError(
                f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
                "(a decompression bomb?); raise max_pixels to allow it"
            )
        image.load()
    except SalesAIError:
        raise
    except UnidentifiedImageError:
        raise SalesAIError(f"{name}: not an image Pillow can read (unknown or corrupt format)") from None
    except Image.DecompressionBombError:  # Pillow's own limit, below ours
        raise SalesAIError(
            f"{name}: refused as a decompression bomb "
            f"(above Pillow's limit of {Image.MAX_IMAGE_PIXELS} pixels)"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        message = f"{name}: cannot decode the image (truncated or corrupt?): {exc}"
        raise SalesAIError(message.splitlines()[0]) from None
    return image


def to_rgb(image: Any, background: tuple[int, int, int] = (255, 255, 255)) -> Any:
    """Any Pillow mode -> RGB: EXIF orientation applied, alpha composited on `background`."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            top = 65535.0
        elif mode == "I":  # 32-bit containers mostly hold 8- or 16-bit data
            top = 65535.0 if a.max() > 255 else 255.0
        else:  # "F": 0..1 or 0..255
            top = 1.0 if a.max() <= 1.0 else 255.0
        image = Image.fromarray(np.clip(np.rint(a / top * 255.0), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    return image.convert("RGB") if image.mode != "RGB" else image


def _resample(name: str) -> Any:
    from PIL import Image

    return {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
        "lanczos": Image.Resampling.LANCZOS,
        "box": Image.Resampling.BOX,
    }[name]


def resize(image: Any, spec: ImageSpec) -> Any:
    """Fit an RGB image to spec.size (H, W) by pad, crop or squash."""
    from PIL import Image

    th, tw = spec.size
    w, h = image.size
    method = _resample(spec.resample)
    if (w, h) == (tw, th):
        return image
    if spec.resize == "squash":
        return image.resize((tw, th), method)
    scale = min(tw / w, th / h) if spec.resize == "pad" else max(tw / w, th / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    image = image.resize((nw, nh), method)
    if spec.resize == "crop":
        left, top = (nw - tw) // 2, (nh - th) // 2
        return image.crop((left, top, left + tw, top + th))
    canvas = Image.new("RGB", (tw, th), spec.pad_value)
    canvas.paste(image, ((tw - nw) // 2, (th - nh) // 2))
    return canvas


def preprocess_image(source: Any, spec: ImageSpec | dict[str, Any] | None = None) -> np.ndarray:
    """One image -> float32 array (3, H, W), normalised as `spec` says (see the module docstring)."""
    if spec is None:
        spec = ImageSpec()
    elif isinstance(spec, dict):
        spec = ImageSpec.from_dict(spec)
    image = resize(to_rgb(open_image(source, spec.max_pixels), spec.background), spec)
    x = np.asarray(image, dtype=np.float32) * np.float32(1 / 255)  # (H, W, 3)
    mean, std = np.asarray(spec.mean, dtype=np.float32), np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1), dtype=np.float32)  # (3, H, W)


__all__ = ["ImageSpec", "open_image", "preprocess_image", "resize", "to_rgb"]
