"""CloudEvents v1.0 envelope rules: every violation named by a JSON pointer, the spec's and the
OCN reference's examples accepted, the OCN types held to their JSON Schemas."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import schema_refs
from receipts import Catalog, ValidationError
from receipts.cloudevents import (
    OCN_EVENT_TYPES,
    cloudevent_problems,
    ocn_schema,
    validate_cloudevent,
)
from receipts.cloudevents.envelope import is_plainly_valid

FIXTURES = Path(__file__).parent / "fixtures" / "ocn"
OCN_FIXTURES = {
    "ocn.orca.decision.v1": "decision_approve.json",
    "ocn.orca.explanation.v1": "explanation_approve.json",
    "ocn.weave.audit.v1": "audit_approve.json",
}


def ocn_example(ce_type: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / OCN_FIXTURES[ce_type]).read_text())
    return event


def minimal(**attributes: Any) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": "A234-1234-1234", "source": "/mycontext", "type": "t"}
    event.update(attributes)
    return event


def problems(event: Any, type: str | None = None) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate_cloudevent(event, type)
    error = caught.value
    assert error.code == "validation_failed" and error.http_status == 422
    found = {e.pointer: e.message for e in error.errors}
    assert len(found) == len(error.errors), f"a pointer is reported twice: {error.errors}"
    return found


def rejects(event: Any, pointer: str, fragment: str = "", type: str | None = None) -> None:
    found = problems(event, type)
    assert list(found) == [pointer], found
    assert fragment in found[pointer], found[pointer]


# --- accepted ------------------------------------------------------------------------------------

SPEC_EXAMPLES = [
    # JSON format §3.2 examples (binary data, XML string data, JSON data, a literal string)
    minimal(
        time="2018-04-05T17:31:00Z",
        comexampleextension1="value",
        comexampleothervalue=5,
        datacontenttype="application/vnd.apache.thrift.binary",
        data_base64="AAECAwQ=",
    ),
    minimal(unsetextension=None, datacontenttype="application/xml", data='<much wow="xml"/>'),
    minimal(subject=None, datacontenttype="application/json", data={"appinfoA": "abc"}),
    minimal(data="I'm just a string"),
    # core spec example
    minimal(
        type="com.github.pull_request.opened",
        source="https://github.com/cloudevents/spec/pull",
        subject="123",
        datacontenttype="text/xml",
        data='<much wow="xml"/>',
    ),
    minimal(data=None),  # an explicit null payload
    minimal(source="urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"),
    minimal(source="mailto:cncf-wg-serverless@lists.cncf.io"),
    minimal(source="1-555-123-4567"),
    minimal(source="https://[2001:db8::1]:8443/x?y=1#z"),
    minimal(dataschema="urn:receipts:schema:payments:payment_captured"),
    minimal(time="2024-01-21t12:00:00.123456789+05:30"),
    minimal(datacontenttype='text/plain; charset="utf-8"; q=x'),
    minimal(subject='Euro € 😀 "quoted" 100%'),
    minimal(averyveryverylongextensionname=True),  # > 20 chars: a SHOULD NOT, accepted
    minimal(lo=-(2**31), hi=2**31 - 1, flag=False, text=""),
]


@pytest.mark.parametrize("event", SPEC_EXAMPLES)
def test_spec_examples_are_accepted(event: dict[str, Any]) -> None:
    validate_cloudevent(event)


@pytest.mark.parametrize("ce_type", sorted(OCN_FIXTURES))
def test_ocn_reference_examples_are_accepted(ce_type: str) -> None:
    event = ocn_example(ce_type)
    validate_cloudevent(event)
    validate_cloudevent(event, ce_type)


# --- the required attributes ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type"])
def test_missing_required_attribute(name: str) -> None:
    event = minimal()
    del event[name]
    rejects(event, f"/{name}", "required attribute is missing")
    rejects({**minimal(), name: None}, f"/{name}", "required attribute is missing")


@pytest.mark.parametrize("name", ["id", "source", "type", "subject"])
def test_empty_string_attribute(name: str) -> None:
    rejects(minimal(**{name: ""}), f"/{name}", "non-empty")


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type", "subject"])
def test_string_attribute_of_another_json_type(name: str) -> None:
    rejects(minimal(**{name: 5}), f"/{name}", "expected a string")


@pytest.mark.parametrize("version", ["0.3", "1", "1.0.2", "2.0"])
def test_specversion_must_be_1_0(version: str) -> None:
    rejects(minimal(specversion=version), "/specversion", "expected '1.0'")


def test_every_problem_is_listed_at_once() -> None:
    event = {
        "specversion": "0.3",
        "source": "not a uri",
        "type": "",
        "time": "yesterday",
        "dataschema": "/relative",
        "Bad_Name": 1,
        "big": 2**40,
        "data": {},
        "data_base64": "AA==",
    }
    assert set(problems(event)) == {
        "/id",
        "/specversion",
        "/source",
        "/type",
        "/time",
        "/dataschema",
        "/Bad_Name",
        "/big",
        "/data_base64",
    }


@pytest.mark.parametrize("event", [[], "event", 5, None])
def test_an_event_is_a_json_object(event: Any) -> None:
    rejects(event, "", "JSON object")


# --- optional attributes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "time",
    [
        "yesterday",
        "2024-01-21",
        "2024-01-21T12:00:00",  # no offset
        "2024-01-21 12:00:00Z",
        "2024-02-30T12:00:00Z",
        "2024-01-21T25:00:00Z",
        1705838400,
    ],
)
def test_time_must_be_rfc3339(time: Any) -> None:
    rejects(minimal(time=time), "/time", "RFC 3339")


@pytest.mark.parametrize(
    "source",
    ["not a uri", "%zz", "a|b", "http://[::zz]/x", "http://[1::2::3]/", ":no-scheme", "é"],
)
def test_source_must_be_a_uri_reference(source: str) -> None:
    rejects(minimal(source=source), "/source", "URI-reference")


@pytest.mark.parametrize(
    "dataschema",
    ["/relative/schema.json", "schema.json", "https://x.test/s.json#/defs/a", "a b:c", "é:x"],
)
def test_dataschema_must_be_an_absolute_uri(dataschema: str) -> None:
    rejects(minimal(dataschema=dataschema), "/dataschema", "absolute URI")


def test_dataschema_must_not_be_empty() -> None:
    rejects(minimal(dataschema=""), "/dataschema", "non-empty")


@pytest.mark.parametrize(
    "content_type", ["json", "application/", "application/json; charset", "a/b; c=d e", 7]
)
def test_datacontenttype_must_be_a_media_type(content_type: Any) -> None:
    rejects(minimal(datacontenttype=content_type), "/datacontenttype")


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("\x00", "U+0000"),
        ("\n", "U+000A"),
        ("\x7f", "U+007F"),
        ("\x85", "U+0085"),
        ("\ud800", "U+D800"),  # an unpaired surrogate
        ("\ufdd0", "U+FDD0"),  # a noncharacter
        ("\ufffe", "U+FFFE"),
        ("\U0001ffff", "U+1FFFF"),
    ],
)
@pytest.mark.parametrize("name", ["id", "subject", "myextension"])
def test_strings_must_not_hold_disallowed_characters(name: str, char: str, code: str) -> None:
    rejects(minimal(**{name: f"a{char}b"}), f"/{name}", f"{code} is not allowed")


# --- extension attributes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pointer"),
    [("camelCase", "/camelCase"), ("with_underscore", "/with_underscore"),
     ("dash-ed", "/dash-ed"), ("ünïcode", "/ünïcode"), ("a/b", "/a~1b"), ("", "/")],
)  # fmt: skip
def test_extension_names_are_lower_case_alphanumerics(name: str, pointer: str) -> None:
    rejects(minimal(**{name: "x"}), pointer, "lower-case letters a-z and digits 0-9")


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**63])
def test_extension_integers_are_32_bit(value: int) -> None:
    rejects(minimal(count=value), "/count", "signed 32-bit")


@pytest.mark.parametrize("value", [1.5, 5.0, {"a": 1}, [1, 2]])
def test_extension_values_are_of_the_type_system(value: Any) -> None:
    rejects(minimal(ext=value), "/ext", "string, boolean or integer")


# --- data ----------------------------------------------------------------------------------------


def test_data_and_data_base64_are_exclusive() -> None:
    rejects(minimal(data={"a": 1}, data_base64="AA=="), "/data_base64", "mutually exclusive")


@pytest.mark.parametrize("encoded", ["not base64!", "AAA", 5])
def test_data_base64_must_be_base64(encoded: Any) -> None:
    rejects(minimal(data_base64=encoded), "/data_base64", "base64")


def test_non_json_data_must_be_a_string() -> None:
    rejects(minimal(datacontenttype="text/plain", data={"a": 1}), "/data", "not JSON")
    validate_cloudevent(minimal(datacontenttype="text/plain", data="hello"))
    validate_cloudevent(minimal(datacontenttype="application/ld+json", data={"a": 1}))


def test_type_argument_must_match() -> None:
    rejects(minimal(type="a"), "/type", "expected type 'b'", type="b")


# --- OCN -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ce_type", sorted(OCN_FIXTURES))
@pytest.mark.parametrize("name", ["subject", "time", "data"])
def test_ocn_requires_subject_time_and_data(ce_type: str, name: str) -> None:
    event = ocn_example(ce_type)
    del event[name]
    rejects(event, f"/{name}", "required by the OCN schema")


def test_ocn_schema_applies_when_the_type_is_asked_for() -> None:
    event = minimal(type="ocn.orca.decision.v1")
    found = problems(event, "ocn.orca.decision.v1")
    assert {"/subject", "/time", "/data"} <= set(found)


def test_a_generic_event_asked_to_be_ocn_is_checked_against_the_ocn_schema() -> None:
    found = problems(minimal(subject="s", time="2024-01-21T12:00:00Z", data={}),
                     "ocn.weave.audit.v1")  # fmt: skip
    assert found["/type"] == "expected type 'ocn.weave.audit.v1'"
    assert "/data/receipt_hash" in found


def test_one_problem_is_reported_once() -> None:
    # Both the envelope rules and the OCN schema reject these; each pointer is named once.
    event = ocn_example("ocn.orca.decision.v1")
    event.update(time="yesterday", source="not a uri", datacontenttype="json", Ext="x")
    found = problems(event)
    assert set(found) == {"/time", "/source", "/datacontenttype", "/Ext"}


def _with(ce_type: str, path: str, value: Any) -> dict[str, Any]:
    event = ocn_example(ce_type)
    *parents, last = path.split("/")
    node = event
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return event


_DELETE = object()
DECISION, AUDIT = "ocn.orca.decision.v1", "ocn.weave.audit.v1"


@pytest.mark.parametrize(
    ("ce_type", "path", "value"),
    [
        ("ocn.orca.decision.v1", "data/decision/result", "MAYBE"),
        ("ocn.orca.decision.v1", "data/decision/risk_score", 1.5),
        ("ocn.orca.decision.v1", "data/decision/risk_score", -0.1),
        ("ocn.orca.decision.v1", "data/decision/reasons", "Low risk"),
        ("ocn.orca.decision.v1", "data/signing/receipt_hash", "md5:abc"),
        ("ocn.orca.decision.v1", "data/signing/receipt_hash", _DELETE),
        ("ocn.orca.decision.v1", "data/ap2_version", "one"),
        ("ocn.orca.decision.v1", "data/intent", _DELETE),
        ("ocn.orca.decision.v1", "data/cart", []),
        ("ocn.orca.explanation.v1", "data/explanation/confidence", 1.01),
        ("ocn.orca.explanation.v1", "data/explanation/key_signals/0/impact", "huge"),
        ("ocn.orca.explanation.v1", "data/decision_id", _DELETE),
        ("ocn.orca.explanation.v1", "data/trace_id", "txn_other"),
        ("ocn.weave.audit.v1", "data/block_height", -1),
        ("ocn.weave.audit.v1", "data/block_height", "1234567"),
        ("ocn.weave.audit.v1", "data/status", "lost"),
        ("ocn.weave.audit.v1", "data/transaction_hash", "xyz"),
        ("ocn.weave.audit.v1", "data/verification/verified", "yes"),
        ("ocn.weave.audit.v1", "data/verification/verification_timestamp", "soon"),
        ("ocn.weave.audit.v1", "data/verification/verification_timestamp", _DELETE),
        ("ocn.weave.audit.v1", "data/trace_id", "txn_other"),
        ("ocn.weave.audit.v1", "datacontenttype", "text/plain"),
        ("ocn.weave.audit.v1", "dataschema", "https://x.test/s.json#frag"),
    ],
)
def test_ocn_data_contract_violations_are_named(ce_type: str, path: str, value: Any) -> None:
    found = problems(_with(ce_type, path, value))
    assert f"/{path}" in found, found


def test_ocn_audit_verified_false_needs_no_timestamp() -> None:
    event = _with(AUDIT, "data/verification/verified", False)
    del event["data"]["verification"]["verification_timestamp"]
    validate_cloudevent(event)


def test_ocn_data_base64_is_not_accepted() -> None:
    event = ocn_example(DECISION)
    del event["data"]
    event["data_base64"] = "e30="
    assert "/data" in problems(event)


def test_ocn_accepts_plain_json_and_extensions() -> None:
    event = ocn_example(DECISION)
    event.update(datacontenttype="application/json", traceparent="00-abc-def-01", retries=2)
    validate_cloudevent(event)


# --- the shipped schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("ce_type", sorted(OCN_FIXTURES))
def test_shipped_schema_is_draft_2020_12_self_contained_and_accepts_the_reference(
    ce_type: str,
) -> None:
    schema = ocn_schema(ce_type)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["type"] == {"const": ce_type}
    assert schema_refs(schema) == []
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert [e.message for e in validator.iter_errors(ocn_example(ce_type))] == []
    for other in set(OCN_FIXTURES) - {ce_type}:
        assert not validator.is_valid(ocn_example(other))


@pytest.mark.parametrize("ce_type", sorted(OCN_FIXTURES))
def test_catalog_and_shipped_schema_share_one_data_contract(ce_type: str) -> None:
    event_type = Catalog.load().get(OCN_EVENT_TYPES[ce_type])
    assert event_type.domain == "ocn"
    assert (
        event_type.payload_schema["properties"]["data"] == ocn_schema(ce_type)["properties"]["data"]
    )
    example = ocn_example(ce_type)
    assert event_type.example == {
        "data": example.pop("data"),
        "cloudevent": example,
    }


def test_ocn_schema_of_an_unknown_type() -> None:
    with pytest.raises(KeyError):
        ocn_schema("com.example.x")


def test_validate_does_not_change_the_event() -> None:
    event = ocn_example(DECISION)
    before = copy.deepcopy(event)
    validate_cloudevent(event)
    assert event == before


# --- the fast path agrees with the full check ------------------------------------------------


def _agrees(event: Any) -> bool:
    """is_plainly_valid never accepts what the full check refuses; validate_cloudevent's verdict
    is the full check's. Returns the fast path's verdict."""
    full = cloudevent_problems(event)
    fast = is_plainly_valid(event)
    assert not (fast and full), (event, full)
    try:
        validate_cloudevent(event)
    except ValidationError as error:
        assert full and error.errors == full
    else:
        assert not full
    return fast


def test_fast_path_agrees_on_every_code_point() -> None:
    accepted = 0
    for point in range(0x110000):
        char = chr(point)
        accepted += _agrees(minimal(subject=char, ext=char))
    assert accepted > 100_000  # it is a fast path: it takes the ordinary characters


def test_fast_path_takes_ordinary_events() -> None:
    event = minimal(
        subject="order:1", time="2026-11-22T10:00:00.123Z", datacontenttype="application/json",
        dataschema="https://example.com/s.json", data={"a": 1}, ext="x", n=5, flag=True,
    )  # fmt: skip
    assert _agrees(event)


_TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                  r"([Zz]|[+-][0-9]{2}:[0-9]{2})?\Z"),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00",
                     "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-01-01T24:00:00Z"]),
)  # fmt: skip
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**33), 2**33), st.text(), _TIMES,
    st.sampled_from(["", "1.0", "0.3", "/x", "urn:a:b", "http://[::1]/", "http://[1::2::3]/",
                     "http://a:b/", "a b", "application/json", "text/plain", "x/y+json;a=b",
                     "application/", "%zz"]),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip
_NAMES = st.one_of(
    st.sampled_from(["id", "source", "specversion", "type", "subject", "time", "dataschema",
                     "datacontenttype", "data", "data_base64", "ext1"]),
    st.text(min_size=1, max_size=4),
)  # fmt: skip


@given(st.dictionaries(_NAMES, _VALUES, max_size=6), st.booleans())
def test_fast_path_never_accepts_what_the_full_check_refuses(
    changes: dict[str, Any], start_valid: bool
) -> None:
    base = minimal(time="2026-11-22T10:00:00Z", datacontenttype="text/plain", data="x")
    _agrees({**base, **changes} if start_valid else changes)


def test_long_values_are_checked_but_not_cached() -> None:
    """The fast path caches verdicts on short repeated values only: a client sending long,
    ever-different values must not grow the caches."""
    from receipts.cloudevents.envelope import _cached_problem, _extension_name_ok

    before = (_cached_problem.cache_info().currsize, _extension_name_ok.cache_info().currsize)
    long_name = "x" * 600
    assert _agrees(minimal(source="urn:" + "a" * 600, **{long_name: 1}))
    assert not _agrees(minimal(source="urn:" + "a b" * 300))
    assert not _agrees(minimal(**{long_name + "_": 1}))
    after = (_cached_problem.cache_info().currsize, _extension_name_ok.cache_info().currsize)
    assert after == before
