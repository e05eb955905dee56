"""Connection-level cases over a real uvicorn server in a thread (`cli.make_server`, as `salesai serve`
runs it): slow clients (LIM-02), health probes under full load and a long prefill (HL-05),
the drain deadline (SD-02).

Assertions are on what the server did (closed sockets, status codes, events, counters); the
polling loops' deadlines exist only so that a broken server fails instead of hanging.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

KEY = "sk-limits-test"


class Paced:
    """The real backend; `decode_delay` pauses each decode step, `hold` blocks prefills until set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.decode_delay = 0.0
        self.hold = threading.Event()
        self.hold.set()
        self.prefilling = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def add(self, ids: Any) -> Any:
        self.prefilling.set()
        self.hold.wait(60)
        return self.inner.add(ids)

    def decode(self, tokens: Any) -> Any:
        if self.decode_delay:
            threading.Event().wait(self.decode_delay)
        return self.inner.decode(tokens)


def until(condition: Callable[[], Any], deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        threading.Event().wait(0.02)


@contextmanager
def serving(backends: dict[str, Any], **options: Any) -> Iterator[tuple[str, Any, Any, Paced]]:
    """(base url, uvicorn server, app, paced backend) of `salesai serve`'s server in a thread."""
    from salesai_serve.app import create_app
    from salesai_serve.cli import make_server
    from salesai_serve.settings import ServeSettings

    backends["pytorch"].reset()
    paced = Paced(backends["pytorch"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ServeSettings(model_id="tiny", port=port, api_keys=[KEY], **options)
    app = create_app(settings, lambda: paced, load_in_background=False)  # type: ignore[arg-type, return-value]
    server = make_server(app, settings, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    server.thread = thread
    thread.start()
    until(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}", server, app, paced
    finally:
        paced.hold.set()
        server.should_exit = True
        thread.join(30)
        backends["pytorch"].reset()


def _completion(**extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "prompt": "hello", "max_tokens": 4, "temperature": 0, "ignore_eos": True,
            **extra}


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(30)
    try:
        return sock.recv(1024) == b""  # EOF: the server closed it, without an answer
    except ConnectionResetError:
        return True


def test_LIM_02_slow_headers_and_slow_body_are_cut_others_unaffected(backends: Any) -> None:
    import httpx

    with serving(backends, read_timeout_s=0.5) as (url, _, app, paced):
        port = int(url.rsplit(":", 1)[1])
        slow_headers = socket.create_connection(("127.0.0.1", port))
        slow_headers.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: app")
        slow_body = socket.create_connection(("127.0.0.1", port))
        body = json.dumps(_completion()).encode()
        slow_body.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                          + body[:10])
        # meanwhile others are served, including one whose answer takes longer than the read timeout
        paced.decode_delay = 0.1
        with httpx.Client(base_url=url, headers=_auth(), timeout=60) as client:
            assert client.get("/health").status_code == 200
            r = client.post("/v1/completions", json=_completion(max_tokens=12))
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 12
        paced.decode_delay = 0.0
        assert _closed_by_server(slow_headers) and _closed_by_server(slow_body)
        slow_headers.close()
        slow_body.close()
        state = app.state.server
        until(lambda: state.engine.in_flight == 0)  # the slow body's admission place was given back
        assert state.metrics.value("salesai_requests_rejected_total", reason="read_timeout") == 2
        with httpx.Client(base_url=url, headers=_auth(), timeout=60) as client:
            assert client.post("/v1/completions", json=_completion()).status_code == 200


def test_HL_05_BP_05_probes_answer_during_full_load_and_a_long_prefill(backends: Any) -> None:
    """The engine thread is stuck in a prefill (held until the test lets it go) and batch + queue are
    full: /health, /ready and /metrics still answer, without a key and without secrets, while
    inference requests get their immediate 503; nothing the probes do waits for the prefill.
    BP-05: /metrics shows the queue depth, the running request and the rejection by reason."""
    import httpx

    with serving(backends, max_batch_size=1, max_queue=1) as (url, _, app, paced):
        paced.hold.clear()
        paced.prefilling.clear()
        results: list[Any] = []
        with httpx.Client(base_url=url, headers=_auth(), timeout=120) as client:
            workers = [threading.Thread(target=lambda: results.append(
                client.post("/v1/completions", json=_completion()))) for _ in range(2)]
            workers[0].start()
            assert paced.prefilling.wait(60)  # the first is in its prefill, the second will wait
            workers[1].start()
            until(lambda: app.state.server.engine.in_flight == 2)
            with httpx.Client(base_url=url, timeout=30) as probe:  # no key
                for path in ("/health", "/health/live", "/ready", "/health/ready", "/metrics"):
                    r = probe.get(path)
                    assert r.status_code == 200, (path, r.text)
                    assert KEY not in r.text
                metrics = probe.get("/metrics").text
                assert "salesai_requests_waiting 1.0" in metrics and "salesai_requests_running" in metrics
                full = client.post("/v1/completions", json=_completion())
                assert full.status_code == 503 and full.json()["error"]["code"] == "queue_full"
                rejected = 'salesai_requests_rejected_total{reason="queue_full"} 1.0'
                assert rejected in probe.get("/metrics").text
            paced.hold.set()
            for w in workers:
                w.join(120)
        assert [r.status_code for r in results] == [200, 200]


def test_SD_02_in_flight_past_the_drain_timeout_ends_with_an_error_event(backends: Any) -> None:
    import httpx

    with serving(backends, shutdown_timeout_s=0.5) as (url, server, app, paced):
        paced.decode_delay = 0.05  # 90 tokens: far longer than the drain timeout
        lines: list[str] = []
        with httpx.Client(base_url=url, headers=_auth(), timeout=60) as client, client.stream(
                "POST", "/v1/completions", json=_completion(max_tokens=90, stream=True)) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not lines and line.startswith("data: "):
                    server.handle_exit(signal.SIGTERM, None)  # as the signal handler does
                    assert app.state.server.draining
                lines.append(line)
        events = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
        error = events[-1]["error"]
        assert error["code"] == "shutting_down" and "drain timeout" in error["message"]
        assert "data: [DONE]" not in lines and 1 <= len(events) - 1 < 90
        assert app.state.server.engine.in_flight == 0 and not app.state.server.engine.has_work
        server.thread.join(30)  # the server stops by itself once the aborted request has ended
        assert not server.thread.is_alive() and not server.force_exit


def test_SD_04_second_signal_during_drain_exits_at_once(checkpoint: Any) -> None:
    """A real `salesai serve` process: a request that holds the drain open (its body never comes),
    SIGTERM (the server waits for it: drain timeout 120 s), then a second SIGTERM: exit at once.
    (SIGINT takes the same path: `make_server`'s handle_exit does not tell them apart.)"""
    import os
    import queue
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SALESAI_API_KEY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "salesai", "serve", str(checkpoint), "--port", str(port),
                             "--threads", "1", "--shutdown-timeout", "120", "--read-timeout", "120",
                             "--log-level", "info"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr or []], daemon=True)
    reader.start()

    def wait_for(fragment: str) -> None:
        end = time.monotonic() + 180
        while True:
            assert proc.poll() is None, "server exited early"
            try:
                if fragment in lines.get(timeout=max(0.1, end - time.monotonic())):
                    return
            except queue.Empty:
                pass
            assert time.monotonic() < end, f"no {fragment!r} in the log"

    try:
        wait_for("ready:")
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 500\r\n\r\n{\"model\":")
        proc.send_signal(signal.SIGTERM)
        wait_for("Waiting for")  # draining: uvicorn waits for the held request
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # far sooner than the 120 s drain
        held.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_CAN_04_disconnect_during_a_long_prefill_frees_the_slot(backends: Any) -> None:
    """The client goes away while its prompt is being prefilled: the result is discarded at the next
    step (no token reaches anyone), the row and the admission place are freed, the disconnect counted."""
    with serving(backends, max_batch_size=1, max_queue=0) as (url, _, app, paced):
        state = app.state.server
        port = int(url.rsplit(":", 1)[1])
        paced.hold.clear()
        paced.prefilling.clear()
        body = json.dumps(_completion(max_tokens=60, stream=True)).encode()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        assert paced.prefilling.wait(60)  # the engine thread is inside this request's prefill
        sock.close()
        until(lambda: state.metrics.value("salesai_client_disconnects_total") == 1)
        generated = state.metrics.value("salesai_generation_tokens_total")
        paced.hold.set()  # the prefill finishes; its result must not go on
        until(lambda: state.engine.in_flight == 0 and not state.engine.has_work)
        assert state.engine.backend.rows == 0
        assert state.metrics.value("salesai_generation_tokens_total") <= generated + 1  # at most the first
        import httpx

        with httpx.Client(base_url=url, headers=_auth(), timeout=60) as client:  # the slot is free again
            r = client.post("/v1/completions", json=_completion())
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
