"""CloudEvents over HTTP: ``POST /events`` (structured, binary and batch modes) and the OCN
Weave view ``GET /receipts/{trace_id}``.

Every accepted event becomes a receipt (idempotent by its (source, id)); the response is
CloudEvents too: for an OCN decision or explanation its ``ocn.weave.audit.v1`` event, for any
other event the stored receipt as a CloudEvent.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..cloudevents import (
    audit_event,
    cloudevent_to_request,
    from_http,
    receipt_to_cloudevent,
    to_batch,
    to_structured,
)
from ..cloudevents.convert import as_stored, request_id
from ..cloudevents.ocn import AUDITED_TYPES
from ..errors import (
    ErrorDetail,
    IdConflictError,
    NotFoundError,
    ReceiptsError,
    ValidationError,
)
from ..ledger import Ledger
from ..model import Receipt
from ..validate import nul_problems
from .body import read_body
from .docs import SECURED
from .service import Service, json_response, principal_of, reader_of, service_of

UNKNOWN_DOMAIN, UNKNOWN_TYPE = "cloudevents", "unknown_event"


def _to_request(event: dict[str, Any], service: Service) -> dict[str, Any]:
    try:
        return cloudevent_to_request(event, service.ledger.catalog)
    except ValidationError as error:
        unknown = any(e.pointer.endswith("/type") for e in error.errors)
        if not (unknown and service.settings.store_unknown_cloudevents):
            raise
    attributes = {k: v for k, v in event.items() if k not in ("data", "data_base64")}
    data = {k: event[k] for k in ("data", "data_base64") if k in event}
    request: dict[str, Any] = {
        "id": request_id(event["source"], event["id"]),
        "domain": UNKNOWN_DOMAIN,
        "event_type": UNKNOWN_TYPE,
        "entity_type": "source",
        "entity_id": event["source"],
        "payload": {**data, "cloudevent": attributes},
    }
    if event.get("time"):
        request["occurred_at"] = event["time"]
    return request


def _event_pointer(pointer: str, prefix: str, ocn: bool) -> str:
    """A receipt request's pointer as the event's: payload errors point into ``data``, where
    the sender put the value, and the event type is ``type``."""
    head = f"{prefix}/payload/data" if ocn else f"{prefix}/payload"
    if pointer.startswith(head):
        return f"{prefix}/data{pointer[len(head) :]}"
    return f"{prefix}/type" if pointer == f"{prefix}/event_type" else pointer


def _in_event(
    detail: ErrorDetail, prefixes: list[str], ocn: list[bool], batch: bool
) -> ErrorDetail:
    """``detail`` pointing into the event it names (an index, in a batch)."""
    first = detail.pointer.split("/")[1] if detail.pointer.count("/") > 1 else ""
    i = int(first) if batch and first.isascii() and first.isdigit() else 0
    if i >= len(prefixes):
        return detail
    return ErrorDetail(_event_pointer(detail.pointer, prefixes[i], ocn[i]), detail.message)


router = APIRouter(tags=["cloudevents"])


def audited(receipt: Receipt) -> bool:
    return (
        receipt.domain == "ocn" and receipt.event_type in AUDITED_TYPES and receipt.op == "assert"
    )


def audit_of(ledger: Ledger, receipt: Receipt, source: str) -> dict[str, Any]:
    """The receipt's audit event: confirmed, with its inclusion proof, by the first checkpoint
    that holds it, which never changes, so the same id is always the same bytes."""
    first = ledger.first_checkpoint_over(receipt.seq)
    if first is None:
        return audit_event(receipt, source=source, status="stored", verified_at=None)
    proof = ledger.prove(receipt.id, first.size).proof
    return audit_event(
        receipt, source=source, status="confirmed", verified_at=first.signed_at, proof=proof
    )


def _answer(service: Service, receipt: Receipt) -> dict[str, Any]:
    """The CloudEvent answering for ``receipt``: its OCN audit event, or itself."""
    source = service.settings.source_uri
    if audited(receipt):
        return audit_of(service.ledger, receipt, source)
    return receipt_to_cloudevent(receipt, source=source, catalog=service.ledger.catalog)


def _requests(events: list[dict[str, Any]], prefixes: list[str], service: Service) -> list[Any]:
    """The receipt requests of ``events``; one error naming every problem of any of them."""
    problems = [p for e, at in zip(events, prefixes, strict=True) for p in nul_problems(e, at)]
    if problems:
        raise ValidationError("the CloudEvent(s) hold U+0000 (NUL)", problems)
    requests = []
    for event, prefix in zip(events, prefixes, strict=True):
        try:
            requests.append(_to_request(event, service))
        except ValidationError as error:
            problems += [ErrorDetail(prefix + e.pointer, e.message) for e in error.errors]
    if problems:
        raise ValidationError("CloudEvent(s) rejected; nothing was stored", problems)
    return requests


@router.post("/events", status_code=201, openapi_extra=SECURED)
async def ingest(request: Request) -> Response:
    """CloudEvents HTTP binding v1.0.2: structured, binary or batch mode, chosen by
    Content-Type. Known ledger types and the OCN types are validated against their
    schemas. Retrying an event (same source and id) returns the first result."""
    service = service_of(request)
    principal = principal_of(request)
    producer = principal.producer
    body = await read_body(request, service.settings.body_limit)
    events = from_http(request.headers.items(), body)  # as sent: repeated headers too
    content_type = request.headers.get("content-type", "").lower()
    batch = content_type.startswith("application/cloudevents-batch+json")
    prefixes = [f"/{i}" for i in range(len(events))] if batch else [""]
    requests = _requests(events, prefixes, service)
    for raw, prefix in zip(requests, prefixes, strict=True):
        principal.claim(raw, prefix)
    try:
        stored = await _commit(service, requests, producer, prefixes)
    except ReceiptsError as error:  # refused when validated, or at commit (a rule, a conflict)
        ocn = [r["domain"] == "ocn" for r in requests]
        error.errors = [_in_event(e, prefixes, ocn, batch) for e in error.errors]
        raise
    service.metrics.appended.labels(producer).inc(len(stored))
    answers = await run_in_threadpool(lambda: [_answer(service, r) for r in stored])
    headers, payload = to_batch(answers) if batch else to_structured(answers[0])
    return Response(payload, 201, headers=dict(headers))


async def _commit(
    service: Service, requests: list[dict[str, Any]], producer: str, prefixes: list[str]
) -> list[Receipt]:
    """Commit the events' requests. A retry of an event spelled otherwise (its ``time`` in
    another offset or precision) is the retry it means: it gets the first receipt."""
    ledger = service.ledger
    try:
        pending = list(ledger.pending(requests, producer=producer, pointers=prefixes))
        return await service.committer.submit(pending)
    except IdConflictError:
        retried = await run_in_threadpool(_as_stored, ledger, requests)
        if retried is None:
            raise
    pending = list(ledger.pending(retried, producer=producer, pointers=prefixes))
    return await service.committer.submit(pending)


def _as_stored(ledger: Ledger, requests: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """``requests`` with each one that means a stored receipt put as stored; None if none."""
    out, changed = [], False
    for request in requests:
        try:
            prior = ledger.get(request["id"])
        except NotFoundError:
            out.append(request)
            continue
        same = as_stored(prior, request)
        out.append(same or request)
        changed = changed or (same is not None and same != request)
    return out if changed else None


@router.get("/receipts/{trace_id}", openapi_extra=SECURED)
def weave(request: Request, trace_id: str) -> Response:
    """The OCN Weave view of a trace: every receipt of it as a CloudEvent, and the
    ``ocn.weave.audit.v1`` event of each decision and explanation (``stored`` until a
    signed checkpoint covers it, then ``confirmed``)."""
    principal = reader_of(request)
    service = service_of(request)
    ledger = service.ledger
    receipts = list(ledger.query(correlation_id=trace_id, visible_to=principal.visible_to))
    audits = [_answer(service, r) for r in receipts if audited(r)]
    source = service.settings.source_uri
    events = [receipt_to_cloudevent(r, source=source, catalog=ledger.catalog) for r in receipts]
    return json_response({"trace_id": trace_id, "events": events, "audits": audits})
