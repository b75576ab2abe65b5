"""``receipts import``: every line accounted for, a bad line never ends the import, a rerun of
the same or a fixed file stores nothing twice, and stored receipts copy between ledgers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from pg import throwaway_database
from receipts import Ledger
from receipts.cli import bulk
from receipts.cli.demo import story

RECEIPTS = str(Path(sys.executable).with_name("receipts"))
MakeRequest = Callable[..., dict[str, Any]]
# The namespace docs/import.md gives for derived ids, written out as a reader would copy it.
DOCUMENTED_NAMESPACE = uuid.UUID("8f5b7f0e-3c1d-4d7a-9b1e-2a6c0d4e9f31")


def receipts(*args: str, db: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIPTS_")}
    return subprocess.run(
        [RECEIPTS, "--db", db, *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def import_(path: Path, db: str, *args: str) -> tuple[int, dict[str, Any]]:
    done = receipts("import", str(path), *args, db=db)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def refund(i: int, **payload: Any) -> dict[str, Any]:
    return {
        "domain": "payments",
        "event_type": "refund_requested",
        "entity_type": "refund",
        "entity_id": f"rf_{i}",
        "payload": {"paymentIntentId": f"pi_{i}", "requestedByUserId": "u_1",
                    "reasonCode": "sick", **payload},
    }  # fmt: skip


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def second_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Another fresh, empty ledger on the same backend as ``ledger_url``."""
    if backend == "sqlite":
        yield str(tmp_path / "second.db")
        return
    with throwaway_database(request.getfixturevalue("pg_template")) as url:
        yield url


# --- a bad line never ends the import; a rerun stores nothing twice ------------------------------


def test_bad_lines_are_rejected_with_their_reasons_and_the_rest_goes_on(
    ledger_url: str, tmp_path: Path
) -> None:
    """The issue's case, smaller: an invalid receipt, then malformed JSON further on. Every
    other line is committed, the summary names the committed ranges and each rejected line with
    its reasons, and the exit code says that something was rejected."""
    lines: list[Any] = [refund(i) for i in range(300)]
    lines[122] = refund(122, reasonCode=5)  # line 123: two problems
    del lines[122]["payload"]["requestedByUserId"]
    lines[200] = '{"domain": "payments", oops'  # line 201: not JSON
    path = write_lines(tmp_path / "in.jsonl", lines)

    code, report = import_(path, ledger_url, "--batch-size", "50")
    assert code == 1
    assert report["committed"] == [[1, 122], [124, 200], [202, 300]]
    assert (report["lines"], report["stored"], report["already_stored"]) == (300, 298, 0)
    assert report["receipts"] == 298
    invalid, malformed = report["rejected"]
    assert (invalid["line"], invalid["code"]) == (123, "validation_failed")
    assert sorted(e["pointer"] for e in invalid["errors"]) == [
        "/payload/reasonCode", "/payload/requestedByUserId"
    ]  # fmt: skip
    assert invalid["message"] == "2 problem(s) in this line"
    assert (malformed["line"], malformed["code"]) == (201, "validation_failed")
    assert malformed["message"] == "malformed JSON on line 201"
    assert [e["pointer"] for e in malformed["errors"]] == [""]
    assert malformed["errors"][0]["message"].startswith("not valid JSON")

    lines[122], lines[200] = refund(122), refund(200)  # fixed in place
    code, report = import_(write_lines(path, lines), ledger_url, "--batch-size", "50")
    assert code == 0, report
    assert (report["stored"], report["already_stored"], report["rejected"]) == (2, 298, [])
    assert report["committed"] == [[1, 300]] and report["receipts"] == 300

    code, report = import_(path, ledger_url)  # the same file again, in other batches
    assert code == 0
    assert (report["stored"], report["already_stored"], report["receipts"]) == (0, 300, 300)


def test_malformed_first_line_and_non_objects_are_lines_like_any_other(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A first line that is not JSON is one rejected line, not "a malformed document"; blank
    lines count for the line numbers and bridge committed ranges."""
    path = write_lines(
        tmp_path / "in.jsonl", ["{oops", refund(1), "", refund(2), "[1, 2]", "7", refund(3)]
    )
    report = bulk.import_file(ledger, str(path), "service_role_pipeline", 100).to_dict()
    assert report["committed"] == [[2, 4], [7, 7]]
    assert [(r["line"], r["code"]) for r in report["rejected"]] == [
        (1, "validation_failed"), (5, "validation_failed"), (6, "validation_failed"),
    ]  # fmt: skip
    assert report["rejected"][1]["errors"] == [
        {"pointer": "", "message": "expected a JSON object (a receipt request)"}
    ]
    assert ledger.size() == 3


def test_derived_ids_follow_the_documented_rule(ledger: Ledger, tmp_path: Path) -> None:
    """A line without an id gets UUIDv5(namespace, RFC 8785 JSON of the line): a rerun, a
    reformatted line, a deleted or inserted line change nothing for the other lines; a fixed
    line is a new receipt; an exact repeat is the same receipt; a line's own id is kept."""
    own = "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"
    first = [refund(0), refund(1), {**refund(2), "id": own}, refund(0)]
    path = write_lines(tmp_path / "in.jsonl", first)
    report = bulk.import_file(ledger, str(path), "service_role_pipeline", 100)
    assert (report.stored, report.already_stored) == (3, 1)  # line 4 repeats line 1
    by_entity = {r.entity_id: r.id for r in ledger.query()}
    expected = uuid.uuid5(DOCUMENTED_NAMESPACE, rfc8785.dumps(refund(0)).decode())
    assert by_entity["rf_0"] == str(expected)
    assert by_entity["rf_2"] == own

    # Reformatted (other key order, spacing), a line deleted, one inserted, one fixed.
    reordered = json.dumps(
        dict(reversed(list(refund(1).items()))), indent=None, separators=(" ,", " : ")
    )
    second = [reordered, refund(9), refund(0, notes="fixed"), {**refund(2), "id": own}]
    report = bulk.import_file(ledger, str(write_lines(path, second)), "service_role_pipeline", 100)
    assert (report.stored, report.already_stored, report.rejected) == (2, 2, [])
    assert {r.entity_id for r in ledger.query()} == {"rf_0", "rf_1", "rf_2", "rf_9"}
    assert ledger.size() == 5  # rf_0 twice: the fixed line is a receipt of its own


def test_a_line_imported_again_by_another_producer_is_refused(
    ledger: Ledger, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "in.jsonl", [refund(1)])
    assert bulk.import_file(ledger, str(path), "service_role_pipeline", 10).stored == 1
    report = bulk.import_file(ledger, str(path), "client", 10).to_dict()
    (rejected,) = report["rejected"]
    assert rejected["code"] == "id_conflict"
    assert rejected["errors"][0]["pointer"] == "/id"
    assert ledger.size() == 1


def test_refusals_at_commit_cost_a_bounded_number_of_retries(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines the ledger refuses only while storing (here: ids already used with other
    content) are found by splitting the batch, not by retrying it once per refused line."""
    n = 256
    stored = [{**refund(i), "id": str(uuid.UUID(int=i + 1))} for i in range(n)]
    ledger.append_batch(stored[::2])  # every other id is taken, with this content
    changed = [{**line, "entity_id": f"other_{i}"} for i, line in enumerate(stored)]
    sent: list[int] = []
    commit = Ledger.commit

    def counting(self: Ledger, requests: Any, **kwargs: Any) -> Any:
        sent.append(len(requests))
        return commit(self, requests, **kwargs)

    monkeypatch.setattr(Ledger, "commit", counting)
    path = write_lines(tmp_path / "in.jsonl", changed)
    report = bulk.import_file(ledger, str(path), "service_role_pipeline", n)
    assert [r["line"] for r in report.rejected] == list(range(1, n + 1, 2))
    assert {r["code"] for r in report.rejected} == {"id_conflict"}
    assert report.stored == n // 2 and ledger.size() == n
    assert sum(sent) <= 2 * n * 9, sent  # n (log2 n + 1) lines sent, give or take


def test_a_stale_revision_is_rejected_and_its_batch_committed_without_it(
    ledger_url: str, tmp_path: Path
) -> None:
    with Ledger.open(ledger_url) as ledger:
        head = ledger.append(refund(9999))
        ledger.append({**refund(9999), "op": "amend", "supersedes_id": head.id})
    lines = [refund(i) for i in range(100)]
    lines[49] = {**refund(9999), "op": "amend", "supersedes_id": head.id}
    code, report = import_(write_lines(tmp_path / "in.jsonl", lines), ledger_url)
    assert code == 1
    (rejected,) = report["rejected"]
    assert (rejected["line"], rejected["code"]) == (50, "revision_conflict")
    assert [e["pointer"] for e in rejected["errors"]] == ["/supersedes_id"]
    assert report["committed"] == [[1, 49], [51, 100]] and report["receipts"] == 101
    with Ledger.open(ledger_url) as ledger:
        assert [r.seq for r in ledger.query()] == list(range(101))
        assert ledger.audit().receipts == 101


def test_an_error_that_is_not_a_refusal_stops_the_import_after_a_summary(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database going away is no line's fault: the import stops, and says up to which
    line everything is accounted for (a rerun of the same file then finishes it)."""
    from receipts.errors import StorageError

    calls = 0
    commit = Ledger.commit

    def failing_third(self: Ledger, requests: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise StorageError("postgresql: the connection was lost")
        return commit(self, requests, **kwargs)

    monkeypatch.setattr(Ledger, "commit", failing_third)
    path = write_lines(tmp_path / "in.jsonl", [refund(i) for i in range(50)])
    report = bulk.import_file(ledger, str(path), "service_role_pipeline", 10).to_dict()
    assert report["committed"] == [[1, 20]] and report["receipts"] == 20
    assert report["stopped"] == {
        "after_line": 20, "code": "storage_error",
        "message": "postgresql: the connection was lost", "errors": [],
    }  # fmt: skip
    monkeypatch.setattr(Ledger, "commit", commit)
    again = bulk.import_file(ledger, str(path), "service_role_pipeline", 10)
    assert (again.stored, again.already_stored, again.stopped) == (30, 20, None)


def test_cli_prints_the_summary_before_the_error_that_stopped_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from receipts.cli import main
    from receipts.errors import StorageError

    def lost(self: Ledger, requests: Any, **kwargs: Any) -> Any:
        raise StorageError("postgresql: the connection was lost")

    monkeypatch.setattr(Ledger, "commit", lost)
    path = write_lines(tmp_path / "in.jsonl", [refund(i) for i in range(5)])
    with pytest.raises(SystemExit) as exited:
        main(["--db", str(tmp_path / "l.db"), "import", str(path)])
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["stopped"]["after_line"] == 0
    assert json.loads(err)["message"] == "postgresql: the connection was lost"


# --- stored receipts: copying a ledger -----------------------------------------------------------


def populate(url: str) -> None:
    """The demo's story (three producers, an amend and a void) plus a restate and an amend
    after it, written as their producers would."""
    with Ledger.open(url) as ledger:
        for producer, request in story():
            ledger.append(request, producer=producer)
        head = next(r for r in ledger.query(event_type="payment_captured"))
        amended = ledger.amend(head.id, {"amount": 4000, "providerChargeId": "ch_1"},
                               producer="edge_function")  # fmt: skip
        voided = ledger.void(amended.id, "duplicate", "ops")
        restated = ledger.restate(voided.id, {"amount": 3900, "providerChargeId": "ch_1"})
        ledger.amend(restated.id, {"amount": 3800, "providerChargeId": "ch_1"},
                     occurred_at="2026-11-30T10:00:00Z")  # fmt: skip


def same_receipt(r: dict[str, Any]) -> dict[str, Any]:
    """What a copy keeps: everything but the target's own recorded_at and leaf_hash."""
    return {k: v for k, v in r.items() if k not in ("recorded_at", "leaf_hash")}


def test_query_output_imports_into_another_ledger_as_the_same_receipts(
    ledger_url: str, second_url: str, tmp_path: Path
) -> None:
    populate(ledger_url)
    dump = receipts("query", db=ledger_url)
    assert dump.returncode == 0, dump.stderr
    (tmp_path / "all.jsonl").write_text(dump.stdout)

    code, report = import_(tmp_path / "all.jsonl", second_url, "--producer", "client")
    assert code == 0, report
    assert (report["stored"], report["rejected"]) == (27, [])

    with Ledger.open(ledger_url) as a, Ledger.open(second_url) as b:
        assert b.size() == a.size() == 27
        entities = {r.entity for r in a.query()}
        for entity in entities:
            for view in ("history", "current"):
                theirs = getattr(a, view)(entity)
                ours = getattr(b, view)(entity)
                assert [same_receipt(r.to_dict()) for r in ours] == [
                    same_receipt(r.to_dict()) for r in theirs
                ], (view, entity)
            hidden = b.current(entity, include_voided=True)
            assert [r.id for r in hidden] == [r.id for r in a.current(entity, include_voided=True)]
        assert b.audit().receipts == 27

    again = receipts("import", "-", db=second_url, stdin=dump.stdout.encode())  # a pipe, rerun
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["stored"] == 0


def test_an_edited_or_incomplete_stored_receipt_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    source = tmp_path / "a.db"
    populate(str(source))
    lines = [json.loads(x) for x in receipts("query", db=str(source)).stdout.splitlines()]
    # Receipts no revision depends on: seqs 9 to 12 of the demo's story.
    lines[9]["payload"]["reviewedBy"] = "admin"  # edited, leaf_hash kept
    lines[10]["producer"] = "service_role_pipeline"  # who wrote it, edited
    del lines[11]["recorded_at"]
    lines[12]["extra"] = 1
    path = write_lines(tmp_path / "edited.jsonl", lines)
    report = bulk.import_file(ledger, str(path), "service_role_pipeline", 100).to_dict()
    assert [(r["line"], r["code"]) for r in report["rejected"]] == [
        (10, "verification_failed"), (11, "verification_failed"),
        (12, "validation_failed"), (13, "validation_failed"),
    ]  # fmt: skip
    assert report["rejected"][0]["errors"][0]["pointer"] == "/leaf_hash"
    assert report["rejected"][2]["errors"] == [{
        "pointer": "/recorded_at",
        "message": "missing: a stored receipt has every field `receipts query` prints",
    }]  # fmt: skip
    assert report["rejected"][3]["errors"][0]["pointer"] == "/extra"
    assert report["stored"] == 23


def test_a_revision_whose_head_was_not_copied_is_rejected(ledger: Ledger, tmp_path: Path) -> None:
    source = tmp_path / "a.db"
    populate(str(source))
    dump = receipts("query", "--event-type", "payment_captured", "--after", "4", db=str(source))
    path = tmp_path / "part.jsonl"
    path.write_text(dump.stdout)
    report = bulk.import_file(ledger, str(path), "service_role_pipeline", 100)
    assert report.stored == 0
    assert {r["code"] for r in report.rejected} == {"not_found"}
    assert all(r["errors"][0]["pointer"] == "/supersedes_id" for r in report.rejected)
