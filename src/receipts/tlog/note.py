"""C2SP signed-note (c2sp.org/signed-note) with Ed25519 keys.

Key strings and the note encoding match Go's golang.org/x/mod/sumdb/note, so
any auditor can check our notes with the reference implementation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from receipts.errors import FormatError, SigningKeyError, VerificationError

from ._encoding import b64decode, b64encode, control_char

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Note",
    "NoteSignature",
    "Signer",
    "Verifier",
    "is_valid_key_name",
    "open_note",
    "parse_note",
    "sign_note",
]

ALG_ED25519 = 0x01
# The spec asks verifiers to accept at least 16; Go's reference stops at 100.
MAX_SIGNATURES = 100
SIG_PREFIX = "\u2014 "  # em dash, space
_HEX_ID = re.compile(r"[0-9a-fA-F]{8}")


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode spaces, no '+', no control characters."""
    return (
        bool(name)
        and "+" not in name
        and not any(ch.isspace() for ch in name)
        and control_char(name) is None
    )


def key_id(name: str, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || 0x01 || pubkey)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _split_key(key: str, parts: int, what: str) -> list[str]:
    # The base64 key material may itself contain '+': split only the fields before it.
    fields = key.split("+", parts - 1)
    if len(fields) != parts:
        raise SigningKeyError(f"malformed {what} key string: expected {parts} '+'-separated fields")
    return fields


def _decode_key(name: str, hex_id: str, key64: str, what: str) -> tuple[int, bytes]:
    """Validate the shared fields of a key string; return (key id, raw 32-byte key)."""
    if not is_valid_key_name(name):
        raise SigningKeyError(f"invalid key name {name!r} in {what} key string")
    raw = b64decode(key64)
    if not _HEX_ID.fullmatch(hex_id) or raw is None or not raw:
        raise SigningKeyError(f"malformed {what} key string for {name}")
    if raw[0] != ALG_ED25519:
        raise SigningKeyError(f"unknown key algorithm 0x{raw[0]:02x} for {name}")
    if len(raw) != 33:
        raise SigningKeyError(f"Ed25519 {what} key for {name} is {len(raw) - 1} bytes, not 32")
    return int(hex_id, 16), raw[1:]


class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    __slots__ = ("_key", "_key_id", "_name", "_raw")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        if not is_valid_key_name(name):
            raise SigningKeyError(f"invalid key name {name!r}")
        self._name = name
        self._key = public_key
        self._raw = public_key.public_bytes_raw()
        self._key_id = key_id(name, self._raw)

    @classmethod
    def from_key_string(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key id>+<base64(0x01 || pubkey)>``."""
        name, hex_id, key64 = _split_key(vkey, 3, "verifier")
        kid, raw = _decode_key(name, hex_id, key64, "verifier")
        if kid != key_id(name, raw):
            raise SigningKeyError(f"key id {hex_id} does not match the key for {name}")
        return cls(name, Ed25519PublicKey.from_public_bytes(raw))

    def to_key_string(self) -> str:
        return f"{self._name}+{self._key_id:08x}+{b64encode(bytes([ALG_ED25519]) + self._raw)}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether `sig` is this key's Ed25519 signature of `msg`."""
        try:
            self._key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and (self._name, self._raw) == (other._name, other._raw)

    def __hash__(self) -> int:
        return hash((self._name, self._raw))

    def __repr__(self) -> str:
        return f"Verifier({self.to_key_string()!r})"


class Signer:
    """A named Ed25519 private key that signs notes."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._verifier = Verifier(name, private_key.public_key())

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_key_string(cls, skey: str) -> Signer:
        """Parse Go's ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``."""
        private, key, name, hex_id, key64 = _split_key(skey, 5, "signer")
        if (private, key) != ("PRIVATE", "KEY"):
            raise SigningKeyError("signer key string must start with PRIVATE+KEY+")
        kid, seed = _decode_key(name, hex_id, key64, "signer")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        # The id names the public key, so it can only be checked after deriving it.
        if kid != signer.key_id:
            raise SigningKeyError(f"key id {hex_id} does not match the key for {name}")
        return signer

    def to_key_string(self) -> str:
        seed = bytes([ALG_ED25519]) + self._key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(seed)}"

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> int:
        return self._verifier.key_id

    def verifier(self) -> Verifier:
        return self._verifier

    def sign(self, msg: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature (deterministic, RFC 8032)."""
        return self._key.sign(msg)

    def __repr__(self) -> str:
        # Never show the private key.
        return f"Signer({self.name!r}, key_id={self.key_id:08x})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, key id and the raw signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def to_line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIG_PREFIX}{self.name} {b64encode(blob)}\n"

    @property
    def key(self) -> str:
        return f"{self.name}+{self.key_id:08x}"


@dataclass(frozen=True, slots=True)
class Note:
    """An opened note: its text, the verified signatures and the ones from unknown keys."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified_signatures: tuple[NoteSignature, ...] = ()


def _check_text(text: str) -> bytes:
    if not text.endswith("\n"):
        raise FormatError("malformed note: text must end with a newline")
    at = control_char(text)
    if at is not None:
        raise FormatError(f"malformed note: control character U+{ord(text[at]):04X} at {at}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise FormatError("malformed note: text is not valid Unicode") from e


def sign_note(text: str, *signers: Signer) -> str:
    """Sign `text` (which must end in a newline) with every signer, in order."""
    if not signers:
        raise SigningKeyError("no signer given")
    msg = _check_text(text)
    lines = [NoteSignature(s.name, s.key_id, s.sign(msg)).to_line() for s in signers]
    return text + "\n" + "".join(lines)


def _parse_signature(line: str, n: int) -> NoteSignature:
    if not line.startswith(SIG_PREFIX):
        raise FormatError(f"malformed note: signature line {n} does not start with an em dash")
    name, space, b64 = line[len(SIG_PREFIX) :].partition(" ")
    if not space or not is_valid_key_name(name):
        raise FormatError(f"malformed note: signature line {n} has no valid key name")
    blob = b64decode(b64)
    if blob is None or len(blob) < 5:
        raise FormatError(f"malformed note: signature line {n} is not base64 of key id + signature")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def parse_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signatures, checking only the format."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("malformed note: not valid UTF-8") from e
    if not note.endswith("\n"):
        raise FormatError("malformed note: does not end with a newline")
    at = control_char(note)
    if at is not None:
        raise FormatError(f"malformed note: control character U+{ord(note[at]):04X} at {at}")
    # The text may contain blank lines; the last one separates the signatures.
    split = note.rfind("\n\n")
    if split < 0:
        raise FormatError("malformed note: no blank line before the signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block:
        raise FormatError("malformed note: no signature lines")
    _check_text(text)
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return text, [_parse_signature(line, i + 1) for i, line in enumerate(lines)]


def _index(verifiers: Verifier | Iterable[Verifier]) -> dict[tuple[str, int], list[Verifier]]:
    known: dict[tuple[str, int], list[Verifier]] = {}
    for v in [verifiers] if isinstance(verifiers, Verifier) else verifiers:
        known.setdefault((v.name, v.key_id), []).append(v)
    return known


def open_note(note: str | bytes, verifiers: Verifier | Iterable[Verifier]) -> Note:
    """Parse a signed note and verify it against known keys.

    Signatures from unknown keys are kept aside, as the spec requires; every
    signature from a known key MUST verify, and at least one must exist.
    """
    text, sigs = parse_note(note)
    msg = text.encode("utf-8")
    known = _index(verifiers)
    verified: dict[tuple[str, int], NoteSignature] = {}
    unverified: dict[NoteSignature, None] = {}
    for sig in sigs:
        candidates = known.get((sig.name, sig.key_id))
        if not candidates:
            unverified.setdefault(sig)
            continue
        if len(set(candidates)) > 1:
            raise VerificationError(f"ambiguous key {sig.key}: several verifiers share it")
        if not candidates[0].verify(msg, sig.signature):
            raise VerificationError(f"invalid signature for key {sig.key}")
        verified.setdefault((sig.name, sig.key_id), sig)
    if not verified:
        signed_by = ", ".join(s.key for s in unverified) or "nobody"
        raise VerificationError(
            f"unknown key: note has no signature from a known key (signed by {signed_by})"
        )
    return Note(text, tuple(verified.values()), tuple(unverified))
