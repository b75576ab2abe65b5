"""Input with two readings is refused, never read one way silently: a JSON object naming a member
twice (parsers disagree on which wins), a CloudEvents attribute given in two headers, a time
offset that is not one (RFC 3339: hours 00-23, minutes 00-59). At every ingress: the JSON
parser all of them share, POST /v0/receipts, POST /events (structured, batch, binary), the
command line. Nothing is written when anything is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import hypothesis.strategies as st
import orjson
import pytest

from receipts import FormatError, ValidationError
from receipts.cloudevents import from_http
from receipts.jsontext import loads
from receipts.model import normalize_time
from test_api_support import SERVICE, Api, assert_problem, serve
from test_cli import Cli

TWICE = "appears twice in one object: JSON readers disagree on which one counts, so neither does"
REFUND = {"paymentIntentId": "pi_1", "requestedByUserId": "u_1", "reasonCode": "late"}


# --- the one JSON parser ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pointer", "name"),
    [
        ('{"a": 1, "a": 2}', "/a", "a"),
        ('{"a": 1, "a": 1}', "/a", "a"),  # the same value twice is still two members
        ('{"a":1,"b":{"c":[{"d":0,"d":0}]}}', "/b/c/0/d", "d"),
        ('[{"x": 1}, {"y": 1, "y": 2}]', "/1/y", "y"),
        ('{"a" : 1, "a":2}', "/a", "a"),  # white space before the colon
        ('{"a": 1, "\\u0061": 2}', "/a", "a"),  # two spellings of one name
        ('{"a/b~": 1, "a/b~": 2}', "/a~1b~0", "a/b~"),
        ('{"é": 1, "\\u00e9": 2}', "/é", "é"),
    ],
)
def test_a_member_named_twice_is_refused_by_pointer(text: str, pointer: str, name: str) -> None:
    with pytest.raises(FormatError) as raised:
        loads(text.encode(), "/body")
    assert [(e.pointer, e.message) for e in raised.value.errors] == [
        (f"/body{pointer}", f"member name {name!r} {TWICE}")
    ]


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "x\\":y", "b": 1}',  # a colon after an escaped quote, inside a string
        '{"a\\"": 1, "a": 2}',  # names that differ by an escaped quote
        '{"t": "10:00:00", "u": {"v": "a:b:c"}}',
        '{"a" :1, "b" :2}',
        '[{"a": 1}, {"a": 1}]',  # the same name in two objects
        '{"n": 1e5, "m": {"n": 2}}',  # a document the exact-number reader parses again
    ],
)
def test_what_only_looks_like_a_name_twice_is_read(text: str) -> None:
    assert loads(text.encode()) == json.loads(text)


def test_a_member_named_twice_is_refused_where_numbers_are_read_again() -> None:
    with pytest.raises(FormatError) as raised:
        loads(b'{"n": 1e5, "n": 2}')
    assert [e.pointer for e in raised.value.errors] == ["/n"]


names = st.text(st.characters(codec="utf-8", exclude_characters='"\\'), max_size=3)


@hypothesis.given(
    pairs=st.lists(st.tuples(names, st.integers(0, 9)), min_size=1, max_size=6),
    spaced=st.booleans(),
)
def test_refused_exactly_when_a_name_repeats(pairs: list[tuple[str, int]], spaced: bool) -> None:
    sep = " : " if spaced else ":"
    text = "{" + ",".join(f"{json.dumps(k)}{sep}{v}" for k, v in pairs) + "}"
    repeated = len({k for k, _ in pairs}) < len(pairs)
    if repeated:
        with pytest.raises(FormatError):
            loads(text.encode())
    else:
        assert loads(text.encode()) == dict(pairs)


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", ["+00:60", "+00:99", "-05:75", "+24:00", "+99:00", "-24:00"])
def test_an_offset_that_is_not_one_is_refused(offset: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        normalize_time(f"2026-01-01T00:00:00{offset}")


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-01-01T00:00:00+23:59", "2025-12-31T00:01:00.000000Z"),
        ("2026-01-01T00:00:00-00:00", "2026-01-01T00:00:00.000000Z"),
        ("2026-01-01T00:00:00+05:45", "2025-12-31T18:15:00.000000Z"),
    ],
)
def test_every_real_offset_is_read(text: str, utc: str) -> None:
    assert normalize_time(text) == utc


@pytest.mark.parametrize("digit", ["\u0661", "\uff11", "\u0967"])  # Arabic-Indic, fullwidth, ...
def test_only_ascii_digits_make_a_time(digit: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        normalize_time(f"2026-01-0{digit}T00:00:00Z")


# --- headers ----------------------------------------------------------------------------------

BINARY = [("ce-specversion", "1.0"), ("ce-source", "/s"), ("ce-type", "t")]


@pytest.mark.parametrize(
    ("headers", "pointer"),
    [
        ([*BINARY, ("ce-id", "1"), ("ce-id", "2")], "/id"),
        ([*BINARY, ("ce-id", "1"), ("CE-ID", "1")], "/id"),
        ([*BINARY, ("ce-id", "1"), ("ce-subject", "a"), ("Ce-Subject", "b")], "/subject"),
        ([*BINARY, ("ce-id", "1"), ("content-type", "text/plain"), ("Content-Type", "a/b")],
         "/datacontenttype"),
    ],
)  # fmt: skip
def test_an_attribute_in_two_headers_is_refused(
    headers: list[tuple[str, str]], pointer: str
) -> None:
    with pytest.raises(FormatError) as raised:
        from_http(headers, b"x")
    assert [e.pointer for e in raised.value.errors] == [pointer]
    assert "given in 2 headers" in raised.value.errors[0].message


def test_other_repeated_headers_are_not_attributes() -> None:
    headers = [*BINARY, ("ce-id", "1"), ("accept", "a/b"), ("accept", "c/d")]
    assert from_http(headers, b"")[0]["id"] == "1"


def test_binary_mode_without_a_content_type_keeps_the_body_as_bytes() -> None:
    """HTTP binding 3.1.1: Content-Type maps to datacontenttype; with none there is none, and
    the body is bytes (the JSON format would read an absent datacontenttype as JSON: it is not
    ours to guess)."""
    (event,) = from_http([*BINARY, ("ce-id", "1")], b'{"a": 1}')
    assert "datacontenttype" not in event and "data" not in event
    assert base64.b64decode(event["data_base64"]) == b'{"a": 1}'


# --- over HTTP and the command line: refused, nothing written -----------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with serve(str(tmp_path / "a.db")) as opened:
        yield opened


def refund_text(payload: str) -> bytes:
    return (
        '{"domain": "payments", "event_type": "refund_requested", "entity_type": "refund", '
        f'"entity_id": "rf_1", "payload": {payload}}}'
    ).encode()


def test_post_receipts_refuses_a_member_named_twice(api: Api) -> None:
    body = refund_text('{"paymentIntentId": "pi_1", "requestedByUserId": "u_1", '
                       '"reasonCode": "late", "reasonCode": "fraud"}')  # fmt: skip
    for content in (body, b"[" + refund_text(json.dumps(REFUND)) + b"," + body + b"]"):
        response = api.client.post(
            "/v0/receipts", content=content, headers={**SERVICE, "content-type": "application/json"}
        )
        pointer = "/payload/reasonCode" if content is body else "/1/payload/reasonCode"
        problem = assert_problem(response, 400, "format_invalid", [pointer])
        assert problem["errors"][0]["message"] == f"member name 'reasonCode' {TWICE}"
    assert api.ledger.size() == 0


def test_post_events_refuses_ambiguity_in_every_mode(api: Api) -> None:
    event = {"specversion": "1.0", "id": "1", "source": "/s", "subject": "refund:rf_1",
             "type": "receipts.payments.refund_requested.v0", "data": REFUND}  # fmt: skip
    text = orjson.dumps(event).decode()
    twice = text[:-1] + ', "id": "2"}'
    structured = {**SERVICE, "content-type": "application/cloudevents+json"}
    batch = {**SERVICE, "content-type": "application/cloudevents-batch+json"}
    response = api.client.post("/events", content=twice, headers=structured)
    assert_problem(response, 400, "format_invalid", ["/id"])
    response = api.client.post("/events", content=f"[{text}, {twice}]", headers=batch)
    assert_problem(response, 400, "format_invalid", ["/1/id"])
    binary = [*SERVICE.items(), ("content-type", "application/json"), ("ce-specversion", "1.0"),
              ("ce-source", "/s"), ("ce-type", event["type"]), ("ce-subject", "refund:rf_1"),
              ("ce-id", "1"), ("ce-id", "2")]  # fmt: skip
    response = api.client.post("/events", content=orjson.dumps(REFUND), headers=binary)
    assert_problem(response, 400, "format_invalid", ["/id"])
    late = {**event, "time": "2026-01-01T00:00:00+00:60"}
    response = api.client.post("/events", content=orjson.dumps(late), headers=structured)
    problem = assert_problem(response, 422, "validation_failed", ["/time"])
    assert "RFC 3339" in problem["errors"][0]["message"]
    untyped = [*binary[:-1]][: len(binary) - 1]
    untyped = [h for h in untyped if h[0] != "content-type"]
    response = api.client.post("/events", content=orjson.dumps(REFUND), headers=untyped)
    problem = assert_problem(response, 422, "validation_failed")
    assert [e["pointer"] for e in problem["errors"]] == ["/data_base64"]
    assert api.ledger.size() == 0


def test_the_command_line_refuses_a_member_named_twice(tmp_path: Path) -> None:
    cli = Cli(tmp_path, tmp_path / "c.db")
    body = refund_text('{"paymentIntentId": "pi_1", "paymentIntentId": "pi_2", '
                       '"requestedByUserId": "u_1", "reasonCode": "late"}')  # fmt: skip
    for stdin, pointer in ((body, "/0/payload/paymentIntentId"),
                           (refund_text(json.dumps(REFUND)) + b"\n" + body + b"\n",
                            "/1/payload/paymentIntentId")):  # fmt: skip
        run = cli("append", "-", stdin=stdin)
        assert run.code == 1, run.err
        assert run.error["errors"] == [
            {"pointer": pointer, "message": f"member name 'paymentIntentId' {TWICE}"}
        ]
    assert cli.size() == 0


def test_a_receipt_time_offset_that_is_not_one_is_refused(api: Api) -> None:
    body = {"domain": "payments", "event_type": "refund_requested", "entity_type": "refund",
            "entity_id": "rf_1", "payload": REFUND,
            "occurred_at": "2026-01-01T00:00:00+00:99"}  # fmt: skip
    problem = assert_problem(api.post(body), 422, "validation_failed", ["/occurred_at"])
    assert "RFC 3339" in problem["errors"][0]["message"]
    with pytest.raises(ValidationError):
        api.ledger.append(body)
    assert api.ledger.size() == 0


@pytest.mark.parametrize(
    ("url", "pointers"),
    [
        ("/v0/receipts?limit=1&limit=2", ["/limit"]),
        ("/v0/proofs/consistency?from=0&to=1&from=1", ["/from"]),
        ("/v0/proofs/inclusion?seq=0&seq=1&size=1&size=1", ["/seq", "/size"]),
        ("/v0/state/refund/refund:rf_1?at_seq=1&at_seq=2", ["/at_seq"]),
    ],
)
def test_a_query_parameter_given_twice_is_refused(api: Api, url: str, pointers: list[str]) -> None:
    problem = assert_problem(api.client.get(url, headers=SERVICE), 400, "format_invalid", pointers)
    assert all("given 2 times" in e["message"] for e in problem["errors"])
    assert api.client.get(url.split("&")[0], headers=SERVICE).status_code != 400
