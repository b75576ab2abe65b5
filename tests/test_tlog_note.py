"""Signed notes, checkpoints and tlog-proof texts: Go's vectors, round-trips, failure fixtures.

The PeterNeumann / EnochRoot keys, text and signatures come from Go's
golang.org/x/mod/sumdb/note note_test.go (TestNewVerifier, TestNewSigner, TestSign,
TestOpen). Ed25519 is deterministic, so our signer must reproduce Go's note exactly.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

import receipts.tlog as tlog
from receipts.errors import FormatError, SigningKeyError, VerificationError
from receipts.tlog import (
    EMPTY_ROOT,
    Checkpoint,
    Note,
    NoteSignature,
    Signer,
    TlogProof,
    Verifier,
    leaf_hash,
    open_note,
    sign_note,
)
from receipts.tlog.note import key_id

FIXTURES = Path(__file__).parent / "fixtures" / "tlog"

# --- golang.org/x/mod/sumdb/note note_test.go ----------------------------------------------

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
ENOCH_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
PETER_SIG = f"\u2014 PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"\u2014 EnochRoot {ENOCH_B64}\n"
GO_SIGNED_NOTE = TEXT + "\n" + PETER_SIG


def _sig(name: str, key_id: int, b64: str) -> NoteSignature:
    return NoteSignature(name, key_id, base64.b64decode(b64)[4:])


PETER = _sig("PeterNeumann", 0xC74F20A3, PETER_B64)
ENOCH = _sig("EnochRoot", 0xAF0CFE78, ENOCH_B64)


def test_go_keys_parse_and_round_trip() -> None:
    v = Verifier.from_key_string(PETER_VKEY)
    s = Signer.from_key_string(PETER_SKEY)
    assert (v.name, v.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert (s.name, s.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert v.to_key_string() == PETER_VKEY
    assert s.to_key_string() == PETER_SKEY
    assert s.verifier() == v
    assert Verifier.from_key_string(ENOCH_VKEY).key_id == 0xAF0CFE78


def test_go_signed_note_byte_for_byte() -> None:
    signer = Signer.from_key_string(PETER_SKEY)
    assert sign_note(TEXT, signer) == GO_SIGNED_NOTE


@pytest.mark.parametrize("encoded", [GO_SIGNED_NOTE, GO_SIGNED_NOTE.encode()])
def test_go_signed_note_verifies(encoded: str | bytes) -> None:
    note = open_note(encoded, Verifier.from_key_string(PETER_VKEY))
    assert note == Note(TEXT, (PETER,))


def test_open_keeps_unknown_signatures_aside() -> None:
    peter, enoch = Verifier.from_key_string(PETER_VKEY), Verifier.from_key_string(ENOCH_VKEY)
    msg = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(msg, [peter]) == Note(TEXT, (PETER,), (ENOCH,))
    assert open_note(msg, [peter, enoch]) == Note(TEXT, (PETER, ENOCH))
    with pytest.raises(VerificationError, match=r"unknown key.*PeterNeumann\+c74f20a3"):
        open_note(msg, [])


def test_open_drops_repeated_signatures() -> None:
    peter = Verifier.from_key_string(PETER_VKEY)
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    note = open_note(msg, [peter])
    assert note.signatures == (PETER,)
    assert note.unverified_signatures == (ENOCH, _sig("EnochRoot", 0xAF0CFE78, enoch_abcd[12:-1]))


def test_open_rejects_an_invalid_signature_from_a_known_key() -> None:
    msg = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(
        VerificationError, match=r"invalid signature for key PeterNeumann\+c74f20a3"
    ):
        open_note(msg, Verifier.from_key_string(PETER_VKEY))


def test_open_rejects_ambiguous_verifiers() -> None:
    peter = Verifier.from_key_string(PETER_VKEY)
    impostor = Signer.generate("PeterNeumann").verifier()
    impostor._key_id = peter.key_id  # a key id collision, which cannot be made honestly
    with pytest.raises(VerificationError, match=r"ambiguous key PeterNeumann\+c74f20a3"):
        open_note(GO_SIGNED_NOTE, [peter, impostor])
    # Go also calls the same key listed twice ambiguous; we accept it, as it is one key.
    assert open_note(GO_SIGNED_NOTE, [peter, peter]).signatures == (PETER,)


def test_open_limits_the_number_of_signatures() -> None:
    with pytest.raises(FormatError, match="more than 100 signatures"):
        open_note(TEXT + "\n" + PETER_SIG * 101, Verifier.from_key_string(PETER_VKEY))


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
        TEXT + "\n" + f"\u2014 Bad Name {PETER_B64}",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        # And more than Go lists:
        TEXT + "\n" + f"- PeterNeumann {PETER_B64}\n",  # hyphen, not em dash
        TEXT + "\n" + f"\u2014 PeterNeumann  {PETER_B64}\n",
        TEXT + "\n" + f"\u2014 Peter+Neumann {PETER_B64}\n",
        TEXT + "\n" + f"\u2014 PeterNeumann {PETER_B64[:-1]}\n",
        TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",  # too short for key id + signature
        TEXT + "\n" + PETER_SIG + "\n",
        TEXT + "\n" + PETER_SIG.replace("\n", "\r\n"),
    ],
    ids=lambda m: repr(m)[-30:],
)
def test_open_rejects_malformed_notes(msg: str | bytes) -> None:
    with pytest.raises(FormatError, match="malformed note"):
        open_note(msg, Verifier.from_key_string(PETER_VKEY))


def _manglings(key: str) -> list[str]:
    """Every proper substring and every one-character increment, as note_test.go tries."""
    subs = {key[i:j] for i in range(len(key)) for j in range(i + 1, len(key) + 1)} - {key}
    bumps = {key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))}
    return sorted(subs | bumps)


def test_mangled_verifier_keys_are_rejected() -> None:
    accepted = []
    for k in _manglings(PETER_VKEY):
        try:
            Verifier.from_key_string(k)
            accepted.append(k)
        except SigningKeyError:
            pass
    assert accepted == []


def test_mangled_signer_keys_are_rejected() -> None:
    accepted = []
    for k in _manglings(PETER_SKEY):
        try:
            Signer.from_key_string(k)
            accepted.append(k)
        except SigningKeyError:
            pass
    assert accepted == []


def _short_key() -> str:
    raw = bytes([1]) + bytes(31)
    return f"Short+{key_id('Short', raw[1:]):08x}+{base64.b64encode(raw).decode()}"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        # Go's wrong-length key: its base64 has non-zero padding bits, which we refuse.
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "malformed",
        ),
        (_short_key(), "is 31 bytes, not 32"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "algorithm 0x65"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "malformed"),
        ("PeterNeumann", "malformed"),
    ],
)
def test_bad_verifier_keys_name_the_problem(key: str, message: str) -> None:
    with pytest.raises(SigningKeyError, match=message):
        Verifier.from_key_string(key)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\u2003b", "tab\there", "nl\n"])
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(SigningKeyError, match="invalid key name"):
        Signer.generate(name)


def test_generated_keys_round_trip_and_sign() -> None:
    signer = Signer.generate("EnochRoot")
    again = Signer.from_key_string(signer.to_key_string())
    verifier = Verifier.from_key_string(signer.verifier().to_key_string())
    assert (again.name, again.key_id) == (verifier.name, verifier.key_id)
    sig = again.sign(b"hi")
    assert verifier.verify(b"hi", sig)
    assert not verifier.verify(b"hj", sig)
    assert not verifier.verify(b"hi", bytes([sig[0] ^ 1]) + sig[1:])
    assert "PRIVATE" not in repr(signer)


def test_sign_note_with_several_signers() -> None:
    a, b = Signer.generate("example.com/a"), Signer.generate("example.com/b")
    signed = sign_note("hello\n\nworld\n", a, b)
    assert signed.count("\u2014 ") == 2
    assert open_note(signed, b.verifier()).text == "hello\n\nworld\n"
    assert open_note(signed, [a.verifier(), b.verifier()]).unverified_signatures == ()


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("no newline", FormatError, "end with a newline"),
        ("bell\x07\n", FormatError, "control character U\\+0007"),
        ("lone \ud800 surrogate\n", FormatError, "not valid Unicode"),
    ],
)
def test_sign_note_rejects_bad_text(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        sign_note(text, Signer.generate("x"))


def test_sign_note_needs_a_signer() -> None:
    with pytest.raises(SigningKeyError, match="no signer"):
        sign_note("text\n")


@given(
    text=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c"), max_size=80
    ).map(lambda s: "".join(c for c in s if c >= " " or c == "\n") + "\n"),
)
def test_note_round_trip(text: str) -> None:
    signer = Signer.from_key_string(PETER_SKEY)
    assert open_note(sign_note(text, signer), signer.verifier()).text == text


# --- checkpoints ---------------------------------------------------------------------------

ROOT = hashlib.sha256(b"root").digest()


def test_checkpoint_text() -> None:
    cp = Checkpoint("example.com/log", 20852163, ROOT, ("ext one", "ext two"))
    text = cp.to_text()
    assert text == (
        f"example.com/log\n20852163\n{base64.b64encode(ROOT).decode()}\next one\next two\n"
    )
    assert Checkpoint.from_text(text) == cp


@given(
    origin=st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), min_size=1),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), min_size=1),
        max_size=3,
    ),
)
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.from_text(cp.to_text()) == cp
    assert Checkpoint.from_text(cp.to_text()).to_text() == cp.to_text()


ROOT64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"log\n9\n{ROOT64}", "end with a newline"),
        ("log\n9\n", "2 lines"),
        (f"\n9\n{ROOT64}\n", "origin is empty"),
        (f"log\n09\n{ROOT64}\n", "line 2"),
        (f"log\n+9\n{ROOT64}\n", "line 2"),
        (f"log\n 9\n{ROOT64}\n", "line 2"),
        (f"log\n\u0669\n{ROOT64}\n", "line 2"),  # an Arabic-Indic nine
        (f"log\n{2**64}\n{ROOT64}\n", "line 2"),
        (f"log\n9\n{ROOT64[:-1]}\n", "line 3"),
        (f"log\n9\n{ROOT64[:-2]}B=\n", "line 3"),  # non-canonical padding bits
        (f"log\n9\n{base64.b64encode(ROOT[:31]).decode()}\n", "line 3"),
        (f"log\n9\n{ROOT.hex()}\n", "line 3"),
        (f"log\n9\n{ROOT64}\n\n", "line 4"),
        (f"log\n9\n{ROOT64}\next\n\n", "line 5"),
    ],
)
def test_checkpoint_strict_parse(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Checkpoint.from_text(text)


def test_checkpoint_rejects_bad_fields() -> None:
    with pytest.raises(FormatError):
        Checkpoint("two\nlines", 1, ROOT)
    with pytest.raises(FormatError):
        Checkpoint("log", -1, ROOT)
    with pytest.raises(FormatError):
        Checkpoint("log", 1, ROOT[:16])
    with pytest.raises(FormatError):
        Checkpoint("log", 1, ROOT, ("",))


def test_checkpoint_sign_and_open() -> None:
    signer = Signer.generate("example.com/log")
    cp = Checkpoint("example.com/log", 0, EMPTY_ROOT)
    signed = cp.sign(signer)
    assert signed.startswith(cp.to_text() + "\n\u2014 example.com/log ")
    assert Checkpoint.open(signed, signer.verifier()) == cp
    other = Signer.generate("example.com/other-name")
    with pytest.raises(VerificationError, match=r"origin 'example\.com/log' is not the expected"):
        Checkpoint.open(cp.sign(other), other.verifier())
    assert Checkpoint.open(cp.sign(other), other.verifier(), origin="example.com/log") == cp


# --- fixtures ------------------------------------------------------------------------------
# A 9-leaf log of leaf_hash(b"receipt %d"), checkpointed at size 9 and signed with the test
# key below; the proofs are for index 5.

FIXTURE_SKEY = (
    "PRIVATE+KEY+example.com/receipts-test+ddfecddd+ARJIznP+oJw/hoGMHlVL7CIxyIcchDWuUONdIMrJKnhg"
)
FIXTURE_VKEY = "example.com/receipts-test+ddfecddd+AV5zqabeQDgcnwS8eHtBht1CC+D9ABZD4wzv8jC70Ez7"
FIXTURE_LEAF = leaf_hash(b"receipt 5")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_fixture_key_matches_its_seed() -> None:
    seed = hashlib.sha256(b"receipts tlog fixture key").digest()
    signer = Signer("example.com/receipts-test", Ed25519PrivateKey.from_private_bytes(seed))
    assert signer.to_key_string() == FIXTURE_SKEY
    assert signer.verifier().to_key_string() == FIXTURE_VKEY


def test_good_fixtures_verify() -> None:
    verifier = Verifier.from_key_string(FIXTURE_VKEY)
    cp = Checkpoint.open(fixture("checkpoint_good.txt"), verifier)
    assert (cp.origin, cp.size) == ("example.com/receipts-test", 9)
    # The signer reproduces the fixture exactly: Ed25519 is deterministic.
    assert cp.sign(Signer.from_key_string(FIXTURE_SKEY)) == fixture("checkpoint_good.txt")
    proof = TlogProof.from_text(fixture("proof_good.txt"))
    assert proof.to_text() == fixture("proof_good.txt")
    assert proof.checkpoint_note == fixture("checkpoint_good.txt")
    assert proof.verify(FIXTURE_LEAF, verifier) == cp


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        (
            "checkpoint_bad_sig.txt",
            VerificationError,
            r"invalid signature for key example\.com/receipts-test\+ddfecddd",
        ),
        (
            "checkpoint_wrong_key.txt",
            VerificationError,
            r"unknown key.*example\.com/receipts-test\+fbd53fb7",
        ),
        ("checkpoint_no_newline.txt", FormatError, "does not end with a newline"),
    ],
)
def test_checkpoint_failure_fixtures(name: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Checkpoint.open(fixture(name), Verifier.from_key_string(FIXTURE_VKEY))


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("proof_wrong_size.txt", VerificationError, "proof has 3 hashes, expected 4"),
        ("proof_bad_hash.txt", VerificationError, "leads to root .*, not the expected"),
        ("proof_malformed_base64.txt", FormatError, "line 4: .* is not a base64 SHA-256 hash"),
    ],
)
def test_proof_failure_fixtures(name: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        TlogProof.from_text(fixture(name)).verify(
            FIXTURE_LEAF, Verifier.from_key_string(FIXTURE_VKEY)
        )


# --- tlog-proof texts ----------------------------------------------------------------------


def test_proof_text_layout() -> None:
    note = fixture("checkpoint_good.txt")
    h1, h2 = hashlib.sha256(b"1").digest(), hashlib.sha256(b"2").digest()
    proof = TlogProof(7, [h1, h2], note, extra=b"ctx")
    b64 = [base64.b64encode(x).decode() for x in (h1, h2, b"ctx")]
    assert proof.to_text() == (
        f"c2sp.org/tlog-proof@v1\nextra {b64[2]}\nindex 7\n{b64[0]}\n{b64[1]}\n\n{note}"
    )
    assert TlogProof.from_text(proof.to_text()) == proof
    bare = TlogProof(0, [], note)
    assert bare.to_text() == f"c2sp.org/tlog-proof@v1\nindex 0\n\n{note}"
    assert TlogProof.from_text(bare.to_text()) == bare


@given(
    index=st.integers(0, 2**64 - 1),
    hashes=st.lists(st.binary(min_size=32, max_size=32), max_size=64),
    extra=st.none() | st.binary(max_size=40),
)
def test_proof_text_round_trip(index: int, hashes: list[bytes], extra: bytes | None) -> None:
    proof = TlogProof(index, hashes, fixture("checkpoint_good.txt"), extra)
    text = proof.to_text()
    assert TlogProof.from_text(text) == proof
    assert TlogProof.from_text(text).to_text() == text


GOOD_PROOF = Path(FIXTURES / "proof_good.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD_PROOF.replace("@v1", "@v2"), "line 1"),
        (GOOD_PROOF.replace("index 5", "index 05"), "line 2"),
        (GOOD_PROOF.replace("index 5", "index -5"), "line 2"),
        (GOOD_PROOF.replace("index 5", "index  5"), "line 2"),
        (GOOD_PROOF.replace("index 5", "idx 5"), "line 2"),
        (GOOD_PROOF.replace("index 5\n", ""), "line 2"),
        (GOOD_PROOF.replace("index 5", "extra !!\nindex 5"), "line 2: extra data"),
        # Without its own blank line, the proof runs into the checkpoint's origin.
        (GOOD_PROOF.replace("\n\n", "\n", 1), "line 7: 'example.com/receipts-test' is not"),
        ("c2sp.org/tlog-proof@v1\nindex 5\n", "no empty line"),
        (GOOD_PROOF.replace("index 5\n", "index 5\nAAAA\n"), "line 3"),
        (GOOD_PROOF.split("\n\n")[0] + "\n\n", "malformed note"),
        (GOOD_PROOF[:-1], "malformed note"),
    ],
)
def test_proof_text_strict_parse(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        TlogProof.from_text(text)


def test_proof_index_outside_the_checkpoint() -> None:
    proof = TlogProof(9, [], fixture("checkpoint_good.txt"))
    with pytest.raises(
        VerificationError, match="index 9 is outside the checkpoint's tree of size 9"
    ):
        proof.verify(FIXTURE_LEAF, Verifier.from_key_string(FIXTURE_VKEY))


def test_proof_from_another_log() -> None:
    other = Signer.generate("example.com/other-log")
    proof = TlogProof.from_text(fixture("proof_good.txt"))
    with pytest.raises(VerificationError, match="unknown key"):
        proof.verify(FIXTURE_LEAF, other.verifier())


def test_proof_wrong_leaf() -> None:
    proof = TlogProof.from_text(fixture("proof_good.txt"))
    with pytest.raises(VerificationError, match="not the expected"):
        proof.verify(leaf_hash(b"receipt 4"), Verifier.from_key_string(FIXTURE_VKEY))


# --- the public surface --------------------------------------------------------------------


def test_all_is_sorted_and_complete() -> None:
    assert tlog.__all__ == sorted(tlog.__all__, key=lambda n: (not n.isupper(), n))
    public = {n for n in dir(tlog) if not n.startswith("_")}
    modules = {
        "checkpoint",
        "compact",
        "hashing",
        "note",
        "proof",
        "prooftext",
        "rotation",
        "verify",
    }
    assert public - modules - {"annotations"} == set(tlog.__all__)
