"""One HTTP request's generation: submit its choices, then answer as JSON or as OpenAI SSE.

`Job` bridges the engine thread to asyncio (events land in an `asyncio.Queue` through
`call_soon_threadsafe`) and cancels its sequences when the client goes away: a non-streaming
or still-queued request polls `request.is_disconnected()`; a stream notices when a send fails
(the response generator is closed) and on its comment pings.

SSE as OpenAI sends it: `data: {chunk}\\n\\n` events; for chat the first delta of each choice
carries `role: "assistant"`; each choice's last chunk carries its `finish_reason`; with
`stream_options.include_usage` one extra chunk with `choices: []` and `usage` comes before
`data: [DONE]`. A failure after the stream started is one `data: {"error": ...}` event, then
the stream ends. A request that fails before its first token (queue timeout, validation in
the engine) gets a normal JSON error response, not a 200 stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from salesai_serve.engine import Engine, Event, SequenceState
from salesai_serve.logprobs import Entry, chat_logprobs, completion_logprobs, next_offset
from salesai_serve.protocol import ParsedRequest
from salesai_serve.settings import ServeSettings

POLL_S = 0.25  # disconnect polling while waiting without output


class ClientDisconnected(Exception):
    """The client went away while its request waited; its sequences are cancelled."""


class Job:
    """The n sequences of one request and the queue their events arrive on."""

    def __init__(self, engine: Engine, parsed: ParsedRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.parsed = parsed
        self.loop = loop
        self.queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self.seqs: list[SequenceState] = []
        self.finished = [False] * parsed.n
        self.completion_tokens = [0] * parsed.n
        self.entries: list[list[Entry]] = [[] for _ in range(parsed.n)]  # logprob entries not yet sent
        self.offsets = [0] * parsed.n  # completions' text_offset reached per choice
        self.id = uuid.uuid4().hex
        self.created = int(time.time())
        self._checked = time.monotonic()  # last disconnect check

    def submit(self) -> None:
        p = self.parsed
        for i in range(p.n):
            def sink(event: Event, i: int = i) -> None:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, (i, event))

            self.seqs.append(self.engine.submit(p.prompt_ids, p.params, sink, index=i,
                                                stop_token_ids=p.stop_token_ids, media=p.media,
                                                media_positions=p.media_positions))

    def cancel(self) -> None:
        for seq in self.seqs:
            self.engine.cancel(seq)

    @property
    def done(self) -> bool:
        return all(self.finished)

    def record(self, i: int, event: Event) -> None:
        """Keep a delta's logprob entry (when the request asked for logprobs)."""
        if event.logprob is not None and event.token is not None:
            self.entries[i].append((event.token, event.logprob[0], event.logprob[1]))

    def take_logprobs(self, i: int, kind: str) -> dict[str, Any] | None:
        """Choice i's logprobs object for the entries gathered since the last call (None when off)."""
        if self.parsed.params.logprobs is None:
            return None
        entries, self.entries[i] = self.entries[i], []
        tokenizer = self.engine.backend.tokenizer
        if kind == "chat":
            return chat_logprobs(tokenizer, entries)
        out = completion_logprobs(tokenizer, entries, self.offsets[i])
        self.offsets[i] = next_offset(tokenizer, entries, self.offsets[i])
        return out

    def usage(self) -> dict[str, int]:
        prompt = len(self.parsed.prompt_ids) + self.parsed.media_positions  # image/audio positions count
        completion = sum(self.completion_tokens)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def next_event(self, request: Any, timeout: float) -> tuple[int, Event] | None:
        """The next event; None after `timeout` s of silence. Checks the client every POLL_S seconds
        (also while events flow), and on a disconnect cancels the sequences and raises."""
        end = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if now - self._checked >= POLL_S:
                self._checked = now
                if await request.is_disconnected():
                    self.cancel()
                    raise ClientDisconnected
            try:
                return await asyncio.wait_for(self.queue.get(), max(0.0, min(POLL_S, end - now)))
            except asyncio.TimeoutError:
                if time.monotonic() >= end:
                    return None


async def complete(job: Job, request: Any, kind: str, settings: ServeSettings) -> dict[str, Any]:
    """Wait for every choice; the OpenAI response body (or raise the first error)."""
    texts = [""] * job.parsed.n
    reasons: list[str | None] = [None] * job.parsed.n
    try:
        while not job.done:
            got = await job.next_event(request, 3600.0)
            if got is None:
                continue
            i, event = got
            if event.kind == "delta":
                texts[i] += event.text
                job.record(i, event)
            elif event.kind == "finish":
                job.finished[i], reasons[i] = True, event.finish_reason
                job.completion_tokens[i] = event.completion_tokens
            elif event.kind == "error":
                assert event.error is not None
                raise event.error
    finally:
        if not job.done:
            job.cancel()
    model = settings.model_id
    if kind == "chat":
        choices = [{"index": i, "message": {"role": "assistant", "content": t},
                    "logprobs": job.take_logprobs(i, kind), "finish_reason": r}
                   for i, (t, r) in enumerate(zip(texts, reasons, strict=True))]
        return {"id": f"chatcmpl-{job.id}", "object": "chat.completion", "created": job.created,
                "model": model, "choices": choices, "usage": job.usage()}
    choices = [{"index": i, "text": t, "logprobs": job.take_logprobs(i, kind), "finish_reason": r}
               for i, (t, r) in enumerate(zip(texts, reasons, strict=True))]
    return {"id": f"cmpl-{job.id}", "object": "text_completion", "created": job.created, "model": model,
            "choices": choices, "usage": job.usage()}


def _sse(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream_response(job: Job, request: Any, kind: str, settings: ServeSettings) -> Any:
    """Wait until the request is scheduled (errors before that are JSON), then stream SSE."""
    from starlette.responses import StreamingResponse

    early: list[tuple[int, Event]] = []
    try:
        while True:  # the first event: "start" (scheduled) or an error (e.g. queue timeout)
            got = await job.next_event(request, 3600.0)
            if got is None:
                continue
            early.append(got)
            if got[1].kind == "error":
                assert got[1].error is not None
                job.cancel()
                raise got[1].error
            break
    except BaseException:
        job.cancel()
        raise
    chat = kind == "chat"
    rid = f"chatcmpl-{job.id}" if chat else f"cmpl-{job.id}"
    base = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": job.created, "model": settings.model_id}

    def chunk(i: int, text: str | None, finish: str | None, role: bool = False) -> str:
        logprobs = None if role else job.take_logprobs(i, kind)  # the tokens since the last chunk
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text:
                delta["content"] = text
            choice: dict[str, Any] = {"index": i, "delta": delta, "logprobs": logprobs,
                                      "finish_reason": finish}
        else:
            choice = {"index": i, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    async def events() -> AsyncIterator[str]:
        try:
            if chat:
                for i in range(job.parsed.n):
                    yield chunk(i, None, None, role=True)
            pending = list(early)
            while not job.done:
                got = pending.pop(0) if pending else await job.next_event(request, settings.ping_interval_s)
                if got is None:
                    yield ": ping\n\n"
                    continue
                i, event = got
                if event.kind == "delta":
                    job.record(i, event)
                if event.kind == "delta" and event.text:
                    yield chunk(i, event.text, None)
                elif event.kind == "finish":
                    job.finished[i] = True
                    job.completion_tokens[i] = event.completion_tokens
                    yield chunk(i, None, event.finish_reason)
                elif event.kind == "error":
                    assert event.error is not None
                    yield _sse(event.error.body())
                    return
            if job.parsed.include_usage:
                yield _sse({**base, "choices": [], "usage": job.usage()})
            yield "data: [DONE]\n\n"
        finally:
            if not job.done:
                job.cancel()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


__all__ = ["ClientDisconnected", "Job", "complete", "stream_response"]
