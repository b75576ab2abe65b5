"""The /v0 API: append, query, current view, checkpoint, proofs, catalog, health, metrics,
and a server-sent-events tail of new receipts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from ..errors import (
    ErrorDetail,
    NotFoundError,
    PermissionDeniedError,
    ReceiptsError,
    ValidationError,
)
from ..model import Receipt
from ..validate import REQUEST_FIELDS
from .app import ReceiptsAPI, Service
from .auth import Principal, authenticate
from .body import read_json
from .docs import SECURED

JSON = "application/json"
MAX_LIMIT = 1000
MAX_SEQ = 2**63 - 1  # seqs and tree sizes are int64 in every store (SQLite overflows beyond)

_SEQ = re.compile(r"-?[0-9]+")  # ASCII digits only (str.isdigit takes "²")
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


# Characters JSON leaves as they are but many line readers end a line at (Python's
# str.splitlines, and the clients built on it): escaped, an event's data stays one line.
_LINE_BREAKS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def _one_line(data: bytes) -> bytes:
    """``data`` (UTF-8 JSON) with U+0085, U+2028 and U+2029 escaped: the same JSON value."""
    for raw, escaped in _LINE_BREAKS:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def json_response(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, media_type=JSON)


def principal_of(request: Request, service: Service) -> Principal:
    return authenticate(request.headers.get("authorization"), service.settings)


def _own(principal: Principal, raw: Any, pointer: str) -> None:
    """An end user writes only receipts it owns: owner_user_id is its `sub`, filled if absent."""
    if principal.role != "authenticated" or type(raw) is not dict:
        return
    owner = raw.setdefault("owner_user_id", principal.sub)
    if owner is None:
        raw["owner_user_id"] = principal.sub
    elif owner != principal.sub:
        raise PermissionDeniedError(
            "an end user may only write receipts it owns",
            [ErrorDetail(f"{pointer}/owner_user_id", f"expected {principal.sub!r} or absent")],
        )


def install(app: ReceiptsAPI, service: Service) -> None:
    ledger = service.ledger

    def readable(principal: Principal, receipt: Receipt) -> bool:
        if principal.reads_everything:
            return True
        return principal.sub is not None and ledger.store.can_read(receipt, principal.sub)

    @app.post("/v0/receipts", status_code=201, openapi_extra={**_BODY, **SECURED},
              tags=["receipts"])  # fmt: skip
    async def append(request: Request) -> Response:
        """Append one receipt request, or an array (one atomic batch). 201 = durably committed."""
        principal = principal_of(request, service)
        producer = principal.producer
        body = await read_json(request, service.settings.body_limit)
        many = type(body) is list
        items = body if many else [body]
        if not items:
            raise ValidationError("empty batch", [ErrorDetail("", "expected at least one receipt")])
        pointers = [f"/{i}" for i in range(len(items))] if many else [""]
        for raw, pointer in zip(items, pointers, strict=True):
            _own(principal, raw, pointer)
        # An end user's revisions are checked against the heads' owners in the write
        # transaction itself (Ledger.commit): a check here could be raced by the head's commit.
        pending = list(ledger.pending(items, producer=producer, pointers=pointers))
        stored = await service.committer.submit(pending)
        service.metrics.appended.labels(producer).inc(len(stored))
        dicts = [r.to_dict() for r in stored]
        return json_response(dicts if many else dicts[0], 201)

    app.serve_plainly("/v0/receipts", append)

    @app.get("/v0/receipts/{receipt_id}", tags=["receipts"], openapi_extra=SECURED)
    def get_receipt(request: Request, receipt_id: str, format: str | None = None) -> Response:
        """One receipt; ``?format=cloudevent`` gives it as a CloudEvent."""
        principal = principal_of(request, service)
        principal.require_reader()
        receipt = ledger.get(receipt_id)
        if not readable(principal, receipt):
            raise NotFoundError(f"no receipt {receipt_id!r}", [ErrorDetail("/id", "not found")])
        if format == "cloudevent":
            from ..cloudevents import receipt_to_cloudevent

            event = receipt_to_cloudevent(receipt, source=service.settings.source_uri,
                                          catalog=ledger.catalog)  # fmt: skip
            return Response(orjson.dumps(event), media_type="application/cloudevents+json")
        if format not in (None, "json"):
            raise ValidationError("unknown format", [ErrorDetail("/format", "expected cloudevent")])
        return json_response(receipt.to_dict())

    @app.get("/v0/receipts", tags=["receipts"], openapi_extra=SECURED)
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
        principal = principal_of(request, service)
        principal.require_reader()
        items = list(ledger.query(
            entity=entity, correlation_id=correlation_id, domain=domain, event_type=event_type,
            since=since, until=until, after=after, limit=limit,
            visible_to=None if principal.reads_everything else principal.sub,
        ))  # fmt: skip
        next_after = items[-1].seq if len(items) == limit else None
        return json_response({"items": [r.to_dict() for r in items], "next_after": next_after})

    @app.get("/v0/entities/{entity}/current", tags=["receipts"], openapi_extra=SECURED)
    def current(request: Request, entity: str, include_voided: bool = False) -> Response:
        """The current view of an entity: the latest revision of each logical event."""
        principal = principal_of(request, service)
        principal.require_reader()
        heads = ledger.current(entity, include_voided=include_voided)
        return json_response([r.to_dict() for r in heads if readable(principal, r)])

    @app.get("/v0/checkpoint", response_class=PlainTextResponse, tags=["proofs"])
    def checkpoint() -> Response:
        """The latest signed checkpoint (C2SP signed note), verbatim."""
        with ledger.store.read() as txn:
            latest = txn.checkpoint()
        if latest is None:
            raise NotFoundError("no checkpoint yet", [ErrorDetail("/size", "nothing signed yet")])
        return PlainTextResponse(latest.note)

    @app.get("/v0/proofs/inclusion", tags=["proofs"], openapi_extra=SECURED)
    def inclusion(
        request: Request,
        id: str | None = None,
        seq: int | None = Query(None, ge=0, le=MAX_SEQ),
        size: int | None = Query(None, ge=1, le=MAX_SEQ),
    ) -> Response:
        """An offline bundle {entry, proof} for a receipt (by id or seq) in a checkpoint."""
        principal = principal_of(request, service)
        principal.require_reader()
        if (id is None) == (seq is None):
            raise ValidationError("give id or seq", [ErrorDetail("/id", "exactly one of id, seq")])
        if seq is not None:
            found = list(ledger.query(after=seq - 1, limit=1))
            if not found or found[0].seq != seq:
                raise NotFoundError(f"no receipt at seq {seq}", [ErrorDetail("/seq", "not found")])
            id = found[0].id
        assert id is not None
        receipt = ledger.get(id)
        if not readable(principal, receipt):
            raise NotFoundError(f"no receipt {id!r}", [ErrorDetail("/id", "not found")])
        return json_response(ledger.prove(receipt.id, size).to_dict())

    @app.get("/v0/proofs/consistency", tags=["proofs"])
    def consistency(
        old: int = Query(..., alias="from", ge=0, le=MAX_SEQ),
        new: int = Query(..., alias="to", ge=0, le=MAX_SEQ),
    ) -> Response:
        """RFC 9162 consistency proof between two tree sizes (hex hashes)."""
        hashes = ledger.consistency(old, new)
        return json_response(
            {"old_size": old, "new_size": new, "hashes": [h.hex() for h in hashes]}
        )

    @app.get("/v0/catalog", tags=["catalog"])
    def catalog() -> Response:
        return json_response([t.summary() for t in ledger.catalog])

    @app.get("/v0/catalog/{event_type}", tags=["catalog"])
    def catalog_type(event_type: str) -> Response:
        return json_response(ledger.catalog.get(event_type).schema())

    @app.get("/health", tags=["service"])
    async def health() -> Response:
        """200 ``ok`` while writes are taken; 503 ``degraded``, with the problems, while they
        would be refused (the writer cannot start, the queue is full, the store is
        unreachable), so a load balancer stops sending requests here."""
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

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v0/stream", tags=["receipts"], openapi_extra=SECURED)
    async def stream(
        request: Request, after: int | None = Query(None, ge=-1, le=MAX_SEQ)
    ) -> Response:
        """Server-sent events: every new receipt from ``after`` on, live. Resumable: each event's
        id is its seq, and a reconnecting client's ``Last-Event-ID`` wins over ``after``."""
        principal = principal_of(request, service)
        principal.require_reader()
        last = (request.headers.get("last-event-id") or "").strip()
        cursor = -1 if after is None else after
        if last:  # an id we sent is a seq; anything else is not ours to resume from
            if not (_SEQ.fullmatch(last) and -1 <= int(last) <= MAX_SEQ):
                raise ValidationError(
                    "Last-Event-ID is not a seq", [ErrorDetail("/last-event-id", "expected a seq")]
                )
            cursor = int(last)
        visible = None if principal.reads_everything else principal.sub
        return StreamingResponse(_tail(request, cursor, visible), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip

    def _page(cursor: int, visible: str | None) -> list[Receipt]:
        return list(ledger.query(after=cursor, limit=500, visible_to=visible))

    async def _tail(request: Request, cursor: int, visible: str | None) -> AsyncIterator[bytes]:
        yield b": receipts stream\n\n"
        committer = service.committer
        while not await request.is_disconnected():
            commits = committer.commits  # a commit while we read must not be slept through
            page = await run_in_threadpool(_page, cursor, visible)
            for r in page:
                yield b"id: %d\nevent: receipt\ndata: %s\n\n" % (r.seq, _one_line(r.to_json()))
                cursor = r.seq
            if len(page) < 500 and committer.commits == commits:
                try:
                    await asyncio.wait_for(committer.committed.wait(), timeout=15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
