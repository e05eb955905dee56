"""Fetching remote images for `image_url` parts: off unless hosts are allowlisted, then bounded.

`fetch_image(url, where, hosts, max_bytes, timeout_s)` returns the bytes of an `http(s)://`
URL whose host is on the allowlist, or raises a 400 naming the part:

- `remote_url_not_allowed`: fetching is off (no hosts configured), the scheme is not http(s)
  (`file://`, `ftp://`, ...), the URL carries credentials, or its host is not on the list. An
  entry `host` allows that host on any port, `host:port` only that port; names are compared
  as written (no DNS lookups, no wildcards), so `127.0.0.1` does not allow `localhost`.
- `media_fetch_failed`: a redirect (never followed, wherever it points: a redirect could lead
  to an internal address), an HTTP status other than 200, a connection error.
- `media_too_large`: a `Content-Length` over `max_bytes` (refused before reading), or a body
  that grows past it while read (chunked or unsized bodies are counted as they arrive).
- `media_fetch_timeout`: connecting plus reading took longer than `timeout_s` in all; the
  deadline is enforced between reads, and each read may block for at most the time left.
- `invalid_media`: a `Content-Type` that is not a raster image (`image/svg+xml`, `text/html`).

Environment proxies are ignored (the request goes straight to the allowlisted host). The
standard library's `urllib` does the HTTP; this runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from salesai_serve.errors import APIError, invalid

CHUNK = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def host_allowed(url: str, hosts: Sequence[str]) -> bool:
    """Whether `url`'s host (and port) matches an allowlist entry (`host` or `host:port`)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    if not host:
        return False
    wanted = {h.strip().lower() for h in hosts if h.strip()}
    return host in wanted or f"{host}:{port}" in wanted or f"[{host}]:{port}" in wanted


def fetch_image(url: str, where: str, hosts: Sequence[str], max_bytes: int, timeout_s: float) -> bytes:
    """The image bytes at `url`; see the module docstring for every refusal."""
    param = f"{where}.image_url.url"

    def refuse(message: str, code: str) -> APIError:
        return invalid(f"{param}: {message}", where, code=code)

    parts = urlsplit(url)
    if not hosts:
        raise refuse("remote URLs are not fetched by this server; send the image as a data: URI "
                     "(data:image/png;base64,...)", "remote_url_not_allowed")
    if parts.scheme not in ("http", "https"):
        raise refuse(f"{parts.scheme or 'this'} URLs are not fetched; expected http(s):// or a data: URI",
                     "remote_url_not_allowed")
    if parts.username or parts.password:
        raise refuse("URLs with credentials are not fetched", "remote_url_not_allowed")
    if not host_allowed(url, hosts):
        raise refuse(f"host {(parts.hostname or '?')[:100]!r} is not on this server's media URL allowlist",
                     "remote_url_not_allowed")
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers={"User-Agent": "salesai-serve", "Accept": "image/*"})
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            if response.status != 200:
                raise refuse(f"the server answered HTTP {response.status}", "media_fetch_failed")
            ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype and (not ctype.startswith("image/") or "svg" in ctype):
                raise refuse(f"{ctype[:40]} content; expected a raster image", "invalid_media")
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise refuse(f"{int(length)} bytes; at most {max_bytes} are fetched", "media_too_large")
            return _read(response, refuse, max_bytes, deadline)
    except urllib.error.HTTPError as exc:
        redirect = 300 <= exc.code < 400
        what = "redirects are not followed" if redirect else f"the server answered HTTP {exc.code}"
        raise refuse(what, "media_fetch_failed") from None
    except TimeoutError:
        raise refuse(f"no complete answer within {timeout_s:g} s", "media_fetch_timeout") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise refuse(f"no complete answer within {timeout_s:g} s", "media_fetch_timeout") from None
        raise refuse(f"could not fetch it ({type(reason).__name__})", "media_fetch_failed") from None


def _read(response: Any, refuse: Any, max_bytes: int, deadline: float) -> bytes:
    """Read the body in chunks under the size cap and the overall deadline."""
    sock = getattr(getattr(response.fp, "raw", None), "_sock", None)  # to shorten each read's timeout
    data = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        if sock is not None:
            sock.settimeout(left)
        chunk = response.read1(CHUNK)
        if not chunk:
            break
        data += chunk
        if len(data) > max_bytes:
            raise refuse(f"over {max_bytes} bytes; at most {max_bytes} are fetched", "media_too_large")
    if time.monotonic() > deadline:
        raise TimeoutError
    return bytes(data)


__all__ = ["fetch_image", "host_allowed"]
