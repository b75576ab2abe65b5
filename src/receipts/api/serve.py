"""``receipts serve``: the app under uvicorn, with what one connection may cost bounded before
the app sees a request, an access log, and a ``listening on`` line once the socket is bound.

Uvicorn's httptools protocol (what ``uvicorn[standard]`` runs) buffers a request's headers
without limit and resets its only timer, the keep-alive one, on any byte: a 64 MiB header
took the process to 837 MiB, and a client sending a header line a second stayed connected
for ever. ``Bounded`` adds three limits (settings ``header_limit``, ``header_timeout``,
``body_timeout``): the request line and headers beyond ``header_limit`` bytes are answered 431;
headers not complete ``header_timeout`` seconds after the connection opened or the request's
first byte, and a body not complete ``body_timeout`` seconds after its headers, 408. Either way
the connection is closed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..errors import HeadersTooLargeError, ReceiptsError, RequestTimeoutError
from .problems import problem_bytes
from .settings import Settings


class Bounded(HttpToolsProtocol):
    """Uvicorn's httptools protocol with the three bounds; ``bounded`` sets them."""

    header_limit = Settings.header_limit
    header_timeout = Settings.header_timeout
    body_timeout = Settings.body_timeout
    log: Callable[[str], object] | None = None  # the access log's, for what it refuses

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heading = True  # reading a request line and headers (or waiting for one)
        self._head_bytes = 0  # of the request whose headers are being read
        self._tail = b""  # the last bytes of that head: its end may straddle two reads
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._heading:
            if self._timer is None:  # the first bytes of the next request
                self._arm(self.header_timeout, "headers")
            # Counted before the parser sees them (it would keep them all): up to the blank
            # line that ends the head, or all of this read. A head that starts later in a
            # read (pipelined after a body) is not counted: it is at most one read.
            window = self._tail + data if self._tail else data
            end = window.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
            self._tail = window[-3:] if end < 0 else b""
            if self._head_bytes > self.header_limit:
                limit = self.header_limit
                error = f"the request line and headers are over the limit of {limit} bytes"
                self._refuse(HeadersTooLargeError(error))
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._heading = False
        self._head_bytes = 0
        self._tail = b""
        self._arm(self.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._heading = True

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timed_out, seconds, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, seconds: float, what: str) -> None:
        self._timer = None
        self._refuse(RequestTimeoutError(f"the request's {what} took over {seconds:g} s"))

    def _refuse(self, error: ReceiptsError) -> None:
        """Answer ``error`` if no response is under way, and close the connection."""
        self._refused = True
        self._disarm()
        if self.log is not None:
            self.log(f"- - {error.http_status} - ({error.message})\n")
        cycle = self.cycle
        if self.transport.is_closing():
            return
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(problem_bytes(error))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app, if reading the body, sees the client gone
            cycle.message_event.set()
        self.transport.close()


def bounded(settings: Settings, log: Callable[[str], object] | None = None) -> type[Bounded]:
    """The protocol class with ``settings``' bounds (``log``: where it notes what it refuses)."""
    limits = {
        "header_limit": settings.header_limit,
        "header_timeout": settings.header_timeout,
        "body_timeout": settings.body_timeout,
        "log": staticmethod(log) if log is not None else None,
    }
    return type("Bounded", (Bounded,), limits)


class AccessLog:
    """One line per request: method, path, status and duration. The path as sent (still
    percent-encoded, no query), so a line is one line. Written straight to the stream (about
    2 us a line; through ``logging``, 13)."""

    def __init__(self, app: Any, write: Callable[[str], object]) -> None:
        self.app = app
        self.write = write

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = "-"  # no response: the client went away first

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = (scope.get("raw_path") or scope["path"].encode()).decode(
                "ascii", "backslashreplace"
            )
            ms = (time.perf_counter() - start) * 1000
            self.write(f"{scope['method']} {path} {status} {ms:.1f}ms\n")


class Server(uvicorn.Server):
    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            print(f"listening on http://{shown}:{port}", file=sys.stderr, flush=True)


def run(app: Any, settings: Settings, host: str, port: int) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (port 0: any free port, named in the
    ``listening on`` line)."""
    log = sys.stderr.write if settings.access_log else None  # line-buffered: a line a write
    if log is not None:
        app = AccessLog(app, log)
    config = uvicorn.Config(
        app, host=host, port=port, http=bounded(settings, log), log_level="warning",
        access_log=False,
    )  # fmt: skip
    server = Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
