"""`salesai serve CKPT`: load a checkpoint or ONNX export and serve it over HTTP with uvicorn.

A classifier checkpoint or ONNX classifier export is served on POST /v1/classify.
Binds 127.0.0.1:8000 by default. Any other address needs an API key (`--api-key-file`, or
`SALESAI_API_KEY` with comma-separated keys) unless `--allow-unauthenticated`. SIGTERM (or
Ctrl-C) makes /ready answer 503 and refuses new requests, lets in-flight requests finish for
up to `--shutdown-timeout` seconds, then exits 0; a second signal exits at once.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Optional

import typer

from salesai.errors import SalesAIError


def serve(
    checkpoint: Path = typer.Argument(
        ..., help="Checkpoint directory, or an ONNX export for --backend onnxruntime*."),
    backend: str = typer.Option(
        "pytorch", "--backend", help="pytorch, onnxruntime, onnxruntime-int8, -q8 or -q4."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (127.0.0.1 = this machine only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    api_key_file: Optional[Path] = typer.Option(
        None, "--api-key-file", help="File with one API key per line (also: SALESAI_API_KEY)."),
    allow_unauthenticated: bool = typer.Option(
        False, "--allow-unauthenticated", help="Serve a non-local --host without API keys."),
    served_model_name: Optional[str] = typer.Option(
        None, "--served-model-name", help="The `model` name clients send (default: the directory name)."),
    max_batch_size: int = typer.Option(8, "--max-batch-size", help="Sequences decoded together."),
    max_queue: int = typer.Option(64, "--max-queue", help="Requests waiting beyond the batch; more get 503."),
    max_prefill_tokens: int = typer.Option(
        4096, "--max-prefill-tokens", help="Padded prompt positions per joint prefill (1 = one by one)."),
    queue_timeout: float = typer.Option(60.0, "--queue-timeout", help="Seconds a request may wait (504)."),
    max_body_bytes: int = typer.Option(1_000_000, "--max-body-bytes", help="Largest request body (413)."),
    max_tokens_cap: Optional[int] = typer.Option(
        None, "--max-tokens-cap", help="Largest max_tokens accepted (default: the context length)."),
    max_logprobs: int = typer.Option(
        5, "--max-logprobs", help="Most top_logprobs (chat) / logprobs (completions) per token."),
    max_request_tokens: int = typer.Option(
        4096, "--max-request-tokens", help="n x max_tokens one request may ask for (400 above)."),
    max_inputs: int = typer.Option(64, "--max-inputs", help="Texts per /v1/classify request (classifiers)."),
    rate_limit: Optional[float] = typer.Option(None, "--rate-limit", help="Requests per minute per API key."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allowed CORS origin (repeatable)."),
    media_url_host: list[str] = typer.Option(
        [], "--media-url-host", help="Host (or host:port) whose http(s) image URLs are fetched (repeatable); "
        "none = image_url takes data: URIs only."),
    media_url_max_bytes: int = typer.Option(
        5_000_000, "--media-url-max-bytes", help="Largest image fetched from a URL (400 above)."),
    media_url_timeout: float = typer.Option(
        5.0, "--media-url-timeout", help="Seconds to fetch one image URL, in all (400 when slower)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the backend."),
    shutdown_timeout: float = typer.Option(30.0, "--shutdown-timeout", help="Seconds to drain on SIGTERM."),
    read_timeout: float = typer.Option(
        30.0, "--read-timeout", help="Seconds a request's headers and body may take to arrive."),
    enable_docs: bool = typer.Option(False, "--enable-docs", help="Serve /docs and /openapi.json."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Disable /metrics."),
    metrics_auth: bool = typer.Option(False, "--metrics-auth", help="Require the API key for /metrics."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Serve a model with an OpenAI-compatible API (/v1/completions, /v1/chat/completions;
    /v1/classify for a classifier trained with `salesai train --task classify`)."""
    from salesai_serve.backends import BACKEND_NAMES, load_backend
    from salesai_serve.settings import ServeSettings, read_api_keys

    if backend not in BACKEND_NAMES:
        raise SalesAIError(f"--backend {backend!r}: expected one of {', '.join(BACKEND_NAMES)}")
    if not checkpoint.is_dir():
        raise SalesAIError(f"{checkpoint}: checkpoint or export directory not found")
    settings = ServeSettings(
        model_id=served_model_name or checkpoint.resolve().name,
        host=host, port=port,
        api_keys=read_api_keys(str(api_key_file) if api_key_file else None,
                               os.environ.get("SALESAI_API_KEY")),
        allow_unauthenticated=allow_unauthenticated,
        metrics_public=not metrics_auth, enable_metrics=not no_metrics, enable_docs=enable_docs,
        cors_origins=list(cors_origin), max_batch_size=max_batch_size, max_queue=max_queue,
        max_prefill_tokens=max_prefill_tokens,
        queue_timeout_s=queue_timeout, max_body_bytes=max_body_bytes, max_tokens_cap=max_tokens_cap,
        max_inputs=max_inputs, max_request_tokens=max_request_tokens, max_logprobs=max_logprobs,
        rate_limit_rpm=rate_limit,
        shutdown_timeout_s=shutdown_timeout, read_timeout_s=read_timeout,
        media_url_hosts=list(media_url_host), media_url_max_bytes=media_url_max_bytes,
        media_url_timeout_s=media_url_timeout,
    )
    settings.check()
    if backend.startswith("onnx"):
        if not (checkpoint / "manifest.json").is_file():
            raise SalesAIError(f"{checkpoint}: expected an ONNX export (manifest.json) for "
                               f"--backend {backend}")
    else:  # a checkpoint, or a training run directory (its latest checkpoint), checked before serving
        from salesai_serve.backends.torch_backend import resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint)
    run_server(settings, lambda: load_backend(backend, checkpoint, threads), log_level)


def run_server(settings: Any, loader: Any, log_level: str = "info") -> None:
    """Run uvicorn until SIGTERM/SIGINT; the first signal drains, a second exits at once."""
    from salesai_serve.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    server = make_server(create_app(settings, loader), settings, log_level)
    print(f"salesai serve: http://{settings.host}:{settings.port}/v1 (model '{settings.model_id}', "
          f"{'API key required' if settings.api_keys else 'no API key'})", flush=True)
    server.run()


def make_server(app: Any, settings: Any, log_level: str = "info") -> Any:
    """A uvicorn.Server for `app` whose signals drain: see `handle_exit`."""
    import threading

    import uvicorn

    state = app.state.server

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            """First signal: /ready and new requests answer 503, in-flight requests get
            `shutdown_timeout_s` to finish, then the engine ends the rest with an error (SD-02:
            an SSE error event or a 503); uvicorn stops anyway 2 s later. Second signal: exit now.
            Signals are not recorded for re-raising (uvicorn would re-raise SIGTERM after
            shutdown and the process would end with -15 instead of 0)."""
            if self.should_exit:
                self.force_exit = True
                return
            state.draining = True
            self.should_exit = True
            timer = threading.Timer(settings.shutdown_timeout_s, state.abort_in_flight)
            timer.daemon = True
            timer.start()

    return Server(uvicorn_config(app, settings, log_level))


def uvicorn_config(app: Any, settings: Any, log_level: str = "info") -> Any:
    """uvicorn's Config for `app`: the read deadline per request (slow clients), keep-alive 5 s,
    no server header or access log, and a hard stop a little after the drain deadline."""
    import uvicorn

    from salesai_serve.slowclients import read_deadline_protocol

    state = app.state.server
    protocol = read_deadline_protocol(settings.read_timeout_s, lambda: state.metrics.rejected("read_timeout"))
    return uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                          http=protocol or "auto", timeout_keep_alive=5, server_header=False,
                          access_log=False,
                          timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s) + 2)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


__all__ = ["make_server", "register", "run_server", "serve", "uvicorn_config"]
