"""A real uvicorn server on 127.0.0.1: the official `openai` client (OAI-01, STR-01) and client
disconnects over real sockets (CAN-01, CAN-02, CAN-05).

The backend is wrapped so that a test can slow its decode steps down (a running request then
lasts long enough to be cut off); the assertions are on counters and gauges, not on timings,
and polling loops have generous deadlines only to never hang.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

KEY = "sk-live-test-key"


class SlowBackend:
    """The real backend, with an adjustable pause in every decode step."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.delay = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decode(self, tokens: Any) -> Any:
        if self.delay:
            time.sleep(self.delay)
        return self.inner.decode(tokens)


@pytest.fixture(scope="module")
def live(backends: dict[str, Any]) -> Iterator[tuple[str, Any, SlowBackend]]:
    """(base_url, app, slow backend) of a uvicorn server in a thread."""
    import uvicorn

    from salesai_serve.app import create_app
    from salesai_serve.settings import ServeSettings

    backends["pytorch"].reset()
    slow = SlowBackend(backends["pytorch"])
    app = create_app(ServeSettings(model_id="tiny", api_keys=[KEY], max_batch_size=4, max_queue=4),
                     lambda: slow, load_in_background=False)  # type: ignore[arg-type, return-value]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started)
    yield f"http://127.0.0.1:{port}", app, slow
    server.should_exit = True
    thread.join(30)
    backends["pytorch"].reset()


def until(condition: Callable[[], Any], deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def test_OAI_01_official_openai_client(live: Any) -> None:
    import openai

    url, app, _ = live
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    done = client.completions.create(model="tiny", prompt="def add", max_tokens=8, temperature=0)
    assert done.choices[0].finish_reason in ("stop", "length") and done.usage is not None
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    messages: Any = [{"role": "user", "content": "hello"}]
    whole = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    stream = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    usage = chunks[-1].usage
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x", max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="x", max_tokens=0)
    engine = app.state.server.engine
    engine.reserve(engine.capacity)
    try:
        with pytest.raises(openai.InternalServerError):  # 503 queue full (the client would retry it)
            client.completions.create(model="tiny", prompt="x", max_tokens=2)
    finally:
        engine.release(engine.capacity)


def _open_stream(url: str, body: dict[str, Any]) -> socket.socket:
    """Send a POST by hand and read until the first SSE data line; return the open socket."""
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Length: {len(payload)}\r\n\r\n")
    sock.sendall(head.encode() + payload)
    seen = b""
    while b"data: " not in seen:
        seen += sock.recv(4096)
    return sock


def test_CAN_01_02_05_disconnects_free_the_batch(live: Any) -> None:
    url, app, slow = live
    metrics = app.state.server.metrics
    engine = app.state.server.engine
    before = metrics.value("salesai_client_disconnects_total")
    slow.delay = 0.05
    try:
        body = {"model": "tiny", "prompt": "hello", "max_tokens": 80, "ignore_eos": True, "temperature": 0}
        sock = _open_stream(url, {**body, "stream": True})  # CAN-01: streaming, cut after the first token
        until(lambda: engine.running)
        sock.close()
        until(lambda: not engine.running and engine.in_flight == 0)
        assert metrics.value("salesai_client_disconnects_total") == before + 1
        import httpx

        with pytest.raises(httpx.TimeoutException):  # CAN-02: non-streaming, client timeout
            httpx.post(f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"},
                       timeout=0.5)
        until(lambda: not engine.running and engine.in_flight == 0)
        assert metrics.value("salesai_client_disconnects_total") == before + 2
        for _ in range(20):  # CAN-05: connect/abort cycles leak no slots
            _open_stream(url, {**body, "stream": True}).close()
        until(lambda: not engine.running and engine.in_flight == 0)
        assert app.state.server.engine.backend.rows == 0
    finally:
        slow.delay = 0.0
    r = httpx.post(f"{url}/v1/completions", json={**body, "max_tokens": 4},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
