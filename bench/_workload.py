"""Shared workload for the benchmarks: catalog-valid receipt requests and machine facts.

Requests are built from each event type's catalog ``example`` payload, cycling all types in
catalog order. Each request gets its own entity id and a counter in ``payload.notes`` (a
shared convention key, so every type accepts it); every third one carries a
``payload.correlation_id``; every other one an ``owner_user_id``. Nested example values are
shared between requests (nothing on the write path mutates a payload).

Cycling every type over scattered entities breaks the lifecycle rules of docs/doors.md (a
``refund_completed`` with no approval), so the benches that write it open their ledgers with
``without_rules()``: the derived states are still filed, there is nothing to check, and so no
back-fill's switch to record (``rules=False`` would record one: docs/doors.md).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import platform
import sqlite3
import statistics
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import receipts
from receipts.catalog import Catalog

# Every catalog type lists service_role_pipeline among its writers, and append_batch takes
# one producer per call.
PRODUCER = "service_role_pipeline"


def without_rules(catalog: Catalog | None = None) -> Catalog:
    """``catalog`` (the built-in one by default), copied, with no lifecycle rules."""
    out = copy.copy(catalog or Catalog.load())
    out.states = {n: dataclasses.replace(s, rules=False) for n, s in out.states.items()}
    return out


_DISTS = ("receipts", "eventsourcing", "jsonschema", "jsonschema-rs", "orjson", "rfc8785")


def make_requests(n: int, catalog: Catalog | None = None) -> list[dict[str, Any]]:
    catalog = catalog or Catalog.load()
    types = list(catalog)
    for t in types:
        if t.example is None or PRODUCER not in t.writers:
            raise SystemExit(f"event type {t.name} has no example or does not allow {PRODUCER}")
    out = []
    for i in range(n):
        t = types[i % len(types)]
        payload = dict(t.example)  # type: ignore[arg-type]
        payload["notes"] = f"bench receipt #{i}"
        if i % 3 == 0:
            payload["correlation_id"] = f"flow-{i // 9:08d}"
        entity_type = t.entity_types[(i // len(types)) % len(t.entity_types)]
        request: dict[str, Any] = {
            "domain": t.domain,
            "event_type": t.name,
            "entity_type": entity_type,
            "entity_id": f"bench-{(i * 7919) % 250_000:06d}",
            "payload": payload,
        }
        if i % 2 == 0:
            request["owner_user_id"] = f"user_{i % 10_000:05d}"
        out.append(request)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def source_fingerprint() -> str:
    """SHA-256 over the measured package's files (.py, .sql, .json), to tie numbers to code."""
    root = Path(receipts.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".sql", ".json") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def machine() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "receipts_src_sha256": source_fingerprint(),
        "versions": {d: version(d) for d in _DISTS},
    }
