"""Bad input never yields a 5xx. Schemathesis drives every operation of /openapi.json (valid and
invalid inputs, service-role token) against an in-process app on each backend; Hypothesis adds
arbitrary bodies and headers for what the OpenAPI document leaves open (CloudEvents ingress,
arbitrary JSON receipt requests). Bounded and deterministic: a fixed budget per operation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from receipts import Ledger
from receipts.api import Settings, create_app
from receipts.tlog import Signer
from receipts.validate import REQUEST_FIELDS
from test_api_support import (
    AUTH_A,
    EDGE,
    ORIGIN,
    SECRET,
    SERVICE,
    USER_A,
    Api,
    ocn_example,
    refund,
    serve,
)

MAX_EXAMPLES = 25


@pytest.fixture
def api_schema(ledger_url: str) -> Iterator[Any]:
    ledger = Ledger.open(ledger_url, signer=Signer.generate(ORIGIN))
    # Something to find: receipts, an OCN trace, a checkpoint.
    ledger.append(refund("r-1"))
    ledger.append_batch([refund(f"r-{i}", owner_user_id=USER_A) for i in range(2, 5)])
    ledger.checkpoint()
    app = create_app(
        ledger,
        Settings(jwt_secret=SECRET, edge_function_keys=frozenset({EDGE}), checkpoint_interval=0),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
        database="none",
    )
    try:
        yield schema
    finally:
        asgi.shutdown_lifespans()  # the app's writer (a thread, or a process on SQLite)
        ledger.close()


# Every operation of /openapi.json but the SSE tail, which never ends by design (its parameters
# are fuzzed below). Listed, so that a new route without a fuzz budget fails the check below.
OPERATIONS = [
    ("POST", "/v0/receipts"),
    ("GET", "/v0/receipts"),
    ("GET", "/v0/receipts/{receipt_id}"),
    ("GET", "/v0/entities/{entity}/current"),
    ("GET", "/v0/checkpoint"),
    ("GET", "/v0/proofs/inclusion"),
    ("GET", "/v0/proofs/consistency"),
    ("GET", "/v0/catalog"),
    ("GET", "/v0/catalog/{event_type}"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/events"),
    ("GET", "/receipts/{trace_id}"),
    ("GET", "/v0/state/{name}/{key}"),
    ("GET", "/v0/why/{entity}"),
    ("GET", "/v0/states"),
]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.mark.backends("sqlite")
def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == {*OPERATIONS, ("GET", "/v0/stream")}


def test_no_operation_answers_a_5xx(api_schema: Any, subtests: pytest.Subtests) -> None:
    """Schemathesis cases, valid and invalid, with a service-role token: no 5xx. One app per
    backend for every operation (a subtest each)."""
    for method, path in OPERATIONS:
        operation = api_schema[path][method]
        for mode in MODES:
            with subtests.test(operation=f"{method} {path}", mode=mode.value):

                @settings(
                    max_examples=MAX_EXAMPLES,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case: Any) -> None:
                    case.call_and_validate(headers=dict(SERVICE), checks=[not_a_server_error])

                try:
                    run()
                except Unsatisfiable:  # nothing to get wrong (no parameters; any string will do)
                    assert mode is schemathesis.GenerationMode.NEGATIVE


# --- what the OpenAPI document leaves open -------------------------------------------------------

# Values that have broken services like this one: NUL (PostgreSQL text refuses it), integers past
# 64 bits (SQLite refuses them), non-ASCII digits, lone percent signs, empty strings...
# Known-nasty strings: NULs, int64 edges, non-ASCII digits, separators, huge values.
NASTY = [
    "\x00",
    "a\x00b",
    "refund:r\x00",
    "\x00:x",
    "9" * 20,
    "-" + "9" * 20,
    str(2**63),
    str(2**63 - 1),
    str(-(2**63) - 1),
    "-1",
    "0",
    "\u00b2",
    "\u0663",
    "1e3",
    "",
    " ",
    "a:b:c",
    ":",
    "%",
    "%00",
    "\u202e",
    "\U0001f642",
    "null",
    "true",
    "2026-01-02T10:00:00Z",
    "9999-99-99",
    "x" * 5000,
    "txn\x00",
    "refund:r-1",
]
NASTY_STRINGS = st.sampled_from(NASTY)
NASTY_INTS = st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 2**53 + 1, -1, 0])
STRINGS = st.one_of(NASTY_STRINGS, NASTY_STRINGS, st.text(max_size=20))  # 2:1 for the nasty
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | NASTY_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | STRINGS
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=5),
    max_leaves=12,
)
ATTRIBUTE_NAMES = st.sampled_from(
    [
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "dataschema",
        "datacontenttype",
        "data",
        "data_base64",
        "seq",
        "op",
        "Ext",
        "comexample",
        "",
    ]
)


def _mutated_events() -> st.SearchStrategy[Any]:
    """Real events (a receipt type, the OCN examples) with attributes replaced or removed."""
    bases = [
        {
            "specversion": "1.0",
            "id": "f-1",
            "source": "urn:fuzz",
            "subject": "refund:r-1",
            "type": "receipts.payments.refund_requested.v0",
            "data": refund()["payload"],
        },
        ocn_example("decision_approve"),
        ocn_example("explanation_approve"),
        ocn_example("audit_approve"),
    ]

    def mutate(
        base: dict[str, Any], changes: dict[str, Any], drop: list[str], extra: dict[str, Any]
    ) -> dict[str, Any]:
        event = {**base, **changes}
        for name in drop:
            event.pop(name, None)
        if isinstance(event.get("data"), dict):
            event["data"] = {**event["data"], **extra}
        return event

    return st.builds(
        mutate,
        st.sampled_from(bases),
        st.dictionaries(ATTRIBUTE_NAMES, STRINGS | JSON_VALUES, max_size=3),
        st.lists(ATTRIBUTE_NAMES, max_size=2),
        st.dictionaries(STRINGS, STRINGS | JSON_VALUES, max_size=2),  # into the data
    )


EVENTS = _mutated_events() | JSON_VALUES
CONTENT_TYPES = st.sampled_from(
    [
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "application/cloudevents+json; charset=utf-8",
        "application/cloudevents+json; charset=x",
        "application/json",
        "text/plain",
        "application/vnd.ocn.ap2+json; version=1",
        "",
    ]
)
HEADER_VALUES = st.lists(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(["%C3", "%00", "%"]),
    max_size=12,
).map("".join)
CE_HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "ce-specversion",
            "ce-id",
            "ce-source",
            "ce-type",
            "ce-subject",
            "ce-time",
            "ce-dataschema",
            "ce-datacontenttype",
            "ce-Ext",
            "ce-comexample",
            "ce-data",
            "content-type",
        ]
    ),
    HEADER_VALUES,
    max_size=8,
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # any integer, any code point (orjson stops at 64 bits)


def _no_5xx(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text


@pytest.fixture
def api(ledger_url: str) -> Iterator[Api]:
    with serve(ledger_url, body_limit=64 * 1024) as opened:
        yield opened


def test_cloudevents_ingress_never_answers_a_5xx(api: Api) -> None:
    @FUZZ
    @given(
        event=EVENTS,
        batch=st.lists(EVENTS, max_size=3),
        content_type=CONTENT_TYPES,
        mode=st.sampled_from(["structured", "batch", "binary", "any content type"]),
        headers=CE_HEADERS,
        body=st.binary(max_size=64) | JSON_VALUES.map(_dumps),
        who=st.sampled_from([SERVICE, AUTH_A]),
    )
    def run(
        event: Any,
        batch: list[Any],
        content_type: str,
        mode: str,
        headers: dict[str, str],
        body: bytes,
        who: dict[str, str],
    ) -> None:
        if mode == "binary":
            sent = {"ce-specversion": "1.0", **headers}
            response = api.client.post("/events", content=body, headers={**who, **sent})
        else:
            document = _dumps(batch if mode == "batch" else event)
            kind = {
                "structured": "application/cloudevents+json",
                "batch": "application/cloudevents-batch+json",
            }.get(mode, content_type)
            response = api.client.post(
                "/events", content=document, headers={**who, "content-type": kind}
            )
        _no_5xx(response)

    run()


def test_receipt_requests_never_answer_a_5xx(api: Api) -> None:
    fields = st.sampled_from([*sorted(REQUEST_FIELDS), "bogus"])

    def build(changes: dict[str, Any], drop: list[str], extra: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in {**refund(), **changes}.items() if k not in drop}
        if isinstance(body.get("payload"), dict):
            body["payload"] = {**body["payload"], **extra}
        return body

    requests = st.builds(
        build,
        st.dictionaries(fields, STRINGS | JSON_VALUES, max_size=3),
        st.lists(fields, max_size=2),
        st.dictionaries(STRINGS, STRINGS | JSON_VALUES, max_size=2),  # into the payload
    )

    @FUZZ
    @given(
        body=requests | st.lists(requests, max_size=3) | JSON_VALUES,
        who=st.sampled_from([SERVICE, AUTH_A]),
    )
    def run(body: Any, who: dict[str, str]) -> None:
        _no_5xx(api.post(body, who))

    run()


NASTY_JSON = [
    *NASTY,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    2**53 + 1,
    1.5,
    -0.0,
    True,
    None,
    [],
    {},
    ["\x00"],
    {"\x00": 1},
    {"a": {"b": "\x00"}},
]


def _get_operations(api: Api) -> list[tuple[str, list[tuple[str, str]]]]:
    spec = api.client.get("/openapi.json").json()
    return [
        (path, [(p["name"], p["in"]) for p in op.get("parameters", [])])
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method == "get" and path != "/v0/stream"  # the tail is fuzzed below
    ]


def test_every_parameter_survives_every_nasty_value(api: Api) -> None:
    """A deterministic sweep: each declared parameter, alone, set to each known-nasty value."""
    api.append([refund("r-1"), refund("r-2", owner_user_id=USER_A)])
    api.ledger.checkpoint()
    for path, parameters in _get_operations(api):
        for name, where in parameters:
            for value in NASTY:
                url, query = path, {}
                for other, other_where in parameters:  # the other path parameters: plausible
                    if other_where == "path" and other != name:
                        url = url.replace("{" + other + "}", "refund:r-1")
                if where == "path":
                    if not value:
                        continue
                    url = url.replace("{" + name + "}", quote(value, safe=""))
                else:
                    query[name] = value
                _no_5xx(api.client.get(url, params=query, headers=SERVICE))


def test_every_field_survives_every_nasty_value(api: Api) -> None:
    """A deterministic sweep over receipt request fields, payload members, CloudEvent attributes
    and data members: each set, alone, to each known-nasty JSON value."""
    fields = sorted(REQUEST_FIELDS)
    structured = {**SERVICE, "content-type": "application/cloudevents+json"}
    event = {
        "specversion": "1.0",
        "id": "n-1",
        "source": "urn:fuzz",
        "subject": "refund:r-1",
        "type": "receipts.payments.refund_requested.v0",
        "data": refund()["payload"],
    }
    for value in NASTY_JSON:
        for field in fields:
            _no_5xx(api.post({**refund(), field: value}))
        _no_5xx(api.post(refund(payload={**refund()["payload"], "note": value})))
        for attribute in ("id", "source", "subject", "comexample"):
            sent = {**event, attribute: value}
            _no_5xx(api.client.post("/events", content=_dumps(sent), headers=structured))
        for base in (event, ocn_example("decision_approve")):
            sent = {**base, "data": {**base["data"], "note": value}}
            _no_5xx(api.client.post("/events", content=_dumps(sent), headers=structured))
        if isinstance(value, str) and value:  # as a data member's name too
            sent = {**event, "data": {**event["data"], value: 1}}
            _no_5xx(api.client.post("/events", content=_dumps(sent), headers=structured))
            _no_5xx(api.post(refund(payload={**refund()["payload"], value: 1})))


def test_query_and_path_parameters_never_answer_a_5xx(api: Api) -> None:
    """Every parameter /openapi.json declares, given hostile values (path and query)."""
    api.append([refund("r-1"), refund("r-2", owner_user_id=USER_A)])
    api.ledger.checkpoint()
    operations = _get_operations(api)
    values = STRINGS | st.integers().map(str) | NASTY_INTS.map(str)

    @FUZZ
    @given(data=st.data(), who=st.sampled_from([SERVICE, AUTH_A]))
    def run(data: st.DataObject, who: dict[str, str]) -> None:
        path, parameters = data.draw(st.sampled_from(operations))
        url, query = path, {}
        for name, where in parameters:
            if where == "path":
                value = data.draw(values.filter(bool))
                url = url.replace("{" + name + "}", quote(value, safe=""))
            elif data.draw(st.integers(0, 2)) == 0:  # few at a time: one bad value can hide another
                query[name] = data.draw(values)
        _no_5xx(api.client.get(url, params=query, headers=who))

    run()


def test_stream_parameters_never_answer_a_5xx(api: Api) -> None:
    api.append(refund())

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(after=st.one_of(st.none(), st.integers(), st.text(max_size=8)), last=HEADER_VALUES)
    def run(after: Any, last: str) -> None:
        params = {} if after is None else {"after": after}
        headers = {**SERVICE, "last-event-id": last}
        with api.client.stream("GET", "/v0/stream", params=params, headers=headers) as response:
            assert response.status_code < 500
            if response.status_code == 200:  # a valid cursor: the stream starts, we leave
                assert next(response.iter_lines()) == ": receipts stream"
            else:
                response.read()
                _no_5xx(response)

    run()
