"""RFC 9457 problem details: every error leaves the service as application/problem+json."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ErrorDetail, OverloadedError, ReceiptsError, ValidationError, json_pointer

PROBLEM = "application/problem+json"


def _response(
    status: int,
    code: str,
    detail: str,
    errors: list[ErrorDetail],
    instance: str | None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    body = _body(status, code, detail, errors, instance, extensions)
    return Response(body, status, headers=headers, media_type=PROBLEM)


def _body(
    status: int,
    code: str,
    detail: str,
    errors: list[ErrorDetail],
    instance: str | None,
    extensions: dict[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "type": f"urn:receipts:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [e.to_dict() for e in errors],
    }
    if instance:
        body["instance"] = instance
    body.update(extensions or {})
    return orjson.dumps(body)


def problem_bytes(error: ReceiptsError) -> bytes:
    """A whole HTTP/1.1 response for ``error`` that closes the connection, for the server to
    write itself when a request never reached the app (its headers too large or too slow)."""
    status = error.http_status
    body = _body(status, error.code, error.message, error.errors, None)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: {PROBLEM}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def problem(error: ReceiptsError, instance: str | None = None) -> Response:
    headers = {}
    if isinstance(error, OverloadedError):
        headers["Retry-After"] = str(error.retry_after)
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="receipts"'
    return _response(error.http_status, error.code, error.message, error.errors, instance,
                     headers, error.extensions())  # fmt: skip


def internal_error(instance: str | None = None) -> Response:
    """A bug, not the caller's fault: 500, with nothing of the exception in the body."""
    return _response(500, "internal_error", "internal server error", [], instance)


async def handle_receipts_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReceiptsError)
    return problem(exc, request.url.path)


async def handle_request_validation(request: Request, exc: Exception) -> Response:
    """FastAPI's own parameter checks (e.g. ``?limit=abc``) as a 422 problem, pointer ``/limit``."""
    assert isinstance(exc, RequestValidationError)
    details = [
        ErrorDetail(json_pointer(*[str(t) for t in e.get("loc", ())[1:]]), str(e.get("msg", "")))
        for e in exc.errors()
    ]
    return problem(ValidationError("invalid request parameters", details), request.url.path)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (404 no such route, 405 method not allowed) as problems."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, f"http_{status}")
    headers = dict(exc.headers) if exc.headers else None
    return _response(status, code, str(exc.detail), [], request.url.path, headers)
