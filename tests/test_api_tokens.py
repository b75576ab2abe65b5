"""Supabase's tokens as Supabase issues them: signed-in users' access tokens (aud
``authenticated``, iss the project's auth URL) and the project's API keys (iss ``supabase``, no
aud), the settings that accept audiences and issuers and require ``exp``, and the bearer scheme
in /openapi.json with a /docs page that loads nothing from outside."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receipts.api import Settings, authenticate
from receipts.errors import UnauthorizedError, UsageError
from test_api_support import (
    AUTH_ISSUER,
    SECRET,
    USER_A,
    Api,
    api_key,
    assert_problem,
    bearer,
    captured,
    refund,
    serve,
    token,
    user_token,
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with serve(str(tmp_path / "tokens.db")) as opened:
        yield opened


def principal(credential: str, **settings: Any) -> tuple[str, str | None]:
    found = authenticate(f"Bearer {credential}", Settings(jwt_secret=SECRET, **settings))
    return found.role, found.sub


def refused(credential: str, **settings: Any) -> str:
    with pytest.raises(UnauthorizedError) as caught:
        authenticate(f"Bearer {credential}", Settings(jwt_secret=SECRET, **settings))
    return caught.value.message


def test_a_supabase_user_token_writes_and_reads_its_own_receipts(api: Api) -> None:
    user = bearer(user_token(USER_A))
    stored = api.append(refund("r-1"), user)
    assert (stored["producer"], stored["owner_user_id"]) == ("client", USER_A)
    assert api.client.get(f"/v0/receipts/{stored['id']}", headers=user).json() == stored
    # An anonymous sign-in is still an end user (role authenticated, aud authenticated).
    anonymous = bearer(user_token(USER_A, is_anonymous=True, email="", amr=[]))
    assert api.client.get("/v0/receipts", headers=anonymous).json()["items"] == [stored]


def test_the_supabase_api_keys_service_role_writes_anon_may_do_nothing(api: Api) -> None:
    stored = api.append(captured("pi-1"), bearer(api_key("service_role")))
    assert stored["producer"] == "service_role_pipeline"
    anon = bearer(api_key("anon"))
    body = assert_problem(api.post(refund(), anon), 403, "forbidden")
    assert body["detail"] == "role 'anon' may not write receipts"
    body = assert_problem(api.client.get("/v0/receipts", headers=anon), 403, "forbidden")
    assert body["detail"] == "role 'anon' may not read receipts"
    assert api.ledger.size() == 1


def test_audiences_a_token_may_name() -> None:
    assert principal(user_token(USER_A, aud=["authenticated", "other"])) == (
        "authenticated",
        USER_A,
    )
    assert refused(user_token(USER_A, aud=["storage"])) == (
        "token audience ['storage'] is not accepted (expected authenticated)"
    )
    mine = {"jwt_audiences": frozenset({"authenticated", "my-app"})}
    assert principal(user_token(USER_A, aud="my-app"), **mine) == ("authenticated", USER_A)
    assert refused(user_token(USER_A, aud="storage"), **mine) == (
        "token audience 'storage' is not accepted (expected authenticated or my-app)"
    )
    # API keys carry no audience; an end user's token must.
    assert principal(api_key("service_role")) == ("service_role", None)
    assert refused(user_token(USER_A, aud=None)) == "an end user's token needs an `aud` claim"


def test_issuers_when_configured_are_required() -> None:
    ours = {"jwt_issuers": frozenset({AUTH_ISSUER})}
    assert principal(user_token(USER_A), **ours) == ("authenticated", USER_A)
    assert refused(api_key("service_role"), **ours) == "invalid token: Invalid issuer"
    assert refused(user_token(USER_A, iss=None), **ours) == (
        'invalid token: Token is missing the "iss" claim'
    )
    both = {"jwt_issuers": frozenset({AUTH_ISSUER, "supabase"})}
    assert principal(api_key("service_role"), **both) == ("service_role", None)
    assert principal(api_key("service_role")) == ("service_role", None)  # none configured: any


def test_exp_is_required_unless_configured_otherwise() -> None:
    endless = token("service_role", ttl=None)
    assert refused(endless) == 'invalid token: Token is missing the "exp" claim'
    assert principal(endless, jwt_require_exp=False) == ("service_role", None)
    # An exp that is there is still checked.
    assert refused(api_key("service_role", ttl=-120), jwt_require_exp=False) == "token expired"


def test_jwt_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECEIPTS_JWT_SECRET", SECRET)
    default = Settings.from_env()
    assert default.jwt_audiences == {"authenticated"}
    assert default.jwt_issuers == frozenset() and default.jwt_require_exp is True
    monkeypatch.setenv("RECEIPTS_JWT_AUDIENCES", "authenticated, my-app")
    monkeypatch.setenv("RECEIPTS_JWT_ISSUERS", f"{AUTH_ISSUER},supabase")
    monkeypatch.setenv("RECEIPTS_JWT_REQUIRE_EXP", "0")
    settings = Settings.from_env()
    assert settings.jwt_audiences == {"authenticated", "my-app"}
    assert settings.jwt_issuers == {AUTH_ISSUER, "supabase"}
    assert settings.jwt_require_exp is False
    monkeypatch.setenv("RECEIPTS_JWT_REQUIRE_EXP", "no")
    with pytest.raises(UsageError, match=r"RECEIPTS_JWT_REQUIRE_EXP='no': expected 1 \(on\)"):
        Settings.from_env()


# --- /openapi.json and /docs ---------------------------------------------------------------------

PROTECTED = {
    ("post", "/v0/receipts"),
    ("get", "/v0/receipts"),
    ("get", "/v0/receipts/{receipt_id}"),
    ("get", "/v0/entities/{entity}/current"),
    ("get", "/v0/proofs/inclusion"),
    ("get", "/v0/stream"),
    ("post", "/events"),
    ("get", "/receipts/{trace_id}"),
    ("get", "/v0/state/{name}/{key}"),
    ("get", "/v0/why/{entity}"),
}


def test_openapi_declares_the_bearer_scheme_on_the_protected_operations(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    secured = {
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"bearer": []}]
    }
    assert secured == PROTECTED
    # ...and those are exactly the ones that answer 401 without a token.
    for method, path in PROTECTED:
        url = path.replace("{receipt_id}", "x").replace("{entity}", "a:b")
        url = url.replace("{trace_id}", "t").replace("{name}", "refund").replace("{key}", "r:1")
        response = api.client.request(method.upper(), url)
        assert_problem(response, 401, "unauthorized")


def test_docs_load_with_no_outside_url(api: Api) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//", page.text), "the page names an outside URL"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(assets) == [
        "/docs/assets/favicon.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
    ]
    for asset in assets:
        response = api.client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset
    assert "url: '/openapi.json'" in page.text
    assert api.client.get("/redoc").status_code == 404  # it would need a CDN
