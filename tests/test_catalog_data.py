"""Checks on the event catalog data files (src/receipts/catalog/data/<domain>.json).

Uses only json, pathlib and jsonschema so it runs before any loader code exists.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

DATA_DIR = Path(__file__).resolve().parents[1] / "src" / "receipts" / "catalog" / "data"

DOMAINS = [
    "expertise",
    "payments",
    "moderation",
    "identity",
    "security",
    "geo_expansion",
    "model_lifecycle",
    "data_export",
    "device_capability",
    "ocn",
    "ledger",
]
# The seed's catalog (94 types in 9 domains) plus the OCN CloudEvent types and the ledger's own
# (the switch of the lifecycle rules, docs/doors.md).
LEDGER_TYPES = 94
OCN_TYPES = {"orca_decision", "orca_explanation", "weave_audit"}
OWN_TYPES = {"lifecycle_rules_suspended", "lifecycle_rules_resumed"}
PRODUCERS = {"client", "edge_function", "service_role_pipeline"}
OWN_SOURCE = {
    "expertise_level_asserted",
    "model_pack_download_started",
    "signal_prekey_bundle_fetch_started",
    "signal_prekey_bundle_fetch_succeeded",
    "signal_prekey_bundle_fetch_failed",
}
# Shared conventions the loader adds itself; they must not appear in per-type schemas
# (except `source` for the OWN_SOURCE types, whose payload defines its own `source`).
CONVENTION_KEYS = {"source", "schema_version", "correlation_id", "notes"}
EXPECTED_COUNTS = {
    "expertise": 17,
    "payments": 13,
    "moderation": 6,
    "identity": 6,
    "security": 19,
    "geo_expansion": 3,
    "model_lifecycle": 5,
    "data_export": 5,
    "device_capability": 20,
    "ocn": 3,
    "ledger": 2,
}
IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
TOP_KEYS = {"domain", "title", "purpose", "event_types", "states"}
TYPE_KEYS = {"entity_types", "writers", "why", "own_source", "payload", "example"}


def _check_date_times(schema: dict[str, Any], value: Any) -> None:
    """jsonschema only asserts `format` with optional extras installed; check date-time here."""
    if schema.get("format") == "date-time":
        assert isinstance(value, str)
        assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", value)
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _check_date_times(sub, value[key])
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _check_date_times(schema["items"], item)


def _load(domain: str) -> dict[str, Any]:
    with (DATA_DIR / f"{domain}.json").open(encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


CATALOG = {d: _load(d) for d in DOMAINS}
TYPES = [
    pytest.param(domain, name, spec, id=name)
    for domain, doc in CATALOG.items()
    for name, spec in doc["event_types"].items()
]


def test_exactly_the_eleven_domain_files() -> None:
    assert sorted(p.stem for p in DATA_DIR.glob("*.json")) == sorted(DOMAINS)


@pytest.mark.parametrize("domain", DOMAINS)
def test_domain_file_shape(domain: str) -> None:
    doc = CATALOG[domain]
    assert set(doc) <= TOP_KEYS and TOP_KEYS - set(doc) <= {"states"}
    assert doc["domain"] == domain
    assert isinstance(doc["title"], str) and doc["title"]
    assert doc["purpose"] is None or (isinstance(doc["purpose"], str) and doc["purpose"])
    assert isinstance(doc["event_types"], dict) and doc["event_types"]
    assert len(doc["event_types"]) == EXPECTED_COUNTS[domain]


def test_total_is_94_seed_types_plus_the_ocn_and_own_types_and_names_unique() -> None:
    names = [name for doc in CATALOG.values() for name in doc["event_types"]]
    seed = [
        name
        for d, doc in CATALOG.items()
        if d not in ("ocn", "ledger")
        for name in doc["event_types"]
    ]
    assert len(seed) == LEDGER_TYPES
    assert set(CATALOG["ocn"]["event_types"]) == OCN_TYPES
    assert set(CATALOG["ledger"]["event_types"]) == OWN_TYPES
    assert len(names) == len(set(names)) == LEDGER_TYPES + len(OCN_TYPES) + len(OWN_TYPES)
    assert all(IDENT.match(n) for n in names)


def test_own_source_exactly_the_five_types() -> None:
    flagged = {
        name
        for doc in CATALOG.values()
        for name, spec in doc["event_types"].items()
        if spec["own_source"] is True
    }
    assert flagged == OWN_SOURCE


@pytest.mark.parametrize(("domain", "name", "spec"), TYPES)
def test_event_type_entry(domain: str, name: str, spec: dict[str, Any]) -> None:
    assert set(spec) == TYPE_KEYS

    ents = spec["entity_types"]
    assert isinstance(ents, list) and ents
    assert len(set(ents)) == len(ents)
    assert all(isinstance(e, str) and IDENT.match(e) for e in ents)

    writers = spec["writers"]
    assert isinstance(writers, list) and writers
    assert len(set(writers)) == len(writers)
    assert set(writers) <= PRODUCERS
    # every type is writable by the server side; the ledger's own facts by the service only
    if domain == "ledger":
        assert writers == ["service_role_pipeline"]
    else:
        assert {"edge_function", "service_role_pipeline"} <= set(writers)

    assert spec["why"] is None or (isinstance(spec["why"], str) and spec["why"])
    assert isinstance(spec["own_source"], bool)


@pytest.mark.parametrize(("domain", "name", "spec"), TYPES)
def test_payload_schema(domain: str, name: str, spec: dict[str, Any]) -> None:
    schema = spec["payload"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is True
    props = schema["properties"]
    required = schema["required"]
    assert isinstance(props, dict)
    assert len(set(required)) == len(required)
    missing = set(required) - set(props)
    assert not missing, f"required keys not in properties: {missing}"

    if spec["own_source"]:
        assert "source" in props and props["source"].get("enum")
        assert not (CONVENTION_KEYS - {"source"}) & set(props)
    else:
        assert not CONVENTION_KEYS & set(props)


@pytest.mark.parametrize(("domain", "name", "spec"), TYPES)
def test_example_validates(domain: str, name: str, spec: dict[str, Any]) -> None:
    example = spec["example"]
    assert isinstance(example, dict)
    validator = jsonschema.Draft202012Validator(
        spec["payload"], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = [e.message for e in validator.iter_errors(example)]
    assert not errors, errors
    _check_date_times(spec["payload"], example)
    # examples use only keys the schema knows; `source` only for own_source types
    assert set(example) <= set(spec["payload"]["properties"])
    if not spec["own_source"]:
        assert "source" not in example


def test_example_rejects_missing_required_key() -> None:
    # sanity check that the schemas are actually enforced
    spec = CATALOG["payments"]["event_types"]["payment_intent_created"]
    bad = dict(spec["example"])
    del bad["currency"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, spec["payload"], cls=jsonschema.Draft202012Validator)
