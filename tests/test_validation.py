"""Receipt requests checked against the catalog: every type's example is accepted, every broken
request is rejected with a JSON pointer to what is wrong, and nothing is written when anything
in a batch is wrong."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import (
    SEED_DOMAINS,
    SEED_TYPE_COUNT,
    Sample,
    allowed_producer,
    build_request,
    forbidden_producer,
)
from receipts import (
    Catalog,
    EventType,
    Ledger,
    PermissionDeniedError,
    ReceiptsError,
    ValidationError,
    Validator,
)
from receipts.validate import _UNDECIDED, REQUEST_FIELDS, Request

CATALOG = Catalog.load()
ALL_TYPES = sorted(CATALOG.types)
REQUIRED_KEYS = [(t.name, key) for t in CATALOG for key in t.required]
NO_REQUIRED = sorted(t.name for t in CATALOG if not t.required)
OWN_SOURCE = sorted(t.name for t in CATALOG if t.own_source)

# A value of each JSON type, and the JSON types it is an instance of.
_WRONG_CANDIDATES: list[tuple[Any, set[str]]] = [
    (12345, {"integer", "number"}),
    ("not of the declared type", {"string"}),
    (True, {"boolean"}),
    (["a", "list"], {"array"}),
    ({"an": "object"}, {"object"}),
]


def pointers(error: ReceiptsError) -> list[str]:
    return [e.pointer for e in error.errors]


def typed_property(event_type: EventType) -> tuple[str, Any]:
    """The first property of the type's own schema with a declared ``type``, and a value of
    another JSON type."""
    for name, spec in event_type.payload_schema.get("properties", {}).items():
        declared = spec.get("type")
        if declared is None:
            continue
        types = {declared} if isinstance(declared, str) else set(declared)
        for value, kinds in _WRONG_CANDIDATES:
            if not kinds & types:
                return name, value
    raise AssertionError(f"{event_type.name} has no typed property")


@pytest.fixture(scope="module")
def rejecting_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """One ledger shared by tests that only send requests it must reject (it stays empty)."""
    with Ledger.open(tmp_path_factory.mktemp("rejecting") / "l.db") as opened:
        yield opened
        assert opened.size() == 0, "a rejected request was written"


@pytest.fixture(params=ALL_TYPES)
def every_type_sample(request: pytest.FixtureRequest) -> Sample:
    event_type = CATALOG.get(request.param)
    return Sample(event_type, build_request(event_type), allowed_producer(event_type))


def rejects(ledger: Ledger, request: Any, producer: str, *, batch: bool = False) -> ValidationError:
    before = ledger.size()
    with pytest.raises(ValidationError) as caught:
        if batch:
            ledger.append_batch([request], producer=producer)
        else:
            ledger.append(request, producer=producer)
    assert ledger.size() == before
    assert caught.value.code == "validation_failed"
    return caught.value


# --- every catalog type ------------------------------------------------------------------------


def test_every_type_is_covered_and_has_an_example() -> None:
    seed = [t for t in CATALOG if t.domain in SEED_DOMAINS]
    assert len(seed) == SEED_TYPE_COUNT == sum(SEED_DOMAINS.values())
    assert len(ALL_TYPES) >= SEED_TYPE_COUNT
    assert all(CATALOG.get(name).example is not None for name in ALL_TYPES)


def test_example_is_accepted_and_stored(unruled_ledger: Ledger, every_type_sample: Sample) -> None:
    ledger, sample = unruled_ledger, every_type_sample
    receipt = ledger.append(sample.request, producer=sample.producer)

    assert receipt.seq == 0
    assert receipt.event_type == sample.event_type.name
    assert receipt.domain == sample.event_type.domain
    assert receipt.producer == sample.producer
    expected = {"schema_version": 0, **sample.payload}
    if not sample.event_type.own_source:
        expected.setdefault("source", sample.producer)
    assert receipt.payload == expected
    assert ledger.get(receipt.id) == receipt
    assert ledger.size() == 1


@pytest.mark.parametrize(("name", "key"), REQUIRED_KEYS, ids=[f"{n}-{k}" for n, k in REQUIRED_KEYS])
def test_missing_required_key_is_named_by_pointer(
    rejecting_ledger: Ledger, name: str, key: str
) -> None:
    event_type = CATALOG.get(name)
    request = build_request(event_type)
    del request["payload"][key]
    producer = allowed_producer(event_type)

    single = rejects(rejecting_ledger, request, producer)
    assert pointers(single) == [f"/payload/{key}"]
    assert "required" in single.errors[0].message

    batched = rejects(rejecting_ledger, request, producer, batch=True)
    assert pointers(batched) == [f"/0/payload/{key}"]


@pytest.mark.parametrize("name", ALL_TYPES)
def test_wrong_typed_property_is_named_by_pointer(rejecting_ledger: Ledger, name: str) -> None:
    event_type = CATALOG.get(name)
    prop, value = typed_property(event_type)
    request = build_request(event_type)
    request["payload"][prop] = value

    error = rejects(rejecting_ledger, request, allowed_producer(event_type))
    # a typed enum property may also report the enum; both point at the property
    assert set(pointers(error)) == {f"/payload/{prop}"}


def test_types_without_required_keys_are_covered_by_the_wrong_type_check() -> None:
    # The types the required-key test cannot break; each has a typed property to break instead.
    assert NO_REQUIRED
    for name in NO_REQUIRED:
        assert typed_property(CATALOG.get(name))


def test_empty_payload_of_a_type_without_required_keys_is_accepted(
    unruled_ledger: Ledger,
) -> None:
    receipt = unruled_ledger.append(build_request(CATALOG.get("payout_completed"), payload={}))
    assert receipt.payload == {"schema_version": 0, "source": "service_role_pipeline"}


# --- the request envelope ----------------------------------------------------------------------


def test_unknown_event_type_suggests_the_close_match(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    request = request_for("payment_captured", event_type="payment_captued")
    error = rejects(rejecting_ledger, request, "service_role_pipeline")
    assert pointers(error) == ["/event_type"]
    assert "unknown event type 'payment_captued'" in error.errors[0].message
    assert "did you mean 'payment_captured'?" in error.errors[0].message


def test_unknown_event_type_without_close_match_has_no_suggestion(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    request = request_for("payment_captured", event_type="zzzz")
    error = rejects(rejecting_ledger, request, "service_role_pipeline")
    assert pointers(error) == ["/event_type"]
    assert "did you mean" not in error.errors[0].message


def test_domain_must_match_the_event_types_domain(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    error = rejects(
        rejecting_ledger,
        request_for("payment_captured", domain="identity"),
        "service_role_pipeline",
    )
    assert pointers(error) == ["/domain"]
    assert "'payments'" in error.errors[0].message


def test_entity_type_must_be_one_the_catalog_allows(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    error = rejects(
        rejecting_ledger,
        request_for("payment_captured", entity_type="user"),
        "service_role_pipeline",
    )
    assert pointers(error) == ["/entity_type"]
    assert "payment_intent" in error.errors[0].message


@pytest.mark.parametrize("bad", ["", 17, None])
def test_entity_id_must_be_a_non_empty_string(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]], bad: Any
) -> None:
    error = rejects(
        rejecting_ledger, request_for("payment_captured", entity_id=bad), "service_role_pipeline"
    )
    assert pointers(error) == ["/entity_id"]


@pytest.mark.parametrize("field", ["domain", "event_type", "entity_type", "entity_id", "payload"])
def test_missing_request_field_is_named(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]], field: str
) -> None:
    request = request_for("payment_captured")
    del request[field]
    error = rejects(rejecting_ledger, request, "service_role_pipeline")
    assert f"/{field}" in pointers(error)


@pytest.mark.parametrize("payload", [[], "amount=4500", 4500, None])
def test_payload_must_be_an_object(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]], payload: Any
) -> None:
    error = rejects(
        rejecting_ledger, request_for("payment_captured", payload=payload), "service_role_pipeline"
    )
    assert pointers(error) == ["/payload"]
    assert "object" in error.errors[0].message


@pytest.mark.parametrize("request_value", [[], "a request", 7, None])
def test_a_request_must_be_an_object(rejecting_ledger: Ledger, request_value: Any) -> None:
    error = rejects(rejecting_ledger, request_value, "service_role_pipeline", batch=True)
    assert pointers(error) == ["/0"]


@pytest.mark.parametrize(("field", "pointer"), [("colour", "/colour"), ("a/b~c", "/a~1b~0c")])
def test_unknown_top_level_field_is_rejected(
    rejecting_ledger: Ledger,
    request_for: Callable[..., dict[str, Any]],
    field: str,
    pointer: str,
) -> None:
    request = request_for("payment_captured")
    request[field] = "x"
    error = rejects(rejecting_ledger, request, "service_role_pipeline")
    assert pointers(error) == [pointer]
    assert "unknown field" in error.errors[0].message


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-01-02",
        "2026-01-02T10:00:00",  # no offset
        "2026-01-02 10:00:00Z",
        "yesterday",
        "2026-02-30T10:00:00Z",
        "2026-01-02T25:00:00Z",
        "9999-12-31T23:00:00-05:00",  # year 10000 in UTC
        1767348000,
    ],
)
def test_bad_occurred_at_is_rejected(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]], occurred_at: Any
) -> None:
    request = request_for("payment_captured", occurred_at=occurred_at)
    error = rejects(rejecting_ledger, request, "service_role_pipeline")
    assert pointers(error) == ["/occurred_at"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-01-02T10:00:00+02:00", "2026-01-02T08:00:00.000000Z"),
        ("2026-01-02T10:00:00-01:30", "2026-01-02T11:30:00.000000Z"),
        ("2026-01-02t10:00:00.5z", "2026-01-02T10:00:00.500000Z"),
        ("2026-01-02T10:00:00.123456789Z", "2026-01-02T10:00:00.123456Z"),
        ("2026-01-01T00:30:00+01:00", "2025-12-31T23:30:00.000000Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
    ],
)
def test_occurred_at_is_normalized_to_utc_with_microseconds(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]], given: str, stored: str
) -> None:
    receipt = ledger.append(request_for("payment_captured", occurred_at=given))
    assert receipt.occurred_at == stored
    assert ledger.get(receipt.id).occurred_at == stored


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6",
        "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6bb",
        42,
        "",
    ],
)
def test_bad_uuid_id_is_rejected(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]], bad_id: Any
) -> None:
    error = rejects(
        rejecting_ledger, request_for("payment_captured", id=bad_id), "service_role_pipeline"
    )
    assert pointers(error) == ["/id"]
    assert "UUID" in error.errors[0].message


def test_client_chosen_uuid_is_stored_in_canonical_lowercase_form(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    given = "{0190B2A4-5C6D-7E8F-9A0B-1C2D3E4F5A6B}"
    receipt = ledger.append(request_for("payment_captured", id=given))
    assert receipt.id == "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"
    assert receipt.logical_id == receipt.id


def test_every_problem_is_reported_at_once(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    request = request_for(
        "payment_captured",
        id="nope",
        occurred_at="soon",
        entity_type="user",
        owner_user_id="",
        op="rewrite",
        colour="blue",
    )
    del request["payload"]["amount"]
    request["payload"]["providerChargeId"] = 7
    error = rejects(rejecting_ledger, request, "service_role_pipeline")
    assert sorted(pointers(error)) == sorted(
        [
            "/colour",
            "/id",
            "/occurred_at",
            "/entity_type",
            "/owner_user_id",
            "/op",
            "/payload/amount",
            "/payload/providerChargeId",
        ]
    )
    assert error.message.startswith("8 problem(s) in 1 receipt request(s)")


def test_problems_of_every_request_in_a_batch_are_reported_at_once(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    good = request_for("payment_captured")
    bad_first = request_for("payment_captured", entity_id="")
    bad_third = request_for("payment_captured")
    del bad_third["payload"]["providerChargeId"]
    with pytest.raises(ValidationError) as caught:
        rejecting_ledger.append_batch([bad_first, good, bad_third])
    assert pointers(caught.value) == ["/0/entity_id", "/2/payload/providerChargeId"]


# --- source, defaults and writers --------------------------------------------------------------


def test_source_contradicting_the_producer_is_rejected(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    request = request_for("report_created")
    request["payload"]["source"] = "service_role_pipeline"
    error = rejects(rejecting_ledger, request, "client")
    assert pointers(error) == ["/payload/source"]
    assert "contradicts" in error.errors[0].message
    assert "'client'" in error.errors[0].message


def test_source_outside_the_producer_enum_is_rejected(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    request = request_for("report_created")
    request["payload"]["source"] = "mobile_app"
    error = rejects(rejecting_ledger, request, "client")
    assert set(pointers(error)) == {"/payload/source"}


def test_source_and_schema_version_defaults_are_filled(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    receipt = ledger.append(request_for("report_created"), producer="client")
    assert receipt.payload["source"] == "client"
    assert receipt.payload["schema_version"] == 0
    assert receipt.producer == "client"


def test_given_source_and_schema_version_are_kept(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    request = request_for("report_created")
    request["payload"].update(source="edge_function", schema_version=3)
    receipt = ledger.append(request, producer="edge_function")
    assert receipt.payload["source"] == "edge_function"
    assert receipt.payload["schema_version"] == 3


@pytest.mark.parametrize("version", [-1, 1.5, "1"])
def test_schema_version_must_be_a_non_negative_integer(
    rejecting_ledger: Ledger, request_for: Callable[..., dict[str, Any]], version: Any
) -> None:
    request = request_for("payment_captured")
    request["payload"]["schema_version"] = version
    error = rejects(rejecting_ledger, request, "service_role_pipeline")
    assert pointers(error) == ["/payload/schema_version"]


@pytest.mark.parametrize("producer", CATALOG.get("expertise_level_asserted").writers)
def test_own_source_type_keeps_its_own_source_from_any_allowed_producer(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]], producer: str
) -> None:
    request = request_for("expertise_level_asserted", entity_id="user_1:music")
    request["payload"]["source"] = "derived"
    receipt = ledger.append(request, producer=producer)
    assert receipt.payload["source"] == "derived"
    assert receipt.payload["schema_version"] == 0
    assert receipt.producer == producer


@pytest.mark.parametrize("name", OWN_SOURCE)
def test_own_source_type_rejects_a_producer_name_as_source(
    rejecting_ledger: Ledger, name: str
) -> None:
    event_type = CATALOG.get(name)
    producer = allowed_producer(event_type)
    request = build_request(event_type)
    request["payload"]["source"] = producer
    error = rejects(rejecting_ledger, request, producer)
    assert pointers(error) == ["/payload/source"]


def test_own_source_type_does_not_get_a_default_source(ledger: Ledger) -> None:
    event_type = CATALOG.get("signal_prekey_bundle_fetch_started")
    request = build_request(event_type)
    del request["payload"]["source"]  # optional for this type
    receipt = ledger.append(request, producer="client")
    assert "source" not in receipt.payload


def test_producer_not_among_writers_is_forbidden(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        ledger.append(request_for("payment_captured"), producer="client")
    error = caught.value
    assert error.code == "forbidden"
    assert error.http_status == 403
    assert pointers(error) == ["/event_type"]
    assert "'client' may not write 'payment_captured'" in error.errors[0].message
    assert ledger.size() == 0


@pytest.mark.parametrize("name", [n for n in ALL_TYPES if forbidden_producer(CATALOG.get(n))])
def test_every_server_only_type_refuses_a_client(rejecting_ledger: Ledger, name: str) -> None:
    event_type = CATALOG.get(name)
    producer = forbidden_producer(event_type)
    assert producer is not None
    with pytest.raises(PermissionDeniedError):
        rejecting_ledger.append(build_request(event_type), producer=producer)


def test_a_forbidden_request_in_a_batch_writes_nothing(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    batch = [request_for("report_created"), request_for("payment_captured")]
    with pytest.raises(PermissionDeniedError) as caught:
        ledger.append_batch(batch, producer="client")
    assert pointers(caught.value) == ["/1/event_type"]
    assert ledger.size() == 0


def test_unknown_producer_is_a_programming_error(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ValueError, match="unknown producer"):
        ledger.append(request_for("payment_captured"), producer="root")


@pytest.mark.parametrize("bad_index", [0, 2, 4])
def test_nothing_is_written_when_anything_in_a_batch_is_invalid(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]], bad_index: int
) -> None:
    ledger.append(request_for("payment_captured", entity_id="before"))
    batch = [request_for("payment_captured", entity_id=f"pi_{i}") for i in range(5)]
    del batch[bad_index]["payload"]["amount"]
    with pytest.raises(ValidationError) as caught:
        ledger.append_batch(batch)
    assert pointers(caught.value) == [f"/{bad_index}/payload/amount"]
    assert ledger.size() == 1
    assert [r.entity_id for r in ledger.query()] == ["before"]


def test_validate_returns_a_normalized_request(catalog: Catalog) -> None:
    validator = Validator(catalog)
    request = build_request(
        catalog.get("payment_captured"),
        id="0190B2A4-5C6D-7E8F-9A0B-1C2D3E4F5A6B",
        occurred_at="2026-01-02T10:00:00+01:00",
    )
    normalized = validator.validate(request, "edge_function")
    assert normalized.id == "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"
    assert normalized.occurred_at == "2026-01-02T09:00:00.000000Z"
    assert normalized.op == "assert"
    assert normalized.payload["source"] == "edge_function"
    assert "source" not in request["payload"], "the caller's request must not be mutated"


@given(
    st.builds(
        Request,
        st.none() | st.uuids().map(str),
        *[st.text()] * 4,
        st.dictionaries(st.text(), st.integers() | st.text() | st.none()),
        st.none() | st.text(),
        st.none() | st.text(),
        st.sampled_from(["assert", "amend", "void", "restate"]),
        st.none() | st.uuids().map(str),
        st.none() | st.uuids().map(str),
    )
)
def test_a_request_pickles_to_an_equal_request(request_: Request) -> None:
    """Requests cross to the server's writer process pickled (a __reduce__ of their own)."""
    again = pickle.loads(pickle.dumps(request_, pickle.HIGHEST_PROTOCOL))
    assert type(again) is Request and again == request_
    assert [getattr(again, f.name) for f in dataclasses.fields(Request)] == [
        getattr(request_, f.name) for f in dataclasses.fields(Request)
    ]


# --- validators are compiled once --------------------------------------------------------------


def test_validating_does_not_compile_schemas(
    catalog: Catalog, unruled_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    validator = Validator(catalog)  # compiled here, and in the ledger fixture, before patching

    def no_compiling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a JSON Schema validator was compiled while validating")

    for name in dir(jsonschema_rs):
        if name.endswith("Validator") or name in {
            "validator_for",
            "validator_cls_for",
            "validator_map_for",
            "validate",
            "is_valid",
            "iter_errors",
            "evaluate",
        }:
            monkeypatch.setattr(jsonschema_rs, name, no_compiling)
    with pytest.raises(AssertionError, match="was compiled"):
        Validator(catalog)  # the trap works

    types = [catalog.get(name) for name in ALL_TYPES]
    valid = [build_request(t, entity_id=f"e{i}") for i, t in enumerate(types * 11)][:1000]
    assert len(valid) == 1000
    for request in valid:
        validator.validate(request, allowed_producer(catalog.get(request["event_type"])))
    invalid = build_request(catalog.get("payment_captured"))
    del invalid["payload"]["amount"]
    for _ in range(50):
        with pytest.raises(ValidationError):
            validator.validate(invalid, "service_role_pipeline")
    void = {**build_request(catalog.get("payment_captured")), "op": "void"}
    void["supersedes_id"] = "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"
    void["payload"] = {"void_reason": "typo", "voided_by": "ops"}
    validator.validate(void, "service_role_pipeline")

    stored = unruled_ledger.append_batch(valid[:200])
    assert len(stored) == 200


def test_nul_characters_are_refused_on_every_backend(ledger: Ledger) -> None:
    request = {
        "domain": "payments", "event_type": "refund_requested", "entity_type": "refund",
        "entity_id": "rf\x00", "owner_user_id": "u\x00",
        "payload": {"paymentIntentId": "pi\x00", "requestedByUserId": "u", "reasonCode": "x",
                    "nested": [{"k\x00": 1}]},
    }  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        ledger.append(request)
    assert {e.pointer for e in caught.value.errors} == {
        "/entity_id", "/owner_user_id", "/payload/paymentIntentId", "/payload/nested/0/k\x00"
    }  # fmt: skip
    assert "U+0000" in caught.value.errors[0].message
    assert ledger.size() == 0


# --- the ordinary-request fast path returns exactly what the full check does -----------------


class _FullCheckOnly(Validator):
    def _plain(self, *args: Any) -> object:
        return _UNDECIDED


VALIDATOR = Validator(CATALOG)
_FULL_ONLY = _FullCheckOnly(CATALOG)
_REQUIRED_FIELDS = ["domain", "event_type", "entity_type", "entity_id", "payload"]


_FIELD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=3), st.sampled_from(["", "x\x00"]),
    st.sampled_from(["payments", "identity", "refund", "payment_intent", "user", "assert",
                     "amend", "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "2026-01-02T10:00:00Z",
                     "payment_captured", "not_a_type"]),
    st.lists(st.text(max_size=2), max_size=2), st.dictionaries(st.text(max_size=2), st.integers()),
)  # fmt: skip
# Mostly the fields an ordinary request has, where the fast path decides.
_FIELDS = st.one_of(
    st.sampled_from([*_REQUIRED_FIELDS, "owner_user_id"]),
    st.sampled_from([*sorted(REQUEST_FIELDS), "extra"]),
)


def _outcome(validator: Validator, raw: Any, producer: str) -> Any:
    try:
        return validator.validate_batch([raw], producer)
    except ReceiptsError as error:
        return type(error), error.message, error.errors


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(ALL_TYPES),
    st.dictionaries(_FIELDS, _FIELD_VALUES, max_size=3),
    st.lists(st.sampled_from(_REQUIRED_FIELDS), max_size=2),
    st.sampled_from(["client", "service_role_pipeline", "edge_function"]),
)
def test_the_fast_path_agrees_with_the_full_check(
    name: str, changes: dict[str, Any], dropped: list[str], producer: str
) -> None:
    raw = build_request(CATALOG.types[name], **changes)
    for key in dropped:
        raw.pop(key, None)
    fast = _outcome(VALIDATOR, copy.deepcopy(raw), producer)
    full = _outcome(_FULL_ONLY, copy.deepcopy(raw), producer)
    assert fast == full


def test_the_fast_path_takes_ordinary_requests() -> None:
    taken = []
    for spec in CATALOG:
        raw = build_request(spec)
        taken.append(VALIDATOR._plain(raw, allowed_producer(spec), "", []) is not None)
        assert _outcome(VALIDATOR, raw, allowed_producer(spec)) == _outcome(
            _FULL_ONLY, raw, allowed_producer(spec)
        )
    assert all(taken)
