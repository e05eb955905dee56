"""Remote image URLs (MM-06, MM-07): refused by default; with an allowlist, fetched under a size cap
and a timeout, redirects never followed. A local `http.server` thread plays the remote host.

Needs the `vit` image encoder plugin (salesai-vision); skipped otherwise.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from salesai.testing import has_component


def _png(color: tuple[int, int, int], size: int = 64) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(raw: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(raw).decode()}"


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


pytestmark = pytest.mark.skipif(not has_component("encoders", "vit"),
                                reason="no `vit` image encoder plugin (salesai-vision)")

CAP = 4000  # bytes fetched at most in these tests


class Remote(BaseHTTPRequestHandler):
    """/ok.png, /big (sized), /big-unsized, /slow, /missing, /redirect-out, /redirect-in, /page."""

    release = threading.Event()  # /slow answers only once set (or after 10 s)
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Remote.hits.append(self.path)
        png = _png((200, 30, 30))
        port = self.server.server_address[1]
        if self.path == "/ok.png":
            self._send(200, png, "image/png")
        elif self.path == "/big":
            self._send(200, b"\x00" * (CAP * 3), "image/png")
        elif self.path == "/big-unsized":  # no Content-Length: counted while read
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"\x00" * (CAP * 3))
            self.close_connection = True
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png[:10])
            self.wfile.flush()
            Remote.release.wait(10)
            self.wfile.write(png[10:])
        elif self.path == "/redirect-out":  # to a host that is not on the list
            self._send(302, b"", "text/plain", {"Location": "http://169.254.169.254/latest/meta-data"})
        elif self.path == "/redirect-in":  # to an allowed URL: still not followed
            self._send(302, b"", "text/plain", {"Location": f"http://127.0.0.1:{port}/ok.png"})
        elif self.path == "/page":
            self._send(200, b"<html></html>", "text/html")
        else:
            self._send(404, b"no", "text/plain")

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Remote)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    Remote.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def vision_backend(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import torch

    from salesai import ModelConfig, SalesAIModel
    from salesai.model import save_checkpoint
    from salesai_serve.backends import load_backend

    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny-vision", vocab_size=len(tokenizer), init_std=0.2, max_seq_len=128)
    model = SalesAIModel(cfg).eval()
    path = Path(save_checkpoint(tmp_path_factory.mktemp("remote") / "vis", model, tokenizer))
    return load_backend("pytorch", path, threads=1)


@pytest.fixture(scope="module")
def client(vision_backend: Any, remote: str) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.settings import ServeSettings

    settings = ServeSettings(model_id="vis", media_url_hosts=[remote, "example.invalid"],
                             media_url_max_bytes=CAP, media_url_timeout_s=0.5)
    app = create_app(settings, lambda: vision_backend, load_in_background=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _ask(client: Any, url: str) -> Any:
    body = {"model": "vis", "max_tokens": 5, "temperature": 0, "ignore_eos": True,
            "messages": [{"role": "user", "content": [_image(url), {"type": "text", "text": " Colour?"}]}]}
    return client.post("/v1/chat/completions", json=body)


def test_MM_07_allowed_host_is_fetched_and_answers_as_the_data_uri(client: Any, remote: str) -> None:
    fetched = _ask(client, f"http://{remote}/ok.png")
    assert fetched.status_code == 200, fetched.text
    inline = _ask(client, _data_uri(_png((200, 30, 30))))
    answer = fetched.json()["choices"][0]["message"]["content"]
    assert answer == inline.json()["choices"][0]["message"]["content"]
    assert fetched.json()["usage"] == inline.json()["usage"]


@pytest.mark.parametrize("path, code, fragment", [
    ("/big", "media_too_large", f"at most {CAP} are fetched"),          # Content-Length over the cap
    ("/big-unsized", "media_too_large", f"over {CAP} bytes"),            # counted while read
    ("/slow", "media_fetch_timeout", "within 0.5 s"),                   # MM-07 slow
    ("/missing", "media_fetch_failed", "HTTP 404"),                     # MM-07 404
    ("/redirect-out", "media_fetch_failed", "redirects are not followed"),  # MM-06 redirect
    ("/redirect-in", "media_fetch_failed", "redirects are not followed"),
    ("/page", "invalid_media", "text/html content"),
])
def test_MM_07_fetch_failures_are_400(client: Any, remote: str, path: str, code: str, fragment: str) -> None:
    before = len(Remote.hits)
    r = _ask(client, f"http://{remote}{path}")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == code and fragment in error["message"], error
    assert error["param"] == "messages[0].content[0]"
    assert Remote.hits[before:] == [path]  # one request, the redirect target never fetched
    assert client.get("/ready").status_code == 200


@pytest.mark.parametrize("url, fragment", [
    ("http://localhost:{port}/ok.png", "'localhost' is not on this server's media URL allowlist"),
    ("http://127.0.0.1:1/ok.png", "is not on this server's media URL allowlist"),  # allowed host, other port
    ("http://169.254.169.254/latest/meta-data", "not on this server's media URL allowlist"),
    ("file:///etc/passwd", "file URLs are not fetched"),
    ("ftp://{remote}/ok.png", "ftp URLs are not fetched"),
    ("http://user:pw@{remote}/ok.png", "credentials"),
])
def test_MM_06_hosts_off_the_list_are_refused_unfetched(client: Any, remote: str, url: str,
                                                         fragment: str) -> None:
    before = len(Remote.hits)
    r = _ask(client, url.format(remote=remote, port=remote.split(":")[1]))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "remote_url_not_allowed" and fragment in r.json()["error"]["message"]
    assert len(Remote.hits) == before


def test_MM_07_unreachable_allowed_host_is_400(client: Any) -> None:
    r = _ask(client, "http://example.invalid/cat.png")  # on the list; the name does not resolve
    assert r.status_code == 400 and r.json()["error"]["code"] in ("media_fetch_failed", "media_fetch_timeout")


def test_remote_media_settings_are_checked() -> None:
    from salesai.errors import SalesAIError
    from salesai_serve.settings import ServeSettings

    for bad in (["http://example.com"], ["*.example.com"], [" "]):
        with pytest.raises(SalesAIError, match="--media-url-host"):
            ServeSettings(media_url_hosts=bad).check()
    with pytest.raises(SalesAIError, match="--media-url-max-bytes"):
        ServeSettings(media_url_max_bytes=0).check()


def test_BP_02_a_rejected_10_mb_image_is_never_decoded(vision_backend: Any) -> None:
    """Queue full: a request carrying a ~10 MB image gets its 503 before its body is parsed or its image
    decoded (admission comes first); with room, the same body does reach the image reader."""
    import os

    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.settings import ServeSettings

    class Spy:
        def __init__(self) -> None:
            self.decoded = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(vision_backend, name)

        def prepare_media(self, modality: str, data: bytes) -> Any:
            self.decoded += 1
            return vision_backend.prepare_media(modality, data)

    spy = Spy()
    settings = ServeSettings(model_id="vis", max_batch_size=1, max_queue=0, max_body_bytes=20_000_000)
    app = create_app(settings, lambda: spy, load_in_background=False)  # type: ignore[arg-type, return-value]
    body = {"model": "vis", "max_tokens": 2, "messages": [{"role": "user", "content": [
        _image("data:image/png;base64," + base64.b64encode(os.urandom(7_500_000)).decode())]}]}
    with TestClient(app, raise_server_exceptions=False) as client:
        engine = app.state.server.engine
        engine.reserve(1)  # the only place is taken
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1" and spy.decoded == 0
        assert len(r.request.content) > 10_000_000
        engine.release(1)
        r = client.post("/v1/chat/completions", json=body)  # admitted: parsed and handed to the reader
        assert r.status_code == 400 and "could not read the image" in r.json()["error"]["message"]
        assert spy.decoded == 1 and engine.in_flight == 0
