"""Request bodies: size limit (413), content type (415), JSON (400) — before any work."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from ..errors import (
    ErrorDetail,
    FormatError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationError,
    json_pointer,
)

_NUL = "U+0000 (NUL) cannot be stored (PostgreSQL text and jsonb refuse it)"


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


def nul_problems(value: Any, pointer: str = "") -> list[ErrorDetail]:
    """Every string or member name holding U+0000, by pointer: no backend may be asked to
    store what one of them cannot (bad input is a 422 on every backend, never a 5xx)."""
    problems, stack = [], [(value, pointer)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                problems.append(ErrorDetail(at, _NUL))
        elif isinstance(item, dict):
            for key, member in item.items():
                here = at + json_pointer(key)
                if "\x00" in key:
                    problems.append(ErrorDetail(here, _NUL))
                stack.append((member, here))
        elif isinstance(item, list):
            stack.extend((member, f"{at}/{i}") for i, member in enumerate(item))
    return sorted(problems, key=lambda d: d.pointer)


def reject_nul(value: Any, pointer: str = "") -> None:
    problems = nul_problems(value, pointer)
    if problems:
        raise ValidationError("the request holds U+0000 (NUL)", problems)


def reject_nul_params(request: Request) -> None:
    """App-wide dependency: path and query parameters holding U+0000 are a 422."""
    params = [*request.path_params.items(), *request.query_params.multi_items()]
    reject_nul(dict(params))


async def read_json(request: Request, limit: int) -> Any:
    media = media_type(request)
    if not is_json(media):
        raise UnsupportedMediaTypeError(
            f"content type {media or '(none)'!r} is not accepted; send application/json"
        )
    document = parse_json(await read_body(request, limit))
    reject_nul(document)
    return document
