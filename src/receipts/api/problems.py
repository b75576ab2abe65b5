"""RFC 9457 problem details: every error leaves the service as application/problem+json."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import OverloadedError, ReceiptsError

PROBLEM = "application/problem+json"


def problem(error: ReceiptsError, instance: str | None = None) -> Response:
    status = error.http_status
    body = {
        "type": f"urn:receipts:problem:{error.code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": error.message,
        "code": error.code,
        "errors": [e.to_dict() for e in error.errors],
    }
    if instance:
        body["instance"] = instance
    headers = {}
    if isinstance(error, OverloadedError):
        headers["Retry-After"] = str(error.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="receipts"'
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM)


async def handle_receipts_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReceiptsError)
    return problem(exc, request.url.path)
