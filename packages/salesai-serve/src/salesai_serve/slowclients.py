"""A read deadline per request against slow clients (slowloris): uvicorn's h11 protocol, guarded.

uvicorn closes idle keep-alive connections, but it waits forever for a request whose headers
or body trickle in (one byte a second keeps a connection, and its memory, alive). The protocol
class from `read_deadline_protocol(seconds, on_timeout)` gives every request `seconds` to
arrive completely, headers and body, counted from the moment its connection opened or the
previous response on that connection ended; a request still incomplete then has its
connection closed (the handler waiting for the body sees a disconnect and stops). Requests
already received are never cut, however long their answer takes. Each connection has its own
timer on the event loop, so a slow client never delays the others.

It subclasses uvicorn's `H11Protocol` (pure Python, always installed with uvicorn); where that
class cannot be imported, `read_deadline_protocol` returns None and uvicorn's default is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("salesai_serve")


def read_deadline_protocol(seconds: float, on_timeout: Callable[[], None] | None = None) -> Any:
    """An `asyncio.Protocol` class for `uvicorn.Config(http=...)`; see the module docstring."""
    try:
        import h11
        from uvicorn.protocols.http.h11_impl import H11Protocol
    except ImportError:  # pragma: no cover - a uvicorn without its h11 implementation
        return None

    receiving = (h11.IDLE, h11.SEND_BODY)  # the client's side: request not (completely) received yet

    class ReadDeadlineProtocol(H11Protocol):
        _deadline: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request on this kept-alive connection gets its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _expire(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.conn.their_state not in receiving:
                return
            started = self.conn.their_state is h11.SEND_BODY or bool(self.conn.trailing_data[0])
            if started:  # a request began arriving but not all of it within the deadline
                log.info("closed a connection: request not received within %g s", seconds)
                if on_timeout is not None:
                    on_timeout()
            self.transport.close()

    return ReadDeadlineProtocol


__all__ = ["read_deadline_protocol"]
