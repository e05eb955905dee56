"""OpenAI-shaped errors: one exception type the HTTP layer turns into a JSON error body.

Body: `{"error": {"message": str, "type": str, "param": str | None, "code": str | None}}`.
Status policy (docs/serving.md): 400 invalid request, 401 auth, 404 unknown model/route,
413 body too large, 429 rate limit, 503 not ready / queue full / draining, 504 queue-wait
timeout, 500 only for server bugs. Messages are one line, bounded in length, and never carry
tracebacks, file paths, prompts or keys.
"""

from __future__ import annotations

from typing import Any

MAX_MESSAGE_CHARS = 500  # error bodies stay small whatever the input (VAL-14)

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "unavailable_error",
    504: "timeout_error",
}


class APIError(Exception):
    """An HTTP error with an OpenAI error body; `headers` such as Retry-After go with it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 invalid_request_error naming the field."""
    return APIError(400, message, param=param, code=code)


def unavailable(message: str, code: str, retry_after: int = 1) -> APIError:
    """A 503 with Retry-After (the OpenAI client retries it)."""
    return APIError(503, message, code=code, headers={"Retry-After": str(retry_after)})


__all__ = ["APIError", "invalid", "unavailable"]
