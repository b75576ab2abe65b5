"""The peer of bench/api.py: a bare Starlette endpoint that parses the same JSON and returns
201 — what any Python JSON service on uvicorn costs before it does anything durable."""

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def append(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps(body), 201, media_type="application/json")


app = Starlette(routes=[Route("/v0/receipts", append, methods=["POST"])])
