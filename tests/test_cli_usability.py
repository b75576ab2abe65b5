"""What a new user meets first: help, typos in filters, a command waiting on the terminal, a
database that cannot be opened, a malformed id, revisions from the command line, the demo."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from receipts import Catalog, Ledger, ValidationError
from receipts.cli.demo import story
from test_api_support import assert_problem, bearer, serve, token

ROOT = Path(__file__).resolve().parents[1]
RECEIPTS = str(Path(sys.executable).with_name("receipts"))
TIMEOUT = 60.0


def run(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIPTS_")}
    return subprocess.run(
        [RECEIPTS, *args], input=stdin, cwd=cwd, env=env, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )  # fmt: skip


def refund(entity_id: str = "rf_1") -> dict[str, Any]:
    return {
        "domain": "payments", "event_type": "refund_requested", "entity_type": "refund",
        "entity_id": entity_id,
        "payload": {"paymentIntentId": "pi_1", "requestedByUserId": "u_1", "reasonCode": "sick"},
    }  # fmt: skip


# --- help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["catalog"], ["keys"]], ids=["receipts", "catalog", "keys"])
def test_a_group_without_a_command_prints_its_help_as_text(tmp_path: Path, args: list[str]) -> None:
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2  # click's convention: a usage error, with the help
    assert done.stderr.startswith(f"Usage: receipts {' '.join(args)}".rstrip() + " [OPTIONS]")
    assert "\nCommands:\n" in done.stderr and "\\n" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "receipts.db").exists()


# --- filters name catalog things ------------------------------------------------------------------


def test_query_refuses_an_unknown_domain_event_type_or_entity_type(ledger: Ledger) -> None:
    ledger.append(refund())
    with pytest.raises(ValidationError) as caught:
        list(ledger.query(domain="payment", event_type="refund_requestd"))
    assert [(e.pointer, e.message) for e in caught.value.errors] == [
        ("/domain", "unknown domain 'payment' in the catalog; did you mean 'payments'?"),
        ("/event_type",
         "unknown event type 'refund_requestd' in the catalog; did you mean 'refund_requested'?"),
    ]  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        list(ledger.query(domain="payments", event_type="report_created"))
    assert [(e.pointer, e.message) for e in caught.value.errors] == [
        ("/event_type", "event type 'report_created' belongs to domain 'moderation'")
    ]
    for call in (lambda: list(ledger.history("refnd:rf_1")), lambda: ledger.current("refnd:rf_1")):
        with pytest.raises(ValidationError) as caught:
            call()
        assert [(e.pointer, e.message) for e in caught.value.errors] == [
            ("/entity", "unknown entity type 'refnd' in the catalog; did you mean 'refund'?")
        ]
    with pytest.raises(ValidationError) as caught:
        list(ledger.query(domain="zzzz"))
    assert caught.value.errors[0].message.endswith("see `receipts catalog list`")
    assert [r.entity_id for r in ledger.query(domain="payments", entity="refund:rf_1")] == ["rf_1"]


def test_cli_query_typo_exits_1_with_a_suggestion(tmp_path: Path) -> None:
    done = run("query", "--domain", "payment", cwd=tmp_path)
    assert done.returncode == 1
    error = json.loads(done.stderr)
    assert error["code"] == "validation_failed"
    assert error["errors"] == [{
        "pointer": "/domain",
        "message": "unknown domain 'payment' in the catalog; did you mean 'payments'?",
    }]  # fmt: skip


def test_http_list_and_get_answer_422_for_a_typo_or_a_malformed_id(tmp_path: Path) -> None:
    service = bearer(token("service_role", "pipeline"))  # made now: a token made earlier expires
    with serve(str(tmp_path / "api.db")) as api:
        response = api.client.get("/v0/receipts?domain=payment", headers=service)
        problem = assert_problem(response, 422, "validation_failed", ["/domain"])
        assert "did you mean 'payments'?" in problem["errors"][0]["message"]
        assert_problem(
            api.client.get("/v0/receipts?entity=refnd:rf_1", headers=service),
            422, "validation_failed", ["/entity"],
        )  # fmt: skip
        assert_problem(
            api.client.get("/v0/receipts/not-a-uuid", headers=service),
            422, "validation_failed", ["/id"],
        )  # fmt: skip
        assert_problem(
            api.client.get("/v0/proofs/inclusion?id=not-a-uuid", headers=service),
            422, "validation_failed", ["/id"],
        )  # fmt: skip


# --- ids ------------------------------------------------------------------------------------------


def test_get_a_malformed_id_is_a_validation_error(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        ledger.get("not-a-uuid")
    assert caught.value.message == "not a receipt id: 'not-a-uuid'"
    assert [(e.pointer, e.message) for e in caught.value.errors] == [
        ("/id", "expected a UUID, e.g. 0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b")
    ]
    done = run("get", "not-a-uuid", cwd=tmp_path)
    assert done.returncode == 1
    assert json.loads(done.stderr)["code"] == "validation_failed"


# --- stdin on a terminal --------------------------------------------------------------------------


def read_until(fd: int, wanted: bytes) -> bytes:
    """Output of ``fd`` until ``wanted`` shows (or TIMEOUT passes: then the test fails)."""
    seen, deadline = b"", time.monotonic() + TIMEOUT
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if ready:
            seen += os.read(fd, 4096)
    return seen


@pytest.mark.parametrize(
    ("args", "expects"),
    [
        (["append"], b"receipt requests"),
        (["amend", "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"], b"the new payload"),
        (["import", "-"], b"JSON Lines"),
        (["verify-bundle", "-", "--key", "k"], b"a receipt bundle"),
    ],
    ids=["append", "amend", "import", "verify-bundle"],
)  # fmt: skip
def test_reading_from_a_terminal_says_what_it_expects_and_how_to_end(
    tmp_path: Path, args: list[str], expects: bytes
) -> None:
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIPTS_")}
    err_read, err_write = os.pipe()
    proc = subprocess.Popen(
        [RECEIPTS, "--db", str(tmp_path / "t.db"), *args],
        stdin=child, stdout=subprocess.DEVNULL, stderr=err_write, cwd=tmp_path, env=env,
    )  # fmt: skip
    os.close(child)
    os.close(err_write)
    try:
        said = read_until(err_read, b"Ctrl-D")
        assert b"Reading " + expects in said and b"end the input with Ctrl-D" in said, said
        assert proc.poll() is None  # still waiting for the input
        os.write(main, b"\x04")  # Ctrl-D: end of input
        assert proc.wait(timeout=TIMEOUT) in (0, 1, 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
        os.close(err_read)


def test_a_pipe_gets_no_hint(tmp_path: Path) -> None:
    done = run("append", cwd=tmp_path, stdin=json.dumps(refund()))
    assert done.returncode == 0 and done.stderr == ""


# --- a database that cannot be opened -------------------------------------------------------------


def test_an_unopenable_sqlite_file_names_its_path_and_the_cause(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "text.db").write_text("not a database\n")
    expected = {
        str(missing): f"the directory {missing.parent} does not exist (create it first)",
        str(tmp_path / "folder.db"): "that is a directory; give a file path, e.g. receipts.db",
        str(tmp_path / "text.db"): "sqlite: file is not a database",
    }
    for path, cause in expected.items():
        done = run("--db", path, "init", cwd=tmp_path)
        assert done.returncode == 1
        error = json.loads(done.stderr)
        assert error["code"] == "storage_error"
        assert error["message"] == f"cannot open the SQLite ledger {path}: {cause}"


def test_an_unwritable_folder_is_named_as_the_cause(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.access(locked, os.W_OK):
        pytest.skip("this user may write anywhere (root)")
    done = run("--db", str(locked / "x.db"), "init", cwd=tmp_path)
    assert json.loads(done.stderr)["message"] == (
        f"cannot open the SQLite ledger {locked / 'x.db'}: no permission to create or write "
        f"files in {locked} (SQLite needs both)"
    )


def test_a_postgresql_connection_error_names_server_and_database_never_the_password(
    tmp_path: Path, pg_url: str
) -> None:
    with_password = pg_url.replace("postgresql://postgres@", "postgresql://postgres:s3cr3t@")
    assert with_password != pg_url
    refused = re.sub(r"@127\.0\.0\.1:\d+/", "@127.0.0.1:1/", with_password)
    done = run("--db", refused + "?connect_timeout=5", "init", cwd=tmp_path)
    assert done.returncode == 1
    error = json.loads(done.stderr)
    database = pg_url.rsplit("/", 1)[1]
    assert error["message"].startswith(
        f"cannot connect to the PostgreSQL ledger: database {database!r} on 127.0.0.1:1 as user "
        "'postgres': connection failed"
    )
    assert "s3cr3t" not in done.stderr

    opened = run("--db", with_password, "init", cwd=tmp_path)  # trust auth: any password works
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["db"] == with_password.replace("s3cr3t", "***")


# --- revisions from the command line --------------------------------------------------------------


def test_amend_void_restate_from_the_command_line(tmp_path: Path) -> None:
    # The user's own refund: as producer client, only the owner's events may be revised.
    own = {**refund(), "owner_user_id": "u_1"}
    head = json.loads(run("append", cwd=tmp_path, stdin=json.dumps(own)).stdout)
    payload = {**refund()["payload"], "reasonCode": "travel"}
    amended = run("amend", head["id"], "-", "--producer", "client", cwd=tmp_path,
                  stdin=json.dumps(payload))  # fmt: skip
    assert amended.returncode == 0, amended.stderr
    amend = json.loads(amended.stdout)
    assert (amend["op"], amend["revision"], amend["supersedes_id"]) == ("amend", 1, head["id"])
    assert (amend["producer"], amend["payload"]["reasonCode"]) == ("client", "travel")

    stale = run("void", head["id"], "--reason", "duplicate", "--by", "ops", cwd=tmp_path)
    assert stale.returncode == 1
    assert json.loads(stale.stderr)["code"] == "revision_conflict"

    void = json.loads(run("void", amend["id"], "--reason", "duplicate", "--by", "ops",
                          cwd=tmp_path).stdout)  # fmt: skip
    assert void["op"] == "void" and void["revision"] == 2
    assert {k: void["payload"][k] for k in ("void_reason", "voided_by")} == {
        "void_reason": "duplicate", "voided_by": "ops",
    }  # fmt: skip
    assert run("current", "refund:rf_1", cwd=tmp_path).stdout == ""

    again = run("amend", void["id"], cwd=tmp_path, stdin=json.dumps(payload))
    assert (
        json.loads(again.stderr)["message"] == "a voided event cannot be amended; restate it first"
    )
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    restated = run("restate", void["id"], "payload.json", cwd=tmp_path)
    assert restated.returncode == 0, restated.stderr
    restate = json.loads(restated.stdout)
    assert (restate["op"], restate["revision"]) == ("restate", 3)
    current = json.loads(run("current", "refund:rf_1", cwd=tmp_path).stdout)
    assert current["id"] == restate["id"]


def test_a_revision_payload_is_validated_and_pointed_at(tmp_path: Path) -> None:
    head = json.loads(run("append", cwd=tmp_path, stdin=json.dumps(refund())).stdout)
    for stdin, pointer, code in [
        ('{"reasonCode": 5}', "/payload/paymentIntentId", "validation_failed"),
        ("{not json", "/payload", "validation_failed"),
        ("", "/payload", "validation_failed"),
    ]:
        done = run("amend", head["id"], cwd=tmp_path, stdin=stdin)
        assert done.returncode == 1
        error = json.loads(done.stderr)
        assert error["code"] == code and pointer in [e["pointer"] for e in error["errors"]]
    missing = run("restate", head["id"], "nope.json", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.json" in json.loads(missing.stderr)["message"]
    unknown = run("void", "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "--reason", "r", "--by", "b",
                  cwd=tmp_path)  # fmt: skip
    assert json.loads(unknown.stderr)["code"] == "not_found"
    assert run("void", head["id"], "--reason", "r", cwd=tmp_path).returncode == 2


# --- the demo -------------------------------------------------------------------------------------


def test_demo_refuses_a_ledger_that_is_not_its_own(tmp_path: Path) -> None:
    assert run("append", cwd=tmp_path, stdin=json.dumps(refund())).returncode == 0
    done = run("demo", cwd=tmp_path)
    assert done.returncode == 1
    error = json.loads(done.stderr)
    assert error["code"] == "conflict"
    assert error["message"] == (
        "sqlite:///receipts.db holds 1 receipt(s), not only the demo's: the demo writes only "
        "into an empty ledger or its own. Run it in an empty folder, or give it a file of its "
        "own: receipts --db demo.db demo"
    )
    assert not (tmp_path / "receipts.db.key").exists()  # no key made for a ledger not its own
    with Ledger.open(tmp_path / "receipts.db") as ledger:
        assert ledger.size() == 1
    own = run("--db", "demo.db", "demo", cwd=tmp_path)
    assert own.returncode == 0, own.stderr


def test_demo_finishes_a_story_it_started(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "receipts.db") as ledger:
        for producer, request in story()[:5]:
            ledger.append(request, producer=producer)
    done = run("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Recorded {len(story()) - 5} receipts" in done.stdout


# --- the docs count the catalog right -------------------------------------------------------------


def test_the_docs_give_the_catalogs_numbers() -> None:
    catalog = Catalog.load()
    ocn = [t for t in catalog if t.domain == "ocn"]
    own = [t for t in catalog if t.domain == "ledger"]
    seed_types, seed_domains = len(catalog) - len(ocn) - len(own), len(catalog.domains) - 2
    said = {
        "seed": f"{seed_types} event types in {seed_domains} domains",
        "ocn": f"{len(ocn)} OCN CloudEvent types in the `ocn` domain",
        "own": f"the ledger's own {len(own)} types in the `ledger` domain",
        "all": f"{len(catalog)} types in {len(catalog.domains)} domains",
    }
    assert said["seed"] == "94 event types in 9 domains"  # seeds/ledger-event-catalog-v0.md
    for page in ("README.md", "docs/catalog.md"):
        text = " ".join((ROOT / page).read_text().split())
        for phrase in said.values():
            assert phrase in text, f"{page} does not say {phrase!r}"
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = " ".join(page.read_text().split())
        for count, what in re.findall(r"(\d+) (?:event )?types in (\d+) domains", text):
            assert (int(count), int(what)) in {
                (seed_types, seed_domains), (len(catalog), len(catalog.domains)),
            }, f"{page.name}: {count} types in {what} domains"  # fmt: skip
