"""Request bodies: size limit (413), content type (415), JSON (400) — before any work."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.requests import Request

from ..errors import (
    ErrorDetail,
    FormatError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationError,
    json_pointer,
)
from ..jsontext import loads
from ..validate import nul_problems


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return loads(body)
    except FormatError as exc:
        raise FormatError("malformed JSON body", exc.errors) from None


def reject_nul(value: Any, pointer: str = "") -> None:
    problems = nul_problems(value, pointer)
    if problems:
        raise ValidationError("the request holds U+0000 (NUL)", problems)


async def check_params(request: Request) -> None:
    """App-wide dependency: a query parameter given twice is a 400 (which one would count is
    a guess), path and query parameters holding U+0000 a 422. (Async, so FastAPI does not hop
    to a worker thread for it on every request.)"""
    scope = request.scope
    query = scope.get("query_string", b"")
    if b"&" in query:
        names = Counter(name for name, _ in request.query_params.multi_items())
        twice = [name for name, n in names.items() if n > 1]
        if twice:
            raise FormatError(
                "ambiguous query: a parameter is given more than once",
                [ErrorDetail(json_pointer(name), f"given {names[name]} times; give it once")
                 for name in twice],
            )  # fmt: skip
    if b"%00" not in query and "\x00" not in scope.get("path", ""):
        return
    params = [*request.path_params.items(), *request.query_params.multi_items()]
    reject_nul(dict(params))


async def read_json(request: Request, limit: int) -> Any:
    media = media_type(request)
    if not is_json(media):
        raise UnsupportedMediaTypeError(
            f"content type {media or '(none)'!r} is not accepted; send application/json"
        )
    body = await read_body(request, limit)
    document = parse_json(body)
    if b"\\u0000" in body:  # the one way JSON carries U+0000: walk only then
        reject_nul(document)
    return document
