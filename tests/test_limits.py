"""docs/limits.md: what every ingress refuses so that a receipt is stored exactly as it was sent
and no request can exhaust the service — numbers a double cannot hold, nesting beyond 64 levels,
non-JSON values, payloads over the size limit — each refused by the pointer of the value, at the
Python API, the HTTP API, CloudEvents (structured, binary, batch), `receipts append` and
`receipts import`; and every number form that is accepted round-trips exactly."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receipts import Ledger, ValidationError, canonical_bytes
from receipts.cli import main
from receipts.jsontext import NOT_EXACT, TOO_DEEP, loads
from receipts.limits import MAX_DEPTH, MAX_SAFE_INTEGER
from test_api_support import SECRET, Api, serve

# Numbers a double cannot hold as sent, as JSON text, and why.
INEXACT = {
    "2^53+1": "9007199254740993",
    "30 digits": "123456789012345678901234567890",
    "too precise": "1.0000000000000000001",
    "too precise, small": "0.30000000000000004440892098500626",
    "integral beyond 2^53": "1e20",
    "overflows a double": "1e400",
    "negative overflow": "-1e400",
}
EXACT = ["0", "-0", "1.5", "0.1", "1e-7", "9007199254740991", "-9007199254740991", "4.35",
         "1E2", "2.5e-300", "123.456", "0.30000000000000004"]  # fmt: skip


def refund_text(number: str, *, entity_id: str = "rf_1", extra: str = "") -> str:
    """A refund request as JSON text with ``payload.n`` written exactly as ``number``."""
    return (
        '{"domain": "payments", "event_type": "refund_requested", "entity_type": "refund", '
        f'"entity_id": "{entity_id}", "payload": {{"paymentIntentId": "pi_1", '
        f'"requestedByUserId": "u_1", "reasonCode": "sick", "n": {number}{extra}}}}}'
    )


def nested(levels: int) -> str:
    """JSON text of an object nesting ``levels`` levels (itself level 1)."""
    return '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)


def service() -> dict[str, str]:
    claims = {"role": "service_role", "sub": "pipeline", "exp": int(time.time()) + 3600}
    return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}


# --- the parser and the validator ----------------------------------------------------------------


@pytest.mark.parametrize("number", INEXACT.values(), ids=INEXACT.keys())
def test_numbers_a_double_cannot_hold_are_refused_at_their_pointer(number: str) -> None:
    with pytest.raises(ValidationError) as caught:
        loads(refund_text(number), "/7")
    (detail,) = caught.value.errors
    assert detail.pointer == "/7/payload/n"
    assert detail.message.startswith(NOT_EXACT) and number in detail.message


@pytest.mark.parametrize("number", EXACT)
def test_numbers_a_double_holds_are_stored_and_read_back_exactly(
    number: str, ledger: Ledger
) -> None:
    stored = ledger.append(loads(refund_text(number)))
    again = ledger.get(stored.id)
    assert Decimal(repr(again.payload["n"])) == Decimal(number)
    entry = orjson.loads(again.entry_bytes)  # what a verifier parses from a bundle
    assert Decimal(repr(entry["payload"]["n"])) == Decimal(number)
    assert canonical_bytes(entry) == again.entry_bytes


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.tuples(st.integers(-(10**25), 10**25), st.integers(0, 25)).map(
            lambda t: str(Decimal(t[0]).scaleb(-t[1]))
        ),
        st.tuples(st.integers(-(10**20), 10**20), st.integers(-400, 400)).map(
            lambda t: f"{t[0]}e{t[1]}"
        ),
    )
)
def test_every_number_is_refused_or_kept_exactly(number: str) -> None:
    try:
        value = loads(number if number[0] != "+" else number[1:])
    except ValidationError:
        exact = None  # refused: it must really be beyond what a double holds
        try:
            as_float = float(number)
            exact = abs(as_float) <= MAX_SAFE_INTEGER and Decimal(number) == Decimal(repr(as_float))
        except (ValueError, OverflowError):
            exact = False
        assert not exact, number
        return
    assert Decimal(repr(value)) == Decimal(number)
    text = canonical_bytes({"n": value})
    assert canonical_bytes(orjson.loads(text)) == text  # parses back to the same bytes


def test_python_api_refuses_what_cannot_be_stored_at_the_field(ledger: Ledger) -> None:
    request = loads(refund_text("1"))
    request["payload"].update(big=2**53 + 1, inf=float("inf"), tup=(1, 2))
    with pytest.raises(ValidationError) as caught:
        ledger.append(request)
    assert [e.pointer for e in caught.value.errors] == [
        "/payload/big",
        "/payload/inf",
        "/payload/tup",
    ]
    assert ledger.size() == 0


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 600, 5000])
def test_nesting_beyond_the_limit_is_refused_without_recursion(levels: int, ledger: Ledger) -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(levels - 2):  # the payload is level 1, "deep" level 2
        cursor["a"] = {}
        cursor = cursor["a"]
    request = loads(refund_text("1"))
    request["payload"]["deep"] = deep
    with pytest.raises(ValidationError) as caught:
        ledger.append(request)
    (detail,) = caught.value.errors
    assert detail.pointer == "/payload/deep" + "/a" * (MAX_DEPTH - 1)  # level 65
    assert detail.message == TOO_DEEP


def test_nesting_at_the_limit_is_stored_and_read_back(ledger: Ledger) -> None:
    request = loads(refund_text("1"))
    request["payload"]["deep"] = loads(nested(MAX_DEPTH - 1))
    stored = ledger.append(request)
    assert ledger.get(stored.id).payload == stored.payload
    assert [r.payload for r in ledger.query(entity="refund:rf_1")] == [stored.payload]


def test_a_payload_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.validator.max_payload_bytes = 2048
        request = loads(refund_text("1"))
        request["payload"]["notes"] = "x" * 2048
        with pytest.raises(ValidationError) as caught:
            ledger.append(request)
        (detail,) = caught.value.errors
        assert detail.pointer == "/payload"
        assert "over the limit of 2048 (RECEIPTS_MAX_RECEIPT_BYTES)" in detail.message


def test_the_size_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECEIPTS_MAX_RECEIPT_BYTES", "4096")
    with Ledger.open(tmp_path / "l.db") as ledger:
        assert ledger.validator.max_payload_bytes == 4096


# --- HTTP and CloudEvents ------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with serve(str(tmp_path / "limits.db")) as opened:
        yield opened


def _post(api: Api, path: str, body: str, content_type: str, **headers: str) -> Any:
    return api.client.post(
        path, content=body.encode(), headers={**service(), "content-type": content_type, **headers}
    )


def _refused(response: Any, pointer: str, message: str) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [e["pointer"] for e in problem["errors"]] == [pointer], problem
    assert problem["errors"][0]["message"].startswith(message)


def _event(data: str, event_id: str = "e-1") -> str:
    return (
        '{"specversion": "1.0", "id": "' + event_id + '", "source": "urn:test", '
        '"type": "receipts.payments.refund_requested.v0", "subject": "refund:rf_1", '
        '"datacontenttype": "application/json", "data": ' + data + "}"
    )


def _data(number: str) -> str:
    return (
        '{"paymentIntentId": "pi_1", "requestedByUserId": "u_1", "reasonCode": "sick", '
        f'"n": {number}}}'
    )


@pytest.mark.parametrize("number", ["9007199254740993", "1.0000000000000000001", "1e400"])
def test_http_ingresses_refuse_inexact_numbers_at_the_field(api: Api, number: str) -> None:
    json_type, ce, batch = (
        "application/json",
        "application/cloudevents+json",
        ("application/cloudevents-batch+json"),
    )
    _refused(_post(api, "/v0/receipts", refund_text(number), json_type), "/payload/n", NOT_EXACT)
    many = f"[{refund_text('1')}, {refund_text(number, entity_id='rf_2')}]"
    _refused(_post(api, "/v0/receipts", many, json_type), "/1/payload/n", NOT_EXACT)
    _refused(_post(api, "/events", _event(_data(number)), ce), "/data/n", NOT_EXACT)
    events = f"[{_event(_data('1'))}, {_event(_data(number), 'e-2')}]"
    _refused(_post(api, "/events", events, batch), "/1/data/n", NOT_EXACT)
    binary = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "urn:test",
        "ce-type": "receipts.payments.refund_requested.v0",
        "ce-subject": "refund:rf_1",
    }
    _refused(_post(api, "/events", _data(number), json_type, **binary), "/data/n", NOT_EXACT)
    assert api.ledger.size() == 0


def test_http_ingresses_refuse_deep_nesting_with_a_422(api: Api) -> None:
    for levels in (MAX_DEPTH + 1, 600):
        deep = refund_text("1", extra=f', "deep": {nested(levels - 1)}')
        response = _post(api, "/v0/receipts", deep, "application/json")
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["message"].startswith("nested deeper than")
        event = _event(_data("1")[:-1] + f', "deep": {nested(levels - 1)}}}')
        response = _post(api, "/events", event, "application/cloudevents+json")
        assert response.status_code == 422, response.text
    assert api.ledger.size() == 0
    response = api.client.post("/v0/receipts", json=loads(refund_text("1")), headers=service())
    assert response.status_code == 201, response.text  # the service is unharmed


# --- the command line ----------------------------------------------------------------------------


def run_cli(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsysbinary.readouterr()
    return code, (out + err).decode()


@pytest.mark.parametrize("command", ["append", "import"])
def test_cli_ingresses_refuse_inexact_numbers_at_the_field(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], command: str
) -> None:
    db = str(tmp_path / "cli.db")
    lines = tmp_path / "in.jsonl"
    lines.write_text(refund_text("1") + "\n" + refund_text("123456789012345678901234567890") + "\n")
    code, output = run_cli(capsysbinary, "--db", db, command, str(lines))
    assert code == 1
    assert NOT_EXACT in output
    if command == "append":  # the batch is refused; the pointer starts with the line's index
        assert '"/1/payload/n"' in output
    else:  # the line is rejected, by its number and the pointer within it; the rest is stored
        (rejected,) = json.loads(output)["rejected"]
        assert (rejected["line"], rejected["errors"][0]["pointer"]) == (2, "/payload/n")
    document = tmp_path / "one.json"
    document.write_text(refund_text("1e400"))
    code, output = run_cli(capsysbinary, "--db", db, "append", str(document))
    assert code == 1 and '"/payload/n"' in output


def test_cli_refuses_deep_nesting(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    document = tmp_path / "deep.json"
    document.write_text(refund_text("1", extra=f', "deep": {nested(600)}'))
    code, output = run_cli(capsysbinary, "--db", str(tmp_path / "cli.db"), "append", str(document))
    assert code == 1 and "nested deeper than" in output


@pytest.mark.parametrize("command", ["append", "import"])
def test_the_cli_reads_a_line_over_the_limit_without_keeping_it(
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    monkeypatch.setenv("RECEIPTS_MAX_RECEIPT_BYTES", "4096")
    lines = tmp_path / "in.jsonl"
    huge = refund_text("1", entity_id="rf_2", extra=f', "notes": "{"x" * 5_000_000}"')
    lines.write_text(refund_text("1") + "\n" + huge + "\n" + refund_text("2", entity_id="rf_3"))
    tracemalloc.start()
    code, output = run_cli(capsysbinary, "--db", str(tmp_path / "cli.db"), command, str(lines))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 1
    assert peak < 2_000_000  # the 5 MB line was never held whole
    assert "over the limit of 20480 bytes (RECEIPTS_MAX_RECEIPT_BYTES)" in output
    if command == "import":  # the line is rejected; the lines around it are stored
        report = json.loads(output)
        assert report["committed"] == [[1, 1], [3, 3]]
        assert [r["line"] for r in report["rejected"]] == [2]


def test_the_cli_refuses_a_document_over_the_limit(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIPTS_MAX_RECEIPT_BYTES", "4096")
    document = tmp_path / "big.json"
    document.write_text("[\n" + ",\n".join([refund_text("1")] * 1000) + "\n]")
    code, output = run_cli(capsysbinary, "--db", str(tmp_path / "cli.db"), "append", str(document))
    assert code == 1
    assert "send many receipts as JSON Lines" in output
