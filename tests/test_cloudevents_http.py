"""The HTTP binding: structured, binary and batched modes read and written symmetrically,
header values percent-encoded as the binding says, and interop with the CloudEvents SDK."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from cloudevents.v1 import conversion as sdk_v1_conversion
from cloudevents.v1.http import CloudEvent as SdkV1Event
from cloudevents.v1.http import from_http as sdk_v1_from_http
from hypothesis import given
from hypothesis import strategies as st

from receipts import FormatError, ReceiptsError, ValidationError
from receipts.cloudevents import (
    OCN_CONTENT_TYPE,
    UnsupportedMediaType,
    from_http,
    to_batch,
    to_binary,
    to_structured,
)
from receipts.cloudevents.http import decode_header_value, encode_header_value

FIXTURES = Path(__file__).parent / "fixtures" / "ocn"
OCN = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]
STRUCTURED = {"Content-Type": "application/cloudevents+json; charset=UTF-8"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}
BINARY = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}


def event(**attributes: Any) -> dict[str, Any]:
    out = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
    out.update(attributes)
    return out


EVENTS = [
    *OCN,
    event(),
    event(data=None),
    event(data="I'm just a string"),
    event(data=[1, "two", {"three": 3.5}]),
    event(datacontenttype="application/xml", data='<much wow="xml"/>'),
    event(datacontenttype="application/octet-stream", data_base64="AAEC/w=="),
    event(
        subject='Euro € 😀 "q" 100% \\ back+slash',
        time="2024-01-21T12:00:00.5+01:00",
        dataschema="urn:x:y",
        num=-5,
        flag=True,
        text="ünï %41",
        datacontenttype="application/json; charset=utf-8",
        data={"a": [1, 2], "b": None},
    ),
]


def as_strings(ev: dict[str, Any]) -> dict[str, Any]:
    """The event with every attribute in its canonical string form (what binary mode keeps)."""
    out: dict[str, Any] = {}
    for key, value in ev.items():
        if isinstance(value, bool) and key not in ("data", "data_base64"):
            out[key] = "true" if value else "false"
        elif isinstance(value, int) and key not in ("data", "data_base64"):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def raises(error: type[ReceiptsError], headers: dict[str, str], body: bytes) -> ReceiptsError:
    with pytest.raises(error) as caught:
        from_http(headers, body)
    return caught.value


# --- structured ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ev", EVENTS)
def test_structured_round_trip(ev: dict[str, Any]) -> None:
    headers, body = to_structured(ev)
    assert headers == {"content-type": "application/cloudevents+json; charset=utf-8"}
    assert json.loads(body) == ev
    assert from_http(headers, body) == [ev]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+json",
        "Application/CloudEvents+JSON; charset=utf-8",
        'application/cloudevents+json;charset="UTF-8"',
    ],
)
def test_structured_content_type_is_case_insensitive(content_type: str) -> None:
    assert from_http({"CONTENT-TYPE": content_type}, json.dumps(event()).encode()) == [event()]


def test_structured_ignores_ce_headers() -> None:
    headers = {**STRUCTURED, "ce-id": "other", "ce-type": "other"}
    assert from_http(headers, json.dumps(event()).encode()) == [event()]


def test_null_attributes_are_unset_but_null_data_is_data() -> None:
    body = json.dumps(event(subject=None, ext=None, data=None)).encode()
    assert from_http(STRUCTURED, body) == [event(data=None)]


def test_structured_body_must_be_json() -> None:
    error = raises(FormatError, STRUCTURED, b'{"id": ')
    assert error.code == "format_invalid" and error.http_status == 400


@pytest.mark.parametrize("body", [b"[]", b'"event"', b"5"])
def test_structured_body_must_be_an_object(body: bytes) -> None:
    error = raises(ValidationError, STRUCTURED, body)
    assert [e.pointer for e in error.errors] == [""]


def test_structured_event_is_validated() -> None:
    body = json.dumps(event(specversion="0.3", Bad=1)).encode()
    error = raises(ValidationError, STRUCTURED, body)
    assert [e.pointer for e in error.errors] == ["/specversion", "/Bad"]
    assert from_http(STRUCTURED, body, validate=False) == [event(specversion="0.3", Bad=1)]


# --- batched -------------------------------------------------------------------------------------


def test_batch_round_trip() -> None:
    headers, body = to_batch(EVENTS)
    assert headers == {"content-type": "application/cloudevents-batch+json; charset=utf-8"}
    assert from_http(headers, body) == EVENTS


def test_empty_batch() -> None:
    headers, body = to_batch([])
    assert body == b"[]"
    assert from_http(headers, body) == []


def test_batch_problems_are_named_by_index() -> None:
    body = json.dumps([event(), event(id=""), event(time="soon")]).encode()
    error = raises(ValidationError, BATCH, body)
    assert [e.pointer for e in error.errors] == ["/1/id", "/2/time"]


def test_batch_must_be_an_array_of_objects() -> None:
    assert [e.pointer for e in raises(ValidationError, BATCH, b"{}").errors] == [""]
    error = raises(ValidationError, BATCH, json.dumps([event(), 5, []]).encode())
    assert [e.pointer for e in error.errors] == ["/1", "/2"]


def test_to_batch_names_the_invalid_event() -> None:
    with pytest.raises(ValidationError) as caught:
        to_batch([event(), event(specversion="2")])
    assert [e.pointer for e in caught.value.errors] == ["/1/specversion"]


# --- binary --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ev", EVENTS)
def test_binary_round_trip(ev: dict[str, Any]) -> None:
    headers, body = to_binary(ev)
    assert all(k == "content-type" or k.startswith("ce-") for k in headers)
    assert all(v.isascii() and v.isprintable() and " " not in v for k, v in headers.items()
               if k != "content-type")  # fmt: skip
    (back,) = from_http(headers, body)
    expected = as_strings(ev)
    if "datacontenttype" not in ev and "data" in ev:
        expected["datacontenttype"] = "application/json"  # made explicit, as the spec advises
    if isinstance(ev.get("data"), str) and ev.get("datacontenttype") == "application/xml":
        # a body of a non-JSON type is bytes: it comes back as binary data
        expected["data_base64"] = base64.b64encode(expected.pop("data").encode()).decode()
    assert back == expected


def test_binary_maps_headers_to_attributes() -> None:
    headers = {
        "CE-SpecVersion": "1.0",
        "Ce-Id": "1234-1234-1234",
        "ce-source": "/mycontext/subcontext",
        "ce-type": "com.example.someevent",
        "ce-time": "2018-04-05T03:56:24Z",
        "ce-comexampleextension1": "value",
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": "17",
        "Host": "webhook.example.com",
    }
    assert from_http(headers, b'{"appinfoA": "x"}') == [
        {
            "specversion": "1.0",
            "id": "1234-1234-1234",
            "source": "/mycontext/subcontext",
            "type": "com.example.someevent",
            "time": "2018-04-05T03:56:24Z",
            "comexampleextension1": "value",
            "datacontenttype": "application/json; charset=utf-8",
            "data": {"appinfoA": "x"},
        }
    ]


@pytest.mark.parametrize(
    ("content_type", "body", "data"),
    [
        ("application/json", b'"I\'m just a string"', {"data": "I'm just a string"}),
        ("application/geo+json", b"[1]", {"data": [1]}),
        ("text/json", b"null", {"data": None}),
        (OCN_CONTENT_TYPE, b'{"a": 1}', {"data": {"a": 1}}),
        ("application/xml", b"<a/>", {"data_base64": base64.b64encode(b"<a/>").decode()}),
        ("application/octet-stream", b"\x00\xff", {"data_base64": "AP8="}),
        ("text/plain", b"", {}),
        # No Content-Type: no datacontenttype, and the body's bytes (binding §3.1.1), not a guess
        (None, b'{"a": 1}', {"data_base64": base64.b64encode(b'{"a": 1}').decode()}),
        (None, b"", {}),
    ],
)
def test_binary_body_becomes_data(
    content_type: str | None, body: bytes, data: dict[str, Any]
) -> None:
    headers = dict(BINARY)
    expected = event(**data)
    if content_type is not None:
        headers["content-type"] = content_type
        expected["datacontenttype"] = content_type
    assert from_http(headers, body) == [expected]


def test_binary_json_body_must_be_json() -> None:
    error = raises(FormatError, {**BINARY, "Content-Type": "application/json"}, b"{nope")
    assert [e.pointer for e in error.errors] == ["/data"]


def test_binary_must_not_carry_ce_datacontenttype() -> None:
    headers = {**BINARY, "content-type": "application/json", "ce-datacontenttype": "text/plain"}
    error = raises(ValidationError, headers, b"{}")
    assert [e.pointer for e in error.errors] == ["/datacontenttype"]
    assert "MUST NOT" in error.errors[0].message


@pytest.mark.parametrize("name", ["ce-data", "ce-data_base64"])
def test_binary_data_is_not_a_header(name: str) -> None:
    error = raises(ValidationError, {**BINARY, name: "x"}, b"")
    assert [e.pointer for e in error.errors] == ["/" + name.removeprefix("ce-")]


def test_binary_event_is_validated() -> None:
    headers = {**BINARY, "ce-time": "noon", "ce-Bad_Name": "x"}
    error = raises(ValidationError, headers, b"")
    assert [e.pointer for e in error.errors] == ["/time", "/bad_name"]


def test_conflicting_duplicate_headers_are_refused() -> None:
    raises(FormatError, {**BINARY, "CE-ID": "2"}, b"")


# --- percent-encoding ----------------------------------------------------------------------------


def test_the_bindings_percent_encoding_example() -> None:
    assert encode_header_value("Euro € 😀") == "Euro%20%E2%82%AC%20%F0%9F%98%80"
    assert decode_header_value("Euro%20%E2%82%AC%20%F0%9F%98%80") == "Euro € 😀"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("%e2%82%ac", "€"),  # lower-case hex
        ("%41%42", "AB"),  # needlessly encoded
        ('"quoted value"', "quoted value"),  # older senders: an RFC 9110 quoted-string
        (r'"with \"escapes\" \\ and %25"', 'with "escapes" \\ and %'),
        ("  padded\t", "padded"),
        ("a+b=c;d", "a+b=c;d"),
    ],
)
def test_header_values_are_decoded(header: str, value: str) -> None:
    assert decode_header_value(header) == value
    (ev,) = from_http({**BINARY, "ce-subject": header}, b"")
    assert ev["subject"] == value


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("%C0%A0", "not valid UTF-8"),  # overlong encoding of U+0020
        ("%ED%A0%80", "not valid UTF-8"),  # an encoded surrogate
        ("%E2%82", "not valid UTF-8"),  # truncated sequence
        ("%zz", "bad percent-encoding"),
        ("100%", "bad percent-encoding"),
        ("raw €", "US-ASCII"),
        ('"unterminated \\"', "lone backslash"),
    ],
)
def test_bad_header_values_are_rejected(header: str, reason: str) -> None:
    error = raises(ValidationError, {**BINARY, "ce-subject": header}, b"")
    assert [e.pointer for e in error.errors] == ["/subject"]
    assert reason in error.errors[0].message


_ATTRIBUTE_TEXT = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=("Cc", "Cs"),
        exclude_characters="\ufffe\uffff",
    ).filter(lambda c: not (0xFDD0 <= ord(c) <= 0xFDEF or ord(c) & 0xFFFE == 0xFFFE)),
    min_size=1,
)


@given(_ATTRIBUTE_TEXT)
def test_percent_encoding_round_trips_any_attribute_string(text: str) -> None:
    encoded = encode_header_value(text)
    assert all("!" <= c <= "~" and c != '"' for c in encoded)
    assert decode_header_value(encoded) == text
    headers, body = to_binary(event(subject=text, note=text))
    assert from_http(headers, body) == [event(subject=text, note=text)]


# --- not a CloudEvent ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"Content-Type": "text/plain", "ce-id": "1"},  # no ce-specversion
        {},
        {"Content-Type": "application/cloudevents+avro"},
        {"Content-Type": "application/cloudevents-batch+xml"},
        {"Content-Type": "application/cloudevents+json; charset=latin-1"},
    ],
)
def test_unsupported_media_type(headers: dict[str, str]) -> None:
    error = raises(UnsupportedMediaType, headers, b"{}")
    assert error.code == "unsupported_media_type" and error.http_status == 415
    assert isinstance(error, FormatError)


# --- writing -------------------------------------------------------------------------------------


def test_writers_refuse_invalid_events() -> None:
    for write in (to_structured, to_binary):
        with pytest.raises(ValidationError):
            write(event(id=""))


def test_to_binary_labels_unlabelled_data() -> None:
    assert to_binary(event(data={"a": 1}))[0]["content-type"] == "application/json"
    assert to_binary(event(data_base64="AA=="))[0]["content-type"] == "application/octet-stream"
    headers, body = to_binary(event())
    assert "content-type" not in headers and body == b""


def test_to_binary_writes_canonical_strings() -> None:
    headers, _ = to_binary(event(flag=False, n=-7, time="2024-01-21T12:00:00Z"))
    assert headers["ce-flag"] == "false" and headers["ce-n"] == "-7"
    assert headers["ce-time"] == "2024-01-21T12:00:00Z"


# --- interop with the CloudEvents SDK (cloudevents on PyPI) --------------------------------------

UNICODE = 'Euro € 😀 "q" 100%'


def test_sdk_binary_and_structured_messages_parse() -> None:
    attributes = {"type": "com.example.x", "source": "/s", "id": "1", "subject": UNICODE,
                  "datacontenttype": "application/json", "comexampleint": 5}  # fmt: skip
    sdk = SdkEvent(dict(attributes), {"a": [1, 2]})
    binary = sdk_http.to_binary_event(sdk)
    (ev,) = from_http(binary.headers, binary.body)
    assert ev["subject"] == UNICODE and ev["data"] == {"a": [1, 2]}
    assert ev["comexampleint"] == "5" and ev["time"].endswith("Z")
    structured = sdk_http.to_structured_event(sdk)
    (st_ev,) = from_http(structured.headers, structured.body)
    assert st_ev == {**ev, "comexampleint": 5}


def test_sdk_v1_api_messages_parse() -> None:
    # The 1.x API (cloudevents.v1) neither percent-encodes headers nor stringifies integers.
    attributes = {"type": "com.example.x", "source": "/s", "subject": "plain"}
    sdk = SdkV1Event({**attributes, "datacontenttype": "application/json"}, {"a": 1})
    headers, body = sdk_v1_conversion.to_binary(sdk)
    (ev,) = from_http({k: str(v) for k, v in headers.items()}, body)
    assert ev["id"] == sdk["id"] and ev["data"] == {"a": 1}
    headers, body = sdk_v1_conversion.to_structured(sdk)
    assert from_http(headers, body) == [{**ev}]
    # Without a datacontenttype the SDK sends no Content-Type in binary mode: the body is then
    # kept as the bytes it is (HTTP binding §3.1.1), not read as JSON on a guess.
    untyped = SdkV1Event(attributes, {"a": 1})
    headers, body = sdk_v1_conversion.to_binary(untyped)
    assert "content-type" not in {k.lower() for k in headers}
    (ev,) = from_http({k: str(v) for k, v in headers.items()}, body)
    assert "datacontenttype" not in ev and base64.b64decode(ev["data_base64"]) == body


@pytest.mark.parametrize("ev", [*OCN, event(subject=UNICODE, n=5, flag=True, data={"a": 1})])
def test_our_messages_parse_with_the_sdk(ev: dict[str, Any]) -> None:
    for headers, body in (to_structured(ev), to_binary(ev)):
        sdk = sdk_http.from_http_event(sdk_http.HTTPMessage(headers, body))
        attributes = sdk.get_attributes()
        assert attributes["id"] == ev["id"] and attributes["type"] == ev["type"]
        assert attributes.get("subject") == ev.get("subject")
        assert sdk.get_data() == ev["data"]
    headers, body = to_structured(ev)
    v1 = sdk_v1_from_http(headers, body)
    assert v1["id"] == ev["id"] and v1.get_data() == ev["data"]
