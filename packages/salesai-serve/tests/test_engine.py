"""The engine without HTTP: continuous batching equals `generate`; sampling, stops, cancellation, limits,
faults."""

from __future__ import annotations

from typing import Any

import pytest

from salesai_serve.backends.base import SamplingParams
from salesai_serve.engine import Engine, Event
from salesai_serve.errors import APIError
from salesai_serve.text import TextStream, chat_prompt_ids, chat_prompt_text

PROMPTS = ["def add(x, y):", "hello", "for i in range(10):\n    print(i)\n" * 2, "the quick", "x"]


class Collector:
    """A sink that records one sequence's events."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    @property
    def tokens(self) -> list[int]:
        return [e.token for e in self.events if e.kind == "delta" and e.token is not None]

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if e.kind == "delta")

    @property
    def last(self) -> Event:
        return self.events[-1]


def submit(engine: Engine, ids: list[int], **params: Any) -> tuple[Any, Collector]:
    sink = Collector()
    engine.reserve()
    return engine.submit(ids, SamplingParams(**params), sink), sink


def run(engine: Engine, limit: int = 10_000) -> int:
    steps = 0
    while engine.step() and steps < limit:
        steps += 1
    return steps


def test_batched_greedy_equals_generate_on_both_backends(backend: Any, model: Any, tokenizer: Any) -> None:
    """PAR-01 + the core promise: rows of different lengths joining and leaving mid-batch (and the
    shared time axis compacted at the context length) give `model.generate`'s greedy tokens."""
    engine = Engine(backend, max_batch_size=3)
    jobs = []
    for i, text in enumerate(PROMPTS):
        ids = tokenizer.encode(text, add_bos=True)
        budget = 96 - len(ids) - 7 * i  # some rows run to the full context: compaction happens
        jobs.append((ids, budget, *submit(engine, ids, max_tokens=budget, temperature=0.0, ignore_eos=True)))
    run(engine)
    assert engine.prefill_batches >= 1  # the first three arrived together: one joint, left-padded prefill
    for ids, budget, _, sink in jobs:
        expected = model.generate([ids], max_new_tokens=budget, temperature=0.0, stop_token_ids=[])[0]
        assert sink.tokens == expected
        assert sink.last.kind == "finish" and sink.last.finish_reason == "length"
        assert (sink.last.prompt_tokens, sink.last.completion_tokens) == (len(ids), budget)
    assert backend.rows == 0 and not engine.has_work and engine.in_flight == 0


def test_text_equals_generate_decoded_and_eos_stops(backends: Any, model: Any, tokenizer: Any) -> None:
    engine = Engine(backends["pytorch"], max_batch_size=2)
    ids = tokenizer.encode("hello", add_bos=True)
    _, sink = submit(engine, ids, max_tokens=30, temperature=0.0)
    run(engine)
    expected = model.generate([ids], max_new_tokens=30, temperature=0.0)[0]  # stops at eos, keeps it
    assert sink.tokens == expected
    body = [t for t in expected if t != tokenizer.eos_id]
    assert sink.text == tokenizer.decode(body)
    reason = "stop" if expected[-1] == tokenizer.eos_id else "length"
    assert sink.last.finish_reason == reason


def test_seeded_sampling_equals_generate_and_repeats(backends: Any, model: Any, tokenizer: Any) -> None:
    backend = backends["pytorch"]
    ids = tokenizer.encode("def add", add_bos=True)
    opts = dict(temperature=0.9, top_k=20, top_p=0.9, repetition_penalty=1.2, seed=7)
    engine = Engine(backend, max_batch_size=4)
    _, a = submit(engine, ids, max_tokens=12, ignore_eos=True, **opts)
    _, b = submit(engine, ids, max_tokens=12, ignore_eos=True, **opts)
    _, other = submit(engine, ids, max_tokens=12, ignore_eos=True, **{**opts, "seed": 8})
    run(engine)
    expected = model.generate([ids], max_new_tokens=12, stop_token_ids=[], **opts)[0]
    assert a.tokens == b.tokens == expected
    assert other.tokens != expected


def test_text_stream_holds_back_stop_strings_and_partial_utf8(tokenizer: Any) -> None:
    """STR-06/STR-07 at the source: deltas never hold part of a stop string or of a character."""
    text = "hello world, café 🙂 done"
    ids = tokenizer.encode(text)
    stream = TextStream(tokenizer, stop=["world,"])
    deltas = [stream.add(t) for t in ids]
    assert stream.stopped and "".join(deltas) == "hello "
    assert not any("w" in d for d in deltas)
    plain = TextStream(tokenizer)
    pieces = [plain.add(t) for t in ids] + [plain.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert len(pieces) > 5  # really incremental


def test_stop_string_spanning_tokens_ends_the_sequence(backends: Any, tokenizer: Any) -> None:
    engine = Engine(backends["pytorch"], max_batch_size=2)
    ids = tokenizer.encode("hello", add_bos=True)
    _, free = submit(engine, ids, max_tokens=20, temperature=0.0, ignore_eos=True)
    run(engine)
    full = free.text
    stop = full[3:6]  # a stop string inside the greedy output
    _, sink = submit(engine, ids, max_tokens=20, temperature=0.0, ignore_eos=True, stop=[stop])
    run(engine)
    assert sink.last.finish_reason == "stop"
    assert sink.text == full[: full.find(stop)] and stop not in sink.text


def test_chat_template_uses_role_symbols_and_escapes_them_in_content(tokenizer: Any) -> None:
    messages = [("system", "be brief"), ("user", "hi <|assistant|> there")]
    ids = chat_prompt_ids(tokenizer, messages)
    assert ids[0] == tokenizer.bos_id and ids[1] == tokenizer.token_to_id("<|system|>")
    assert ids[-2:] == [tokenizer.token_to_id("<|assistant|>"), tokenizer.token_to_id("\n")]
    assert ids.count(tokenizer.token_to_id("<|assistant|>")) == 1  # the one in content is plain text
    assert ids.count(tokenizer.token_to_id("<|end|>")) == 2
    assert tokenizer.decode(ids) == chat_prompt_text(messages)[len("<s>"):]


def test_CAN_03_cancel_running_and_queued_frees_slots(backends: Any, tokenizer: Any) -> None:
    """CAN-01/CAN-03: a cancelled running sequence leaves the batch at the next step; a queued one never
    starts."""
    from salesai_serve.metrics import Metrics

    metrics = Metrics()
    backend = backends["pytorch"]
    engine = Engine(backend, max_batch_size=1, metrics=metrics)
    ids = tokenizer.encode("hello", add_bos=True)
    running, r_sink = submit(engine, ids, max_tokens=50, temperature=0.0, ignore_eos=True)
    queued, q_sink = submit(engine, ids, max_tokens=50, temperature=0.0, ignore_eos=True)
    engine.step()
    assert backend.rows == 1 and len(r_sink.tokens) == 2
    engine.cancel(running)
    engine.cancel(queued)
    engine.step()
    assert backend.rows == 0 and not engine.has_work and engine.in_flight == 0
    assert len(r_sink.tokens) == 2  # no token after the cancellation
    assert [e.kind for e in q_sink.events] == []  # never started
    assert metrics.value("salesai_client_disconnects_total") == 2


def test_BP_01_03_admission_queue_full_and_queue_timeout() -> None:
    """BP-01 (capacity = batch + queue, the rest refused at once with 503) and BP-03 (504)."""

    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()

    class Dummy:
        max_seq_len, eos_id, rows = 64, 3, 0

    engine = Engine(Dummy(), max_batch_size=2, max_queue=1, queue_timeout_s=5.0, clock=clock)  # type: ignore[arg-type]
    engine.reserve(3)
    with pytest.raises(APIError) as exc:
        engine.reserve(1)
    assert exc.value.status == 503 and exc.value.headers["Retry-After"] == "1"
    sink = Collector()
    engine.submit([2, 5], SamplingParams(max_tokens=4), sink)
    clock.now = 6.0
    engine._expire_and_drop()
    assert sink.last.kind == "error" and sink.last.error is not None and sink.last.error.status == 504
    assert engine.in_flight == 2  # the expired one gave its place back
    with pytest.raises(APIError, match=r"prompt \(2 tokens\) \+ max_tokens \(63\) exceeds the context"):
        engine.submit([2, 5], SamplingParams(max_tokens=63), sink)


def test_FLT_01_03_failing_request_fails_alone_and_nan_logits_fail_cleanly(backends: Any,
                                                                           tokenizer: Any) -> None:
    """FLT-01 (a prefill that raises fails only its request), FLT-03 (NaN logits: server_error, no hang)."""
    backend = backends["pytorch"]
    bad = tokenizer.encode("x", add_bos=True)

    class Faulty:
        """Wraps the real backend; prefill of `bad` raises, and row logits can be poisoned."""

        def __init__(self) -> None:
            self.poison = False

        def __getattr__(self, name: str) -> Any:
            return getattr(backend, name)

        def add(self, ids: Any) -> Any:
            if list(ids) == bad:
                raise RuntimeError("boom")
            logits = backend.add(ids)
            return logits * float("nan") if self.poison else logits

    faulty = Faulty()
    engine = Engine(faulty, max_batch_size=4)  # type: ignore[arg-type]
    good_ids = tokenizer.encode("hello", add_bos=True)
    _, good = submit(engine, good_ids, max_tokens=8, temperature=0.0, ignore_eos=True)
    _, failing = submit(engine, bad, max_tokens=8, temperature=0.0)
    run(engine)
    assert failing.last.kind == "error" and failing.last.error is not None
    assert failing.last.error.status == 500 and failing.last.error.code == "server_error"
    assert good.last.finish_reason == "length" and len(good.tokens) == 8
    faulty.poison = True
    _, nan = submit(engine, good_ids, max_tokens=8, temperature=0.7)
    run(engine)
    assert nan.last.kind == "error" and nan.last.error is not None and "non-finite" in nan.last.error.message
    assert backend.rows == 0 and engine.in_flight == 0


def test_joint_prefill_failure_falls_back_to_one_by_one(export_dir: Any, model: Any, tokenizer: Any) -> None:
    """Prompts waiting together share one prefill forward; when that forward fails, each prompt is
    prefilled alone, so only the failing one fails (FLT-01 holds with batched prefill too)."""
    from salesai_serve.backends.ort_backend import OrtBackend

    bad = tokenizer.encode("x", add_bos=True)

    class Faulty(OrtBackend):
        def add(self, ids: Any, media: Any = None) -> Any:
            if list(ids) == bad:
                raise RuntimeError("boom")
            return super().add(ids, media)

        def add_many(self, prompts: Any) -> Any:
            if any(list(p) == bad for p in prompts):
                raise RuntimeError("boom")
            return super().add_many(prompts)

    backend = Faulty.load(export_dir, threads=1)
    engine = Engine(backend, max_batch_size=4)
    prompts = [tokenizer.encode(p, add_bos=True) for p in PROMPTS[:2]]
    good = [submit(engine, ids, max_tokens=5, temperature=0.0, ignore_eos=True)[1] for ids in prompts]
    _, failing = submit(engine, bad, max_tokens=5, temperature=0.0)
    run(engine)
    assert failing.last.error is not None and failing.last.error.status == 500
    for ids, sink in zip(prompts, good, strict=True):
        assert sink.tokens == model.generate([ids], max_new_tokens=5, temperature=0.0, stop_token_ids=[])[0]
    assert engine.prefill_batches == 0 and backend.rows == 0 and engine.in_flight == 0
    together = [submit(engine, ids, max_tokens=5, temperature=0.0, ignore_eos=True)[1] for ids in prompts]
    run(engine)
    assert engine.prefill_batches == 1 and [s.tokens for s in together] == [s.tokens for s in good]


class OutOfMemoryOnce:
    """Wraps a real backend; the next decode (`decode_fails`) or prefill (`add_fails`) runs out of memory."""

    def __init__(self, inner: Any, error: BaseException) -> None:
        self.inner = inner
        self.error = error
        self.decode_fails = self.add_fails = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decode(self, tokens: Any) -> Any:
        if self.decode_fails:
            self.decode_fails = False
            raise self.error
        return self.inner.decode(tokens)

    def add(self, ids: Any) -> Any:
        if self.add_fails:
            self.add_fails = False
            raise self.error
        return self.inner.add(ids)


@pytest.mark.parametrize("name", ["pytorch", "onnxruntime"])
def test_FLT_02_out_of_memory_is_503_and_the_engine_recovers(backends: Any, model: Any, tokenizer: Any,
                                                             name: str) -> None:
    """FLT-02: an allocation failure during a batched decode fails that step's requests with a 503 +
    Retry-After (the client retries), does not count as a failing backend, and the next requests are
    served normally (same tokens as `generate`); a prefill that runs out of memory fails alone."""
    import torch

    from salesai_serve.engine import is_out_of_memory

    error = MemoryError() if name == "pytorch" else RuntimeError(
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer")
    backend = OutOfMemoryOnce(backends[name], error)
    backend.reset()
    engine = Engine(backend, max_batch_size=4)  # type: ignore[arg-type]
    ids = [tokenizer.encode(p, add_bos=True) for p in PROMPTS[:3]]
    sinks = [submit(engine, i, max_tokens=6, temperature=0.0, ignore_eos=True)[1] for i in ids]
    backend.decode_fails = True
    run(engine)
    for sink in sinks:
        err = sink.last.error
        assert sink.last.kind == "error" and err is not None
        assert (err.status, err.code, err.headers.get("Retry-After")) == (503, "out_of_memory", "2")
    assert engine.failures == 0 and backend.rows == 0 and engine.in_flight == 0
    again = [submit(engine, i, max_tokens=6, temperature=0.0, ignore_eos=True)[1] for i in ids]
    run(engine)
    for i, sink in zip(ids, again, strict=True):
        assert sink.tokens == model.generate([i], max_new_tokens=6, temperature=0.0, stop_token_ids=[])[0]
    backend.add_fails = True  # the first prefill of the next two runs out of memory: only it fails
    first, second = (submit(engine, i, max_tokens=4, temperature=0.0, ignore_eos=True)[1] for i in ids[:2])
    run(engine)
    assert first.last.error is not None and first.last.error.status == 503
    assert second.last.finish_reason == "length" and engine.failures == 0
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("memory"))


def test_int8_backend_serves_and_onnx_path_never_imports_torch(export_dir: Any) -> None:
    """The ONNX Runtime backends (fp32 and int8) run the engine and the app without importing torch."""
    import subprocess
    import sys

    code = f"""
import sys
from fastapi.testclient import TestClient
from salesai_serve.app import create_app
from salesai_serve.backends import load_backend
from salesai_serve.settings import ServeSettings
backend = load_backend("onnxruntime-int8", {str(export_dir)!r}, threads=1)
assert backend.name == "onnxruntime-int8"
app = create_app(ServeSettings(model_id="tiny"), lambda: backend, load_in_background=False)
with TestClient(app) as client:
    r = client.post("/v1/completions", json={{"model": "tiny", "prompt": "def add", "max_tokens": 5,
                                              "temperature": 0, "ignore_eos": True}})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5, r.text
    assert client.get("/v1/models").json()["data"][0]["backend"] == "onnxruntime-int8"
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_LIM_04_many_long_requests_all_finish_and_memory_stays_bounded(backends: Any, tokenizer: Any) -> None:
    """32 requests at the context cap with ignore_eos, 8 at a time: every one ends with "length", and
    the slot cache never grows beyond (max_batch_size rows, context length)."""
    backend = backends["pytorch"]
    backend.reset()
    engine = Engine(backend, max_batch_size=8, max_queue=24)
    sinks = []
    for i in range(32):
        ids = tokenizer.encode("hello" * (1 + i % 3), add_bos=True)
        sinks.append(submit(engine, ids, max_tokens=96 - len(ids), temperature=0.0, ignore_eos=True)[1])
    with pytest.raises(APIError):
        engine.reserve()  # 32 = batch + queue: the next one is refused
    run(engine)
    assert all(s.last.finish_reason == "length" for s in sinks)
    cache = backend.cache
    assert cache.batch_size <= 8 and cache.max_len <= 96 and backend.rows == 0 and engine.in_flight == 0
