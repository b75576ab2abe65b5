"""Who is calling: ``Authorization: Bearer <JWT>`` (HS256, Supabase's claims ``sub`` and
``role``) or an edge-function key. The principal decides the producer and what may be read."""

from __future__ import annotations

import functools
import hmac
import time
from dataclasses import dataclass
from typing import Any

import jwt

from ..errors import PermissionDeniedError, UnauthorizedError
from .settings import Settings

PRODUCER_OF = {
    "authenticated": "client",
    "edge_function": "edge_function",
    "service_role": "service_role_pipeline",
}


@dataclass(frozen=True, slots=True)
class Principal:
    role: str  # anon | authenticated | edge_function | service_role
    sub: str | None = None

    @property
    def producer(self) -> str:
        try:
            return PRODUCER_OF[self.role]
        except KeyError:
            raise PermissionDeniedError(f"role {self.role!r} may not write receipts") from None

    @property
    def reads_everything(self) -> bool:
        return self.role in ("service_role", "edge_function")

    def require_reader(self) -> None:
        if self.role == "anon":
            raise PermissionDeniedError("role 'anon' may not read receipts")


@functools.lru_cache(maxsize=4096)
def _verified(token: str, secret: str) -> dict[str, Any]:
    """Signature-checked claims. Cached: a client sends the same token with every request, and
    HMAC + base64 + JSON per request is a good part of a small request's cost. Only valid
    tokens are cached (exceptions are not), and time-based claims are re-checked per use."""
    claims: dict[str, Any] = jwt.decode(
        token, secret, algorithms=["HS256"], options={"require": ["role"]}
    )
    return claims


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
        claims = _verified(token, settings.jwt_secret)
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise UnauthorizedError(f"invalid token: {exc}") from None
    now = time.time()  # a cached verdict still expires, and may not be used early
    if ("exp" in claims and claims["exp"] <= now) or ("nbf" in claims and claims["nbf"] > now):
        raise UnauthorizedError("token expired or not yet valid")
    role, sub = claims.get("role"), claims.get("sub")
    if role not in ("anon", "authenticated", "service_role"):
        raise UnauthorizedError(f"unknown role {role!r}")
    if role == "authenticated" and not (isinstance(sub, str) and sub):
        raise UnauthorizedError("an authenticated token needs a `sub` claim")
    return Principal(role, sub if isinstance(sub, str) else None)
