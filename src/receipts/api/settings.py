"""Service settings, from the environment (``RECEIPTS_*``) or given directly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class Settings:
    jwt_secret: str | None = None
    edge_function_keys: frozenset[str] = field(default_factory=frozenset)
    insecure_dev: bool = False
    source_uri: str = "urn:receipts:ledger"  # CloudEvents `source` of receipts we emit
    body_limit: int = 1 << 20  # bytes
    checkpoint_interval: float = 1.0  # seconds; 0 disables the background checkpointer
    max_queue: int = 10_000  # receipts waiting for commit before 429
    # Receipts per group commit. Several waiting batches share a transaction, its fsync and
    # the index pages they touch: 1,000 -> 4,000 took the batch endpoint +11 % (benchmarks §5).
    group_max: int = 4000
    # Seconds a group waits for company once a commit is due (the in-process committer; the
    # writer process takes whatever queued while it committed, without waiting).
    group_wait: float = 0.001
    store_unknown_cloudevents: bool = False
    # Commit in a process of its own when the ledger is a SQLite file (see writer.py).
    writer_process: bool = True

    def __post_init__(self) -> None:
        if not self.jwt_secret and not self.insecure_dev:
            raise UsageError(
                "RECEIPTS_JWT_SECRET is not set: refusing to serve without authentication "
                "(use --insecure-dev for local experiments)"
            )

    @classmethod
    def from_env(cls, *, insecure_dev: bool = False, **overrides: object) -> Settings:
        env = os.environ
        keys = frozenset(
            k.strip() for k in env.get("RECEIPTS_EDGE_FUNCTION_KEYS", "").split(",") if k.strip()
        )
        values: dict[str, object] = {
            "jwt_secret": env.get("RECEIPTS_JWT_SECRET") or None,
            "edge_function_keys": keys,
            "insecure_dev": insecure_dev,
            "source_uri": env.get("RECEIPTS_SOURCE_URI", cls.source_uri),
            "body_limit": _number("RECEIPTS_BODY_LIMIT", int, cls.body_limit),
            "checkpoint_interval": _number(
                "RECEIPTS_CHECKPOINT_INTERVAL", float, cls.checkpoint_interval
            ),
            "store_unknown_cloudevents": env.get("RECEIPTS_STORE_UNKNOWN_CLOUDEVENTS") == "1",
            "writer_process": env.get("RECEIPTS_WRITER_PROCESS", "1") != "0",
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


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
