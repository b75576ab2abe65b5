"""The API's documentation page, /docs, with nothing from outside: Swagger UI's assets ship in
the fastapi-offline package and are served by the app, so the page works offline and loads no
script from a CDN. /openapi.json declares the bearer scheme, so /docs has an Authorize button
and sends the token with the requests it tries."""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS: Final = "/docs/assets"
SCHEMES: Final = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A Supabase access token or API key (HS256, the project's JWT secret), "
        "or an edge-function key. Roles: docs/service.md.",
    }
}
# On an operation: it needs `Authorization: Bearer <token>`.
SECURED: Final[dict[str, Any]] = {"security": [{"bearer": []}]}


def add_security_schemes(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {})["securitySchemes"] = SCHEMES
    return schema


def install(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # No validator badge: it would send the schema to an outside service.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )
