"""``/v0/receipts`` and ``/v0/entities``: append, read one, query, an entity's current view."""

from __future__ import annotations

from typing import Any, Final

import orjson
from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ErrorDetail, NotFoundError, ValidationError
from ..model import Receipt
from ..validate import REQUEST_FIELDS
from .body import read_json
from .docs import SECURED
from .service import JSON, MAX_SEQ, json_response, principal_of, reader_of, service_of

MAX_LIMIT: Final = 1000

_STRING = {"type": "string"}
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["domain", "event_type", "entity_type", "entity_id", "payload"],
    "additionalProperties": False,
    "properties": {
        **{k: _STRING for k in sorted(REQUEST_FIELDS)},
        "payload": {"type": "object"},
        "op": {"enum": ["assert", "amend", "void", "restate"]},
        "owner_user_id": {"type": ["string", "null"]},
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {
                "schema": {"oneOf": [REQUEST_SCHEMA, {"type": "array", "items": REQUEST_SCHEMA}]}
            }
        },
    }
}

router = APIRouter(tags=["receipts"])


@router.post("/v0/receipts", status_code=201, openapi_extra={**_BODY, **SECURED})
async def append(request: Request) -> Response:
    """Append one receipt request, or an array (one atomic batch). 201 = durably committed."""
    service = service_of(request)
    principal = principal_of(request)
    producer = principal.producer
    body = await read_json(request, service.settings.body_limit)
    many = type(body) is list
    items = body if many else [body]
    if not items:
        raise ValidationError("empty batch", [ErrorDetail("", "expected at least one receipt")])
    pointers = [f"/{i}" for i in range(len(items))] if many else [""]
    for raw, pointer in zip(items, pointers, strict=True):
        principal.claim(raw, pointer)
    # An end user's revisions are checked against the heads' owners in the write
    # transaction itself (batch.Batch): a check here could be raced by the head's commit.
    pending = list(service.ledger.pending(items, producer=producer, pointers=pointers))
    stored = await service.committer.submit(pending)
    service.metrics.appended.labels(producer).inc(len(stored))
    dicts = [r.to_dict() for r in stored]
    return json_response(dicts if many else dicts[0], 201)


def visible_receipt(request: Request, receipt_id: str | None, seq: int | None = None) -> Receipt:
    """The receipt with id ``receipt_id`` (or at ``seq``) if the caller may read it; else the
    404 of a missing one, so a caller learns nothing about receipts it cannot read (not even
    the id of the receipt at a seq)."""
    principal = reader_of(request)
    ledger = service_of(request).ledger
    if receipt_id is not None:
        receipt = ledger.get(receipt_id)
        missing = NotFoundError(f"no receipt {receipt_id!r}", [ErrorDetail("/id", "not found")])
    else:
        assert seq is not None
        receipt = ledger.receipt_at(seq)
        missing = NotFoundError(f"no receipt at seq {seq}", [ErrorDetail("/id", "not found")])
    if not ledger.readable(receipt, principal.visible_to):
        raise missing
    return receipt


@router.get("/v0/receipts/{receipt_id}", openapi_extra=SECURED)
def get_receipt(request: Request, receipt_id: str, format: str | None = None) -> Response:
    """One receipt; ``?format=cloudevent`` gives it as a CloudEvent."""
    receipt = visible_receipt(request, receipt_id)
    if format == "cloudevent":
        from ..cloudevents import receipt_to_cloudevent

        service = service_of(request)
        event = receipt_to_cloudevent(receipt, source=service.settings.source_uri,
                                      catalog=service.ledger.catalog)  # fmt: skip
        return Response(orjson.dumps(event), media_type="application/cloudevents+json")
    if format not in (None, "json"):
        raise ValidationError("unknown format", [ErrorDetail("/format", "expected cloudevent")])
    return json_response(receipt.to_dict())


@router.get("/v0/receipts", openapi_extra=SECURED)
def list_receipts(
    request: Request,
    entity: str | None = None,
    correlation_id: str | None = None,
    domain: str | None = None,
    event_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: int | None = Query(None, ge=-1, le=MAX_SEQ),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
) -> Response:
    """Receipts matching every filter, in seq order; page with ``after=next_after``."""
    principal = reader_of(request)
    items = list(service_of(request).ledger.query(
        entity=entity, correlation_id=correlation_id, domain=domain, event_type=event_type,
        since=since, until=until, after=after, limit=limit, visible_to=principal.visible_to,
    ))  # fmt: skip
    next_after = items[-1].seq if len(items) == limit else None
    return json_response({"items": [r.to_dict() for r in items], "next_after": next_after})


@router.get("/v0/entities/{entity}/current", openapi_extra=SECURED)
def current(request: Request, entity: str, include_voided: bool = False) -> Response:
    """The current view of an entity: the latest revision of each logical event."""
    principal = reader_of(request)
    ledger = service_of(request).ledger
    heads = ledger.current(entity, include_voided=include_voided)
    visible = principal.visible_to
    return json_response([r.to_dict() for r in heads if ledger.readable(r, visible)])
