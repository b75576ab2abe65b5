"""What every resource module of the HTTP service shares: the ``Service`` (ledger, settings,
writer, metrics), the ``ReceiptsAPI`` app class with its plain POST path, and the small
helpers of every endpoint (the caller's principal, JSON responses, bounds of a seq).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..access import Principal
from ..commit import open_writer
from ..errors import ReceiptsError, StorageError
from ..ledger import Ledger
from .auth import authenticate
from .docs import add_security_schemes
from .metrics import Metrics
from .problems import internal_error, problem
from .settings import Settings

Endpoint = Callable[[Request], Awaitable[Response]]

log = logging.getLogger("receipts.api")

JSON: Final = "application/json"
MAX_SEQ: Final = 2**63 - 1  # seqs and tree sizes are int64 in every store (SQLite overflows beyond)
HEALTH_WAIT: Final = 2.0  # seconds /health waits for the store


def json_response(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, media_type=JSON)


def service_of(request: Request) -> Service:
    app: ReceiptsAPI = request.scope["app"]
    return app.service


def principal_of(request: Request) -> Principal:
    """The caller (401 unless its Authorization header authenticates)."""
    return authenticate(request.headers.get("authorization"), service_of(request).settings)


def reader_of(request: Request) -> Principal:
    """The caller, who must be allowed to read (403 for ``anon``)."""
    principal = principal_of(request)
    principal.require_reader()
    return principal


class Service:
    """What the routes share: the ledger, settings, the committer and metrics."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self.committer = open_writer(ledger, settings.commit_options())
        self.metrics = Metrics(ledger.size, lambda: self.checkpoint_size,
                               self.committer.group_sizes)  # fmt: skip
        self._sizing: asyncio.Future[int] | None = None

    @property
    def checkpoint_size(self) -> int:
        """Size of the latest checkpoint the writer signed (-1: none yet)."""
        return self.committer.checkpoint_size

    async def store_size(self) -> int:
        """The ledger's size for /health, or a StorageError if the store does not answer within
        ``HEALTH_WAIT`` seconds (on PostgreSQL reads wait while a write holds the connection).
        One read at a time: probes of a stuck store do not pile up threads."""
        if self._sizing is None or self._sizing.done():
            loop = asyncio.get_running_loop()
            self._sizing = loop.run_in_executor(None, self.ledger.size)
        try:
            return await asyncio.wait_for(asyncio.shield(self._sizing), HEALTH_WAIT)
        except TimeoutError:
            raise StorageError(f"no answer within {HEALTH_WAIT:g} s") from None


class ReceiptsAPI(FastAPI):
    """FastAPI, plus POST endpoints served straight from ``__call__``: the write endpoints take
    nothing but the request, so they skip the middleware stack and routing (docs/benchmarks.md
    §5). They are still documented in /openapi.json by their FastAPI routes, answer errors as
    the exception handlers do (problem+json), and are counted in /metrics."""

    def __init__(self, service: Service, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.plain: dict[str, Endpoint] = {}

    def serve_plainly(self, path: str, endpoint: Endpoint) -> None:
        self.plain[path] = endpoint

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            add_security_schemes(super().openapi())
        return self.openapi_schema  # type: ignore[return-value]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.plain.get(scope["path"])
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        start = time.perf_counter()
        scope["app"] = self
        try:
            response = await endpoint(Request(scope, receive))
        except ClientDisconnect:  # gone before its body was read: nobody to answer
            return
        except ReceiptsError as error:
            response = problem(error, scope["path"])
        except Exception:  # what ServerErrorMiddleware would do, as a problem
            log.exception("unhandled error in POST %s", scope["path"])
            response = internal_error(scope["path"])
        await response(scope, receive, send)
        self.service.metrics.observe("POST", scope["path"], response.status_code, start)
