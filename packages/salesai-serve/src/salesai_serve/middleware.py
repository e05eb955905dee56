"""ASGI middleware: API-key auth with per-key rate limits, and the request body size limit.

Auth guards every path except an explicit allowlist (`/health`, `/health/live`, `/ready`,
`/health/ready`, and `/metrics` when public), so a route added later is guarded by default.
Keys are compared as SHA-256 digests with `hmac.compare_digest`, every configured key checked
(no early exit); a key never appears in a response or a log. CORS preflights (OPTIONS) pass
through to the CORS middleware, which answers them without touching the model.
The body limit answers 413 from `Content-Length` before reading, and counts the bytes of
chunked bodies as they arrive.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from salesai_serve.errors import APIError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/health", "/health/live", "/ready", "/health/ready"})


async def send_error(send: Send, error: APIError, extra_headers: dict[str, str] | None = None) -> None:
    """Send an OpenAI error body as a complete response."""
    body = json.dumps(error.body()).encode()
    headers = {"content-type": "application/json", "content-length": str(len(body)),
               **error.headers, **(extra_headers or {})}
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})
    await send({"type": "http.response.body", "body": body})


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyChecker:
    """Constant-time check of a presented key against every configured key's digest."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = [digest(k) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def match(self, presented: str) -> int | None:
        """Index of the matching key (every key compared, no early exit), or None."""
        got = digest(presented)
        found = None
        for i, d in enumerate(self._digests):
            if hmac.compare_digest(got, d) and found is None:
                found = i
        return found


class RateLimiter:
    """A token bucket per key: `rpm` requests per minute, bursts up to `rpm` (at least 1)."""

    def __init__(self, rpm: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rpm / 60.0
        self.burst = max(1.0, rpm)
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: int) -> float:
        """0 when allowed; else seconds until the next request would be."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class AuthMiddleware:
    """401 unless `Authorization: Bearer <key>` matches; 429 over the key's rate limit."""

    def __init__(self, app: ASGIApp, keys: KeyChecker, public: frozenset[str],
                 limiter: RateLimiter | None = None, on_reject: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.keys = keys
        self.public = public
        self.limiter = limiter
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        index: int | None = 0
        if self.keys:
            header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = header.partition(" ")
            index = self.keys.match(token) if scheme == "Bearer" and token else None
            if index is None:
                await send_error(send, APIError(401, "Invalid or missing API key (Authorization: Bearer KEY)",
                                                code="invalid_api_key"), {"WWW-Authenticate": "Bearer"})
                return
        if self.limiter is not None and index is not None:
            wait = self.limiter.acquire(index)
            if wait > 0:
                if self.on_reject:
                    self.on_reject("rate_limit")
                await send_error(send, APIError(429, "Rate limit reached for this API key; retry later",
                                                code="rate_limit_exceeded",
                                                headers={"Retry-After": str(math.ceil(wait))}))
                return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the limit."""


class BodyLimitMiddleware:
    """413 for bodies over `limit` bytes, by Content-Length or by counting chunks."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = APIError(413, f"request body over {self.limit} bytes", code="request_too_large")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await send_error(send, too_large)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await send_error(send, too_large)


__all__ = ["PUBLIC_PATHS", "AuthMiddleware", "BodyLimitMiddleware", "KeyChecker", "RateLimiter", "digest"]
