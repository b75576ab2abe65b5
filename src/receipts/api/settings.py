"""Service settings, from the environment (``RECEIPTS_*``) or given directly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..commit import CommitOptions
from ..errors import UsageError


@dataclass(frozen=True)
class Settings:
    jwt_secret: str | None = None
    # Supabase's claims (docs/service.md): a token's `aud` must be one of these (an end user's
    # token must carry one; the project's API keys carry none); `iss` must be one of
    # ``jwt_issuers`` when any are given; `exp` is required unless ``jwt_require_exp`` is off.
    jwt_audiences: frozenset[str] = frozenset({"authenticated"})
    jwt_issuers: frozenset[str] = frozenset()
    jwt_require_exp: bool = True
    edge_function_keys: frozenset[str] = field(default_factory=frozenset)
    insecure_dev: bool = False
    source_uri: str = "urn:receipts:ledger"  # CloudEvents `source` of receipts we emit
    body_limit: int = 1 << 20  # bytes
    # What one connection may cost `receipts serve` before its app sees a request (serve.py):
    # the request line and headers (431 beyond), and the time to send them and the body (408).
    header_limit: int = 16 * 1024  # bytes
    header_timeout: float = 10.0  # seconds
    body_timeout: float = 60.0  # seconds
    access_log: bool = True  # `receipts serve`: one line per request on stderr
    # The write path's options (receipts.commit.CommitOptions says what each does).
    checkpoint_interval: float = CommitOptions.checkpoint_interval
    max_queue: int = CommitOptions.max_queue  # beyond it, 429
    group_max: int = CommitOptions.group_max
    group_wait: float = CommitOptions.group_wait
    store_unknown_cloudevents: bool = False
    writer_process: bool = CommitOptions.writer_process

    def __post_init__(self) -> None:
        if not self.jwt_secret and not self.insecure_dev:
            raise UsageError(
                "RECEIPTS_JWT_SECRET is not set: refusing to serve without authentication "
                "(use --insecure-dev for local experiments)"
            )
        if not self.jwt_audiences:
            raise UsageError("RECEIPTS_JWT_AUDIENCES is empty: name at least one audience")
        for name in ("header_limit", "header_timeout", "body_timeout", "body_limit"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{_VARIABLES[name]} must be positive")

    def commit_options(self) -> CommitOptions:
        return CommitOptions(
            max_queue=self.max_queue,
            group_max=self.group_max,
            group_wait=self.group_wait,
            checkpoint_interval=self.checkpoint_interval,
            writer_process=self.writer_process,
        )

    @classmethod
    def from_env(cls, *, insecure_dev: bool = False, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "jwt_secret": env.get("RECEIPTS_JWT_SECRET") or None,
            "jwt_audiences": _names("RECEIPTS_JWT_AUDIENCES") or cls.jwt_audiences,
            "jwt_issuers": _names("RECEIPTS_JWT_ISSUERS"),
            "jwt_require_exp": _flag("RECEIPTS_JWT_REQUIRE_EXP", cls.jwt_require_exp),
            "edge_function_keys": _names("RECEIPTS_EDGE_FUNCTION_KEYS"),
            "insecure_dev": insecure_dev,
            "source_uri": env.get("RECEIPTS_SOURCE_URI", cls.source_uri),
            "body_limit": _number("RECEIPTS_BODY_LIMIT", int, cls.body_limit),
            "header_limit": _number("RECEIPTS_HEADER_LIMIT", int, cls.header_limit),
            "header_timeout": _number("RECEIPTS_HEADER_TIMEOUT", float, cls.header_timeout),
            "body_timeout": _number("RECEIPTS_BODY_TIMEOUT", float, cls.body_timeout),
            "access_log": _flag("RECEIPTS_ACCESS_LOG", cls.access_log),
            "checkpoint_interval": _number(
                "RECEIPTS_CHECKPOINT_INTERVAL", float, cls.checkpoint_interval
            ),
            "store_unknown_cloudevents": env.get("RECEIPTS_STORE_UNKNOWN_CLOUDEVENTS") == "1",
            "writer_process": env.get("RECEIPTS_WRITER_PROCESS", "1") != "0",
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


_VARIABLES = {
    "header_limit": "RECEIPTS_HEADER_LIMIT",
    "header_timeout": "RECEIPTS_HEADER_TIMEOUT",
    "body_timeout": "RECEIPTS_BODY_TIMEOUT",
    "body_limit": "RECEIPTS_BODY_LIMIT",
}


def _names(name: str) -> frozenset[str]:
    """A comma-separated list (blanks dropped)."""
    return frozenset(k.strip() for k in os.environ.get(name, "").split(",") if k.strip())


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    if raw not in ("0", "1"):
        raise UsageError(f"{name}={raw!r}: expected 1 (on) or 0 (off)")
    return raw == "1"


def _number(name: str, kind: type[int] | type[float], default: float) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return kind(default)
    try:
        return kind(raw)
    except ValueError:
        raise UsageError(
            f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}"
        ) from None
