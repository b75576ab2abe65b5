"""The catalog as loaded: extra files, clashes and malformed files, and the full payload schema
of every type (its own keys plus the shared conventions)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import SEED_DOMAINS, SEED_TYPE_COUNT
from receipts import Catalog, CatalogError, EventType, Ledger, NotFoundError
from receipts.catalog import CONVENTIONS

PRODUCERS = ["client", "edge_function", "service_role_pipeline"]

TICKETS: dict[str, Any] = {
    "domain": "tickets",
    "title": "Tickets",
    "event_types": {
        "ticket_scanned": {
            "entity_types": ["ticket", "event"],
            "writers": ["edge_function"],
            "payload": {
                "type": "object",
                "properties": {
                    "gate": {"type": "string", "minLength": 1},
                    "scannedAt": {"type": "string", "format": "date-time"},
                },
                "required": ["gate"],
            },
            "example": {"gate": "north", "scannedAt": "2026-05-01T19:00:00Z"},
        },
        "ticket_refused": {
            "entity_types": ["ticket"],
            "writers": ["edge_function", "service_role_pipeline"],
            "why": "Why a door stayed closed.",
            "payload": {"type": "object"},
        },
    },
}


def write_catalog(directory: Path, document: Any, name: str = "extra.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def pointers(error: CatalogError) -> list[str]:
    return [e.pointer for e in error.errors]


# --- extra files -------------------------------------------------------------------------------


def test_load_with_an_extra_file(tmp_path: Path, catalog: Catalog) -> None:
    loaded = Catalog.load([write_catalog(tmp_path, TICKETS)])
    assert len(loaded) == len(catalog) + 2
    scanned = loaded.get("ticket_scanned")
    assert (scanned.domain, scanned.entity_types, scanned.writers) == (
        "tickets",
        ("ticket", "event"),
        ("edge_function",),
    )
    assert loaded.domains["tickets"].title == "Tickets"
    assert loaded.domains["tickets"].event_types == ("ticket_scanned", "ticket_refused")
    assert [t.name for t in loaded.event_types("tickets")] == ["ticket_scanned", "ticket_refused"]
    assert loaded.get("ticket_refused").why == "Why a door stayed closed."


def test_only_extra_files(tmp_path: Path) -> None:
    loaded = Catalog.load([write_catalog(tmp_path, TICKETS)], builtin=False)
    assert sorted(loaded.types) == ["ticket_refused", "ticket_scanned"]
    assert list(loaded.domains) == ["tickets"]


def test_an_extra_file_may_add_types_to_a_builtin_domain(tmp_path: Path) -> None:
    more = copy.deepcopy(TICKETS)
    more["domain"] = "payments"
    loaded = Catalog.load([write_catalog(tmp_path, more)])
    payments = loaded.domains["payments"].event_types
    assert len(payments) == 15
    assert payments[-2:] == ("ticket_scanned", "ticket_refused")
    assert loaded.get("ticket_scanned").domain == "payments"


def test_a_ledger_writes_types_of_an_extra_file(tmp_path: Path) -> None:
    extra = write_catalog(tmp_path, TICKETS)
    with Ledger.open(tmp_path / "l.db", catalog_files=[extra]) as ledger:
        receipt = ledger.append(
            {
                "domain": "tickets",
                "event_type": "ticket_scanned",
                "entity_type": "event",
                "entity_id": "evt_1",
                "payload": {"gate": "north"},
            },
            producer="edge_function",
        )
    assert receipt.payload == {"gate": "north", "schema_version": 0, "source": "edge_function"}


# --- clashes and malformed files ---------------------------------------------------------------


def test_duplicate_type_is_refused(tmp_path: Path) -> None:
    clash = copy.deepcopy(TICKETS)
    clash["event_types"]["payment_captured"] = clash["event_types"].pop("ticket_refused")
    with pytest.raises(CatalogError) as caught:
        Catalog.load([write_catalog(tmp_path, clash)])
    error = caught.value
    assert error.code == "catalog_invalid"
    assert pointers(error) == ["/event_types/payment_captured"]
    assert "'payment_captured' is already defined" in error.message
    assert "extra.json" in error.message


def test_duplicate_type_across_two_extra_files(tmp_path: Path) -> None:
    first = write_catalog(tmp_path, TICKETS, "a.json")
    second = write_catalog(tmp_path, {**TICKETS, "domain": "doors"}, "b.json")
    with pytest.raises(CatalogError) as caught:
        Catalog.load([first, second], builtin=False)
    assert pointers(caught.value) == ["/event_types/ticket_scanned"]
    assert "b.json" in caught.value.message


def _broken(change: str) -> Any:
    document = copy.deepcopy(TICKETS)
    scanned = document["event_types"]["ticket_scanned"]
    if change == "no-title":
        del document["title"]
    elif change == "bad-writer":
        scanned["writers"] = ["edge_function", "nobody"]
    elif change == "no-entity-types":
        scanned["entity_types"] = []
    elif change == "unknown-key":
        scanned["colour"] = "blue"
    elif change == "bad-type-name":
        document["event_types"]["Ticket-Scanned"] = document["event_types"].pop("ticket_scanned")
    elif change == "payload-not-object":
        scanned["payload"] = {"type": "array"}
    elif change == "not-an-object":
        document = ["tickets"]
    return document


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("no-title", [""]),
        ("bad-writer", ["/event_types/ticket_scanned/writers/1"]),
        ("no-entity-types", ["/event_types/ticket_scanned/entity_types"]),
        ("unknown-key", ["/event_types/ticket_scanned"]),
        ("bad-type-name", ["/event_types"]),
        ("payload-not-object", ["/event_types/ticket_scanned/payload/type"]),
        ("not-an-object", [""]),
    ],
)
def test_malformed_file_is_refused_with_a_pointer(
    tmp_path: Path, change: str, expected: list[str]
) -> None:
    with pytest.raises(CatalogError) as caught:
        Catalog.load([write_catalog(tmp_path, _broken(change))])
    error = caught.value
    assert error.code == "catalog_invalid"
    assert "is malformed" in error.message
    assert pointers(error) == expected
    assert all(e.message for e in error.errors)


def test_invalid_payload_schema_is_refused(tmp_path: Path) -> None:
    document = copy.deepcopy(TICKETS)
    document["event_types"]["ticket_scanned"]["payload"]["properties"]["gate"] = {"type": "text"}
    with pytest.raises(CatalogError) as caught:
        Catalog.load([write_catalog(tmp_path, document)])
    assert pointers(caught.value) == ["/event_types/ticket_scanned/payload"]
    assert "not valid JSON Schema" in caught.value.message


def test_source_property_needs_own_source(tmp_path: Path) -> None:
    document = copy.deepcopy(TICKETS)
    properties = document["event_types"]["ticket_scanned"]["payload"]["properties"]
    properties["source"] = {"enum": ["scanner", "manual"]}
    with pytest.raises(CatalogError) as caught:
        Catalog.load([write_catalog(tmp_path, document)])
    assert pointers(caught.value) == ["/event_types/ticket_scanned/payload/properties/source"]

    document["event_types"]["ticket_scanned"]["own_source"] = True
    loaded = Catalog.load([write_catalog(tmp_path, document)], builtin=False)
    assert loaded.get("ticket_scanned").own_source
    assert loaded.get("ticket_scanned").schema()["properties"]["source"] == {
        "enum": ["scanner", "manual"]
    }


@pytest.mark.parametrize("content", ["{not json", ""])
def test_unreadable_file_is_a_catalog_error(tmp_path: Path, content: str) -> None:
    with pytest.raises(CatalogError, match="cannot read catalog file"):
        Catalog.load([write_catalog(tmp_path, content)])


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read catalog file"):
        Catalog.load([tmp_path / "absent.json"])


def test_unknown_names(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError) as caught:
        catalog.get("payment_capture")
    assert [e.pointer for e in caught.value.errors] == ["/event_type"]
    with pytest.raises(NotFoundError) as caught:
        catalog.event_types("billing")
    assert [e.pointer for e in caught.value.errors] == ["/domain"]


# --- schemas and summaries ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(Catalog.load().types))
def test_schema_includes_the_conventions(catalog: Catalog, name: str) -> None:
    event_type: EventType = catalog.get(name)
    schema = event_type.schema()
    properties = schema["properties"]
    for key in ("schema_version", "correlation_id", "notes"):
        assert properties[key] == CONVENTIONS[key]
    if event_type.own_source:
        assert properties["source"] == event_type.payload_schema["properties"]["source"]
        assert set(properties["source"]["enum"]).isdisjoint(PRODUCERS)
    else:
        assert properties["source"] == CONVENTIONS["source"]
        assert properties["source"]["enum"] == PRODUCERS
    for key, spec in event_type.payload_schema.get("properties", {}).items():
        assert properties[key] == spec

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:receipts:schema:{event_type.domain}:{name}"
    assert schema["type"] == "object"
    assert schema["required"] == event_type.required
    assert "additionalProperties" in schema
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(event_type.example)


def test_own_source_types(catalog: Catalog) -> None:
    assert sorted(t.name for t in catalog if t.own_source) == [
        "expertise_level_asserted",
        "model_pack_download_started",
        "signal_prekey_bundle_fetch_failed",
        "signal_prekey_bundle_fetch_started",
        "signal_prekey_bundle_fetch_succeeded",
    ]


def test_schema_of_a_type_without_required_keys(catalog: Catalog) -> None:
    schema = catalog.get("payout_completed").schema()
    assert schema["required"] == []
    assert schema["additionalProperties"] is True


def test_summary(catalog: Catalog) -> None:
    for event_type in catalog:
        summary = event_type.summary()
        assert set(summary) == {"domain", "event_type", "entity_types", "writers", "required"}
        assert summary["event_type"] == event_type.name
        assert summary["domain"] == event_type.domain
        assert summary["entity_types"] == list(event_type.entity_types)
        assert summary["writers"] == list(event_type.writers)
        assert set(summary["writers"]) <= set(PRODUCERS)
        assert summary["required"] == event_type.required
    assert catalog.get("payment_captured").summary() == {
        "domain": "payments",
        "event_type": "payment_captured",
        "entity_types": ["payment_intent", "event"],
        "writers": ["edge_function", "service_role_pipeline"],
        "required": ["amount", "providerChargeId"],
    }


def test_domains(catalog: Catalog) -> None:
    assert sum(len(d.event_types) for d in catalog.domains.values()) == len(catalog)
    assert {name: len(catalog.domains[name].event_types) for name in SEED_DOMAINS} == SEED_DOMAINS
    assert sum(SEED_DOMAINS.values()) == SEED_TYPE_COUNT
    for domain in catalog.domains.values():
        assert [t.name for t in catalog.event_types(domain.name)] == list(domain.event_types)


def test_export_writes_one_schema_per_type_and_an_index(tmp_path: Path, catalog: Catalog) -> None:
    written = catalog.export(tmp_path / "out")
    assert len(written) == len(catalog) + 1
    assert written[-1].name == "index.json"
    scanned = json.loads((tmp_path / "out" / "payment_captured.schema.json").read_text())
    assert scanned == catalog.get("payment_captured").schema()
