"""Every error leaves the service as an RFC 9457 problem (application/problem+json) with a stable
``code`` and ``errors: [{pointer, message}]``; bad input is a 4xx, and a refused request writes
nothing."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from receipts.errors import ErrorDetail, OverloadedError, ReceiptsError, StorageError
from test_api_support import (
    AUTH_A,
    SERVICE,
    Api,
    assert_problem,
    refund,
    request,
    serve,
    wait_until,
    writes_held,
)

JSON = SERVICE.plus(content_type="application/json")
CE = SERVICE.plus(content_type="application/cloudevents+json")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with serve(str(tmp_path / "errors.db"), body_limit=4096) as opened:
        yield opened


def intent(**payload: Any) -> dict[str, Any]:
    """payment_intent_created (currency: ISO 4217, upper case)."""
    body = request("payment_intent_created", "pi-1")
    body["payload"].update(payload)
    return body


# --- 400 / 413 / 415: the body, before any work -------------------------------------------------


@pytest.mark.parametrize("body", [b'{"domain": ', b"{'a': 1}", b"[1,]", b"", b"\xff\xfe", b"NaN"])
def test_malformed_json_is_400(api: Api, body: bytes) -> None:
    response = api.client.post("/v0/receipts", content=body, headers=JSON)
    problem = assert_problem(response, 400, "format_invalid")
    assert [e["pointer"] for e in problem["errors"]] == [""]
    assert problem["instance"] == "/v0/receipts"


def test_malformed_cloudevent_json_is_400(api: Api) -> None:
    response = api.client.post("/events", content=b'{"specversion": "1.0",', headers=CE)
    assert_problem(response, 400, "format_invalid", [""])


def test_a_declared_content_length_over_the_limit_is_413(api: Api) -> None:
    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    for path, headers in (("/v0/receipts", JSON), ("/events", CE)):
        response = api.client.post(path, content=big, headers=headers)
        assert response.request.headers["content-length"] == str(len(big))
        problem = assert_problem(response, 413, "payload_too_large")
        assert "4096" in problem["detail"]
    assert api.ledger.size() == 0


def test_a_chunked_body_over_the_limit_is_413(api: Api) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(100):  # 100 KiB, far past the 4 KiB limit
            sent.append(1)
            yield b"x" * 1024
        yield b'"}'

    for path, headers in (("/v0/receipts", JSON), ("/events", CE)):
        sent.clear()
        response = api.client.post(path, content=chunks(), headers=headers)
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_problem(response, 413, "payload_too_large")
    assert api.ledger.size() == 0


def test_a_body_at_the_limit_is_read(api: Api) -> None:
    body = refund("r-1")
    body["payload"]["details"] = ""
    import orjson

    size = len(orjson.dumps(body))
    body["payload"]["details"] = "x" * (4096 - size)
    assert len(orjson.dumps(body)) == 4096
    assert (
        api.client.post("/v0/receipts", content=orjson.dumps(body), headers=JSON).status_code == 201
    )


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_an_unsupported_content_type_is_415(api: Api, content_type: str | None) -> None:
    headers = dict(SERVICE)
    if content_type is not None:
        headers["content-type"] = content_type
    response = api.client.post("/v0/receipts", content=b"{}", headers=headers)
    assert_problem(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/cloudevents+xml",
        "application/cloudevents+json; charset=latin-1",
    ],
)
def test_an_unsupported_cloudevents_content_type_is_415(api: Api, content_type: str) -> None:
    response = api.client.post(
        "/events", content=b"{}", headers={**SERVICE, "content-type": content_type}
    )
    assert_problem(response, 415, "unsupported_media_type")


def test_json_suffix_media_types_and_parameters_are_accepted(api: Api) -> None:
    import orjson

    for content_type in ("application/json; charset=utf-8", "application/vnd.receipts+json"):
        headers = {**SERVICE, "content-type": content_type}
        response = api.client.post("/v0/receipts", content=orjson.dumps(refund()), headers=headers)
        assert response.status_code == 201, response.text


# --- 404 / 405 -----------------------------------------------------------------------------------


def test_not_found_problems(api: Api) -> None:
    client = api.client
    missing = "01900000-0000-7000-8000-000000000000"
    assert_problem(
        client.get(f"/v0/receipts/{missing}", headers=SERVICE), 404, "not_found", ["/id"]
    )
    assert_problem(
        client.get("/v0/receipts/not-a-uuid", headers=SERVICE), 422, "validation_failed", ["/id"]
    )
    assert_problem(client.get("/v0/catalog/no_such_type"), 404, "not_found", ["/event_type"])
    assert_problem(client.get("/v0/checkpoint"), 404, "not_found", ["/size"])
    assert_problem(
        client.get("/v0/proofs/inclusion?seq=0", headers=SERVICE), 404, "not_found", ["/seq"]
    )
    body = {**refund(), "op": "amend", "supersedes_id": missing}
    assert_problem(api.post(body), 404, "not_found", ["/supersedes_id"])
    assert_problem(api.post([refund("r-0"), body]), 404, "not_found", ["/1/supersedes_id"])
    assert api.ledger.size() == 0
    # Routing errors are problems too, not the framework's {"detail": ...}.
    assert_problem(client.get("/v0/nowhere", headers=SERVICE), 404, "not_found", [])


def test_method_not_allowed_is_a_405_problem_with_allow(api: Api) -> None:
    response = api.client.delete("/v0/receipts", headers=SERVICE)
    assert_problem(response, 405, "method_not_allowed", [])
    # Starlette names the methods of the first route matching the path (here POST).
    assert set(response.headers["allow"].replace(" ", "").split(",")) <= {"GET", "POST"}


def test_a_receipt_not_yet_under_a_checkpoint_has_no_proof(api: Api) -> None:
    row = api.append(refund())
    response = api.client.get(f"/v0/proofs/inclusion?id={row['id']}", headers=SERVICE)
    assert_problem(response, 404, "not_found", ["/size"])
    api.ledger.checkpoint()
    response = api.client.get(f"/v0/proofs/inclusion?id={row['id']}&size=7", headers=SERVICE)
    assert_problem(response, 404, "not_found", ["/size"])


# --- 409 -----------------------------------------------------------------------------------------


def test_revision_conflict_is_409(api: Api) -> None:
    head = api.append(refund("r-1"))
    amend = {**refund("r-1"), "op": "amend", "supersedes_id": head["id"]}
    api.append(amend)
    response = api.post(amend)  # supersedes a head that is no longer current
    assert_problem(response, 409, "revision_conflict", ["/supersedes_id"])
    response = api.post([refund("r-2"), amend])
    assert_problem(response, 409, "revision_conflict", ["/1/supersedes_id"])
    assert api.ledger.size() == 2


def test_id_conflict_is_409(api: Api) -> None:
    rid = "01900000-0000-7000-8000-0000000000aa"
    api.append(refund("r-1", id=rid))
    changed = refund("r-1", id=rid)
    changed["payload"]["reasonCode"] = "other"
    assert_problem(api.post(changed), 409, "id_conflict", ["/payload"])
    assert_problem(api.post(refund("r-9", id=rid)), 409, "id_conflict", ["/entity_id"])
    assert api.ledger.size() == 1


def test_revising_a_voided_event_is_409(api: Api) -> None:
    head = api.append(refund("r-1"))
    void = {
        **refund("r-1"),
        "op": "void",
        "supersedes_id": head["id"],
        "payload": {"void_reason": "dup", "voided_by": "ops"},
    }
    voided = api.append(void)
    amend = {**refund("r-1"), "op": "amend", "supersedes_id": voided["id"]}
    assert_problem(api.post(amend), 409, "conflict", ["/op"])


# --- 422 -----------------------------------------------------------------------------------------


def test_a_payload_breaking_the_schema_is_422_with_pointers(api: Api) -> None:
    response = api.post(intent(currency="usd"))
    problem = assert_problem(response, 422, "validation_failed", ["/payload/currency"])
    assert "nothing was written" in problem["detail"]

    response = api.post([intent(), intent(currency="dollars", amount=-1), intent()])
    assert_problem(response, 422, "validation_failed", ["/1/payload/amount", "/1/payload/currency"])
    assert api.ledger.size() == 0


def test_request_shape_problems_are_422(api: Api) -> None:
    cases: list[tuple[Any, list[str]]] = [
        ([], [""]),
        (42, [""]),
        ([42], ["/0"]),
        ({**refund(), "bogus": 1}, ["/bogus"]),
        ({k: v for k, v in refund().items() if k != "payload"}, ["/payload"]),
        (refund(entity_type="user"), ["/entity_type"]),
        (refund(domain="identity"), ["/domain"]),
        (refund(id="not-a-uuid"), ["/id"]),
        (refund(occurred_at="yesterday"), ["/occurred_at"]),
        (refund(op="delete"), ["/op"]),
        ({**refund(), "event_type": "refund_requsted"}, ["/event_type"]),
        ({**refund(), "op": "amend"}, ["/supersedes_id"]),
        (
            refund(payload={"paymentIntentId": "pi"}),
            ["/payload/reasonCode", "/payload/requestedByUserId"],
        ),
        (refund(entity_id="a\x00b"), ["/entity_id"]),
    ]
    for body, pointers in cases:
        assert_problem(api.post(body), 422, "validation_failed", pointers)
    assert api.ledger.size() == 0


def test_query_parameter_problems_are_422_problems(api: Api) -> None:
    client = api.client
    rid = api.append(refund())["id"]
    for url, pointer in (
        ("/v0/receipts?limit=0", "/limit"),
        ("/v0/receipts?limit=abc", "/limit"),
        ("/v0/receipts?limit=1001", "/limit"),
        ("/v0/receipts?after=-2", "/after"),
        ("/v0/receipts?after=99999999999999999999", "/after"),
        ("/v0/receipts?since=yesterday", "/since"),
        ("/v0/receipts?entity=no-colon", "/entity"),
        ("/v0/receipts?domain=a%00b", "/domain"),
        ("/v0/entities/refund:r%00/current", "/entity"),
        (f"/v0/receipts/{rid}?format=xml", "/format"),
        ("/v0/proofs/inclusion", "/id"),
        ("/v0/proofs/inclusion?id=x&seq=1", "/id"),
        ("/v0/proofs/inclusion?seq=-1", "/seq"),
        ("/v0/proofs/inclusion?seq=0&size=0", "/size"),
        ("/v0/proofs/consistency?from=1", "/to"),
        ("/v0/proofs/consistency?from=x&to=1", "/from"),
        ("/v0/stream?after=99999999999999999999", "/after"),
    ):
        response = client.get(url, headers=SERVICE)
        assert_problem(response, 422, "validation_failed", [pointer])


@pytest.mark.parametrize("last_event_id", ["abc", "1.5", b"\xb2", "99999999999999999999", "--1"])
def test_a_bad_last_event_id_is_422_not_a_broken_stream(api: Api, last_event_id: Any) -> None:
    headers = {**SERVICE, "last-event-id": last_event_id}
    response = api.client.get("/v0/stream", headers=headers)
    assert_problem(response, 422, "validation_failed", ["/last-event-id"])


def test_consistency_between_impossible_sizes_is_a_4xx(api: Api) -> None:
    api.append(refund())
    api.ledger.checkpoint()
    response = api.client.get("/v0/proofs/consistency?from=1&to=0")
    assert_problem(response, 400, "usage", ["/old_size"])
    response = api.client.get("/v0/proofs/consistency?from=0&to=5")
    assert_problem(response, 404, "not_found", ["/size"])


# --- 401 / 403 shapes ----------------------------------------------------------------------------


def test_auth_problems_have_the_problem_shape(api: Api) -> None:
    assert_problem(api.client.get("/v0/receipts"), 401, "unauthorized", [])
    body = request("payment_captured", "pi-1")
    problem = assert_problem(api.post(body, AUTH_A), 403, "forbidden", ["/event_type"])
    assert "client" in problem["errors"][0]["message"]


# --- 429: back-pressure --------------------------------------------------------------------------


@pytest.mark.parametrize("writer_process", [True, False], ids=["process", "thread"])
def test_overload_is_429_with_retry_after_and_recovers(
    tmp_path: Path, writer_process: bool
) -> None:
    with serve(str(tmp_path / "busy.db"), max_queue=1, writer_process=writer_process) as api:
        committer = api.service.committer
        with ThreadPoolExecutor(1) as pool:
            with writes_held(api):  # the writer waits for the lock with r-1 in hand
                first = pool.submit(api.post, refund("r-1"))
                wait_until(lambda: committer.waiting == 1, what="the first receipt queued")
                response = api.post(refund("r-2"))
                problem = assert_problem(response, 429, "overloaded", [])
                assert int(response.headers["retry-after"]) >= 1
                assert "retry" in problem["detail"]
                # A batch is refused as a whole, and CloudEvents share the queue.
                assert_problem(api.post([refund("r-3"), refund("r-4")]), 429, "overloaded")
            assert first.result(30).status_code == 201
        assert api.ledger.size() == 1
        assert api.append(refund("r-5"))["seq"] == 1
        assert committer.waiting == 0


def test_a_store_failure_is_not_reported_as_bad_input(tmp_path: Path) -> None:
    """The one 5xx family: the database itself failed (503, storage_error), not the request."""

    with serve(str(tmp_path / "broken.db"), writer_process=False) as api:

        def broken(groups: Any) -> Any:
            raise StorageError("disk on fire")

        api.ledger.commit_groups = broken  # type: ignore[method-assign]
        assert_problem(api.post(refund()), 503, "storage_error")
        assert api.service.committer.waiting == 0
        del api.ledger.commit_groups
        assert api.append(refund())["seq"] == 0


def test_a_writer_process_that_dies_is_a_503_and_the_next_request_starts_a_new_one(
    tmp_path: Path,
) -> None:
    with serve(str(tmp_path / "killed.db")) as api:
        committer = api.service.committer
        old = committer._proc
        body = refund("r-1", id="0191d9a2-0000-7000-8000-000000000001")
        with ThreadPoolExecutor(1) as pool, writes_held(api):
            first = pool.submit(api.post, body)
            wait_until(lambda: committer.waiting == 1, what="the receipt sent to the writer")
            old.kill()
            problem = assert_problem(first.result(30), 503, "storage_error", [])
            assert "retry it with the same id" in problem["detail"]
        assert committer.waiting == 0
        # The next request starts a new writer; the retry is stored once.
        stored = api.append(body)
        assert stored["seq"] == 0 and committer._proc is not old
        assert api.append(body) == stored
        assert api.ledger.size() == 1


@pytest.mark.parametrize("path", ["/v0/receipts", "/events"])
def test_a_bug_in_a_write_endpoint_is_a_500_problem_and_counted(
    api: Api, path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(api.ledger.validator, "iter_valid", broken)
    event = {
        "specversion": "1.0", "id": "e-1", "source": "urn:t", "subject": "refund:r-1",
        "type": "receipts.payments.refund_requested.v0", "data": refund()["payload"],
    }  # fmt: skip
    body = refund() if path == "/v0/receipts" else event
    response = api.client.post(path, json=body, headers=JSON if path == "/v0/receipts" else CE)
    problem = assert_problem(response, 500, "internal_error", [])
    assert "secret" not in response.text and problem["instance"] == path
    assert "secret detail of a bug" in caplog.text  # logged for the operator
    metrics = api.client.get("/metrics").text
    assert f'receipts_http_requests_total{{method="POST",route="{path}",status="500"}} 1.0' in (
        metrics
    )


def _error_classes(root: type[ReceiptsError] = ReceiptsError) -> list[type[ReceiptsError]]:
    return [root] + [c for sub in root.__subclasses__() for c in _error_classes(sub)]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_errors_cross_to_and_from_the_writer_process_whole(cls: type[ReceiptsError]) -> None:
    """The writer process sends refusals back pickled: class, message, pointers and extra
    attributes (Retry-After) arrive intact."""
    if cls is OverloadedError:
        error: ReceiptsError = OverloadedError("busy", retry_after=7)
    else:
        error = cls("refused", [ErrorDetail("/payload/a~1b", "expected a string")])
    copy = pickle.loads(pickle.dumps(error, pickle.HIGHEST_PROTOCOL))
    assert type(copy) is cls
    assert (copy.message, copy.errors, str(copy)) == (error.message, error.errors, str(error))
    assert copy.to_dict() == error.to_dict()
    assert copy.__dict__ == error.__dict__
