"""logprobs / top_logprobs (chat) and logprobs: N (completions): values equal the model's log-softmax,
the OpenAI shapes, streamed == non-streamed, caps (VAL-09), both backends."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def _reference(model: Any, prompt: list[int], tokens: list[int]) -> list[list[float]]:
    """log-softmax rows (V,) of the model at each generated position (one full forward, no cache)."""
    import torch

    ids = torch.tensor([prompt + tokens[:-1]])
    with torch.inference_mode():
        logits = model(ids).logits[0, len(prompt) - 1:]  # (len(tokens), V)
    return torch.log_softmax(logits.float(), -1).tolist()


@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_completion_logprobs_equal_the_models_log_softmax(make_client: Any, model: Any, tokenizer: Any,
                                                          backend: str) -> None:
    client = make_client(backend)
    prompt = tokenizer.encode("def add(x, y):", add_bos=True)
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 6, "temperature": 0, "ignore_eos": True,
            "logprobs": 3}
    r = client.post(COMPLETIONS, json=body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 6
    ids = model.generate([prompt], max_new_tokens=6, temperature=0.0, stop_token_ids=[])[0]
    reference = _reference(model, prompt, ids)
    for k, (token, value) in enumerate(zip(ids, lp["token_logprobs"], strict=True)):
        assert math.isclose(value, reference[k][token], abs_tol=1e-4)
        top = lp["top_logprobs"][k]
        assert len(top) == 3 and max(top.values()) == pytest.approx(value, abs=1e-6)  # greedy = the best
        best3 = sorted(reference[k], reverse=True)[:3]
        assert sorted(top.values(), reverse=True) == pytest.approx(best3, abs=1e-4)
    assert lp["text_offset"][0] == 0 and lp["text_offset"] == sorted(lp["text_offset"])


def test_chat_logprobs_shape_and_stream_equals_non_stream(make_client: Any, tokenizer: Any) -> None:
    client = make_client()
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8,
            "temperature": 0, "ignore_eos": True, "logprobs": True, "top_logprobs": 2}
    r = client.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert len(content) == 8
    for item in content:
        assert set(item) == {"token", "logprob", "bytes", "top_logprobs"}
        assert item["logprob"] <= 0 and len(item["top_logprobs"]) == 2
        assert item["top_logprobs"][0]["logprob"] >= item["top_logprobs"][1]["logprob"]
        assert isinstance(item["bytes"], list)
    streamed: list[Any] = []
    with client.stream("POST", CHAT, json={**body, "stream": True}) as s:
        for line in s.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                for c in chunk["choices"]:
                    streamed += (c.get("logprobs") or {}).get("content") or []
    assert streamed == content
    plain = client.post(CHAT, json={**body, "logprobs": False, "top_logprobs": None})
    assert plain.json()["choices"][0]["logprobs"] is None


@pytest.mark.parametrize(("path", "extra", "param"), [
    (CHAT, {"logprobs": True, "top_logprobs": 6}, "top_logprobs"),       # over the cap (5)
    (CHAT, {"top_logprobs": 2}, "top_logprobs"),                         # without logprobs: true
    (CHAT, {"logprobs": 1}, "logprobs"),                                  # chat's logprobs is a bool
    (COMPLETIONS, {"logprobs": 6}, "logprobs"),
    (COMPLETIONS, {"logprobs": True}, "logprobs"),
    (COMPLETIONS, {"top_logprobs": 2}, "top_logprobs"),
])
def test_VAL_09_logprobs_caps(make_client: Any, path: str, extra: dict[str, Any], param: str) -> None:
    client = make_client()
    body = {"model": "tiny", "max_tokens": 2, **extra}
    body.update({"messages": [{"role": "user", "content": "hi"}]} if path == CHAT else {"prompt": "hi"})
    r = client.post(path, json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_openai_client_reads_logprobs(make_client: Any) -> None:
    from openai.types.chat import ChatCompletion

    client = make_client()
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
            "temperature": 0, "ignore_eos": True, "logprobs": True, "top_logprobs": 1}
    parsed = ChatCompletion.model_validate(client.post(CHAT, json=body).json())
    assert parsed.choices[0].logprobs is not None and parsed.choices[0].logprobs.content is not None
    assert len(parsed.choices[0].logprobs.content) == 3
