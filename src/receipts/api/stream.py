"""``/v0/stream``: server-sent events, every new receipt the caller may read, live and
resumable; after an OCN decision or explanation, its ``ocn.weave.audit.v1`` event."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import ErrorDetail, ValidationError
from ..model import Receipt
from .docs import SECURED
from .events import audit_of, audited
from .service import MAX_SEQ, Service, reader_of, service_of

PAGE: Final = 500
KEEP_ALIVE: Final = 15  # seconds between comments on an idle stream

_SEQ = re.compile(r"-?[0-9]+")  # ASCII digits only (str.isdigit takes "²")

# Characters JSON leaves as they are but many line readers end a line at (Python's
# str.splitlines, and the clients built on it): escaped, an event's data stays one line.
_LINE_BREAKS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)

router = APIRouter(tags=["receipts"])


def _one_line(data: bytes) -> bytes:
    """``data`` (UTF-8 JSON) with U+0085, U+2028 and U+2029 escaped: the same JSON value."""
    for raw, escaped in _LINE_BREAKS:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


@router.get("/v0/stream", openapi_extra=SECURED)
async def stream(request: Request, after: int | None = Query(None, ge=-1, le=MAX_SEQ)) -> Response:
    """Server-sent events: every new receipt from ``after`` on, live. Resumable: each event's
    id is its seq, and a reconnecting client's ``Last-Event-ID`` wins over ``after``."""
    principal = reader_of(request)
    last = (request.headers.get("last-event-id") or "").strip()
    cursor = -1 if after is None else after
    if last:  # an id we sent is a seq; anything else is not ours to resume from
        if not (_SEQ.fullmatch(last) and -1 <= int(last) <= MAX_SEQ):
            raise ValidationError(
                "Last-Event-ID is not a seq", [ErrorDetail("/last-event-id", "expected a seq")]
            )
        cursor = int(last)
    events = _tail(request, service_of(request), cursor, principal.visible_to)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})  # fmt: skip


def _page(
    service: Service, cursor: int, visible: str | None
) -> list[tuple[Receipt, dict[str, Any] | None]]:
    """The next receipts, each with its audit event if it has one (as it stands now)."""
    ledger, source = service.ledger, service.settings.source_uri
    page = ledger.query(after=cursor, limit=PAGE, visible_to=visible)
    return [(r, audit_of(ledger, r, source) if audited(r) else None) for r in page]


async def _tail(
    request: Request, service: Service, cursor: int, visible: str | None
) -> AsyncIterator[bytes]:
    yield b": receipts stream\n\n"
    committer = service.committer
    while not await request.is_disconnected():
        commits = committer.commits  # a commit while we read must not be slept through
        page = await run_in_threadpool(_page, service, cursor, visible)
        for r, audit in page:
            yield b"id: %d\nevent: receipt\ndata: %s\n\n" % (r.seq, _one_line(r.to_json()))
            if audit is not None:  # the same id: resuming after the receipt skips it too
                yield b"id: %d\nevent: audit\ndata: %s\n\n" % (
                    r.seq,
                    _one_line(orjson.dumps(audit)),
                )
            cursor = r.seq
        if len(page) < PAGE and committer.commits == commits:
            try:
                await asyncio.wait_for(committer.committed.wait(), timeout=KEEP_ALIVE)
            except TimeoutError:
                yield b": keep-alive\n\n"
