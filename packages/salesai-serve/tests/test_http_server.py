"""HTTP behaviour beyond validation: auth (AUTH-*), streaming (STR-*), limits (LIM-*, BP-*), health and
lifecycle (HL-*, PAR-02), security defaults (SEC-*)."""

from __future__ import annotations

import inspect
import json
import logging
import threading
from typing import Any

import pytest

KEY = "sk-test-0123456789abcdef"

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
AUTH = {"Authorization": f"Bearer {KEY}"}


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, **extra}


def events(response: Any) -> list[Any]:
    """The SSE events of a response: parsed JSON, or the string "[DONE]"."""
    assert response.headers["content-type"].startswith("text/event-stream")
    out: list[Any] = []
    for block in response.text.split("\n\n"):
        if not block or block.startswith(":"):
            continue
        assert block.startswith("data: "), block
        data = block[len("data: "):]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


# --------------------------------------------------------------------------------------------- auth
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {KEY.upper()}", f"Bearer {KEY} ",
                                    f"Basic {KEY}", KEY, "Bearer"])
def test_AUTH_02_03_missing_or_wrong_key_is_401_without_work(make_client: Any, header: str | None) -> None:
    client = make_client(api_keys=[KEY])
    before = client.app.state.server.metrics.value("salesai_prompt_tokens_total")  # the warm-up's
    headers = {} if header is None else {"Authorization": header}
    r = client.post(CHAT, json=chat(), headers=headers)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "authentication_error"
    assert client.app.state.server.metrics.value("salesai_prompt_tokens_total") == before
    assert client.post(CHAT, json=chat(), headers=AUTH).status_code == 200


def test_AUTH_04_every_route_is_guarded_except_the_allowlist(make_client: Any) -> None:
    client = make_client(api_keys=[KEY], enable_docs=True)
    public = {"/health", "/health/live", "/ready", "/health/ready", "/metrics"}
    seen = set()
    for route in client.app.routes:
        path = route.path.replace("{model_id:path}", "tiny")
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method in ("HEAD", "OPTIONS"):
                continue
            seen.add(path)
            r = client.request(method, path)
            assert (r.status_code != 401) == (path in public), (method, path, r.status_code)
    assert {"/v1/models", CHAT, COMPLETIONS, "/docs", "/openapi.json"} <= seen
    for path in ("/invocations", "/tokenize", "/admin/reload", "/v1/nope"):
        assert client.post(path).status_code == 401


def test_SEC_04_no_admin_routes(make_client: Any) -> None:
    """There are no admin routes (reload, shutdown, profile, ...): with a valid key they are 404."""
    client = make_client(api_keys=[KEY])
    auth = {"Authorization": f"Bearer {KEY}"}
    for path in ("/admin/reload", "/reload", "/shutdown", "/admin/shutdown", "/profile", "/start_profile",
                 "/debug", "/v1/load_lora_adapter"):
        for method in ("GET", "POST"):
            assert client.request(method, path, headers=auth).status_code == 404, (method, path)
    paths = {getattr(r, "path", "") for r in client.app.routes}
    assert not any(word in p for p in paths for word in ("admin", "shutdown", "reload", "profile"))


def test_AUTH_05_keys_compared_as_digests_in_constant_time_all_keys_checked() -> None:
    from salesai_serve.middleware import KeyChecker

    checker = KeyChecker(["first-key", "second-key"])
    assert checker.match("second-key") == 1 and checker.match("first-key") == 0
    assert checker.match("second-ke") is None and checker.match("") is None
    source = inspect.getsource(KeyChecker.match)
    loop = source.split("for ")[1].split("\n        return")[0]
    assert "hmac.compare_digest" in source and "return" not in loop and "break" not in loop
    assert "first-key" not in repr(vars(checker))  # only digests are kept


def test_AUTH_06_key_never_echoed_or_logged(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(api_keys=[KEY])
    texts = [client.post(CHAT, json=chat(), headers={"Authorization": f"Bearer {KEY}x"}).text,
             client.get("/metrics").text, client.get("/v1/models", headers=AUTH).text,
             client.post(CHAT, json=chat(model="nope"), headers=AUTH).text]
    assert not any(KEY in t for t in texts) and KEY not in caplog.text
    assert KEY not in repr(client.app.state.server.settings)


def test_AUTH_07_SEC_01_cors_preflight_and_origins(make_client: Any) -> None:
    preflight = {"Origin": "https://ok.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    default = make_client(api_keys=[KEY])
    r = default.options(CHAT, headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    client = make_client(api_keys=[KEY], cors_origins=["https://ok.example"])
    r = client.options(CHAT, headers=preflight)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ok.example"
    r = client.options(CHAT, headers={**preflight, "Origin": "https://evil.example"})
    assert r.headers.get("access-control-allow-origin") != "https://evil.example"
    before = client.app.state.server.metrics.value("salesai_prompt_tokens_total")
    assert client.post(CHAT, json=chat(), headers={"Origin": "https://ok.example"}).status_code == 401
    assert client.app.state.server.metrics.value("salesai_prompt_tokens_total") == before


def test_AUTH_01_SEC_02_binding_beyond_localhost_needs_a_key() -> None:
    from salesai.errors import SalesAIError
    from salesai_serve.settings import ServeSettings

    assert ServeSettings().host == "127.0.0.1"
    with pytest.raises(SalesAIError, match=r"--host 0\.0\.0\.0: serving beyond this machine needs an API"):
        ServeSettings(host="0.0.0.0").check()
    ServeSettings(host="0.0.0.0", api_keys=[KEY]).check()
    ServeSettings(host="0.0.0.0", allow_unauthenticated=True).check()


def test_BP_04_rate_limit_per_key(make_client: Any) -> None:
    client = make_client(api_keys=[KEY, "other-key"], rate_limit_rpm=2)
    codes = [client.get("/v1/models", headers=AUTH).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = client.get("/v1/models", headers=AUTH)
    assert r.json()["error"]["type"] == "rate_limit_error" and int(r.headers["Retry-After"]) >= 1
    assert client.get("/v1/models", headers={"Authorization": "Bearer other-key"}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'salesai_requests_rejected_total{reason="rate_limit"} 2.0' in metrics


# ---------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_STR_01_02_06_chat_stream_shape_usage_and_equality(make_client: Any, backend: str) -> None:
    client = make_client(backend)
    body = chat(temperature=0, max_tokens=20)
    full = client.post(CHAT, json=body).json()
    r = client.post(CHAT, json={**body, "stream": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200
    evs = events(r)
    assert evs[-1] == "[DONE]"
    chunks = evs[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    usage_chunks = [c for c in chunks if "usage" in c]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1]["choices"] == []
    assert usage_chunks[0]["usage"] == full["usage"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks[:-1]]
    assert finishes[-1] == full["choices"][0]["finish_reason"] and not any(finishes[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == full["choices"][0]["message"]["content"]
    plain = events(client.post(CHAT, json={**body, "stream": True, "stream_options": {}}))
    assert not any("usage" in c for c in plain[:-1])


def test_STR_03_validation_error_on_a_stream_is_plain_json(make_client: Any) -> None:
    r = make_client().post(CHAT, json=chat(stream=True, max_tokens=0))
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"


def test_STR_07_stop_string_never_partially_streamed(make_client: Any) -> None:
    client = make_client()
    free = client.post(COMPLETIONS, json={"model": "tiny", "prompt": "hello", "max_tokens": 20,
                                          "temperature": 0, "ignore_eos": True}).json()["choices"][0]["text"]
    stop = free[4:7]
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 20, "temperature": 0, "ignore_eos": True,
            "stop": [stop]}
    whole = client.post(COMPLETIONS, json=body).json()["choices"][0]
    assert whole["finish_reason"] == "stop" and whole["text"] == free[: free.find(stop)]
    chunks = events(client.post(COMPLETIONS, json={**body, "stream": True}))[:-1]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_STR_08_two_choices_stream_with_their_own_index_and_finish(make_client: Any) -> None:
    chunks = events(make_client().post(CHAT, json=chat(n=2, stream=True, temperature=1.0, seed=3)))[:-1]
    for i in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == i]
        assert mine[0]["delta"]["role"] == "assistant"
        assert [c["finish_reason"] for c in mine if c["finish_reason"]] in (["stop"], ["length"])


class FailingBackend:
    """Wraps a real backend; decode raises once `fail_after` decode calls have run (all requests)."""

    def __init__(self, inner: Any, fail_after: int) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decode(self, tokens: Any) -> Any:
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("injected fault /secret/path.py")
        return self.inner.decode(tokens)


def failing_client(backends: Any, fail_after: int) -> Any:
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.settings import ServeSettings

    backends["pytorch"].reset()
    app = create_app(ServeSettings(model_id="tiny"), lambda: FailingBackend(backends["pytorch"], fail_after),
                     load_in_background=False)
    return TestClient(app, raise_server_exceptions=False)


def test_STR_04_HL_03_SEC_03_backend_fault_mid_stream(backends: Any) -> None:
    with failing_client(backends, fail_after=5) as client:
        evs = events(client.post(CHAT, json=chat(stream=True, max_tokens=30, ignore_eos=True)))
        assert "error" in evs[-1] and evs[-1]["error"]["type"] == "server_error"
        # 6 tokens came before the fault (prefill + 5 decodes), but consecutive byte tokens stream as one
        # chunk, and which tokens this random model picks at a near-tie depends on summation order
        # (allocation alignment, i.e. on the tests run before): count the role chunk + 2 text chunks.
        assert "[DONE]" not in evs and sum(1 for e in evs if "choices" in e) >= 3
        assert "secret" not in json.dumps(evs) and "Traceback" not in json.dumps(evs)
        for _ in range(2):  # three failed forwards in a row: the backend counts as failing
            r = client.post(CHAT, json=chat(max_tokens=30, ignore_eos=True))
            assert r.status_code == 500 and "secret" not in r.text
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "backend_error"
        assert client.post(CHAT, json=chat()).status_code == 503
    backends["pytorch"].reset()


def test_FLT_02_out_of_memory_is_503_retry_after_and_the_server_recovers(backends: Any) -> None:
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.settings import ServeSettings

    class OutOfMemoryOnce(FailingBackend):
        def decode(self, tokens: Any) -> Any:
            self.calls += 1
            if self.calls == self.fail_after:
                raise MemoryError
            return self.inner.decode(tokens)

    backends["pytorch"].reset()
    app = create_app(ServeSettings(model_id="tiny"), lambda: OutOfMemoryOnce(backends["pytorch"], 3),
                     load_in_background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post(CHAT, json=chat(max_tokens=10, ignore_eos=True))
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        assert r.json()["error"]["code"] == "out_of_memory"
        assert client.get("/ready").status_code == 200  # transient: no readiness flap, no restart
        r = client.post(CHAT, json=chat(max_tokens=10, ignore_eos=True))
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 10
        assert 'salesai_requests_rejected_total{reason="out_of_memory"} 1.0' in client.get("/metrics").text
    backends["pytorch"].reset()


# ------------------------------------------------------------------------------------------- limits
def test_LIM_01_body_too_large_by_length_and_chunked(make_client: Any) -> None:
    client = make_client(max_body_bytes=2000)
    big = json.dumps(chat(messages=[{"role": "user", "content": "x" * 5000}])).encode()
    r = client.post(CHAT, content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks() -> Any:
        for i in range(0, len(big), 500):
            yield big[i:i + 500]

    r = client.post(CHAT, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_BP_01_queue_full_is_503_with_retry_after(make_client: Any) -> None:
    client = make_client(max_batch_size=1, max_queue=0)
    engine = client.app.state.server.engine
    engine.reserve(1)  # the only place is taken
    r = client.post(CHAT, json=chat())
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "queue_full"
    engine.release(1)
    assert client.post(CHAT, json=chat()).status_code == 200
    assert 'salesai_requests_rejected_total{reason="queue_full"} 1.0' in client.get("/metrics").text


# ---------------------------------------------------------------------------------- health, lifecycle
def test_HL_01_02_health_while_loading_then_ready(backends: Any) -> None:
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.settings import ServeSettings

    release = threading.Event()

    def slow_loader() -> Any:
        release.wait(30)
        backends["pytorch"].reset()
        return backends["pytorch"]

    app = create_app(ServeSettings(model_id="tiny"), slow_loader)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable_error"
        assert client.post(CHAT, json=chat()).status_code == 503
        release.set()
        for _ in range(600):
            if client.get("/ready").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert client.get("/ready").json() == {"status": "ready"}
        card = client.get("/v1/models").json()["data"][0]
        assert card["id"] == "tiny" and card["context_length"] == 96 and card["backend"] == "pytorch"
        assert card["modalities"] == ["text"]


def test_PAR_02_missing_onnx_export_fails_fast(tmp_path: Any, checkpoint: Any) -> None:
    from salesai.errors import SalesAIError
    from salesai_serve.app import create_app
    from salesai_serve.backends import load_backend
    from salesai_serve.settings import ServeSettings

    with pytest.raises(SalesAIError, match="not an ONNX export"):
        load_backend("onnxruntime", checkpoint)
    with pytest.raises(SalesAIError, match="not found"):
        load_backend("pytorch", tmp_path / "missing")
    app = create_app(ServeSettings(model_id="tiny"), lambda: load_backend("onnxruntime", checkpoint),
                     load_in_background=False)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["error"]["message"] == "model failed to load"


def test_SEC_05_docs_off_by_default_and_metrics_can_be_disabled(make_client: Any) -> None:
    client = make_client()
    assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404
    assert client.get("/metrics").status_code == 200
    assert make_client(enable_docs=True).get("/openapi.json").status_code == 200
    assert make_client(enable_metrics=False).get("/metrics").status_code == 404


def test_HL_04_stuck_forward_pass_makes_ready_503(make_client: Any) -> None:
    import time

    client = make_client(progress_timeout_s=5.0)
    engine = client.app.state.server.engine
    assert client.get("/ready").status_code == 200
    engine.busy_since = time.monotonic() - 60  # as if one forward pass had been running for a minute
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["error"]["code"] == "backend_stalled"
    assert client.get("/health").status_code == 200  # liveness stays: restarting is the operator's call
    engine.busy_since = None
    assert client.get("/ready").status_code == 200


class SlowPrefill:
    """The real backend with a pause in every prefill (a long prompt's prefill, simulated)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def add(self, ids: Any) -> Any:
        threading.Event().wait(0.5)
        return self.inner.add(ids)


def test_STR_05_pings_while_the_prefill_runs(backends: Any) -> None:
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.settings import ServeSettings

    backends["pytorch"].reset()
    app = create_app(ServeSettings(model_id="tiny", ping_interval_s=0.05),
                     lambda: SlowPrefill(backends["pytorch"]), load_in_background=False)
    with TestClient(app) as client:
        r = client.post(CHAT, json=chat(stream=True, max_tokens=3))
        assert ": ping\n\n" in r.text and r.text.endswith("data: [DONE]\n\n")
    backends["pytorch"].reset()
