"""The ASGI app: ``create_app(ledger, settings)``.

One writer does every write (group commits and checkpoints): the committer of receipts.commit,
on a SQLite file a process of its own, elsewhere a thread. Reads run in the threadpool on the
store's read connection. Every ``checkpoint_interval`` seconds the writer integrates and signs
a checkpoint when there is something new, so proofs stay fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..commit import open_writer
from ..errors import ReceiptsError, StorageError
from ..ledger import Ledger
from .body import reject_nul_params
from .docs import add_security_schemes
from .metrics import Metrics, MetricsMiddleware
from .problems import (
    handle_http_exception,
    handle_receipts_error,
    handle_request_validation,
    internal_error,
    problem,
)
from .settings import Settings

Endpoint = Callable[[Request], Awaitable[Response]]

log = logging.getLogger("receipts.api")

HEALTH_WAIT: Final = 2.0  # seconds /health waits for the store


class Service:
    """What the routes share: the ledger, settings, the committer and metrics."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self.committer = open_writer(ledger, settings.commit_options())
        self.metrics = Metrics(self)
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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
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
        service: Service = self.state.service
        service.metrics.observe("POST", scope["path"], response.status_code, start)


def create_app(ledger: Ledger, settings: Settings) -> ReceiptsAPI:
    service = Service(ledger, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: ReceiptsAPI) -> AsyncIterator[None]:
        # A writer thread (PostgreSQL, :memory:) and the read threadpool give up the GIL in
        # every database call; at the default 5 ms switch interval each reacquisition can wait
        # that long behind the event loop. 1 ms measured best (bench/api.py).
        previous = sys.getswitchinterval()
        sys.setswitchinterval(min(previous, 0.001))
        await service.committer.start()
        try:
            yield
        finally:
            await service.committer.stop()
            sys.setswitchinterval(previous)

    app = ReceiptsAPI(
        title="receipts",
        summary="A verifiable receipts ledger: append, query, prove.",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(reject_nul_params)],
        docs_url=None,  # docs.install serves /docs without a CDN
        redoc_url=None,
    )
    app.state.service = service
    app.add_exception_handler(ReceiptsError, handle_receipts_error)
    app.add_exception_handler(RequestValidationError, handle_request_validation)
    app.add_exception_handler(HTTPException, handle_http_exception)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)

    from . import docs, events, routes

    routes.install(app, service)
    events.install(app, service)
    docs.install(app)
    return app
