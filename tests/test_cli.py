"""The ``receipts`` command line, run as the installed console script: JSON in, JSON Lines out,
errors as one JSON object on stderr, exit codes 0 / 1 / 2."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import select
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from conftest import SEED_DOMAINS, SEED_TYPE_COUNT, build_request, schema_refs
from receipts import Catalog, Ledger, ReceiptsError
from receipts.cli import main
from receipts.cli.demo import demo_id, story

RECEIPTS = str(Path(sys.executable).with_name("receipts"))
CATALOG = Catalog.load()
MakeRequest = Callable[..., dict[str, Any]]
STREAM_TIMEOUT = 60.0

CUSTOM_CATALOG = {
    "domain": "tickets",
    "title": "Tickets",
    "purpose": "Door scans at events.",
    "event_types": {
        "ticket_scanned": {
            "entity_types": ["ticket"],
            "writers": ["edge_function", "service_role_pipeline"],
            "why": "Who came in, and through which gate.",
            "payload": {
                "type": "object",
                "properties": {"gate": {"type": "string", "minLength": 1}},
                "required": ["gate"],
            },
            "example": {"gate": "north"},
        }
    },
}


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def receipts(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.err)
        return report

    @property
    def pointers(self) -> list[str]:
        return [e["pointer"] for e in self.error["errors"]]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"RECEIPTS_DB", "RECEIPTS_CATALOG"}}
    env.update(COLUMNS="120", **extra)
    return env


class Cli:
    """Runs ``receipts`` in ``cwd`` against ``db`` (unless ``db=None``)."""

    def __init__(self, cwd: Path, db: Path) -> None:
        self.cwd = cwd
        self.db = db

    def args(self, *args: str, db: bool = True) -> list[str]:
        return [RECEIPTS, *(["--db", str(self.db)] if db else []), *args]

    def __call__(
        self,
        *args: str,
        stdin: str | bytes | None = None,
        db: bool = True,
        env: dict[str, str] | None = None,
    ) -> Run:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(
            self.args(*args, db=db),
            input=data if data is not None else b"",
            capture_output=True,
            cwd=self.cwd,
            env=env or clean_env(),
            timeout=60,
            check=False,
        )
        return Run(done.returncode, done.stdout.decode(), done.stderr.decode())

    def size(self) -> int:
        run = self("init")
        assert run.code == 0, run.err
        count: int = run.json["receipts"]
        return count


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, tmp_path / "cli.db")


def jsonl(*requests: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in requests)


# --- init, exit codes --------------------------------------------------------------------------


def test_init_creates_the_ledger(cli: Cli) -> None:
    run = cli("init")
    assert run.code == 0, run.err
    assert run.json == {"db": f"sqlite:///{cli.db}", "receipts": 0}
    assert cli.db.exists()
    assert run.err == ""


def test_unknown_option_is_a_usage_error(cli: Cli) -> None:
    run = cli("--bogus", "init")
    assert run.code == 2
    assert run.error["code"] == "usage"
    assert "--bogus" in run.error["message"]
    assert run.out == ""


@pytest.mark.parametrize(
    "args",
    [["get"], ["append", "--producer", "root"], ["query", "--limit", "-3"], ["nonsense"]],
    ids=["missing-argument", "bad-choice", "bad-range", "unknown-command"],
)
def test_bad_arguments_exit_2_with_json(cli: Cli, args: list[str]) -> None:
    run = cli(*args)
    assert run.code == 2
    assert run.error["code"] == "usage"


def test_missing_input_file_is_a_usage_error(cli: Cli) -> None:
    run = cli("append", str(cli.cwd / "missing.jsonl"))
    assert run.code == 2
    assert run.error["code"] == "usage"
    assert "missing.jsonl" in run.error["message"]


def test_help_and_version_exit_0(cli: Cli) -> None:
    assert cli("--help").code == 0
    version = cli("--version")
    assert version.code == 0
    assert "0.1.0" in version.out


# --- append ------------------------------------------------------------------------------------


def test_append_a_json_object_from_a_file(cli: Cli, request_for: MakeRequest) -> None:
    source = cli.cwd / "one.json"
    source.write_text(json.dumps(request_for("payment_captured", entity_id="pi_1"), indent=2))
    run = cli("append", str(source))
    assert run.code == 0, run.err
    (receipt,) = run.receipts
    assert receipt["seq"] == 0
    assert receipt["entity_id"] == "pi_1"
    assert receipt["producer"] == "service_role_pipeline"
    assert re.fullmatch(r"[0-9a-f]{64}", receipt["leaf_hash"])


def test_append_as_another_producer(cli: Cli, request_for: MakeRequest) -> None:
    run = cli(
        "append", "--producer", "client", "-", stdin=json.dumps(request_for("report_created"))
    )
    assert run.code == 0, run.err
    assert run.receipts[0]["producer"] == "client"
    assert run.receipts[0]["payload"]["source"] == "client"

    forbidden = cli(
        "append", "--producer", "client", "-", stdin=json.dumps(request_for("payment_captured"))
    )
    assert forbidden.code == 1
    assert forbidden.error["code"] == "forbidden"


def test_append_a_json_array_as_one_batch(cli: Cli, request_for: MakeRequest) -> None:
    batch = [request_for("payment_captured", entity_id=f"pi_{i}") for i in range(3)]
    run = cli("append", "-", stdin=json.dumps(batch, indent=1))
    assert run.code == 0, run.err
    assert [r["seq"] for r in run.receipts] == [0, 1, 2]
    assert [r["entity_id"] for r in run.receipts] == ["pi_0", "pi_1", "pi_2"]


def test_a_json_array_is_atomic(cli: Cli, request_for: MakeRequest) -> None:
    bad = request_for("payment_captured")
    del bad["payload"]["providerChargeId"]
    run = cli("append", "-", stdin=json.dumps([request_for("payment_captured"), bad]))
    assert run.code == 1
    assert run.out == ""
    assert run.error["code"] == "validation_failed"
    assert run.pointers == ["/1/payload/providerChargeId"]
    assert "nothing was written" in run.error["message"]
    assert cli.size() == 0


def test_append_json_lines_from_a_file(cli: Cli, request_for: MakeRequest) -> None:
    source = cli.cwd / "many.jsonl"
    source.write_text(
        jsonl(*(request_for("payment_captured", entity_id=f"pi_{i}") for i in range(4)))
    )
    run = cli("append", str(source))
    assert run.code == 0, run.err
    assert [r["entity_id"] for r in run.receipts] == ["pi_0", "pi_1", "pi_2", "pi_3"]
    assert cli.size() == 4


def test_append_json_lines_from_stdin(cli: Cli, request_for: MakeRequest) -> None:
    lines = jsonl(*(request_for("report_created", entity_id=f"rp_{i}") for i in range(3)))
    run = cli("append", stdin="\n" + lines + "\n")
    assert run.code == 0, run.err
    assert [r["seq"] for r in run.receipts] == [0, 1, 2]


def test_json_lines_errors_point_at_the_line(cli: Cli, request_for: MakeRequest) -> None:
    bad = request_for("payment_captured")
    bad["payload"]["amount"] = -5
    text = (
        jsonl(request_for("payment_captured")) + "\n" + jsonl(request_for("payment_captured"), bad)
    )
    run = cli("append", "-", stdin=text)
    assert run.code == 1
    assert run.pointers == ["/3/payload/amount"]  # 0-based line index, blank line counted
    assert cli.size() == 0


def test_malformed_json_line_is_a_validation_error(cli: Cli, request_for: MakeRequest) -> None:
    run = cli("append", "-", stdin=jsonl(request_for("payment_captured")) + "{not json\n")
    assert run.code == 1
    assert run.error["code"] == "validation_failed"
    assert run.pointers == ["/1"]
    assert "line 2" in run.error["message"]
    assert cli.size() == 0


def test_import_collects_garbage_itself_and_gives_collection_back(
    ledger: Ledger, request_for: MakeRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``import_file`` turns automatic collection off while it imports, collects every so many
    lines instead, and turns it back on afterwards, also when an error stops it."""
    from receipts.cli import bulk
    from receipts.errors import StorageError

    collections: list[bool] = []
    monkeypatch.setattr(bulk, "_COLLECT_EVERY", 20)  # lines
    monkeypatch.setattr(bulk.gc, "collect", lambda: collections.append(gc.isenabled()) or 0)
    bad = request_for("payment_captured", entity_id="pi_bad")
    bad["payload"]["amount"] = -5
    lines = [request_for("payment_captured", entity_id=f"pi_{i}") for i in range(50)]
    lines[23] = bad  # line 24, in batch 3 of 5, is refused; the others are stored
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl(*lines))
    assert gc.isenabled()
    report = bulk.import_file(ledger, str(path), "service_role_pipeline", 10).to_dict()
    assert (report["stored"], len(report["rejected"]), report["receipts"]) == (49, 1, 49)
    assert report["rejected"][0]["line"] == 24
    assert [e["pointer"] for e in report["rejected"][0]["errors"]] == ["/payload/amount"]
    assert collections == [False, False]  # after batches 2 and 4, with automatic collection off
    assert gc.isenabled()

    def lost(self: Ledger, requests: Any, **kwargs: Any) -> Any:
        raise StorageError("the database went away")

    monkeypatch.setattr(Ledger, "commit", lost)
    path.write_text(jsonl(*lines[:10]).replace("pi_", "pj_"))
    stopped = bulk.import_file(ledger, str(path), "service_role_pipeline", 10)
    assert isinstance(stopped.stopped, StorageError)
    assert gc.isenabled()
    assert ledger.size() == 49


def test_empty_input_appends_nothing(cli: Cli) -> None:
    run = cli("append", "-", stdin="")
    assert run.code == 0
    assert run.out == ""


def test_streaming_prints_each_receipt_before_stdin_closes(
    cli: Cli, request_for: MakeRequest
) -> None:
    proc = subprocess.Popen(
        cli.args("append", "-"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cli.cwd,
        env=clean_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send_and_read(request: dict[str, Any]) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], STREAM_TIMEOUT)
        assert ready, "no receipt printed while stdin is still open"
        line: dict[str, Any] = json.loads(proc.stdout.readline())
        return line

    try:
        first = send_and_read(request_for("payment_captured", entity_id="stream_1"))
        assert (first["seq"], first["entity_id"]) == (0, "stream_1")
        second = send_and_read(request_for("payment_captured", entity_id="stream_2"))
        assert (second["seq"], second["entity_id"]) == (1, "stream_2")
        assert proc.poll() is None, "append must still be waiting for input"
        proc.stdin.close()
        assert proc.wait(timeout=STREAM_TIMEOUT) == 0
        assert proc.stdout.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
    assert cli.size() == 2


# --- reading -----------------------------------------------------------------------------------


@dataclass
class Populated:
    """A ledger shared by the read-only tests, and its receipts by name."""

    cli: Cli
    stored: dict[str, dict[str, Any]]

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self.stored[name]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    """Seven receipts: two chains on payment_intent:pi_1 (one amended, one voided), a trace
    across payments and refunds, and another entity. Tests using it must not write."""
    cwd = tmp_path_factory.mktemp("populated")
    cli = Cli(cwd, cwd / "cli.db")

    def request_for(name: str, /, **overrides: Any) -> dict[str, Any]:
        return build_request(CATALOG.get(name), **overrides)

    requests = {
        "capture": request_for("payment_captured", entity_id="pi_1"),
        "other": request_for("payment_captured", entity_id="pi_1"),
        "refund_ask": request_for("refund_requested", entity_id="rf_1"),
        "refund_ok": request_for("refund_approved", entity_id="rf_1"),
        "elsewhere": request_for("payment_captured", entity_id="pi_2"),
    }
    for name in ("capture", "refund_ask", "refund_ok"):
        requests[name]["payload"]["correlation_id"] = "trace-1"
    run = cli("append", "-", stdin=json.dumps(list(requests.values())))
    assert run.code == 0, run.err
    stored = dict(zip(requests, run.receipts, strict=True))

    amend = request_for(
        "payment_captured", entity_id="pi_1", op="amend", supersedes_id=stored["capture"]["id"]
    )
    amend["payload"]["amount"] = 4000
    void = request_for(
        "payment_captured",
        entity_id="pi_1",
        op="void",
        supersedes_id=stored["other"]["id"],
        payload={"void_reason": "duplicate", "voided_by": "ops"},
    )
    run = cli("append", "-", stdin=jsonl(amend, void))
    assert run.code == 0, run.err
    stored["amend"], stored["void"] = run.receipts
    return Populated(cli, stored)


def test_get(populated: Populated) -> None:
    cli = populated.cli
    wanted = populated["refund_ok"]
    run = cli("get", wanted["id"].upper())
    assert run.code == 0, run.err
    assert run.receipts == [wanted]

    missing = cli("get", "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b")
    assert missing.code == 1
    assert missing.error["code"] == "not_found"
    assert missing.pointers == ["/id"]


def test_history(populated: Populated) -> None:
    cli = populated.cli
    run = cli("history", "payment_intent:pi_1")
    assert run.code == 0, run.err
    assert [r["id"] for r in run.receipts] == [
        populated[name]["id"] for name in ("capture", "other", "amend", "void")
    ]


def test_trace(populated: Populated) -> None:
    cli = populated.cli
    run = cli("trace", "trace-1")
    assert run.code == 0, run.err
    assert [r["event_type"] for r in run.receipts] == [
        "payment_captured",
        "refund_requested",
        "refund_approved",
    ]


def test_query_with_cursor(populated: Populated) -> None:
    cli = populated.cli
    seen: list[int] = []
    args = ["query", "--limit", "3"]
    while True:
        run = cli(*args)
        assert run.code == 0, run.err
        if not run.receipts:
            break
        seen += [r["seq"] for r in run.receipts]
        args = ["query", "--limit", "3", "--after", str(seen[-1])]
    assert seen == list(range(7))

    payments = cli("query", "--domain", "payments", "--event-type", "payment_captured")
    assert len(payments.receipts) == 5
    entity = cli("query", "--entity", "refund:rf_1", "--correlation-id", "trace-1")
    assert [r["event_type"] for r in entity.receipts] == ["refund_requested", "refund_approved"]
    bad = cli("query", "--since", "tomorrow")
    assert bad.code == 1
    assert bad.pointers == ["/since"]


def test_current_hides_voided_unless_asked(populated: Populated) -> None:
    cli = populated.cli
    run = cli("current", "payment_intent:pi_1")
    assert [r["id"] for r in run.receipts] == [populated["amend"]["id"]]
    with_voided = cli("current", "payment_intent:pi_1", "--include-voided")
    assert [r["id"] for r in with_voided.receipts] == [
        populated["amend"]["id"],
        populated["void"]["id"],
    ]
    bad = cli("current", "no-colon")
    assert bad.code == 1
    assert bad.pointers == ["/entity"]


def test_revision_conflict_exit_1(populated: Populated) -> None:
    cli = populated.cli
    stale = {
        "domain": "payments",
        "event_type": "payment_captured",
        "entity_type": "payment_intent",
        "entity_id": "pi_1",
        "op": "amend",
        "supersedes_id": populated["capture"]["id"],
        "payload": {"amount": 1, "providerChargeId": "ch_1"},
    }
    run = cli("append", "-", stdin=json.dumps(stale))
    assert run.code == 1
    assert run.error["code"] == "revision_conflict"
    assert run.pointers == ["/0/supersedes_id"]


# --- catalog -----------------------------------------------------------------------------------


def test_catalog_list(cli: Cli) -> None:
    run = cli("catalog", "list")
    assert run.code == 0, run.err
    types = run.json
    assert len(types) == len(CATALOG)
    assert sum(t["domain"] in SEED_DOMAINS for t in types) == SEED_TYPE_COUNT
    keys = {"domain", "event_type", "entity_types", "writers", "required"}
    assert all(set(t) == keys for t in types)
    assert {t["event_type"] for t in types} == set(CATALOG.types)
    captured = next(t for t in types if t["event_type"] == "payment_captured")
    assert captured["required"] == ["amount", "providerChargeId"]

    payments = cli("catalog", "list", "--domain", "payments").json
    assert len(payments) == 13
    assert {t["domain"] for t in payments} == {"payments"}

    unknown = cli("catalog", "list", "--domain", "nope")
    assert unknown.code == 1
    assert unknown.error["code"] == "not_found"
    assert unknown.pointers == ["/domain"]


def test_catalog_show(cli: Cli) -> None:
    run = cli("catalog", "show", "payment_captured")
    assert run.code == 0, run.err
    schema = run.json
    assert schema["type"] == "object"
    assert {"amount", "providerChargeId", "schema_version", "source"} <= set(schema["properties"])
    assert schema["required"] == ["amount", "providerChargeId"]
    assert schema["$id"] == "urn:receipts:schema:payments:payment_captured"

    missing = cli("catalog", "show", "payment_capturd")
    assert missing.code == 1
    assert missing.error["code"] == "not_found"


def test_catalog_export(cli: Cli) -> None:
    out = cli.cwd / "schemas"
    run = cli("catalog", "export", str(out))
    assert run.code == 0, run.err
    assert run.json == {"directory": str(out), "files": len(CATALOG) + 1}
    files = sorted(out.iterdir())
    assert len(files) == len(CATALOG) + 1  # 95 for the 94 seed types
    index = json.loads((out / "index.json").read_text())
    assert len(index) == len(CATALOG)
    for entry in index:
        schema = json.loads((out / entry["schema"]).read_text())
        assert schema_refs(schema) == [], f"{entry['schema']} is not self-contained"
        assert schema["$id"] == entry["$id"]
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
        example = CATALOG.get(entry["event_type"]).example
        validator_class(schema, format_checker=validator_class.FORMAT_CHECKER).validate(example)


# --- configuration -----------------------------------------------------------------------------


def test_receipts_db_environment_variable(cli: Cli, request_for: MakeRequest) -> None:
    target = cli.cwd / "from-env.db"
    env = clean_env(RECEIPTS_DB=str(target))
    run = cli("append", "-", stdin=json.dumps(request_for("payment_captured")), db=False, env=env)
    assert run.code == 0, run.err
    init = cli("init", db=False, env=env)
    assert init.json == {"db": f"sqlite:///{target}", "receipts": 1}
    assert not (cli.cwd / "receipts.db").exists()
    assert not cli.db.exists()


def test_extra_catalog_file(cli: Cli) -> None:
    extra = cli.cwd / "tickets.json"
    extra.write_text(json.dumps(CUSTOM_CATALOG))
    request = {
        "domain": "tickets",
        "event_type": "ticket_scanned",
        "entity_type": "ticket",
        "entity_id": "tk_1",
        "payload": {"gate": "north"},
    }
    run = cli("--catalog", str(extra), "append", "-", stdin=json.dumps(request))
    assert run.code == 0, run.err
    assert run.receipts[0]["domain"] == "tickets"
    assert run.receipts[0]["payload"] == {
        "gate": "north",
        "schema_version": 0,
        "source": run.receipts[0]["producer"],
    }

    listed = cli("--catalog", str(extra), "catalog", "list")
    assert len(listed.json) == len(CATALOG) + 1
    from_env = cli("catalog", "show", "ticket_scanned", env=clean_env(RECEIPTS_CATALOG=str(extra)))
    assert from_env.code == 0, from_env.err
    assert from_env.json["required"] == ["gate"]

    without = cli("append", "-", stdin=json.dumps(request))
    assert without.code == 1
    assert without.pointers == ["/0/event_type"]

    invalid = cli(
        "--catalog", str(extra), "append", "-", stdin=json.dumps({**request, "payload": {}})
    )
    assert invalid.pointers == ["/0/payload/gate"]


def test_malformed_extra_catalog_file(cli: Cli) -> None:
    extra = cli.cwd / "broken.json"
    extra.write_text(json.dumps({**CUSTOM_CATALOG, "title": ""}))
    run = cli("--catalog", str(extra), "catalog", "list")
    assert run.code == 1
    assert run.error["code"] == "catalog_invalid"
    assert run.pointers == ["/title"]

    missing = cli("--catalog", str(cli.cwd / "nope.json"), "catalog", "list")
    assert missing.code == 2


# --- demo --------------------------------------------------------------------------------------


def test_demo_twice_is_idempotent(tmp_path: Path) -> None:
    cwd = tmp_path / "demo"
    cwd.mkdir()
    cli = Cli(cwd, cwd / "receipts.db")
    total = len(story())
    per_domain = Counter(request["domain"] for _, request in story())

    first = cli("demo", db=False)
    assert first.code == 0, first.err
    assert f"Recorded {total} receipts" in first.out
    for domain in CATALOG.domains:
        assert re.search(rf"{domain}\W+{per_domain.get(domain, 0)}\b", first.out), domain
    assert cli.size() == total

    second = cli("demo", db=False)
    assert second.code == 0, second.err
    assert f"All {total} demo receipts were already" in second.out
    assert "Recorded" not in second.out
    for domain in CATALOG.domains:
        assert re.search(rf"{domain}\W+{per_domain.get(domain, 0)}\b", second.out), domain
    assert cli.size() == total


def test_the_demo_story_is_the_one_it_always_was() -> None:
    """The story's ids and requests are pinned: they were the same when it became data
    (``demo.json``), and a changed byte would change every demo ledger's leaves."""
    told = orjson.dumps(story(), option=orjson.OPT_SORT_KEYS)
    assert hashlib.sha256(told).hexdigest() == (
        "4f2cbc078663292dc08e32c2bd60afebe22ee63fcb9d0a0664b72c2e62b46448"
    ), told.decode()
    producers, requests = zip(*story(), strict=True)
    assert Counter(producers) == {"client": 10, "service_role_pipeline": 10, "edge_function": 3}
    assert requests[-3]["id"] == demo_id("refund-done") == "69ceb2cb-4c21-50af-b45a-b4460872e183"
    assert requests[2]["supersedes_id"] == requests[1]["id"] == demo_id("event")


# --- in process --------------------------------------------------------------------------------


def test_main_maps_errors_to_json_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "inproc.db")
    main(["--db", db, "init"])
    assert json.loads(capsys.readouterr().out)["receipts"] == 0

    with pytest.raises(SystemExit) as exited:
        main(["--db", db, "get", "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"])
    assert exited.value.code == 1
    report = json.loads(capsys.readouterr().err)
    assert report["code"] == "not_found"

    with pytest.raises(SystemExit) as exited:
        main(["--db", db, "--nope"])
    assert exited.value.code == 2
    assert json.loads(capsys.readouterr().err)["code"] == "usage"


def test_every_error_class_has_a_cli_exit_code() -> None:
    def subclasses(cls: type[ReceiptsError]) -> Iterator[type[ReceiptsError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes = {cls.code: cls.exit_code for cls in subclasses(ReceiptsError)}
    assert codes.pop("usage") == 2
    assert set(codes.values()) == {1}


def test_get_prints_a_receipt_as_a_cloudevent(tmp_path: Path) -> None:
    from cloudevents.v1.http import from_http as sdk_from_http

    from receipts import Ledger
    from receipts.cli.demo import demo_id, story

    db = tmp_path / "ce.db"
    with Ledger.open(db) as ledger:
        for producer, request in story()[:5]:
            ledger.append(request, producer=producer)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("receipts")), "--db", str(db), "get",
         demo_id("capture"), "--cloudevent", "--source", "https://ledger.example/v0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["type"] == "receipts.payments.payment_captured.v0"
    assert (event["id"], event["source"]) == (demo_id("capture"), "https://ledger.example/v0")
    assert event["subject"] == "payment_intent:pi_3Qx9" and event["seq"] == 4
    parsed = sdk_from_http({"content-type": "application/cloudevents+json"}, result.stdout)
    assert parsed["type"] == event["type"] and parsed.data == event["data"]
