"""Keys belong to the ledger: the first signing key is recorded in it, only the current key
signs, a rotation is a statement both keys sign, and `verify` / `verify-bundle` follow the
recorded rotations. Library and CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from receipts import AppendOnlyError, Ledger, SigningKeyError, TamperedError, VerificationError
from receipts.bundle import Bundle
from receipts.cli.demo import story
from receipts.store.base import StoredCheckpoint, StoredKey
from receipts.tlog import Checkpoint, KeyChain, Rotation, Signer, Verifier, sign_note

RECEIPTS = str(Path(sys.executable).with_name("receipts"))
ORIGIN = "example.com/keys"
AT = "2026-01-01T00:00:00.000000Z"


def label(signer: Signer) -> str:
    return f"{ORIGIN}+{signer.key_id:08x}"


def _requests(n: int, tag: str = "k") -> list[dict[str, Any]]:
    base = dict(story()[3][1])  # a payment_intent_created request
    out = []
    for i in range(n):
        r = {k: v for k, v in base.items() if k != "id"}
        r["entity_id"] = f"pi_{tag}{i}"
        out.append(r)
    return out


@pytest.fixture
def a() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def b() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def ledger(ledger_url: str, a: Signer) -> Any:
    with Ledger.open(ledger_url, signer=a) as opened:
        yield opened


def _rotate(ledger: Ledger, new: Signer, tmp_path: Path) -> StoredKey:
    return ledger.rotate_key(tmp_path / f"new-{new.key_id:08x}.key", new)


# --- the first key is the ledger's ---------------------------------------------------------------


def test_the_first_checkpoint_records_its_key_and_no_other_key_signs(
    ledger: Ledger, ledger_url: str, a: Signer, b: Signer
) -> None:
    ledger.append_batch(_requests(3))
    assert ledger.current_key() is None
    ledger.checkpoint()
    assert ledger.current_key() == a.verifier()
    (record,) = ledger.key_history()
    assert (record.index, record.verifier_key, record.from_size, record.rotation) == (
        0, a.verifier().to_key_string(), 0, None,
    )  # fmt: skip
    ledger.append_batch(_requests(2, "more"))
    with Ledger.open(ledger_url, signer=b) as other, pytest.raises(SigningKeyError) as caught:
        other.checkpoint()
    assert caught.value.message.startswith(
        f"refusing to sign with {label(b)}: the ledger's signing key is "
        f"{a.verifier().to_key_string()}; set RECEIPTS_KEY or --key-file"
    )
    with ledger.store.read() as txn:
        assert [cp.size for cp in txn.checkpoints()] == [3]  # nothing signed by b
    assert ledger.checkpoint().size == 5


def test_a_ledger_signed_before_keys_were_recorded_adopts_only_its_own_key(
    ledger: Ledger, ledger_url: str, a: Signer, b: Signer, tmp_path: Path
) -> None:
    """A checkpoint stored by an older version, without a key record: the key that signed it
    is the ledger's, and the first checkpoint with it records it."""
    ledger.append_batch(_requests(2))
    head = ledger.root()
    note = Checkpoint(ORIGIN, head.size, head.root_hash).sign(a)
    with ledger.store.write() as txn:
        txn.add_checkpoint(StoredCheckpoint(head.size, head.root_hash, ORIGIN, note, AT))
    ledger.append_batch(_requests(1, "x"))
    with Ledger.open(ledger_url, signer=b) as other:
        with pytest.raises(SigningKeyError) as caught:
            other.checkpoint()
        assert caught.value.message == (
            f"refusing to sign with {label(b)}: the ledger's checkpoints are signed by "
            f"{label(a)}; set RECEIPTS_KEY or --key-file to the file that holds it"
        )
        with pytest.raises(SigningKeyError, match=re.escape(f"already signed by {label(a)}:")):
            other.generate_key(tmp_path / "never.key", ORIGIN)
        assert not (tmp_path / "never.key").exists()
        assert other.key_history() == []
    assert ledger.checkpoint().size == 3
    assert ledger.current_key() == a.verifier()


def test_generate_key_records_it_and_refuses_a_second(ledger_url: str, tmp_path: Path) -> None:
    with Ledger.open(ledger_url) as first:
        made = first.generate_key(tmp_path / "one.key", ORIGIN)
        assert first.current_key() == made.verifier()
    with Ledger.open(ledger_url) as second, pytest.raises(SigningKeyError) as caught:
        second.generate_key(tmp_path / "two.key", ORIGIN)
    assert caught.value.message == (
        f"the ledger already has a signing key, {made.verifier().to_key_string()}: set "
        "RECEIPTS_KEY or --key-file to the file that holds it, or make a new one with "
        "`receipts keys rotate`"
    )
    assert not (tmp_path / "two.key").exists()


def test_key_records_are_append_only(ledger: Ledger, tmp_path: Path, b: Signer) -> None:
    ledger.checkpoint()
    _rotate(ledger, b, tmp_path)
    for sql in ("UPDATE tlog_keys SET from_size = 0", "DELETE FROM tlog_keys WHERE idx = 1"):
        with pytest.raises(AppendOnlyError, match="tlog_keys is append-only"):
            ledger.store.execute(sql)  # type: ignore[attr-defined]
    assert len(ledger.key_history()) == 2


def _as_role(url: str, role: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"SET ROLE {role}")
    return conn


@pytest.mark.backends("postgres")
def test_key_records_are_public_and_written_only_by_the_service_role(
    ledger: Ledger, ledger_url: str, a: Signer, b: Signer
) -> None:
    ledger.checkpoint()
    insert = "INSERT INTO public.tlog_keys VALUES (1, %s, 1, %s, now())"
    row = (b.verifier().to_key_string(), _forged(a, b, 1))
    for role in ("anon", "authenticated"):
        with _as_role(ledger_url, role) as conn:
            keys = conn.execute("SELECT idx, verifier_key FROM public.tlog_keys").fetchall()
            assert keys == [(0, a.verifier().to_key_string())]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(insert, row)
    for role in ("service_role", None):  # None: the tables' owner
        conn = psycopg.connect(ledger_url, autocommit=True) if role is None else (
            _as_role(ledger_url, role)
        )  # fmt: skip
        with conn:
            for sql in (
                "UPDATE public.tlog_keys SET from_size = 1",
                "DELETE FROM public.tlog_keys",
                "TRUNCATE public.tlog_keys",
            ):
                refusal = "append-only" if role is None else "permission denied|append-only"
                with pytest.raises(psycopg.Error, match=refusal):
                    conn.execute(sql)
    with _as_role(ledger_url, "service_role") as conn:
        conn.execute(insert, row)  # the service may record a key; verify checks what it says
    with pytest.raises(TamperedError, match="not signed by the old key"):
        ledger.audit()


# --- rotation ------------------------------------------------------------------------------------


def test_rotation_hands_checkpoints_to_the_new_key_and_verify_follows_it(
    ledger: Ledger, ledger_url: str, a: Signer, b: Signer, tmp_path: Path
) -> None:
    ledger.append_batch(_requests(3))
    ledger.checkpoint()
    record = _rotate(ledger, b, tmp_path)
    assert (record.index, record.from_size) == (1, 4)  # every checkpoint after size 3
    assert Signer.from_key_string((tmp_path / f"new-{b.key_id:08x}.key").read_text().strip()) \
        .verifier() == b.verifier()  # fmt: skip
    rotation = Rotation.open(record.rotation or "")
    assert (rotation.old, rotation.new, rotation.from_size) == (a.verifier(), b.verifier(), 4)
    assert ledger.current_key() == b.verifier() and ledger.signer is not None
    ledger.append_batch(_requests(4, "after"))
    after = ledger.checkpoint()
    assert Checkpoint.open(after.note, b.verifier()).size == 7
    with pytest.raises(VerificationError):
        Checkpoint.open(after.note, a.verifier())

    assert ledger.audit().signatures_checked  # from the ledger's first key
    assert ledger.audit(a.verifier()).checkpoints == 2
    with pytest.raises(VerificationError) as caught:
        ledger.audit(b.verifier())
    assert caught.value.message.endswith(
        f"the checkpoint of size 3 predates the trusted key {label(b)}, which signs from tree "
        "size 4 on; check it with the key before"
    )
    # A process still holding the old key (a server started before the rotation) signs nothing.
    ledger.append_batch(_requests(1, "late"))
    with Ledger.open(ledger_url, signer=a) as stale, pytest.raises(SigningKeyError) as refused:
        stale.checkpoint()
    assert refused.value.message.endswith(f"({label(a)} was rotated out at tree size 4)")


def test_bundles_carry_the_rotations_to_their_checkpoint_key(
    ledger: Ledger, a: Signer, b: Signer, tmp_path: Path
) -> None:
    early = ledger.append_batch(_requests(2))[0]
    ledger.checkpoint()
    _rotate(ledger, b, tmp_path)
    late = ledger.append_batch(_requests(2, "after"))[1]
    ledger.checkpoint()

    old_bundle = ledger.prove(early.id, 2)
    assert old_bundle.rotations == () and set(old_bundle.to_dict()) == {"entry", "proof"}
    assert old_bundle.verify(a.verifier()).key == a.verifier()

    bundle = Bundle.from_json(ledger.prove(late.id).to_json())
    assert len(bundle.rotations) == 1
    via_old = bundle.verify(a.verifier())
    assert (via_old.index, via_old.checkpoint.size, via_old.key) == (3, 4, b.verifier())
    assert via_old.to_dict()["key"] == b.verifier().to_key_string()
    assert bundle.verify(b.verifier()).index == 3
    # Without the rotation the old key cannot reach the new one.
    bare = Bundle(bundle.entry, bundle.proof)
    with pytest.raises(VerificationError, match=f"^unknown key.*signed by {re.escape(label(b))}"):
        bare.verify(a.verifier())
    assert bare.verify(b.verifier()).index == 3


def _forged(a: Signer, b: Signer, size: int) -> str:
    """A rotation statement from a to b signed only by b: what someone without a's key makes."""
    return sign_note(Rotation(ORIGIN, size, a.verifier(), b.verifier()).to_text(), b)


def test_a_forged_rotation_is_refused_by_verify_bundle(
    ledger: Ledger, a: Signer, b: Signer
) -> None:
    first = ledger.append_batch(_requests(2))[0]
    ledger.checkpoint()
    honest = ledger.prove(first.id)
    head = ledger.root()
    note = Checkpoint(ORIGIN, head.size, head.root_hash).sign(b)  # the same tree, b's signature
    forged = Bundle(
        honest.entry, honest.proof.split("\n\n", 1)[0] + "\n\n" + note, (_forged(a, b, 0),)
    )
    assert Bundle(forged.entry, forged.proof).verify(b.verifier()).index == 0  # b's own word
    with pytest.raises(VerificationError) as caught:
        forged.verify(a.verifier())
    assert caught.value.message == (
        f"key rotation 0: key rotation to {label(b)} at tree size 0 is not signed by the old "
        f"key {label(a)}"
    )


def test_a_forged_rotation_in_the_ledger_is_refused_by_verify_and_by_signing(
    ledger: Ledger, ledger_url: str, a: Signer, b: Signer
) -> None:
    ledger.append_batch(_requests(2))
    ledger.checkpoint()
    with ledger.store.write() as txn:  # written around the ledger, as a service-role writer could
        txn.add_key(StoredKey(1, b.verifier().to_key_string(), 3, _forged(a, b, 3), AT))
    expected = (
        "the ledger's key records do not check out: key rotation 0: key rotation to "
        f"{label(b)} at tree size 3 is not signed by the old key {label(a)}"
    )
    for trusted in (None, a.verifier()):
        with pytest.raises(TamperedError) as caught:
            ledger.audit(trusted)
        assert caught.value.message == expected
    ledger.append_batch(_requests(1, "x"))
    with Ledger.open(ledger_url, signer=b) as forger, pytest.raises(TamperedError, match="key rot"):
        forger.checkpoint()
    with pytest.raises(TamperedError):
        ledger.checkpoint()


def test_rotation_needs_the_current_key(
    ledger: Ledger, a: Signer, b: Signer, tmp_path: Path
) -> None:
    ledger.checkpoint()
    ledger.signer = b
    keys = tmp_path / "keys"
    keys.mkdir()
    with pytest.raises(SigningKeyError, match=f"^refusing to sign with {re.escape(label(b))}"):
        _rotate(ledger, Signer.generate(ORIGIN), keys)
    assert list(keys.iterdir()) == []  # no key file left behind
    assert len(ledger.key_history()) == 1


# --- the key chain, pure -------------------------------------------------------------------------


def test_rotation_text_round_trips_and_rejects_what_is_not_one(a: Signer, b: Signer) -> None:
    rotation = Rotation(ORIGIN, 12, a.verifier(), b.verifier())
    assert Rotation.from_text(rotation.to_text()) == rotation
    assert rotation.to_text().splitlines()[:3] == ["receipts/key-rotation/v1", ORIGIN, "12"]
    note = rotation.sign(a, b)
    assert Rotation.open(note) == rotation
    with pytest.raises(VerificationError, match="invalid signature"):
        Rotation.open(note.replace("\n12\n", "\n13\n", 1))
    with pytest.raises(VerificationError, match="not signed by the new key"):
        Rotation.open(sign_note(rotation.to_text(), a))
    other = Signer.generate("example.com/other")
    with pytest.raises(Exception, match="not the origin"):
        Rotation(ORIGIN, 1, a.verifier(), other.verifier())
    # A rotation statement is never a checkpoint, whatever the key.
    with pytest.raises(Exception, match="checkpoint line"):
        Checkpoint.open(note, a.verifier())


def test_a_chain_refuses_links_that_do_not_follow(a: Signer, b: Signer) -> None:
    c = Signer.generate(ORIGIN)
    ab = Rotation(ORIGIN, 5, a.verifier(), b.verifier()).sign(a, b)
    bc = Rotation(ORIGIN, 9, b.verifier(), c.verifier()).sign(b, c)
    chain = KeyChain.follow(a.verifier(), [ab, bc])
    assert [chain.key_at(n) for n in (0, 4, 5, 8, 9, 100)] == [a.verifier()] * 2 + [
        b.verifier()
    ] * 2 + [c.verifier()] * 2
    assert KeyChain.follow(b.verifier(), [ab, bc]).starts == (5, 9)
    with pytest.raises(VerificationError) as caught:
        KeyChain.follow(a.verifier(), [bc, ab])
    assert caught.value.message == (
        f"key rotation 1 hands over from {label(a)}, but the key before it is {label(c)}"
    )
    back = Rotation(ORIGIN, 3, b.verifier(), c.verifier()).sign(b, c)
    with pytest.raises(VerificationError, match="key rotation 1 starts at tree size 3, before"):
        KeyChain.follow(a.verifier(), [ab, back])


# --- the CLI, as the issue describes it ----------------------------------------------------------


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RECEIPTS_")}
    full.update(env or {})
    return subprocess.run(
        [RECEIPTS, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    report = json.loads(result.stderr)
    assert report["code"] == "key_error", report
    return str(report["message"])


@pytest.fixture
def two_dirs(ledger_url: str, backend: str, tmp_path: Path) -> tuple[Any, Path, Path]:
    """A ledger used from two working directories. On PostgreSQL the key's default place is
    ./receipts.key; a SQLite ledger's is beside its file, so there RECEIPTS_KEY plays that
    part."""
    env = {} if backend == "postgres" else {"RECEIPTS_KEY": "receipts.key"}
    dirs = tmp_path / "a", tmp_path / "b"
    for d in dirs:
        d.mkdir()
    with Ledger.open(ledger_url) as ledger:
        ledger.append_batch(_requests(5))

    def cli(where: Path, *args: str) -> subprocess.CompletedProcess:
        return run(where, "--db", ledger_url, *args, env=env)

    return cli, *dirs


def test_a_second_directory_cannot_make_or_use_a_second_key(two_dirs: Any) -> None:
    cli, here, elsewhere = two_dirs
    vkey = ok(cli(here, "keys", "generate", "--name", ORIGIN)).strip()
    assert ok(cli(here, "checkpoint")).startswith(f"{ORIGIN}\n5\n")
    # From elsewhere: the public key is the ledger's; no second key is made or used.
    assert ok(cli(elsewhere, "keys", "show")) == vkey + "\n"
    message = refused(cli(elsewhere, "keys", "generate", "--name", ORIGIN))
    assert message == (
        f"the ledger already has a signing key, {vkey}: set RECEIPTS_KEY or --key-file to the "
        "file that holds it, or make a new one with `receipts keys rotate`"
    )
    assert not (elsewhere / "receipts.key").exists()
    assert refused(cli(elsewhere, "checkpoint")) == (
        f"no private key for the ledger's signing key {vkey} at receipts.key: set RECEIPTS_KEY "
        "or --key-file to the file that holds it"
    )
    stray = Signer.generate(ORIGIN)
    (elsewhere / "receipts.key").write_text(stray.to_key_string() + "\n")
    message = refused(cli(elsewhere, "checkpoint"))
    assert message.startswith(f"refusing to sign with {label(stray)}: the ledger's signing key "
                              f"is {vkey}")  # fmt: skip
    assert json.loads(ok(cli(elsewhere, "verify")))["checkpoints"] == 1
    assert ok(cli(elsewhere, "checkpoint", "--key-file", str(here / "receipts.key")))


def test_serve_refuses_to_start_with_a_key_that_is_not_the_ledgers(two_dirs: Any) -> None:
    cli, here, elsewhere = two_dirs
    vkey = ok(cli(here, "keys", "generate", "--name", ORIGIN)).strip()
    stray = Signer.generate(ORIGIN)
    (elsewhere / "receipts.key").write_text(stray.to_key_string() + "\n")
    message = refused(cli(elsewhere, "serve", "--insecure-dev", "--port", "9"))
    assert message.startswith(f"refusing to sign with {label(stray)}: the ledger's signing key "
                              f"is {vkey}")  # fmt: skip
    (elsewhere / "receipts.key").unlink()
    assert refused(cli(elsewhere, "serve", "--insecure-dev", "--port", "9")).startswith(
        f"no private key for the ledger's signing key {vkey}"
    )
    assert not (elsewhere / "receipts.key").exists()  # and no new key was made


def _append_one(cli: Any, where: Path) -> str:
    request = where / "one.json"
    request.write_text(json.dumps(_requests(1, "cli")[0]))
    return str(json.loads(ok(cli(where, "append", str(request))))["id"])


def test_keys_rotate_end_to_end(two_dirs: Any, tmp_path: Path) -> None:
    cli, here, _ = two_dirs
    old = ok(cli(here, "keys", "generate", "--name", ORIGIN)).strip()
    ok(cli(here, "checkpoint"))
    old_file = (here / "receipts.key").read_text()
    rotated = cli(here, "keys", "rotate")
    new = ok(rotated).strip()
    new_id = new.split("+")[1]
    assert f"wrote signing key receipts.key.{new_id}; checkpoints from tree size 6 on" in (
        rotated.stderr
    )
    assert (here / "receipts.key").read_text() == old_file  # kept as it was
    assert (here / f"receipts.key.{new_id}").stat().st_mode & 0o777 == 0o600
    assert ok(cli(here, "keys", "show")) == new + "\n"
    history = json.loads(ok(cli(here, "keys", "list")))
    assert [(k["index"], k["verifier_key"], k["from_size"]) for k in history] == [
        (0, old, 0), (1, new, 6),
    ]  # fmt: skip
    assert history[1]["rotation"].startswith(
        f"receipts/key-rotation/v1\n{ORIGIN}\n6\n{old}\n{new}\n"
    )

    rid = _append_one(cli, here)
    note = ok(cli(here, "checkpoint"))  # the ledger finds the new key beside the old one
    Checkpoint.open(note, Verifier.from_key_string(new))
    for key in (None, old):
        report = json.loads(ok(cli(here, "verify", *(["--key", key] if key else []))))
        assert report["checkpoints"] == 2 and report["signatures_checked"]

    bundle = json.loads(ok(cli(here, "prove", rid)))
    assert len(bundle["rotations"]) == 1
    path = tmp_path / "bundle.json"
    for key in (old, new):
        path.write_text(json.dumps(bundle))
        verified = json.loads(ok(run(tmp_path, "verify-bundle", str(path), "--key", key)))
        assert verified["key"] == new and verified["tree_size"] == 6
    path.write_text(json.dumps({"entry": bundle["entry"], "proof": bundle["proof"]}))
    result = run(tmp_path, "verify-bundle", str(path), "--key", old)
    assert result.returncode == 1 and json.loads(result.stderr)["message"].startswith("unknown key")
    assert ok(run(tmp_path, "verify-bundle", str(path), "--key", new))
    new_signer = Signer.from_key_string((here / f"receipts.key.{new_id}").read_text().strip())
    forged = sign_note(
        Rotation(ORIGIN, 6, Verifier.from_key_string(old), new_signer.verifier()).to_text(),
        new_signer,
    )
    path.write_text(json.dumps({**bundle, "rotations": [forged]}))
    result = run(tmp_path, "verify-bundle", str(path), "--key", old)
    assert result.returncode == 1
    assert json.loads(result.stderr)["message"].endswith(
        f"is not signed by the old key {'+'.join(old.split('+', 2)[:2])}"
    )
