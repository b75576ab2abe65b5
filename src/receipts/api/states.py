"""``/v0/state``, ``/v0/why`` and ``/v0/states``: derived states ("doors", docs/doors.md) with
the receipts that determined them, under the same read rules as the receipts themselves."""

from __future__ import annotations

from urllib.parse import unquote

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ErrorDetail, ValidationError
from .docs import SECURED
from .service import MAX_SEQ, json_response, reader_of, service_of

router = APIRouter(tags=["states"])

_AT_SEQ = Query(None, ge=0, le=MAX_SEQ, description="as the ledger knew it before this seq")
_KNOWN_AT = Query(None, description="as the ledger knew it at this time (recorded_at)")
_AS_OF = Query(None, description="as it was at this time (occurred_at, valid time)")


def _key_parts(request: Request) -> list[str]:
    """The key's parts: the path after ``/v0/state/{name}/``, split at ``/`` before
    percent-decoding, so a part may hold an encoded ``/`` (``%2F``)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    segments = raw.split(b"?", 1)[0].split(b"/")[4:]  # "", "v0", "state", name, parts...
    return [unquote(p.decode("utf-8", "replace")) for p in segments]


@router.get("/v0/state/{name}/{key:path}", openapi_extra=SECURED)
def state(
    request: Request,
    name: str,
    key: str,
    at_seq: int | None = _AT_SEQ,
    known_at: str | None = _KNOWN_AT,
    as_of: str | None = _AS_OF,
    prove: bool = False,
) -> Response:
    """The derived state ``name`` of a key (its parts separated by ``/``, each
    percent-encoded), with its evidence: the receipts, of those the caller may read, that
    determined it. ``?prove=1``: as of the latest checkpoint, an offline answer bundle."""
    principal = reader_of(request)
    ledger = service_of(request).ledger
    if prove:
        if known_at is not None:
            raise ValidationError(
                "prove answers as of a checkpoint",
                [ErrorDetail("/known_at", "not with prove; use at_seq")],
            )
        bundle = ledger.prove_state(name, _key_parts(request), at_seq=at_seq, as_of=as_of,
                                    visible_to=principal.visible_to)  # fmt: skip
        return json_response(bundle.to_dict())
    answer = ledger.state(
        name, _key_parts(request), at_seq=at_seq, known_at=known_at, as_of=as_of,
        visible_to=principal.visible_to,
    )  # fmt: skip
    return json_response(answer.to_dict())


@router.get("/v0/why/{entity}", openapi_extra=SECURED)
def why(
    request: Request,
    entity: str,
    at_seq: int | None = _AT_SEQ,
    known_at: str | None = _KNOWN_AT,
    as_of: str | None = _AS_OF,
) -> Response:
    """Every derived state about an entity (TYPE:ID), each with its evidence."""
    principal = reader_of(request)
    answers = service_of(request).ledger.why(
        entity, at_seq=at_seq, known_at=known_at, as_of=as_of, visible_to=principal.visible_to
    )
    return json_response({"entity": entity, "states": [a.to_dict() for a in answers]})


@router.get("/v0/states")
def states(request: Request) -> Response:
    """The derived states the catalog defines."""
    return json_response([s.summary() for s in service_of(request).ledger.catalog.states.values()])
