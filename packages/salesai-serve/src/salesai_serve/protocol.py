"""Validation of OpenAI request bodies into what the engine needs; every failure is a 400 naming the field.

Accepted (OpenAI names): model, prompt (completions: a string, a list of token ids, or a list
holding one string), messages (chat: role system/developer/user/assistant, content a string or
a list of {"type": "text"} parts, plus image_url / input_audio parts for a model with those
encoders: see `media.py`), max_tokens / max_completion_tokens (the latter wins when both are
set; n x max_tokens at most `max_request_tokens`), temperature [0, 2], top_p (0, 1],
n [1, max_n], stop (a string or up to max_stop strings), seed, stream, stream_options
{include_usage} (only with stream: true), and the extras top_k (-1 or 0 = off),
repetition_penalty (0, 10], ignore_eos; logprobs (chat: logprobs true + top_logprobs
[0, max_logprobs]; completions: logprobs [0, max_logprobs]; see `logprobs.py`). Unknown
fields are ignored (newer OpenAI clients send more); fields that would change the output in
a way this server cannot honour (echo, suffix, logit_bias, best_of > 1, tools, non-zero
frequency/presence penalties, non-text response_format) are refused rather than ignored.
Defaults: max_tokens 16 for completions (as OpenAI), min(default_max_tokens, room left in the
context, max_request_tokens // n) for chat; temperature 1.0; an empty prompt is a 400.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from salesai_serve.backends.base import SamplingParams
from salesai_serve.errors import APIError, invalid
from salesai_serve.settings import ServeSettings
from salesai_serve.text import END_SYMBOL, chat_prompt_ids

ROLE_ALIASES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MEDIA_PARTS = ("image_url", "input_audio", "file")
UNSUPPORTED = ("echo", "suffix", "logit_bias", "tools", "functions", "tool_choice", "function_call")


@dataclass
class ParsedRequest:
    """A validated request: prompt ids, sampling, and response shape."""

    kind: str  # "completion" | "chat"
    prompt_ids: list[int]
    params: SamplingParams
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    stop_token_ids: list[int] = field(default_factory=list)
    media: dict[str, list[Any]] | None = None  # modality -> preprocessed items, in reading order
    media_positions: int = 0  # prompt positions added when the placeholders expand


def _number(body: dict[str, Any], name: str, lo: float, hi: float, default: float | None,
            lo_open: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise invalid(f"{name}: expected a number, got {type(value).__name__}", name)
    if value < lo or value > hi or (lo_open and value == lo):
        left = "(" if lo_open else "["
        raise invalid(f"{name}={value}: expected a number in {left}{lo:g}, {hi:g}]", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, lo: int, hi: int, default: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name}: expected an integer, got {type(value).__name__}", name)
    if not lo <= value <= hi:
        raise invalid(f"{name}={value}: expected an integer in [{lo}, {hi}]", name)
    return value


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"{name}: expected true or false, got {type(value).__name__}", name)
    return value


def check_text(text: str, param: str) -> str:
    """Refuse text that is not valid Unicode (lone surrogates) or holds NUL characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{param}: not valid Unicode (lone surrogate)", param) from None
    if "\x00" in text:
        raise invalid(f"{param}: NUL characters are not allowed", param)
    return text


def _model(body: dict[str, Any], settings: ServeSettings) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: expected the served model's name (see /v1/models)", "model")
    if model != settings.model_id:
        raise APIError(404, f"The model '{model[:100]}' does not exist; this server serves "
                            f"'{settings.model_id}'", param="model", code="model_not_found")


def _stop(body: dict[str, Any], settings: ServeSettings) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise invalid("stop: expected a string or a list of strings", "stop")
    if len(items) > settings.max_stop:
        raise invalid(f"stop: {len(items)} strings; at most {settings.max_stop} are allowed", "stop")
    for s in items:
        check_text(s, "stop")
        if not s or len(s) > settings.max_stop_chars:
            raise invalid(f"stop: each string must have 1..{settings.max_stop_chars} characters", "stop")
    return list(items)


def _logprobs(kind: str, body: dict[str, Any], settings: ServeSettings) -> int | None:
    """How many top alternatives to report per token (None = no logprobs): chat's logprobs (bool) +
    top_logprobs, or completions' logprobs (an integer); at most `max_logprobs`."""
    cap = settings.max_logprobs
    if kind == "chat":
        wanted = _bool(body, "logprobs")
        top = _integer(body, "top_logprobs", 0, cap, None)
        if top is not None and not wanted:
            raise invalid("top_logprobs: only allowed with logprobs: true", "top_logprobs")
        return (top or 0) if wanted else None
    if body.get("top_logprobs") not in (None, 0):
        raise invalid("top_logprobs: a chat parameter; completions take logprobs: <0..N>", "top_logprobs")
    return _integer(body, "logprobs", 0, cap, None)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name in UNSUPPORTED:
        if body.get(name) not in (None, False, "", {}, []):
            raise invalid(f"{name}: not supported by this server", name)
    if body.get("best_of") not in (None, 1):
        raise invalid("best_of: only 1 is supported", "best_of")
    for name in ("frequency_penalty", "presence_penalty"):
        if _number(body, name, -2.0, 2.0, 0.0) != 0.0:
            raise invalid(f"{name}: not supported (use repetition_penalty)", name)
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise invalid("response_format: only {\"type\": \"text\"} is supported", "response_format")


Content = str | list[str | int]  # text, or text pieces and placeholder token ids


def _messages(body: dict[str, Any], settings: ServeSettings, backend: Any,
              media: dict[str, list[Any]]) -> tuple[list[tuple[str, Content]], int]:
    """(role, content) pairs; media parts go to `media` and become placeholder ids in the content.
    Returns the pairs and the prompt positions the media adds beyond their placeholders."""
    from salesai_serve.media import read_part

    extra = 0
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: expected a non-empty list of {role, content} objects", "messages")
    if len(messages) > settings.max_messages:
        raise invalid(f"messages: {len(messages)} messages; at most {settings.max_messages}", "messages")
    out: list[tuple[str, Content]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise invalid(f"{where}: expected an object with role and content", where)
        role = m.get("role")
        if role not in ROLE_ALIASES:
            raise invalid(f"{where}.role: expected one of system, developer, user, assistant",
                          f"{where}.role")
        content = m.get("content")
        text: Content
        if isinstance(content, str):
            text = check_text(content, f"{where}.content")
        elif isinstance(content, list):
            pieces: list[str | int] = []
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    pieces.append(check_text(part["text"], f"{where}.content"))
                elif kind in MEDIA_PARTS:
                    if sum(len(v) for v in media.values()) >= settings.max_media_items:
                        raise invalid(f"{where}.content[{j}]: more than {settings.max_media_items} media "
                                      "items in one request", f"{where}.content", code="too_many_media_items")
                    modality, item, positions = read_part(part, f"{where}.content[{j}]", backend,
                                                          settings)
                    media.setdefault(modality, []).append(item)
                    pieces.append(int(backend.tokenizer.token_to_id(f"<{modality}>")))
                    extra += positions - 1
                else:
                    raise invalid(f"{where}.content[{j}]: expected a text part "
                                  '({"type": "text", "text": str})',
                                  f"{where}.content")
            text = "".join(pieces) if all(isinstance(p, str) for p in pieces) else pieces  # type: ignore[arg-type]
        elif content is None and role == "assistant":
            text = ""
        else:
            raise invalid(f"{where}.content: expected a string or a list of content parts",
                          f"{where}.content")
        out.append((ROLE_ALIASES[role], text))
    return out, extra


def _prompt_ids(body: dict[str, Any], backend: Any) -> list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        if not prompt:
            raise invalid("prompt: expected non-empty text", "prompt")
        return list(backend.tokenizer.encode(check_text(prompt, "prompt"), add_bos=backend.add_bos))
    if isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):
        if not all(0 <= t < backend.vocab_size for t in prompt):
            raise invalid(f"prompt: token ids must be in [0, {backend.vocab_size})", "prompt")
        return list(prompt)
    if isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, str) for p in prompt):
        raise invalid("prompt: one prompt per request (send several requests)", "prompt")
    raise invalid("prompt: expected a string or a list of token ids", "prompt")


def parse(kind: str, body: Any, settings: ServeSettings, backend: Any) -> ParsedRequest:
    """Validate a /v1/completions (kind "completion") or /v1/chat/completions ("chat") body."""
    if not isinstance(body, dict):
        raise invalid("request body: expected a JSON object")
    _model(body, settings)
    _refuse_unsupported(body)
    context = backend.max_seq_len
    media: dict[str, list[Any]] = {}
    extra = 0  # positions the media placeholders add when they expand
    if kind == "chat":
        messages, extra = _messages(body, settings, backend, media)
        ids = chat_prompt_ids(backend.tokenizer, messages, add_bos=backend.add_bos)
        stop_ids = [backend.tokenizer.token_to_id(END_SYMBOL)]
    else:
        ids, stop_ids = _prompt_ids(body, backend), []
    limit = settings.max_prompt_tokens or context - 1
    if len(ids) + extra > limit:
        raise invalid(f"prompt: {len(ids) + extra} tokens; at most {limit} are allowed",
                      "messages" if kind == "chat" else "prompt", code="prompt_too_long")
    cap = settings.max_tokens_cap or context
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    size = len(ids) + extra
    n = _integer(body, "n", 1, settings.max_n, 1)
    assert n is not None
    budget = settings.max_request_tokens
    default = 16 if kind == "completion" else max(1, min(settings.default_max_tokens, context - size))
    max_tokens = _integer(body, name, 1, cap, max(1, min(default, budget // n)))
    assert max_tokens is not None
    if n * max_tokens > budget:
        raise invalid(f"n ({n}) x {name} ({max_tokens}) = {n * max_tokens} completion tokens; at most "
                      f"{budget} per request", name, code="request_tokens_exceeded")
    if size + max_tokens > context:
        raise invalid(f"This model's maximum context length is {context} tokens; the prompt has {size} "
                      f"tokens and {name} is {max_tokens} ({size + max_tokens} in all)", name,
                      code="context_length_exceeded")
    stream = _bool(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise invalid("stream_options: only allowed with stream: true", "stream_options")
        if not isinstance(options, dict):
            raise invalid("stream_options: expected an object", "stream_options")
        include_usage = _bool(options, "include_usage")
    top_k = _integer(body, "top_k", -1, backend.vocab_size, None)
    seed = _integer(body, "seed", -(2**63), 2**63 - 1, None)
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=float(_number(body, "temperature", 0.0, 2.0, 1.0) or 0.0),
        top_p=_number(body, "top_p", 0.0, 1.0, None, lo_open=True),
        top_k=top_k if top_k and top_k > 0 else None,
        repetition_penalty=float(_number(body, "repetition_penalty", 0.0, 10.0, 1.0, lo_open=True) or 1.0),
        seed=None if seed is None else seed % 2**63,
        stop=_stop(body, settings),
        ignore_eos=_bool(body, "ignore_eos"),
        logprobs=_logprobs(kind, body, settings),
    )
    return ParsedRequest(kind, ids, params, n, stream, include_usage, stop_ids, media or None, extra)


def parse_classify(body: Any, settings: ServeSettings) -> list[str]:
    """Validate a /v1/classify body: model, and input (a string or 1..max_inputs strings)."""
    if not isinstance(body, dict):
        raise invalid("request body: expected a JSON object")
    _model(body, settings)
    value = body.get("input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise invalid("input: expected a string or a non-empty list of strings", "input")
    if len(items) > settings.max_inputs:
        raise invalid(f"input: {len(items)} texts; at most {settings.max_inputs} per request", "input")
    for i, text in enumerate(items):
        where = "input" if isinstance(value, str) else f"input[{i}]"
        if not isinstance(text, str):
            raise invalid(f"{where}: expected a string, got {type(text).__name__}", "input")
        if not text:
            raise invalid(f"{where}: expected non-empty text", "input")
        check_text(text, "input")
    return list(items)


__all__ = ["ParsedRequest", "check_text", "parse", "parse_classify"]
