"""Request bodies: size limit (413), content type (415), JSON (400) — before any work."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from ..errors import ErrorDetail, FormatError, PayloadTooLargeError, UnsupportedMediaTypeError


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
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FormatError("malformed JSON body", [ErrorDetail("", str(exc))]) from None


async def read_json(request: Request, limit: int) -> Any:
    media = media_type(request)
    if not is_json(media):
        raise UnsupportedMediaTypeError(
            f"content type {media or '(none)'!r} is not accepted; send application/json"
        )
    return parse_json(await read_body(request, limit))
