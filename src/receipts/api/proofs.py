"""``/v0/checkpoint`` and ``/v0/proofs``: the signed checkpoint, inclusion and consistency
proofs — what a client needs to check the ledger offline."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..errors import ErrorDetail, NotFoundError, ValidationError
from .docs import SECURED
from .receipts import visible_receipt
from .service import MAX_SEQ, json_response, reader_of, service_of

router = APIRouter(tags=["proofs"])


@router.get("/v0/checkpoint", response_class=PlainTextResponse)
def checkpoint(request: Request) -> Response:
    """The latest signed checkpoint (C2SP signed note), verbatim."""
    latest = service_of(request).ledger.latest_checkpoint()
    if latest is None:
        raise NotFoundError("no checkpoint yet", [ErrorDetail("/size", "nothing signed yet")])
    return PlainTextResponse(latest.note)


@router.get("/v0/proofs/inclusion", openapi_extra=SECURED)
def inclusion(
    request: Request,
    id: str | None = None,
    seq: int | None = Query(None, ge=0, le=MAX_SEQ),
    size: int | None = Query(None, ge=1, le=MAX_SEQ),
    leaf_hash: str | None = Query(None, pattern="^[0-9a-f]{64}$"),
) -> Response:
    """An offline bundle {entry, proof} for a receipt (by id or seq) in a checkpoint. With
    ``leaf_hash`` (and ``seq``) the proof alone, hashes only, to anyone: no credentials."""
    if leaf_hash is not None:
        if seq is None or id is not None:
            raise ValidationError(
                "a proof by leaf hash names the leaf's seq", [ErrorDetail("/seq", "required")]
            )
        ledger = service_of(request).ledger
        proof, rotations = ledger.prove_leaf(seq, bytes.fromhex(leaf_hash), size)
        body = {"leaf_hash": leaf_hash, "proof": proof}
        return json_response(body | ({"rotations": rotations} if rotations else {}))
    if (id is None) == (seq is None):
        reader_of(request)
        raise ValidationError("give id or seq", [ErrorDetail("/id", "exactly one of id, seq")])
    receipt = visible_receipt(request, id, seq)
    return json_response(service_of(request).ledger.prove(receipt.id, size).to_dict())


@router.get("/v0/proofs/consistency")
def consistency(
    request: Request,
    old: int = Query(..., alias="from", ge=0, le=MAX_SEQ),
    new: int = Query(..., alias="to", ge=0, le=MAX_SEQ),
) -> Response:
    """RFC 9162 consistency proof between two tree sizes (hex hashes)."""
    hashes = service_of(request).ledger.consistency(old, new)
    return json_response({"old_size": old, "new_size": new, "hashes": [h.hex() for h in hashes]})
