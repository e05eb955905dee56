"""Server settings: one dataclass with every limit, cap and switch of `salesai serve`.

Torch-free and FastAPI-free, so the CLI can build and check it before loading anything.
Defaults are deliberately small (TGI-like caps) and every one is a `salesai serve` option.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from salesai.errors import SalesAIError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeSettings:
    """What the HTTP layer and the engine enforce; see docs/serving.md for each option."""

    model_id: str = "model"  # the served model name (`model` field of requests, /v1/models)
    host: str = "127.0.0.1"  # bind address; anything else needs an API key or allow_unauthenticated
    port: int = 8000
    api_keys: list[str] = field(default_factory=list, repr=False)  # never printed
    allow_unauthenticated: bool = False  # serve without keys on a non-local address
    metrics_public: bool = True  # /metrics without a key (it holds no secrets)
    enable_metrics: bool = True
    enable_docs: bool = False  # /docs and /openapi.json (off by default)
    cors_origins: list[str] = field(default_factory=list)  # CORS is off unless origins are named
    max_batch_size: int = 8  # rows decoded together (continuous batching)
    max_prefill_tokens: int = 4096  # padded positions of one joint prefill (1 = each prompt alone)
    max_queue: int = 64  # requests waiting beyond the running batch; more -> 503 at once
    queue_timeout_s: float = 60.0  # waiting longer than this -> 504
    max_body_bytes: int = 1_000_000  # request bodies above this -> 413
    max_prompt_tokens: int | None = None  # None = the model's context length
    max_tokens_cap: int | None = None  # largest accepted max_tokens; None = the context length
    default_max_tokens: int = 256  # chat completions without max_tokens (completions: 16, as OpenAI)
    max_n: int = 4  # choices per request
    max_logprobs: int = 5  # top alternatives per token (chat top_logprobs, completions logprobs)
    max_request_tokens: int = 4096  # n x max_tokens of one request (LIM-03); more -> 400
    max_stop: int = 4  # stop strings per request
    max_stop_chars: int = 64  # characters per stop string
    max_messages: int = 256  # chat messages per request
    max_inputs: int = 64  # texts per /v1/classify request
    max_media_items: int = 4  # images + audio clips per chat request
    media_url_hosts: list[str] = field(default_factory=list)  # image_url hosts fetched; empty = never fetch
    media_url_max_bytes: int = 5_000_000  # a fetched image larger than this -> 400
    media_url_timeout_s: float = 5.0  # connect + download of one image, in all -> 400 when slower
    rate_limit_rpm: float | None = None  # requests per minute per API key; None = no limit
    shutdown_timeout_s: float = 30.0  # SIGTERM: in-flight requests get this long to finish
    read_timeout_s: float = 30.0  # a request's headers + body must arrive within this (slowloris guard)
    ping_interval_s: float = 10.0  # SSE comment pings while nothing else is sent
    progress_timeout_s: float = 120.0  # a forward pass stuck this long makes /ready answer 503

    def check(self) -> None:
        """Refuse unsafe or impossible combinations with a one-line SalesAIError."""
        if self.host not in LOCAL_HOSTS and not self.api_keys and not self.allow_unauthenticated:
            raise SalesAIError(
                f"--host {self.host}: serving beyond this machine needs an API key "
                "(--api-key-file or SALESAI_API_KEY); pass --allow-unauthenticated to serve without one"
            )
        for name in ("max_batch_size", "max_n", "max_stop", "max_inputs", "max_body_bytes",
                     "default_max_tokens", "max_request_tokens", "max_prefill_tokens"):
            if getattr(self, name) < 1:
                raise SalesAIError(f"{name}={getattr(self, name)}: expected an integer >= 1")
        if self.read_timeout_s <= 0 or self.shutdown_timeout_s < 0:
            raise SalesAIError("--read-timeout / --shutdown-timeout: expected seconds > 0")
        if self.media_url_max_bytes < 1 or self.media_url_timeout_s <= 0:
            raise SalesAIError("--media-url-max-bytes / --media-url-timeout: expected values > 0")
        if any(not h.strip() or "/" in h or h.startswith("*") for h in self.media_url_hosts):
            raise SalesAIError("--media-url-host: expected a host name or host:port "
                               "(no scheme, path or wildcard)")
        if not 0 <= self.max_logprobs <= 20:
            raise SalesAIError(f"--max-logprobs {self.max_logprobs}: expected 0..20")
        if self.max_queue < 0:
            raise SalesAIError(f"max_queue={self.max_queue}: expected an integer >= 0")
        if not 0 < self.port < 65536:
            raise SalesAIError(f"--port {self.port}: expected 1..65535")
        if self.rate_limit_rpm is not None and self.rate_limit_rpm <= 0:
            raise SalesAIError(f"--rate-limit {self.rate_limit_rpm}: expected requests per minute > 0")
        if any(not k or k != k.strip() for k in self.api_keys):
            raise SalesAIError("API keys: expected non-empty keys without surrounding whitespace")


def read_api_keys(path: str | None, env_value: str | None) -> list[str]:
    """Keys from a file (one per line, `#` comments and blank lines skipped) and/or an env value
    (comma-separated). The error never shows a key."""
    keys: list[str] = []
    if path is not None:
        from pathlib import Path

        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SalesAIError(f"--api-key-file {file}: cannot read it ({type(exc).__name__})") from None
        keys += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if not keys:
            raise SalesAIError(f"--api-key-file {file}: expected one API key per line, found none")
    if env_value:
        keys += [k.strip() for k in env_value.split(",") if k.strip()]
    return keys


__all__ = ["LOCAL_HOSTS", "ServeSettings", "read_api_keys"]
