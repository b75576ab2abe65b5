"""The verifiable-log commands end to end: keys, checkpoint, prove, verify-bundle, consistency,
verify — as a user runs them, in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from receipts import Ledger
from receipts.cli.demo import story
from receipts.tlog import Checkpoint, Signer, TlogProof, Verifier

RECEIPTS = str(Path(sys.executable).with_name("receipts"))


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIPTS_")}
    full_env.update(env or {})
    return subprocess.run(
        [RECEIPTS, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def error(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stderr)


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    """The demo's 23 receipts in ./receipts.db, and no signing key yet."""
    with Ledger.open(tmp_path / "receipts.db") as ledger:
        for producer, request in story():
            ledger.append(request, producer=producer)
    return tmp_path


@pytest.fixture
def vkey(ledger_dir: Path) -> str:
    result = run("keys", "generate", "--name", "example.com/log", cwd=ledger_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def first_id(cwd: Path) -> str:
    return json.loads(run("query", "--limit", "1", cwd=cwd).stdout)["id"]


def test_keys_generate_writes_a_private_0600_file_and_never_overwrites(
    ledger_dir: Path, vkey: str
) -> None:
    key = ledger_dir / "receipts.db.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("PRIVATE+KEY+example.com/log+")
    assert Verifier.from_key_string(vkey).name == "example.com/log"
    again = run("keys", "generate", cwd=ledger_dir)
    assert again.returncode == 1
    assert error(again)["code"] == "key_error"
    assert error(again)["message"].startswith(f"the ledger already has a signing key, {vkey}")
    # Another ledger pointed at the same file: the file is never overwritten either.
    other = run("--db", "other.db", "keys", "generate", "--key-file", str(key), cwd=ledger_dir)
    assert other.returncode == 1
    assert error(other)["message"] == f"{key} already exists; refusing to overwrite a signing key"
    assert key.read_text().startswith("PRIVATE+KEY+example.com/log+")
    assert run("keys", "show", cwd=ledger_dir).stdout == vkey + "\n"


def test_receipts_key_env_chooses_the_key_location(tmp_path: Path) -> None:
    where = tmp_path / "elsewhere.key"
    made = run("keys", "generate", cwd=tmp_path, env={"RECEIPTS_KEY": str(where)})
    assert made.returncode == 0 and where.exists()
    shown = run("keys", "show", cwd=tmp_path, env={"RECEIPTS_KEY": str(where)})
    assert shown.stdout.strip() == made.stdout.strip()


def test_default_origin_is_derived_from_the_ledger_name(tmp_path: Path) -> None:
    made = run("--db", "shop.db", "keys", "generate", cwd=tmp_path)
    assert made.stdout.startswith("receipts/shop+")


def test_checkpoint_prints_the_signed_note_exactly(ledger_dir: Path, vkey: str) -> None:
    result = run("checkpoint", cwd=ledger_dir)
    assert result.returncode == 0, result.stderr
    note = result.stdout
    cp = Checkpoint.open(note, Verifier.from_key_string(vkey))
    assert cp.size == 23 and note.startswith("example.com/log\n23\n")
    stored = sqlite3.connect(ledger_dir / "receipts.db").execute(
        "SELECT note FROM tlog_checkpoints WHERE size = 23"
    )
    assert stored.fetchone()[0] == note


def test_checkpoint_without_a_key_fails_with_advice(ledger_dir: Path) -> None:
    result = run("checkpoint", cwd=ledger_dir)
    assert result.returncode == 1
    assert "receipts keys generate" in error(result)["message"]


def test_prove_then_verify_bundle_offline(ledger_dir: Path, vkey: str, tmp_path: Path) -> None:
    run("checkpoint", cwd=ledger_dir)
    rid = first_id(ledger_dir)
    bundle = run("prove", rid, cwd=ledger_dir)
    assert bundle.returncode == 0, bundle.stderr
    doc = json.loads(bundle.stdout)
    assert set(doc) == {"entry", "proof"} and doc["entry"]["id"] == rid
    proof = TlogProof.from_text(doc["proof"])
    assert proof.index == 0 and doc["proof"].startswith("c2sp.org/tlog-proof@v1\nindex 0\n")

    offline = tmp_path / "offline"
    offline.mkdir()
    path = offline / "bundle.json"
    path.write_text(bundle.stdout)
    ok = run("verify-bundle", str(path), "--key", vkey, cwd=offline)  # no ledger here
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verified"] is True
    assert not (offline / "receipts.db").exists()


@pytest.fixture
def bundle(ledger_dir: Path, vkey: str) -> dict:
    run("checkpoint", cwd=ledger_dir)
    return json.loads(run("prove", first_id(ledger_dir), cwd=ledger_dir).stdout)


def _verify(doc: dict, key: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    return run("verify-bundle", str(path), "--key", key, cwd=tmp_path)


def test_verify_bundle_reports_an_altered_entry(bundle: dict, vkey: str, tmp_path: Path) -> None:
    bundle["entry"]["payload"]["level"] = "global"
    result = _verify(bundle, vkey, tmp_path)
    assert result.returncode == 1
    assert "the entry was altered or the proof is not for it" in error(result)["message"]


def test_verify_bundle_reports_a_wrong_key(bundle: dict, tmp_path: Path) -> None:
    other = Signer.generate("example.com/log").verifier().to_key_string()
    result = _verify(bundle, other, tmp_path)
    assert result.returncode == 1
    assert error(result)["message"].startswith("unknown key")


def test_verify_bundle_reports_a_bad_signature(bundle: dict, vkey: str, tmp_path: Path) -> None:
    head, sig = bundle["proof"].rsplit(" ", 1)
    flipped = ("A" if sig[10] != "A" else "B").join((sig[:10], sig[11:]))
    bundle["proof"] = f"{head} {flipped}"
    result = _verify(bundle, vkey, tmp_path)
    assert result.returncode == 1
    assert error(result)["message"].startswith("invalid signature")


def test_verify_bundle_reports_an_invalid_proof(bundle: dict, vkey: str, tmp_path: Path) -> None:
    lines = bundle["proof"].split("\n")
    lines[2] = "A" * 43 + "="
    bundle["proof"] = "\n".join(lines)
    result = _verify(bundle, vkey, tmp_path)
    assert result.returncode == 1
    assert "inclusion proof fails" in error(result)["message"]


def test_verify_bundle_rejects_a_malformed_bundle(tmp_path: Path, vkey: str) -> None:
    result = _verify({"entry": {"id": "x"}}, vkey, tmp_path)
    assert result.returncode == 1
    assert {e["pointer"] for e in error(result)["errors"]} == {"/entry", "/proof"}


def test_consistency_prints_hex_hashes(ledger_dir: Path, vkey: str) -> None:
    run("checkpoint", cwd=ledger_dir)
    result = run("consistency", "5", "23", cwd=ledger_dir)
    doc = json.loads(result.stdout)
    assert (doc["old_size"], doc["new_size"]) == (5, 23)
    assert doc["hashes"] and all(len(h) == 64 and h == h.lower() for h in doc["hashes"])
    beyond = run("consistency", "5", "99", cwd=ledger_dir)
    assert beyond.returncode == 1 and error(beyond)["errors"][0]["pointer"] == "/size"


def test_verify_audits_and_names_the_first_tampered_seq(ledger_dir: Path, vkey: str) -> None:
    run("checkpoint", cwd=ledger_dir)
    ok = run("verify", "--key", vkey, cwd=ledger_dir)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["receipts"] == 23
    with sqlite3.connect(ledger_dir / "receipts.db") as db:
        db.execute("DROP TRIGGER ledger_events_v0_no_update")
        db.execute("UPDATE ledger_events_v0 SET owner_user_id = 'mallory' WHERE seq = 9")
        rid = db.execute("SELECT id FROM ledger_events_v0 WHERE seq = 9").fetchone()[0]
    bad = run("verify", cwd=ledger_dir)
    assert bad.returncode == 1
    assert error(bad)["message"].startswith(f"audit failed at seq 9 (id {rid})")
