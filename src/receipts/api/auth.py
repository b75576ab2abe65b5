"""Who is calling: ``Authorization: Bearer <JWT>`` as Supabase issues them (HS256, signed with
the project's JWT secret), or an edge-function key. The principal decides the producer and
what may be read.

Supabase signs two kinds of token with that secret: the access tokens of signed-in users
(``role: authenticated``, ``sub`` the user's id, ``aud: authenticated``, ``iss`` the project's
auth URL) and the project's API keys (``role: anon`` or ``service_role``, ``iss: supabase``,
no ``aud`` and no ``sub``). Both carry ``exp``.
"""

from __future__ import annotations

import functools
import hmac
import time
from typing import Any, Final

import jwt

from ..access import Principal
from ..errors import UnauthorizedError
from .settings import Settings

# Clocks differ: a token minted a moment ago elsewhere may look issued in the future here.
# PostgREST, which Supabase runs in front of the same tokens, allows 30 seconds too.
CLOCK_SKEW: Final = 30


@functools.lru_cache(maxsize=4096)
def _verified(
    token: str, secret: str, issuers: tuple[str, ...], require_exp: bool
) -> dict[str, Any]:
    """Signature-checked claims, their issuer checked. Cached: a client sends the same token
    with every request, and HMAC + base64 + JSON per request is a good part of a small
    request's cost. Only valid tokens are cached (exceptions are not); the time-based claims
    and the audience are checked per use (``_check``)."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        issuer=issuers or None,
        leeway=CLOCK_SKEW,
        options={"require": ["role", "exp"] if require_exp else ["role"], "verify_aud": False},
    )
    return claims


def _check(claims: dict[str, Any], settings: Settings) -> None:
    """What a cached verdict must still pass now: not expired, not early, for us."""
    now = time.time()
    # int(): what PyJWT accepted (it takes "123" too), compared as it compares
    if "exp" in claims and int(claims["exp"]) <= now - CLOCK_SKEW:
        raise UnauthorizedError("token expired")
    if "nbf" in claims and int(claims["nbf"]) > now + CLOCK_SKEW:
        raise UnauthorizedError("token not yet valid (nbf)")
    audience = claims.get("aud")
    if audience is None:
        if claims.get("role") == "authenticated":
            raise UnauthorizedError("an end user's token needs an `aud` claim")
        return
    given = [audience] if isinstance(audience, str) else audience
    if not (isinstance(given, list) and any(a in settings.jwt_audiences for a in given)):
        raise UnauthorizedError(
            f"token audience {audience!r} is not accepted "
            f"(expected {' or '.join(sorted(settings.jwt_audiences))})"
        )


def authenticate(header: str | None, settings: Settings) -> Principal:
    """The principal behind an Authorization header; 401 for missing, invalid or expired."""
    if not header:
        if settings.insecure_dev:
            return Principal("service_role", "insecure-dev")
        raise UnauthorizedError("missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("expected Authorization: Bearer <token>")
    token = token.strip()
    for key in settings.edge_function_keys:  # constant-time: keys are secrets
        if hmac.compare_digest(token.encode(), key.encode()):
            return Principal("edge_function", "edge_function")
    if not settings.jwt_secret:
        raise UnauthorizedError("JWT authentication is not configured")
    try:
        claims = _verified(
            token, settings.jwt_secret, tuple(sorted(settings.jwt_issuers)),
            settings.jwt_require_exp,
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise UnauthorizedError(f"invalid token: {exc}") from None
    _check(claims, settings)
    role, sub = claims.get("role"), claims.get("sub")
    if role not in ("anon", "authenticated", "service_role"):
        raise UnauthorizedError(f"unknown role {role!r}")
    if role == "authenticated" and not (isinstance(sub, str) and sub):
        raise UnauthorizedError("an authenticated token needs a `sub` claim")
    return Principal(role, sub if isinstance(sub, str) else None)
