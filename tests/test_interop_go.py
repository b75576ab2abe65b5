"""Interop with Go's reference implementations, golang.org/x/mod/sumdb/note and sumdb/tlog.

DESIGN promises that an auditor can check our checkpoints and proofs with those packages. This
builds tests/interop/go/verify (which uses nothing but them and the standard library) and feeds
it what the ledger produces: signed checkpoints, inclusion proofs, consistency proofs, bundles
from the CLI. The other way round, Python must accept notes signed by Go, and Go's tree hashes
must equal the ledger's roots.

Needs Go and x/mod sources in a GOPATH (Debian: ``apt-get install golang-go
golang-golang-x-mod-dev``); the build is offline, in GOPATH mode. Without them the tests skip,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import catalog_without_rules
from receipts import Ledger, Receipt, canonical_bytes
from receipts.cli.demo import demo_id, story
from receipts.errors import VerificationError
from receipts.store.base import StoredCheckpoint
from receipts.tlog import EMPTY_ROOT, Checkpoint, Rotation, Signer, TlogProof, Verifier

GO_SOURCE = Path(__file__).parent / "interop" / "go" / "verify"
GOPATH = os.environ.get("RECEIPTS_INTEROP_GOPATH", "/usr/share/gocode")
ORIGIN = "example.com/receipts"
# Checkpoints are signed after each burst of appends, at these tree sizes: a single leaf,
# the demo story, then sizes around powers of two.
STORY_SIZE = len(story())
CHECKPOINT_SIZES = (1, STORY_SIZE, 31, 32, 33, 64, 65, 100)


# --- the Go program ------------------------------------------------------------------------------


def _go_unavailable() -> str | None:
    if shutil.which("go") is None:
        return "no `go` on PATH (apt-get install golang-go golang-golang-x-mod-dev)"
    for package in ("note", "tlog"):
        if not (Path(GOPATH) / "src/golang.org/x/mod/sumdb" / package).is_dir():
            return (
                f"golang.org/x/mod/sumdb/{package} is not under GOPATH {GOPATH} "
                "(apt-get install golang-golang-x-mod-dev, or set RECEIPTS_INTEROP_GOPATH)"
            )
    return None


@pytest.fixture(scope="session")
def go_verify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go verifier, built once per session (GOPATH mode: no module proxy needed)."""
    reason = _go_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Go interop tests cannot run in CI: {reason}")
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("go") / "verify"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": GOPATH,
        "GOFLAGS": "",
        "GOCACHE": os.environ.get("GOCACHE") or str(out.parent / "cache"),
    }
    build = subprocess.run(
        ["go", "build", "-o", str(out), "."],
        cwd=GO_SOURCE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"go build failed:\n{build.stdout}{build.stderr}")
    return out


def run_go(binary: Path, mode: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [str(binary), mode],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def go_accepts(binary: Path, mode: str, request: dict[str, Any]) -> dict[str, Any]:
    code, result = run_go(binary, mode, request)
    assert code == 0 and result["ok"], f"Go rejected it: {result.get('stage')}: {result['error']}"
    return result


def go_rejects(binary: Path, request: dict[str, Any]) -> tuple[str, str]:
    """(stage, Go's error text) of a verification Go must refuse."""
    code, result = run_go(binary, "verify", request)
    assert code == 1 and not result["ok"], f"Go accepted it: {result}"
    return result["stage"], result["error"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def flip_bit(data: bytes, bit: int = 0) -> bytes:
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1 :]


# --- the ledger under test -----------------------------------------------------------------------


@dataclass
class Log:
    ledger: Ledger
    signer: Signer
    receipts: list[Receipt]  # in seq order
    checkpoints: dict[int, StoredCheckpoint]  # by tree size

    @property
    def vkey(self) -> str:
        return self.signer.verifier().to_key_string()

    def inclusion_request(self, seq: int, size: int) -> dict[str, Any]:
        """What an auditor holding a bundle for receipt `seq` at `size` hands to Go."""
        bundle = self.ledger.prove(self.receipts[seq].id, size)
        proof = TlogProof.from_text(bundle.proof)
        return {
            "vkey": self.vkey,
            "note": proof.checkpoint_note,
            "leaf_data_b64": b64(canonical_bytes(bundle.entry)),
            "index": proof.index,
            "proof_b64": [b64(h) for h in proof.hashes],
        }

    def consistency_request(self, old: int, new: int) -> dict[str, Any]:
        return {
            "vkey": self.vkey,
            "note": self.checkpoints[new].note,
            "old_note": self.checkpoints[old].note,
            "consistency_b64": [b64(h) for h in self.ledger.consistency(old, new)],
        }


def _filler(n: int) -> list[dict[str, Any]]:
    """`n` fresh, valid requests: the story's server-side asserts again, without their ids."""
    asserts = [
        {k: v for k, v in request.items() if k != "id"}
        for producer, request in story()
        if producer == "service_role_pipeline" and request.get("op", "assert") == "assert"
    ]
    return [dict(r) for r in itertools.islice(itertools.cycle(asserts), n)]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    signer = Signer.generate(ORIGIN)
    path = tmp_path_factory.mktemp("interop") / "ledger.db"
    # The filler repeats the demo's receipts out of their lifecycles: no rules (docs/doors.md).
    with Ledger.open(path, signer=signer, catalog=catalog_without_rules()) as ledger:
        checkpoints = {}
        items = story()
        for upto in CHECKPOINT_SIZES:
            while items and ledger.size() < upto:
                producer, request = items.pop(0)
                ledger.append(request, producer=producer)
            if ledger.size() < upto:
                ledger.append_batch(_filler(upto - ledger.size()))
            checkpoints[upto] = ledger.checkpoint()
            assert checkpoints[upto].size == upto
        receipts = list(ledger.query())
        assert [r.seq for r in receipts] == list(range(CHECKPOINT_SIZES[-1]))
        yield Log(ledger, signer, receipts, checkpoints)


# --- Go verifies what we produce -----------------------------------------------------------------


@pytest.mark.parametrize("size", CHECKPOINT_SIZES)
def test_go_verifies_every_inclusion_proof(go_verify: Path, log: Log, size: int) -> None:
    root = log.ledger.root(size).root_hash
    for seq in range(size):
        result = go_accepts(go_verify, "verify", log.inclusion_request(seq, size))
        assert (result["origin"], result["size"], result["index"]) == (ORIGIN, size, seq)
        assert result["signature"] and result["inclusion"]
        assert base64.b64decode(result["root_b64"]) == root
        assert base64.b64decode(result["leaf_hash_b64"]) == log.receipts[seq].leaf_hash


def test_go_verifies_every_consistency_proof(go_verify: Path, log: Log) -> None:
    for old, new in itertools.combinations_with_replacement(CHECKPOINT_SIZES, 2):
        result = go_accepts(go_verify, "verify", log.consistency_request(old, new))
        assert (result["old_size"], result["size"], result["consistency"]) == (old, new, True)


def test_go_reads_the_tlog_proof_text(go_verify: Path, log: Log) -> None:
    """Go parses the c2sp.org/tlog-proof@v1 text itself: index, hashes, checkpoint."""
    bundle = log.ledger.prove(log.receipts[40].id, 65)
    result = go_accepts(
        go_verify,
        "verify",
        {
            "vkey": log.vkey,
            "note": "",
            "proof_text": bundle.proof,
            "leaf_data_b64": b64(canonical_bytes(bundle.entry)),
        },
    )
    assert (result["index"], result["size"], result["inclusion"]) == (40, 65, True)


# --- Go rejects what is wrong --------------------------------------------------------------------


@pytest.mark.parametrize("hash_index", [0, -1])
def test_go_rejects_a_flipped_bit_in_an_inclusion_hash(
    go_verify: Path, log: Log, hash_index: int
) -> None:
    request = log.inclusion_request(37, 100)
    hashes = [base64.b64decode(h) for h in request["proof_b64"]]
    hashes[hash_index] = flip_bit(hashes[hash_index], 77)
    request["proof_b64"] = [b64(h) for h in hashes]
    assert go_rejects(go_verify, request) == ("inclusion", "invalid transparency proof")


def test_go_rejects_a_flipped_bit_in_a_consistency_hash(go_verify: Path, log: Log) -> None:
    request = log.consistency_request(33, 100)
    first = base64.b64decode(request["consistency_b64"][0])
    request["consistency_b64"][0] = b64(flip_bit(first, 3))
    assert go_rejects(go_verify, request) == ("consistency", "invalid transparency proof")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: e["payload"].update(level="global"), id="payload"),
        pytest.param(lambda e: e.update(revision=e["revision"] + 1), id="revision"),
        pytest.param(lambda e: e.update(producer="client"), id="producer"),
    ],
)
def test_go_rejects_an_altered_entry(go_verify: Path, log: Log, change: Any) -> None:
    entry = json.loads(json.dumps(log.ledger.prove(log.receipts[0].id, 64).entry))
    change(entry)
    request = log.inclusion_request(0, 64) | {"leaf_data_b64": b64(canonical_bytes(entry))}
    assert go_rejects(go_verify, request) == ("inclusion", "invalid transparency proof")


def test_go_rejects_the_wrong_index(go_verify: Path, log: Log) -> None:
    request = log.inclusion_request(12, 33) | {"index": 13}
    assert go_rejects(go_verify, request) == ("inclusion", "invalid transparency proof")


def test_go_rejects_a_proof_for_another_tree_size(go_verify: Path, log: Log) -> None:
    request = log.inclusion_request(12, 33) | {"note": log.checkpoints[32].note}
    assert go_rejects(go_verify, request) == ("inclusion", "invalid transparency proof")


@pytest.mark.parametrize("name", [ORIGIN, "example.com/other"], ids=["same-name", "other-name"])
def test_go_rejects_the_wrong_key(go_verify: Path, log: Log, name: str) -> None:
    wrong = Signer.generate(name).verifier().to_key_string()
    request = log.inclusion_request(5, 100) | {"vkey": wrong}
    assert go_rejects(go_verify, request) == (
        "checkpoint.signature",
        "note has no verifiable signatures",
    )


def test_go_rejects_a_tampered_checkpoint(go_verify: Path, log: Log) -> None:
    note = log.checkpoints[65].note
    request = log.inclusion_request(5, 65) | {"note": note.replace("\n65\n", "\n66\n", 1)}
    stage, error = go_rejects(go_verify, request)
    assert (stage, error) == (
        "checkpoint.signature",
        f"invalid signature for key {ORIGIN}+{log.signer.key_id:08x}",
    )


def test_go_rejects_a_forged_signature(go_verify: Path, log: Log) -> None:
    text, _, sig_line = log.checkpoints[100].note.partition("\n\n")
    name, _, sig = sig_line.rstrip("\n").rpartition(" ")
    forged = f"{text}\n\n{name} {b64(flip_bit(base64.b64decode(sig), 100))}\n"
    request = log.inclusion_request(5, 100) | {"note": forged}
    assert go_rejects(go_verify, request)[0] == "checkpoint.signature"


# --- Python verifies what Go produces ------------------------------------------------------------


def test_python_opens_a_go_signed_checkpoint(go_verify: Path, log: Log) -> None:
    head = log.ledger.root(100)
    text = Checkpoint(ORIGIN, head.size, head.root_hash).to_text()
    signed = go_accepts(go_verify, "sign", {"name": ORIGIN, "text": text})
    verifier = Verifier.from_key_string(signed["vkey"])
    assert Checkpoint.open(signed["note"], verifier) == Checkpoint(ORIGIN, 100, head.root_hash)
    # Go's key strings are ours: same verifier key, and the same (deterministic) signature.
    ours = Signer.from_key_string(signed["skey"])
    assert ours.verifier().to_key_string() == signed["vkey"]
    assert Checkpoint.from_text(text).sign(ours) == signed["note"]
    with pytest.raises(VerificationError):
        Checkpoint.open(signed["note"], log.signer.verifier())


def test_go_signs_byte_for_byte_what_the_ledger_signs(go_verify: Path, log: Log) -> None:
    stored = log.checkpoints[STORY_SIZE]
    text = Checkpoint(ORIGIN, stored.size, stored.root_hash).to_text()
    signed = go_accepts(go_verify, "sign", {"skey": log.signer.to_key_string(), "text": text})
    assert signed["note"] == stored.note


# --- key rotation -------------------------------------------------------------------------------


def test_go_opens_a_rotation_statement_signed_by_both_keys(go_verify: Path, tmp_path: Path) -> None:
    """What an auditor in Go does with a rotation: open the note with the old and the new key
    (both must have signed), read the text, then check the new key's checkpoints."""
    old = Signer.generate(ORIGIN)
    with Ledger.open(
        tmp_path / "rotated.db", signer=old, catalog=catalog_without_rules()
    ) as ledger:
        ledger.append_batch(_filler(3))
        ledger.checkpoint()
        record = ledger.rotate_key(tmp_path / "new.key")
        new = ledger.signer
        assert new is not None and record.rotation is not None
        ledger.append_batch(_filler(2))
        after = ledger.checkpoint()
    keys = [old.verifier().to_key_string(), new.verifier().to_key_string()]
    opened = go_accepts(go_verify, "open", {"vkeys": keys, "note": record.rotation})
    labels = ["+".join(k.split("+", 2)[:2]) for k in keys]
    assert sorted(opened["signed_by"]) == sorted(labels) and opened["unverified"] == []
    assert opened["text"].split("\n") == ["receipts/key-rotation/v1", ORIGIN, "4", *keys, ""]
    result = go_accepts(go_verify, "verify", {"vkey": keys[1], "note": after.note})
    assert (result["size"], result["signature"]) == (5, True)
    # A forged statement (the new key alone) opens in Go with one signature: not a rotation.
    forged = Rotation(ORIGIN, 4, old.verifier(), new.verifier()).to_text()
    forged_note = go_accepts(go_verify, "sign", {"skey": new.to_key_string(), "text": forged})
    opened = go_accepts(go_verify, "open", {"vkeys": keys, "note": forged_note["note"]})
    assert opened["signed_by"] == [labels[1]]


# --- tree hashes ---------------------------------------------------------------------------------


def test_go_tree_hash_equals_the_ledger_root_at_every_size(go_verify: Path, log: Log) -> None:
    leaves = [b64(canonical_bytes(r.entry())) for r in log.receipts]
    pairs = [
        (old, new) for old in (1, 7, 32, 33, 64) for new in (33, 64, 65, 99, 100) if old <= new
    ]
    inclusions = [(seq, size) for size in CHECKPOINT_SIZES for seq in {0, size // 2, size - 1}]
    result = go_accepts(
        go_verify,
        "treehash",
        {"leaves_b64": leaves, "record_proofs": inclusions, "tree_proofs": pairs},
    )
    roots = [base64.b64decode(r) for r in result["roots_b64"]]
    assert roots == [log.ledger.root(n).root_hash for n in range(1, len(leaves) + 1)]
    # Go's own proofs are hash-for-hash the ledger's: both follow RFC 9162 to the letter.
    for (seq, size), proof in zip(inclusions, result["record_proofs_b64"], strict=True):
        ours = TlogProof.from_text(log.ledger.prove(log.receipts[seq].id, size).proof)
        assert [b64(h) for h in ours.hashes] == proof, (seq, size)
    for (old, new), proof in zip(pairs, result["tree_proofs_b64"], strict=True):
        assert [b64(h) for h in log.ledger.consistency(old, new)] == proof, (old, new)


def test_the_empty_tree_is_where_go_differs(go_verify: Path, log: Log, tmp_path: Path) -> None:
    """Known difference, pinned: RFC 9162 (and we) hash the empty tree as SHA-256 of nothing,
    Go's tlog as 32 zero bytes, and Go's CheckTree refuses an old size of 0 (we prove it with
    no hashes). Go still verifies a size-0 checkpoint's signature; an auditor in Go must treat
    the empty tree as a special case."""
    with Ledger.open(tmp_path / "empty.db", signer=log.signer) as empty:
        zero = empty.checkpoint()
    assert zero.root_hash == EMPTY_ROOT == hashlib.sha256(b"").digest()
    result = go_accepts(go_verify, "verify", {"vkey": log.vkey, "note": zero.note})
    assert (result["size"], base64.b64decode(result["root_b64"])) == (0, EMPTY_ROOT)
    tree = go_accepts(go_verify, "treehash", {"leaves_b64": []})
    assert base64.b64decode(tree["empty_root_b64"]) == bytes(32)
    assert log.ledger.consistency(0, 33) == []
    request = log.consistency_request(33, 33) | {"old_note": zero.note}
    assert go_rejects(go_verify, request) == ("consistency", "tlog: invalid inputs in CheckTree")


# --- the CLI, end to end -------------------------------------------------------------------------


def _receipts_cli() -> str:
    script = Path(sys.executable).parent / "receipts"
    found = str(script) if script.exists() else shutil.which("receipts")
    assert found, "the `receipts` console script is not installed"
    return found


@pytest.mark.slow
def test_go_verifies_a_bundle_from_the_cli(go_verify: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    # RECEIPTS_KEY and friends would point the CLI elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIPTS_")}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [_receipts_cli(), "--db", db, *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    vkey = cli("keys", "generate").strip()
    cli("demo")
    note = cli("checkpoint")
    bundle = json.loads(cli("prove", demo_id("capture")))
    result = go_accepts(
        go_verify,
        "verify",
        {
            "vkey": vkey,
            "note": "",
            "proof_text": bundle["proof"],
            "leaf_data_b64": b64(canonical_bytes(bundle["entry"])),
        },
    )
    assert result["origin"] == "receipts/cli" and result["inclusion"]
    assert bundle["proof"].endswith("\n\n" + note)
