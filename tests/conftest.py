"""Shared fixtures for the ledger-core suite: a fresh ledger, the built-in catalog, and valid
receipt requests built from each event type's catalog example."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from receipts import Catalog, EventType, Ledger

pytest_plugins = ["pg"]  # PostgreSQL fixtures: pg_template, pg_url

# No per-example deadline: on a loaded machine one example may take longer than Hypothesis's
# 200 ms default, and a correct test would fail (tests never depend on the machine's speed).
settings.register_profile("receipts", deadline=None)
settings.load_profile("receipts")

# The nine domains of the seed catalog (seeds/ledger-event-catalog-v0.md): 94 event types.
# Other built-in domains (e.g. the OCN CloudEvents) may come on top.
SEED_DOMAINS = {
    "data_export": 5,
    "device_capability": 20,
    "expertise": 17,
    "geo_expansion": 3,
    "identity": 6,
    "model_lifecycle": 5,
    "moderation": 6,
    "payments": 13,
    "security": 19,
}
SEED_TYPE_COUNT = 94

# Preferred producer when an event type allows several: the least privileged one, so that
# client-writable types are exercised through the client path.
_PRODUCER_PREFERENCE = ("client", "edge_function", "service_role_pipeline")


@dataclass(frozen=True)
class Sample:
    """A valid receipt request for one event type and a producer allowed to write it."""

    event_type: EventType
    request: dict[str, Any]
    producer: str

    @property
    def payload(self) -> dict[str, Any]:
        return self.request["payload"]  # type: ignore[no-any-return]


def schema_refs(node: Any) -> list[str]:
    """Every ``$ref`` and ``$dynamicRef`` in a JSON Schema (empty: it is self-contained)."""
    if isinstance(node, dict):
        own = [v for k, v in node.items() if k in ("$ref", "$dynamicRef")]
        return own + [r for v in node.values() for r in schema_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in schema_refs(v)]
    return []


def allowed_producer(event_type: EventType) -> str:
    """The least privileged producer the catalog lets write ``event_type``."""
    return next(p for p in _PRODUCER_PREFERENCE if p in event_type.writers)


def forbidden_producer(event_type: EventType) -> str | None:
    """A producer the catalog does NOT let write ``event_type`` (None if all may)."""
    return next((p for p in _PRODUCER_PREFERENCE if p not in event_type.writers), None)


def build_request(spec: EventType, /, **overrides: Any) -> dict[str, Any]:
    """A valid request from the type's catalog example (first entity type, entity id
    ``subject-1``); ``overrides`` replace or add request fields."""
    assert spec.example is not None, f"{spec.name} has no catalog example"
    request: dict[str, Any] = {
        "domain": spec.domain,
        "event_type": spec.name,
        "entity_type": spec.entity_types[0],
        "entity_id": "subject-1",
        "payload": copy.deepcopy(spec.example),
    }
    request.update(overrides)
    return request


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a ledger runs once per backend, unless marked
    ``@pytest.mark.backends("sqlite")`` for what only one backend has."""
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("backend", marker.args if marker else BACKENDS)


@pytest.fixture
def ledger_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty ledger database on ``backend``."""
    if backend == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "l.db")


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url) as opened:
        yield opened


@pytest.fixture
def unruled_ledger(ledger_url: str) -> Iterator[Ledger]:
    """A ledger that does not check the lifecycle rules (docs/doors.md), for sweeps that store
    each catalog type's example on its own: the rules would refuse a lone refund_completed.
    tests/test_doors.py holds the rules themselves, and the record of a back-fill's switch."""
    with Ledger.open(ledger_url, catalog=catalog_without_rules()) as opened:
        yield opened


def catalog_without_rules() -> Catalog:
    """The built-in catalog with no lifecycle rules (the states are still filed): nothing to
    check, so nothing switched off to record (unlike ``Ledger.open(url, rules=False)``)."""
    catalog = Catalog.load()
    catalog.states = {
        name: dataclasses.replace(state, rules=False) for name, state in catalog.states.items()
    }
    return catalog


@pytest.fixture
def sample_for(catalog: Catalog) -> Callable[..., Sample]:
    """``sample_for("payment_captured", entity_id="pi_1", occurred_at=...)`` -> Sample."""

    def make(name: str, /, **overrides: Any) -> Sample:
        event_type = catalog.get(name)
        return Sample(
            event_type, build_request(event_type, **overrides), allowed_producer(event_type)
        )

    return make


@pytest.fixture
def request_for(sample_for: Callable[..., Sample]) -> Callable[..., dict[str, Any]]:
    """Just the request of :func:`sample_for`, for tests that choose the producer themselves."""

    def make(name: str, /, **overrides: Any) -> dict[str, Any]:
        return sample_for(name, **overrides).request

    return make
