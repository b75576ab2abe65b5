"""``/health``, ``/metrics`` and ``/v0/catalog``: the service's state and what it accepts."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..errors import ReceiptsError
from .service import JSON, json_response, service_of

router = APIRouter()


@router.get("/health", tags=["service"])
async def health(request: Request) -> Response:
    """200 ``ok`` while writes are taken; 503 ``degraded``, with the problems, while they
    would be refused (the writer cannot start, the queue is full, the store is
    unreachable), so a load balancer stops sending requests here."""
    service = service_of(request)
    problems = await service.committer.problems()
    size = None
    try:
        size = await service.store_size()
    except ReceiptsError as error:
        problems.append(f"the store is unreachable: {error.message}")
    body: dict[str, Any] = {"status": "degraded" if problems else "ok", "receipts": size,
                            "checkpoint_size": service.checkpoint_size}  # fmt: skip
    if not problems:
        return json_response(body)
    body["problems"] = problems
    return Response(orjson.dumps(body), 503, {"Retry-After": "1"}, media_type=JSON)


@router.get("/metrics", response_class=PlainTextResponse, tags=["service"])
def metrics(request: Request) -> Response:
    return Response(service_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v0/catalog", tags=["catalog"])
def catalog(request: Request) -> Response:
    return json_response([t.summary() for t in service_of(request).ledger.catalog])


@router.get("/v0/catalog/{event_type}", tags=["catalog"])
def catalog_type(request: Request, event_type: str) -> Response:
    return json_response(service_of(request).ledger.catalog.get(event_type).schema())
