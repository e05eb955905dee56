"""The engine: a scheduler doing continuous batching over a backend's KV cache; no HTTP here.

Each `step()`:
1. drops cancelled requests (waiting or running) and fails waiting ones older than the
   queue timeout (504);
2. admits waiting requests into free batch slots (up to `max_batch_size`): text prompts
   waiting together are prefilled in one forward (`backend.add_many`, left-padded), others
   alone (`backend.add`); if a joint prefill fails, each prompt is retried alone, so a request
   whose prefill fails fails alone;
3. samples one token for every running sequence, decodes it to text (stop strings, UTF-8
   hold-back), emits a delta, and retires finished sequences (`backend.keep`);
4. runs one batched decode step for the rest (`backend.decode`).
New requests join between decode steps, finished ones leave: continuous batching.

Faults: a failing prefill fails its request alone (500); a failing batched decode fails every
row of that step (500) and counts towards `failures` (3 in a row: /ready answers 503). Running
out of memory (`MemoryError`, torch's `OutOfMemoryError`, ONNX Runtime's "Failed to allocate
memory") is a transient state, not a broken backend: the affected requests get a 503 with
Retry-After (`out_of_memory`, the OpenAI client retries it), the KV rows are dropped to give the
memory back, `failures` is not counted (no readiness flap, no restart loop) and the next step
serves the waiting requests as usual.

Events go to each sequence's `sink` (a callable, called from the engine's thread):
`Event("start")` when scheduled, `Event("delta", text, token)` per token,
`Event("finish", finish_reason=...)` with usage, or `Event("error", error=APIError)`.
`EngineThread` runs `step()` in a background thread; tests can call `step()` directly.

Admission: `reserve(k)` claims k places of `max_batch_size + max_queue` before any
preprocessing (503 + Retry-After when full); `submit` uses a claimed place, `release` gives
back unused ones.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from salesai_serve.backends.base import Backend, Sampler, SamplingParams
from salesai_serve.errors import APIError, unavailable
from salesai_serve.text import TextStream


@dataclass
class Event:
    """What a sequence reports to its sink; see the module docstring."""

    kind: str  # "start" | "delta" | "finish" | "error"
    text: str = ""
    token: int | None = None
    finish_reason: str | None = None  # "stop" | "length" on finish
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: APIError | None = None
    logprob: tuple[float, list[tuple[int, float]]] | None = None  # with params.logprobs: (lp, top k)


Sink = Callable[[Event], None]
OOM_MESSAGES = ("out of memory", "failed to allocate memory", "cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch.OutOfMemoryError (any device), or an ONNX Runtime allocation failure."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in OOM_MESSAGES)

log = logging.getLogger("salesai_serve")
_ids = itertools.count()


@dataclass
class SequenceState:
    """One choice of one request, from submission to its last event."""

    prompt_ids: list[int]
    params: SamplingParams
    sink: Sink
    index: int = 0  # choice number (n > 1)
    stop_token_ids: frozenset[int] = frozenset()
    id: int = field(default_factory=lambda: next(_ids))
    submitted: float = 0.0
    first_token: float | None = None
    last_token: float | None = None
    generated: list[int] = field(default_factory=list)
    cancelled: bool = False
    done: bool = False
    sampler: Sampler | None = None
    text: TextStream | None = None
    pending: int | None = None  # the sampled token the next decode feeds
    media: dict[str, Any] | None = None  # preprocessed media items for the prompt's placeholders
    media_positions: int = 0  # prompt positions the media adds beyond its placeholders (usage counts them)


class Engine:
    """Continuous-batching scheduler over one `Backend`; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        max_batch_size: int = 8,
        max_queue: int = 64,
        queue_timeout_s: float | None = None,
        metrics: Any = None,
        clock: Callable[[], float] = time.monotonic,
        max_prefill_tokens: int = 4096,
    ) -> None:
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.metrics = metrics
        self.clock = clock
        self.max_prefill_tokens = max_prefill_tokens  # padded positions of one joint prefill
        self.waiting: deque[SequenceState] = deque()
        self.running: list[SequenceState] = []
        self._lock = threading.RLock()
        self._reserved = 0  # places claimed by reserve() and not yet finished or released
        self.wakeup = threading.Event()  # set when there is new work
        self.failures = 0  # failed forward passes since the last good decode step (health)
        self.busy_since: float | None = None  # start of the forward pass in progress (health)
        self._abort: tuple[str, str] | None = None  # (message, code) set by request_abort
        self.prefill_batches = 0  # joint prefills run (several prompts in one forward)

    # -- admission (any thread) ----------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.max_batch_size + self.max_queue

    def reserve(self, k: int = 1) -> None:
        """Claim k places or raise a 503 APIError (queue full), before any preprocessing."""
        with self._lock:
            if self._reserved + k > self.capacity:
                if self.metrics:
                    self.metrics.rejected("queue_full")
                raise unavailable(f"server busy: {self._reserved} requests in flight "
                                  f"(limit {self.capacity}); retry later", code="queue_full")
            self._reserved += k

    def release(self, k: int = 1) -> None:
        """Give back k claimed places that were not submitted."""
        with self._lock:
            self._reserved = max(0, self._reserved - k)

    @property
    def in_flight(self) -> int:
        return self._reserved

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams, sink: Sink, index: int = 0,
               stop_token_ids: Sequence[int] = (), media: dict[str, Any] | None = None,
               media_positions: int = 0) -> SequenceState:
        """Queue one sequence on a place claimed with `reserve`; returns its handle (for `cancel`).
        `media` items replace the prompt's placeholders (adding `media_positions` positions)."""
        limit = self.backend.max_seq_len
        size = len(prompt_ids) + media_positions
        if not prompt_ids or size + params.max_tokens > limit:
            raise APIError(400, f"prompt ({size} tokens) + max_tokens ({params.max_tokens}) "
                                f"exceeds the context length ({limit})", param="max_tokens")
        stops = set(stop_token_ids) | ({self.backend.eos_id} if not params.ignore_eos else set())
        seq = SequenceState(list(prompt_ids), params, sink, index, frozenset(stops), submitted=self.clock(),
                            media=media or None, media_positions=media_positions if media else 0)
        with self._lock:
            self.waiting.append(seq)
        if self.metrics:
            self.metrics.queue(len(self.waiting), len(self.running))
        self.wakeup.set()
        return seq

    def cancel(self, seq: SequenceState) -> None:
        """The client went away: the sequence leaves the queue or batch at the next step."""
        if not seq.done and not seq.cancelled:
            seq.cancelled = True
            if self.metrics:
                self.metrics.disconnected()
            self.wakeup.set()

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # -- scheduling (the engine thread) ----------------------------------------------------------
    def _finish(self, seq: SequenceState, event: Event | None) -> None:
        seq.done = True
        self.release(1)
        if event is not None:
            event.prompt_tokens = len(seq.prompt_ids) + seq.media_positions
            event.completion_tokens = len(seq.generated)
            seq.sink(event)
            if self.metrics and event.kind == "finish":
                self.metrics.finished(self.clock() - seq.submitted)

    def _expire_and_drop(self) -> None:
        now = self.clock()
        with self._lock:
            keep: deque[SequenceState] = deque()
            for seq in self.waiting:
                if seq.cancelled:
                    self._finish(seq, None)
                elif self.queue_timeout_s is not None and now - seq.submitted > self.queue_timeout_s:
                    if self.metrics:
                        self.metrics.rejected("queue_timeout")
                    message = f"request waited over {self.queue_timeout_s:g} s in the queue"
                    self._finish(seq, Event("error", error=APIError(504, message, code="queue_timeout")))
                else:
                    keep.append(seq)
            self.waiting = keep

    def _admit(self) -> None:
        """Move waiting requests into free batch slots. Text prompts that arrive together are
        prefilled in one forward (`backend.add_many`, up to `max_prefill_tokens` padded positions);
        a prompt with media, or any prompt of a backend without `add_many`, is prefilled alone."""
        group: list[SequenceState] = []
        width = 0
        while len(self.running) + len(group) < self.max_batch_size:
            with self._lock:
                if not self.waiting:
                    break
                seq = self.waiting.popleft()
            if seq.cancelled:
                self._finish(seq, None)
                continue
            seq.sink(Event("start"))
            if self.metrics:
                self.metrics.queue_wait(self.clock() - seq.submitted)
            if seq.media or not self._batched_prefill:
                self._prefill([seq])
                continue
            width = max(width, len(seq.prompt_ids))
            if group and width * (len(group) + 1) > self.max_prefill_tokens:
                self._prefill(group)
                group, width = [], len(seq.prompt_ids)
            group.append(seq)
        if group:
            self._prefill(group)

    @property
    def _batched_prefill(self) -> bool:
        # only a Backend whose class overrides add_many (wrappers that delegate attributes do not count)
        backend = self.backend
        return isinstance(backend, Backend) and type(backend).add_many is not Backend.add_many

    def _prefill(self, seqs: list[SequenceState]) -> None:
        """Prefill `seqs` (together when several), join them to the batch and sample their first token.
        If a joint prefill fails, each is retried alone, so a failing request fails alone."""
        self.busy_since = self.clock()
        try:
            if len(seqs) == 1:
                seq = seqs[0]
                logits = [self.backend.add(seq.prompt_ids, media=seq.media) if seq.media
                          else self.backend.add(seq.prompt_ids)]
            else:
                logits = self.backend.add_many([s.prompt_ids for s in seqs])
                self.prefill_batches += 1
        except Exception as exc:
            if len(seqs) > 1:
                for seq in seqs:
                    self._prefill([seq])
                return
            if not is_out_of_memory(exc):
                self.failures += 1
            self._fail(seqs[0], exc)  # a failed prefill leaves the batch as it was
            return
        finally:
            self.busy_since = None
        for seq, row_logits in zip(seqs, logits, strict=True):
            try:
                seq.sampler = self.backend.sampler(seq.params, seq.prompt_ids, seq.index)
            except Exception as exc:  # the row was added: fail it, the next _retire drops it
                self.running.append(seq)
                self._fail(seq, exc)
                continue
            if self.metrics:
                self.metrics.prompt_tokens(len(seq.prompt_ids) + seq.media_positions)
            seq.text = TextStream(self.backend.tokenizer, seq.params.stop)
            self.running.append(seq)
            try:
                self._sample(seq, row_logits)
            except Exception as exc:
                self._fail(seq, exc)

    def _fail(self, seq: SequenceState, exc: BaseException) -> None:
        if is_out_of_memory(exc):
            if self.metrics:
                self.metrics.rejected("out_of_memory")
            error = unavailable(f"out of memory while generating (request {seq.id}); retry later",
                                code="out_of_memory", retry_after=2)
            self._finish(seq, Event("error", error=error))
            return
        if self.metrics:
            self.metrics.rejected("server_error")
        reason = "non-finite logits" if isinstance(exc, FloatingPointError) else "generation failed"
        error = APIError(500, f"{reason} (request {seq.id})", code="server_error")
        self._finish(seq, Event("error", error=error))

    def _sample(self, seq: SequenceState, logits: Any) -> None:
        """Pick this sequence's next token, emit it, and mark it done when it ends."""
        assert seq.sampler is not None and seq.text is not None
        token = seq.sampler(logits)
        logprob = None
        if seq.params.logprobs is not None and token not in seq.stop_token_ids:
            logprob = seq.sampler.logprobs(logits, token, seq.params.logprobs)
        now = self.clock()
        if self.metrics:
            self.metrics.token(now - seq.submitted if seq.first_token is None else None,
                               None if seq.last_token is None else now - seq.last_token)
        seq.first_token = seq.first_token or now
        seq.last_token = now
        seq.generated.append(token)
        finish = None
        if token in seq.stop_token_ids:
            finish = "stop"
            piece = seq.text.flush()
        else:
            piece = seq.text.add(token)
            if seq.text.stopped:
                finish = "stop"
            elif len(seq.generated) >= seq.params.max_tokens:
                finish = "length"
                piece += seq.text.flush()
        seq.sink(Event("delta", piece, token, logprob=logprob))
        seq.pending = token
        if finish is not None:
            self._finish(seq, Event("finish", finish_reason=finish))

    def request_abort(self, message: str, code: str) -> None:
        """Any thread: `abort_all` at the start of the engine thread's next step (never mid-forward)."""
        self._abort = (message, code)
        self.wakeup.set()

    def step(self) -> bool:
        """One scheduling iteration (see the module docstring); returns whether work remains."""
        if self._abort is not None:
            message, code = self._abort
            self._abort = None
            self.abort_all(message, code=code)
        self._expire_and_drop()
        self._admit()
        for seq in self.running:
            if seq.cancelled and not seq.done:
                self._finish(seq, None)
        self._retire()
        if self.running:
            tokens = [s.pending for s in self.running]
            try:
                self.busy_since = self.clock()
                logits = self.backend.decode([int(t) for t in tokens if t is not None])
                self.failures = 0
            except Exception as exc:
                if not is_out_of_memory(exc):  # out of memory is transient: see the module docstring
                    self.failures += 1
                for seq in self.running:
                    self._fail(seq, exc)
                self.running = []
                self.backend.reset()
                return self.has_work
            finally:
                self.busy_since = None
            for i, seq in enumerate(self.running):
                try:
                    self._sample(seq, logits[i])
                except Exception as exc:
                    self._fail(seq, exc)
            self._retire()
        if self.metrics:
            self.metrics.queue(len(self.waiting), len(self.running))
        return self.has_work

    def _retire(self) -> None:
        """Remove done sequences from the batch (the backend keeps the others' rows)."""
        if any(s.done for s in self.running):
            keep = [i for i, s in enumerate(self.running) if not s.done]
            self.backend.keep(keep)
            self.running = [self.running[i] for i in keep]

    def abort_all(self, message: str = "server shutting down", code: str = "shutting_down") -> None:
        """Fail every queued and running sequence with a 503 (shutdown, or an engine bug)."""
        with self._lock:
            seqs = [*self.waiting, *self.running]
            self.waiting.clear()
        for seq in seqs:
            if not seq.done:
                self._finish(seq, Event("error", error=unavailable(message, code=code)))
        self.running = []
        self.backend.reset()


class EngineThread:
    """Runs `engine.step()` in a daemon thread while there is work; `stop()` ends it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="salesai-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        engine = self.engine
        while not self._stop.is_set():
            if not engine.has_work:
                engine.wakeup.wait(0.5)
                engine.wakeup.clear()
                continue
            try:
                engine.step()
            except Exception:  # a scheduler bug must not leave requests waiting forever
                log.exception("engine step failed; aborting every request")
                engine.failures += 1
                engine.abort_all("internal error in the engine", code="engine_error")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.engine.wakeup.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


__all__ = ["Engine", "EngineThread", "Event", "SequenceState", "is_out_of_memory"]
