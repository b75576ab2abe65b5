"""The ASGI app: ``create_app(ledger, settings)`` assembles the service from its resources.

One writer does every write (group commits and checkpoints): the committer of receipts.commit,
on a SQLite file a process of its own, elsewhere a thread. Reads run in the threadpool on the
store's read connection. Every ``checkpoint_interval`` seconds the writer integrates and signs
a checkpoint when there is something new, so proofs stay fresh.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

from fastapi import Depends
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from ..errors import ReceiptsError
from ..ledger import Ledger
from . import docs, events, health, proofs, receipts, states, stream
from .body import check_params
from .metrics import MetricsMiddleware
from .problems import handle_http_exception, handle_receipts_error, handle_request_validation
from .service import ReceiptsAPI, Service
from .settings import Settings

# A writer thread (PostgreSQL, :memory:) and the read threadpool give up the GIL in every
# database call; at Python's default 5 ms switch interval each reacquisition can wait that long
# behind the event loop. The service runs with a shorter one (docs/benchmarks.md §5).
SWITCH_INTERVAL = 0.001


def create_app(ledger: Ledger, settings: Settings) -> ReceiptsAPI:
    service = Service(ledger, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: ReceiptsAPI) -> AsyncIterator[None]:
        previous = sys.getswitchinterval()
        sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
        await service.committer.start()
        try:
            yield
        finally:
            await service.committer.stop()
            sys.setswitchinterval(previous)

    app = ReceiptsAPI(
        service,
        title="receipts",
        summary="A verifiable receipts ledger: append, query, prove.",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(check_params)],
        docs_url=None,  # docs.install serves /docs without a CDN
        redoc_url=None,
    )
    app.state.service = service
    app.add_exception_handler(ReceiptsError, handle_receipts_error)
    app.add_exception_handler(RequestValidationError, handle_request_validation)
    app.add_exception_handler(HTTPException, handle_http_exception)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    for resource in (receipts, proofs, states, stream, events, health):
        app.include_router(resource.router)
    # The write endpoints take nothing but the request: served straight from ReceiptsAPI
    app.serve_plainly("/v0/receipts", receipts.append)
    app.serve_plainly("/events", events.ingest)
    docs.install(app)
    return app
