"""The FastAPI application: OpenAI-compatible routes over the engine, with health and metrics.

`create_app(settings, loader)` builds the app; `loader()` returns a `Backend` and runs in a
background thread at startup, so `/health` answers 200 at once while `/ready` answers 503
until the model is loaded and one warm-up token has been generated.
Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /v1/models/{id},
GET /health (liveness), GET /ready (readiness), GET /metrics (Prometheus), and /docs +
/openapi.json only when enabled. A classifier (`ClassifierBackend`) is served on POST
/v1/classify instead, without the engine; the generation routes then answer 400 (and
/v1/classify answers 400 for a language model). This module imports FastAPI (only `salesai serve` imports it).
Streaming responses are Server-Sent Events as OpenAI sends
them (see `streaming.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request  # at module level: FastAPI resolves the handlers' annotations here

from salesai_serve.backends.base import Backend, SamplingParams
from salesai_serve.backends.classifier import ClassifierBackend
from salesai_serve.engine import Engine, EngineThread
from salesai_serve.errors import APIError, invalid, unavailable
from salesai_serve.metrics import Metrics
from salesai_serve.protocol import parse, parse_classify
from salesai_serve.settings import ServeSettings

log = logging.getLogger("salesai_serve")


class ServerState:
    """Everything a request handler needs: settings, engine, metrics, lifecycle flags."""

    def __init__(self, settings: ServeSettings, loader: Callable[[], Backend | ClassifierBackend]) -> None:
        self.settings = settings
        self.loader = loader
        self.metrics = Metrics()
        self.engine: Engine | None = None
        self.runner: EngineThread | None = None
        self.draining = False
        self.load_error: str | None = None
        self.classifier: ClassifierBackend | None = None  # set instead of engine for a classifier
        self.classifying = 0  # /v1/classify requests in flight (admission like the engine's)

    # -- lifecycle ---------------------------------------------------------------------------
    def load(self) -> None:
        """Load the backend, start the engine thread, warm up; errors leave the server unready."""
        try:
            backend = self.loader()
            if isinstance(backend, ClassifierBackend):
                backend.predict(["warm-up"])
                self.classifier = backend
                log.info("ready: %s classifier, labels %s", backend.name, ", ".join(backend.labels))
                return
            s = self.settings
            engine = Engine(backend, s.max_batch_size, s.max_queue, s.queue_timeout_s, self.metrics,
                            max_prefill_tokens=s.max_prefill_tokens)
            runner = EngineThread(engine)
            runner.start()
            done = threading.Event()
            engine.reserve(1)
            engine.submit([backend.tokenizer.bos_id], SamplingParams(max_tokens=1, temperature=0.0),
                          lambda ev: done.set() if ev.kind in ("finish", "error") else None)
            if not done.wait(300):
                raise RuntimeError("warm-up did not finish")
            self.engine, self.runner = engine, runner
            log.info("ready: %s backend, context %d", backend.name, backend.max_seq_len)
        except Exception as exc:
            self.load_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("model failed to load: %s", self.load_error)

    def not_ready(self) -> APIError | None:
        """Why the server cannot take requests now (503), or None when it can."""
        if self.draining:
            return unavailable("server is shutting down", code="draining")
        if self.classifier is not None:
            return None
        if self.engine is None or self.runner is None:
            msg = "model failed to load" if self.load_error else "model is loading"
            return unavailable(msg, code="not_ready", retry_after=5)
        if not self.runner.alive or self.engine.failures >= 3:
            return unavailable("backend is failing", code="backend_error", retry_after=5)
        busy = self.engine.busy_since
        if busy is not None and time.monotonic() - busy > self.settings.progress_timeout_s:
            return unavailable("backend made no progress", code="backend_stalled", retry_after=5)
        return None

    def abort_in_flight(self) -> None:
        """The drain deadline passed: the engine ends every queued and running request (503)."""
        if self.engine is not None:
            self.engine.request_abort("server shutting down: the drain timeout passed", code="shutting_down")

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()
        if self.engine is not None:
            self.engine.abort_all()


def _error_response(error: APIError) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def create_app(
    settings: ServeSettings,
    loader: Callable[[], Backend | ClassifierBackend],
    load_in_background: bool = True,
) -> Any:
    """The ASGI app; see the module docstring. `load_in_background=False` loads before returning."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from salesai_serve.middleware import (
        PUBLIC_PATHS,
        AuthMiddleware,
        BodyLimitMiddleware,
        BodyTooLarge,
        KeyChecker,
        RateLimiter,
    )

    state = ServerState(settings, loader)
    if not load_in_background:
        state.load()

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        thread = None
        if load_in_background and state.engine is None and state.classifier is None:
            thread = threading.Thread(target=state.load, name="salesai-load", daemon=True)
            thread.start()
        yield
        state.draining = True
        state.stop()

    docs = settings.enable_docs
    app = FastAPI(title="salesai-serve", lifespan=lifespan, docs_url="/docs" if docs else None,
                  redoc_url=None, openapi_url="/openapi.json" if docs else None)
    app.state.server = state

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Any:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        message = "Not found" if exc.status_code == 404 else str(exc.detail)[:200]
        return _error_response(APIError(exc.status_code, message, type="invalid_request_error"
                                        if exc.status_code != 404 else "not_found_error"))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Any:
        return _error_response(invalid("invalid request"))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Any:
        return _error_response(APIError(413, f"request body over {settings.max_body_bytes} bytes",
                                        code="request_too_large"))

    from starlette.requests import ClientDisconnect

    from salesai_serve.streaming import ClientDisconnected

    @app.exception_handler(ClientDisconnected)
    @app.exception_handler(ClientDisconnect)  # the body never arrived (client gone or read deadline)
    async def _gone(request: Request, exc: Exception) -> Any:
        return Response(status_code=499)  # nobody reads it; nginx's "client closed request"

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> Any:
        rid = uuid.uuid4().hex[:12]
        log.error("internal error %s: %s", rid, type(exc).__name__)
        return _error_response(APIError(500, f"internal server error (request {rid})", code="server_error"))

    @app.get("/health")
    @app.get("/health/live")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    @app.get("/health/ready")
    async def ready() -> Any:
        error = state.not_ready()
        if error is not None:
            return _error_response(error)
        return {"status": "ready"}

    @app.get("/metrics")
    async def metrics() -> Any:
        if not settings.enable_metrics:
            return _error_response(APIError(404, "Not found"))
        data, content_type = state.metrics.render()
        return Response(data, media_type=content_type)

    def model_card() -> dict[str, Any]:
        card: dict[str, Any] = {"id": settings.model_id, "object": "model", "created": 0,
                                "owned_by": "salesai"}
        if state.engine is not None:
            card.update({"task": "generate", **state.engine.backend.describe()})
        elif state.classifier is not None:
            card.update(state.classifier.describe())
        return card

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != settings.model_id:
            raise APIError(404, f"The model '{model_id[:100]}' does not exist", code="model_not_found")
        return model_card()

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await _generate("completion", request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await _generate("chat", request)

    @app.post("/v1/classify")
    async def classify(request: Request) -> Any:
        error = state.not_ready()
        if error is not None:
            state.metrics.rejected("draining" if state.draining else "not_ready")
            raise error
        clf = state.classifier
        if clf is None:
            raise invalid("this model generates text, not labels: use /v1/completions or "
                          "/v1/chat/completions", code="model_not_classifier")
        if state.classifying >= settings.max_batch_size + settings.max_queue:
            state.metrics.rejected("queue_full")
            raise unavailable(f"server busy: {state.classifying} requests in flight; retry later",
                              code="queue_full")
        state.classifying += 1
        try:
            texts = parse_classify(await _json_body(request), settings)
            results = await asyncio.to_thread(clf.predict, texts)
            tokens = sum(clf.token_counts(texts))
        finally:
            state.classifying -= 1
        data = [{"index": i, "object": "classification", **r} for i, r in enumerate(results)]
        return {"object": "list", "model": settings.model_id, "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    async def _json_body(request: Request) -> Any:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise invalid("Content-Type: expected application/json")
        raw = await request.body()
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # bad JSON or UTF-8, absurd nesting or number sizes
            raise invalid("request body: not valid JSON") from None

    async def _generate(kind: str, request: Request) -> Any:
        error = state.not_ready()
        if error is not None:
            state.metrics.rejected("draining" if state.draining else "not_ready")
            raise error
        if state.classifier is not None:
            raise invalid("this model is a classifier: it does not generate text; use POST /v1/classify",
                          code="model_is_classifier")
        engine = state.engine
        assert engine is not None
        engine.reserve(1)  # admission before any preprocessing: 503 at once when full
        reserved = 1
        try:
            body = await _json_body(request)
            # in a worker thread: media decoding (and fetching, when enabled) never blocks the event loop
            parsed = await asyncio.to_thread(parse, kind, body, settings, engine.backend)
            if parsed.n > 1:
                engine.reserve(parsed.n - 1)
                reserved = parsed.n
            from salesai_serve.streaming import Job, complete, stream_response

            job = Job(engine, parsed, asyncio.get_running_loop())
            try:
                job.submit()
            except BaseException:
                job.cancel()
                raise
            finally:
                reserved -= len(job.seqs)  # submitted places are released by the engine
        finally:
            if reserved:
                engine.release(reserved)
        if parsed.stream:
            return await stream_response(job, request, kind, settings)
        return JSONResponse(await complete(job, request, kind, settings))

    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    public = PUBLIC_PATHS | ({"/metrics"} if settings.metrics_public else set())
    limiter = RateLimiter(settings.rate_limit_rpm) if settings.rate_limit_rpm else None
    app.add_middleware(AuthMiddleware, keys=KeyChecker(settings.api_keys),
                       public=frozenset(public), limiter=limiter, on_reject=state.metrics.rejected)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    return app


__all__ = ["ServerState", "create_app"]
