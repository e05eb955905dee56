"""Media content parts of chat messages: `image_url` (data: URIs) and `input_audio` (base64).

`read_part(part, where, backend)` turns one OpenAI content part into `(modality, item, positions)`:
the backend's preprocessed item (`backend.prepare_media`, e.g. the encoder's `preprocess(bytes)`)
and the number of prompt positions its embeddings fill. Every failure is a 400 naming the part:
bad base64, an empty payload, a non-image MIME type (SVG included), unreadable/corrupt bytes,
a modality the model lacks (`modality_not_supported`), and any remote URL (`http(s)://`,
`file://`) unless the server names allowed hosts (`media_url_hosts`): then `fetch.py` fetches
http(s) URLs of those hosts with a size cap and a timeout; everything else stays refused.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from salesai_serve.errors import invalid

PART_MODALITY = {"image_url": "image", "input_audio": "audio"}
AUDIO_FORMATS = ("wav", "flac", "ogg")  # what the audio encoders read (no mp3)


def _b64(data: Any, where: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise invalid(f"{where}: expected non-empty base64 data", where, code="invalid_media")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}: not valid base64", where, code="invalid_media") from None
    if not raw:
        raise invalid(f"{where}: empty payload", where, code="invalid_media")
    return raw


def _image_bytes(part: dict[str, Any], where: str, settings: Any = None) -> bytes:
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec  # `detail` is accepted and ignored
    if not isinstance(url, str) or not url:
        raise invalid(f"{where}.image_url.url: expected a data: URI", where, code="invalid_media")
    if not url.startswith("data:"):
        from salesai_serve.fetch import fetch_image

        hosts = list(getattr(settings, "media_url_hosts", None) or [])
        return fetch_image(url, where, hosts, int(getattr(settings, "media_url_max_bytes", 0) or 0),
                           float(getattr(settings, "media_url_timeout_s", 0) or 0))
    header, sep, payload = url[5:].partition(",")
    mime = header.split(";")[0].strip().lower()
    if not sep or not header.endswith(";base64"):
        raise invalid(f"{where}.image_url.url: expected data:image/<type>;base64,<data>", where,
                      code="invalid_media")
    if not mime.startswith("image/") or "svg" in mime:
        raise invalid(f"{where}.image_url.url: {mime[:40] or 'no'} MIME type; expected a raster image "
                      "(image/png, image/jpeg, ...)", where, code="invalid_media")
    return _b64(payload, f"{where}.image_url.url")


def _audio_bytes(part: dict[str, Any], where: str) -> bytes:
    spec = part.get("input_audio")
    if not isinstance(spec, dict):
        raise invalid(f"{where}.input_audio: expected {{data, format}}", where, code="invalid_media")
    fmt = spec.get("format")
    if fmt not in AUDIO_FORMATS:
        raise invalid(f"{where}.input_audio.format: expected one of {', '.join(AUDIO_FORMATS)}", where,
                      code="invalid_media")
    return _b64(spec.get("data"), f"{where}.input_audio.data")


def read_part(part: dict[str, Any], where: str, backend: Any, settings: Any = None) -> tuple[str, Any, int]:
    """(modality, preprocessed item, prompt positions) of one media part; see the module docstring.
    `settings` (ServeSettings) says which hosts remote image URLs may come from (none by default)."""
    kind = part.get("type")
    modality = PART_MODALITY.get(str(kind))
    modalities = tuple(getattr(backend, "modalities", ("text",)))
    if modality is None or modality not in modalities:
        raise invalid(f"{where}: {kind} input is not supported by this model (modalities: "
                      f"{', '.join(modalities)})", where, code="modality_not_supported")
    raw = _image_bytes(part, where, settings) if modality == "image" else _audio_bytes(part, where)
    try:
        item, positions = backend.prepare_media(modality, raw)
    except Exception as exc:  # corrupt or unreadable bytes: the decoder's own error type varies
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise invalid(f"{where}: could not read the {modality} ({reason})", where,
                      code="invalid_media") from None
    return modality, item, int(positions)


__all__ = ["AUDIO_FORMATS", "PART_MODALITY", "read_part"]
