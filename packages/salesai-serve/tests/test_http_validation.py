"""HTTP request validation (VAL-*), OpenAI response shapes (OAI-02) and backend parity (PAR-01).

Every bad input is a 400 (404 for an unknown model) with an OpenAI error body naming the field,
on both backends, and never starts any work.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, **extra}


def completion(**extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "prompt": "def add", "max_tokens": 4, **extra}


def error_of(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text and "/site-packages/" not in response.text
    assert len(response.content) < 2000
    return dict(body["error"])


@pytest.fixture(params=["pytorch", "onnxruntime"])
def client(request: pytest.FixtureRequest, make_client: Any) -> Any:
    return make_client(request.param)


def prompt_tokens_counted(client: Any) -> float:
    return float(client.app.state.server.metrics.value("salesai_prompt_tokens_total"))


def test_VAL_01_02_truncated_json_and_wrong_content_type(client: Any) -> None:
    before = prompt_tokens_counted(client)
    for path in (CHAT, COMPLETIONS):
        err = error_of(client.post(path, content=b'{"model":', headers={"content-type": "application/json"}))
        assert err["type"] == "invalid_request_error" and "not valid JSON" in err["message"]
        err = error_of(client.post(path, content=json.dumps(chat()), headers={"content-type": "text/plain"}))
        assert "Content-Type" in err["message"]
        nested = b"[" * 100_000  # absurd nesting: RecursionError inside json, still a 400
        error_of(client.post(path, content=nested, headers={"content-type": "application/json"}))
    assert prompt_tokens_counted(client) == before  # no work


@pytest.mark.parametrize(("path", "body", "param"), [
    (CHAT, {"model": "tiny"}, "messages"),
    (CHAT, chat(messages=[]), "messages"),
    (CHAT, chat(messages="hello"), "messages"),
    (COMPLETIONS, {"model": "tiny"}, "prompt"),
    (CHAT, chat(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
    (CHAT, chat(messages=[{"role": "user", "content": [{"type": "video"}]}]), "messages[0].content"),
    (CHAT, chat(messages=[{"role": "user", "content": 42}]), "messages[0].content"),
    (COMPLETIONS, completion(prompt=""), "prompt"),
])
def test_VAL_03_04_12_missing_or_malformed_fields_name_the_field(client: Any, path: str, body: Any,
                                                                  param: str) -> None:
    assert error_of(client.post(path, json=body))["param"] == param


def test_VAL_05_unknown_model_is_404(client: Any) -> None:
    err = error_of(client.post(CHAT, json=chat(model="nope")), 404)
    assert err["code"] == "model_not_found" and err["param"] == "model"


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, 10**12])
def test_VAL_06_bad_max_tokens(client: Any, value: Any) -> None:
    assert error_of(client.post(COMPLETIONS, json=completion(max_tokens=value)))["param"] == "max_tokens"


def test_VAL_07_context_overflow_names_both_numbers(client: Any, tokenizer: Any) -> None:
    n = len(tokenizer.encode("def add", add_bos=True))
    err = error_of(client.post(COMPLETIONS, json=completion(max_tokens=95)))
    assert err["code"] == "context_length_exceeded"
    assert f"prompt has {n} tokens" in err["message"] and "max_tokens is 95" in err["message"]
    assert "maximum context length is 96" in err["message"]


def test_VAL_08_max_completion_tokens_wins_and_is_accepted_alone(client: Any) -> None:
    r = client.post(COMPLETIONS, json=completion(max_tokens=2, max_completion_tokens=5, ignore_eos=True,
                                                 temperature=0))
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5
    body = completion(max_completion_tokens=3, ignore_eos=True, temperature=0)
    del body["max_tokens"]
    assert client.post(COMPLETIONS, json=body).json()["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(("field", "value"), [
    ("temperature", -1), ("temperature", 3), ("top_p", 0), ("top_p", 1.5), ("top_k", -2), ("n", 0), ("n", 5),
    ("logprobs", 6), ("stop", ["s"] * 100), ("stop", [""]), ("repetition_penalty", 0), ("seed", "x"),
    ("frequency_penalty", 1.0), ("echo", True), ("stream", "yes"),
])
def test_VAL_09_out_of_range_sampling_options(client: Any, field: str, value: Any) -> None:
    assert error_of(client.post(COMPLETIONS, json=completion(**{field: value})))["param"] == field


@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_LIM_03_n_times_max_tokens_over_the_request_budget(make_client: Any, backend: str) -> None:
    client = make_client(backend, max_request_tokens=40)
    counted = prompt_tokens_counted(client)
    err = error_of(client.post(COMPLETIONS, json=completion(n=3, max_tokens=20)))
    assert err["code"] == "request_tokens_exceeded" and err["param"] == "max_tokens"
    assert "n (3) x max_tokens (20) = 60 completion tokens; at most 40" in err["message"]
    assert prompt_tokens_counted(client) == counted  # refused before any work
    r = client.post(COMPLETIONS, json=completion(n=2, max_tokens=20, ignore_eos=True, temperature=0))
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 40  # exactly the budget
    body = chat(n=4, ignore_eos=True, temperature=0)  # no max_tokens: the default shrinks to budget // n
    del body["max_tokens"]
    r = client.post(CHAT, json=body)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 40


def test_VAL_10_stream_options_need_stream(client: Any) -> None:
    err = error_of(client.post(CHAT, json=chat(stream_options={"include_usage": True})))
    assert err["param"] == "stream_options"


def test_VAL_11_prompt_over_max_prompt_tokens(make_client: Any) -> None:
    client = make_client(max_prompt_tokens=5)
    err = error_of(client.post(COMPLETIONS, json=completion(prompt="hello world, the quick brown fox")))
    assert err["code"] == "prompt_too_long" and "at most 5" in err["message"]


def test_VAL_12_whitespace_prompt_is_a_prompt(client: Any) -> None:
    """Documented: whitespace is meaningful in code, so "   " is accepted; "" is a 400 (above)."""
    r = client.post(COMPLETIONS, json=completion(prompt="   "))
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] >= 2


def test_VAL_13_invalid_unicode_and_nul(client: Any) -> None:
    headers = {"content-type": "application/json"}
    bad_bytes = b'{"model": "tiny", "prompt": "\xff\xfe", "max_tokens": 2}'
    err = error_of(client.post(COMPLETIONS, content=bad_bytes, headers=headers))
    assert err["type"] == "invalid_request_error"
    surrogate = b'{"model": "tiny", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    assert "surrogate" in error_of(client.post(CHAT, content=surrogate, headers=headers))["message"]
    assert "NUL" in error_of(client.post(COMPLETIONS, json=completion(prompt="a\x00b")))["message"]


def test_VAL_14_huge_invalid_arrays_give_small_errors(client: Any) -> None:
    error_of(client.post(CHAT, json=chat(messages=[{"role": "nobody"}] * 10_000)))
    error_of(client.post(COMPLETIONS, json=completion(prompt=[{"x": 1}] * 10_000)))


def test_VAL_15_unknown_fields_are_ignored(client: Any) -> None:
    r = client.post(CHAT, json=chat(some_future_option={"a": 1}, user="u-1", metadata={"k": "v"}))
    assert r.status_code == 200


def test_MM_09_media_parts_are_refused_for_a_text_model(client: Any) -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    err = error_of(client.post(CHAT, json=chat(messages=[{"role": "user", "content": [part]}])))
    assert err["code"] == "modality_not_supported"
    models = client.get("/v1/models").json()["data"][0]
    assert models["modalities"] == ["text"]


def test_OAI_02_response_fields(client: Any) -> None:
    r = client.post(CHAT, json=chat(temperature=0)).json()
    assert r["id"].startswith("chatcmpl-") and r["object"] == "chat.completion" and r["model"] == "tiny"
    assert isinstance(r["created"], int)
    assert r["choices"][0]["message"]["role"] == "assistant"
    assert r["choices"][0]["finish_reason"] in ("stop", "length")
    u = r["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] and u["completion_tokens"] <= 4
    c = client.post(COMPLETIONS, json=completion(n=2, temperature=0.8, seed=1)).json()
    assert c["id"].startswith("cmpl-") and c["object"] == "text_completion"
    assert [ch["index"] for ch in c["choices"]] == [0, 1]


def test_PAR_01_same_greedy_answer_and_errors_on_both_backends(make_client: Any) -> None:
    answers = []
    for name in ("pytorch", "onnxruntime"):
        client = make_client(name)
        ok = client.post(COMPLETIONS, json=completion(max_tokens=24, temperature=0, ignore_eos=True)).json()
        bad = client.post(COMPLETIONS, json=completion(max_tokens=0))
        answers.append((ok["choices"][0]["text"], ok["usage"], bad.status_code, bad.json()["error"]["param"]))
    assert answers[0] == answers[1]
