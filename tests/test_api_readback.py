"""Every receipt the ledger stores can be read back by every HTTP read path, as it was stored:
receipts at the edges of what is allowed (nesting 64 levels deep, a payload near the size
limit, non-ASCII and astral-plane keys and strings, integers at ±(2**53 - 1), the smallest and
largest numbers a receipt keeps exactly), stored through the library, on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from receipts import Receipt
from receipts.bundle import Bundle
from receipts.limits import MAX_DEPTH, MAX_SAFE_INTEGER, max_receipt_bytes
from test_api_support import AUTH_A, SERVICE, USER_A, Api, event_stream, refund, serve

TRACE = "trace-edges"


def nested(levels: int) -> dict[str, Any]:
    """An object ``levels`` deep (itself level 1), with a value at the bottom."""
    value: dict[str, Any] = {"bottom": [1, "x", None]}  # the array is one more level
    for _ in range(levels - 2):
        value = {"n": value}
    return value


def edges() -> dict[str, dict[str, Any]]:
    """Payload additions, by name, each at an edge of what a receipt may hold."""
    base = len(json.dumps(refund()["payload"], separators=(",", ":")))
    return {
        # The payload is level 1, the object under "deep" level 2: 64 levels in all.
        "deepest": {"deep": nested(MAX_DEPTH - 1)},
        "largest": {"notes": "x" * (max_receipt_bytes() - base - 64)},
        "non-ascii": {
            "ключ": "значение",
            "中文键": "\u2028 line and paragraph \u2029 separators, \x85 next line",
            "\U0001f511": "\U0001d11e \U0001f469\u200d\U0001f469\u200d\U0001f467 \U0010ffff",
            "escapes": '"\\/\b\f\n\r\t\u0001\u001f\u007f',
        },
        "integers": {"max": MAX_SAFE_INTEGER, "min": -MAX_SAFE_INTEGER, "zero": 0},
        "doubles": {
            "tiniest": 5e-324,
            "smallest_normal": 2.2250738585072014e-308,
            # the largest a receipt keeps exactly (docs/limits.md), as doubles
            "largest": 9007199254740991.0,
            "negative_largest": -9007199254740991.0,
            "fraction": 4503599627370495.5,
            "small": 1e-7,
            "tenth": 0.1,
        },
    }


@pytest.fixture
def stored(ledger_url: str) -> Iterator[tuple[Api, dict[str, Receipt]]]:
    with serve(ledger_url) as api:
        receipts = {}
        for name, extra in edges().items():
            body = refund(f"edge-{name}", owner_user_id=USER_A)
            body["payload"].update(extra, correlation_id=TRACE)
            receipts[name] = api.ledger.append(body)
        api.ledger.checkpoint()
        yield api, receipts


def as_json(receipt: Receipt) -> Any:
    return json.loads(receipt.to_json())


def test_every_read_path_gives_back_what_was_stored(stored: tuple[Api, dict[str, Receipt]]) -> None:
    api, receipts = stored
    client, verifier = api.client, api.signer.verifier()
    for name, receipt in receipts.items():
        expected = as_json(receipt)
        sent = edges()[name]
        assert {k: expected["payload"][k] for k in sent} == sent, name  # stored as sent
        one = client.get(f"/v0/receipts/{receipt.id}", headers=SERVICE)
        assert one.status_code == 200, (name, one.text)
        assert one.json() == expected, name
        event = client.get(f"/v0/receipts/{receipt.id}?format=cloudevent", headers=SERVICE)
        assert event.status_code == 200, (name, event.text)
        assert event.json()["data"] == expected["payload"], name
        current = client.get(f"/v0/entities/refund:edge-{name}/current", headers=AUTH_A)
        assert current.status_code == 200, (name, current.text)
        assert current.json() == [expected], name
        proof = client.get(f"/v0/proofs/inclusion?id={receipt.id}", headers=SERVICE)
        assert proof.status_code == 200, (name, proof.text)
        bundle = Bundle(**proof.json())
        assert bundle.verify(verifier).leaf_hash == receipt.leaf_hash, name

    every = [as_json(r) for r in receipts.values()]
    for headers in (SERVICE, AUTH_A):  # everything, and one user's own rows
        listed = client.get("/v0/receipts?limit=1000", headers=headers)
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"] == every

    trace = client.get(f"/receipts/{TRACE}", headers=SERVICE)
    assert trace.status_code == 200, trace.text
    assert [e["data"] for e in trace.json()["events"]] == [r["payload"] for r in every]

    with event_stream(client, "/v0/stream?after=-1", SERVICE) as stream:
        streamed = stream.receipts_until(len(every) - 1)
    assert streamed == every
