"""Key rotation: a signed note by which a log hands its checkpoints from one key to the next,
and the chain of keys such notes make. Pure.

A rotation statement is a C2SP signed note whose text is five lines::

    receipts/key-rotation/v1
    <origin>
    <from size>            checkpoints of this tree size and beyond are signed by the new key
    <old verifier key>
    <new verifier key>

signed by the old key and by the new key. Both keys are named after the origin (checkpoints
are opened with a key of the origin's name), so they differ only in their key ids. A note with
one signature from each opens in Go's ``sumdb/note`` with both keys as verifiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from receipts.errors import FormatError, SigningKeyError, VerificationError

from ._encoding import parse_u64
from .checkpoint import Checkpoint
from .note import NoteSignature, Signer, Verifier, open_note, parse_note, sign_note

__all__ = ["ROTATION_HEADER", "KeyChain", "Rotation"]

ROTATION_HEADER = "receipts/key-rotation/v1"


def key_label(key: Verifier | NoteSignature) -> str:
    """``<name>+<8 hex key id>``: how messages name a key."""
    return f"{key.name}+{key.key_id:08x}"


@dataclass(frozen=True, slots=True)
class Rotation:
    """From ``from_size`` on, the log ``origin`` signs its checkpoints with ``new``, not ``old``."""

    origin: str
    from_size: int
    old: Verifier
    new: Verifier

    def __post_init__(self) -> None:
        if not 0 <= self.from_size < 1 << 64:
            raise FormatError(f"key rotation size {self.from_size} is not a uint64")
        for role, key in (("old", self.old), ("new", self.new)):
            if key.name != self.origin:
                raise FormatError(
                    f"key rotation: the {role} key is named {key.name!r}, not the origin "
                    f"{self.origin!r}"
                )
        if self.old.key_id == self.new.key_id:
            raise FormatError(f"key rotation: old and new key are both {key_label(self.old)}")

    def to_text(self) -> str:
        lines = [ROTATION_HEADER, self.origin, str(self.from_size)]
        lines += [self.old.to_key_string(), self.new.to_key_string()]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Rotation:
        """Parse strictly: exactly what ``to_text`` writes, or FormatError naming the line."""
        lines = text.split("\n")
        if len(lines) != 6 or lines[5] != "":
            raise FormatError(f"key rotation must be 5 lines, got {len(lines) - 1}")
        if lines[0] != ROTATION_HEADER:
            raise FormatError(f"key rotation line 1 must be {ROTATION_HEADER!r}")
        size = parse_u64(lines[2])
        if size is None:
            raise FormatError(f"key rotation line 3: {lines[2]!r} is not a decimal tree size")
        keys = []
        for n in (3, 4):
            try:
                keys.append(Verifier.from_key_string(lines[n]))
            except SigningKeyError as exc:
                raise FormatError(f"key rotation line {n + 1}: {exc.message}") from None
        return cls(lines[1], size, keys[0], keys[1])

    def sign(self, old: Signer, new: Signer) -> str:
        """The signed note: the old key's signature, then the new key's."""
        for role, want, signer in (("old", self.old, old), ("new", self.new, new)):
            if signer.verifier() != want:
                raise VerificationError(
                    f"key rotation: the {role} key is {key_label(want)}, cannot sign it with "
                    f"{key_label(signer.verifier())}"
                )
        return sign_note(self.to_text(), old, new)

    @classmethod
    def open(cls, note: str) -> Rotation:
        """Parse a signed rotation statement and check that both keys it names signed it."""
        rotation = cls.from_text(parse_note(note)[0])
        # Only the two keys the text names count; any other signature is set aside.
        signed = {
            (s.name, s.key_id) for s in open_note(note, [rotation.old, rotation.new]).signatures
        }
        for role, key in (("old", rotation.old), ("new", rotation.new)):
            if (key.name, key.key_id) not in signed:
                raise VerificationError(
                    f"key rotation to {key_label(rotation.new)} at tree size "
                    f"{rotation.from_size} is not signed by the {role} key {key_label(key)}"
                )
        return rotation


@dataclass(frozen=True, slots=True)
class KeyChain:
    """The keys a log signs its checkpoints with: ``keys[i]`` from tree size ``starts[i]`` up
    to the next key's start. Built from a trusted key and the rotations that follow it."""

    keys: tuple[Verifier, ...]
    starts: tuple[int, ...]

    @classmethod
    def follow(cls, trusted: Verifier, rotations: Sequence[str] = ()) -> KeyChain:
        """The chain from ``trusted`` on: every rotation statement (in order, the first one
        from the log's first key) is opened and must chain; those before ``trusted`` count
        for nothing."""
        if not rotations:
            return cls((trusted,), (0,))
        return cls.build(_open_link(0, rotations[0]).old, rotations).trusting(trusted)

    @classmethod
    def build(cls, first: Verifier, rotations: Sequence[str]) -> KeyChain:
        """The whole chain: ``first`` from size 0, then the key each rotation hands over to.
        Every statement must be signed by both keys, hand over from the key before it, and
        start no earlier than the rotation ahead of it."""
        keys, starts = [first], [0]
        for i, note in enumerate(rotations):
            rotation = _open_link(i, note)
            if rotation.old != keys[-1]:
                raise VerificationError(
                    f"key rotation {i} hands over from {key_label(rotation.old)}, but the key "
                    f"before it is {key_label(keys[-1])}"
                )
            if rotation.from_size < starts[-1]:
                raise VerificationError(
                    f"key rotation {i} starts at tree size {rotation.from_size}, before the "
                    f"rotation ahead of it ({starts[-1]})"
                )
            if rotation.new in keys:
                raise VerificationError(f"key rotation {i} returns to {key_label(rotation.new)}")
            keys.append(rotation.new)
            starts.append(rotation.from_size)
        return cls(tuple(keys), tuple(starts))

    def trusting(self, trusted: Verifier) -> KeyChain:
        """The part of the chain from ``trusted`` on; a key outside it stands alone (and opens
        none of the chain's checkpoints)."""
        if trusted not in self.keys:
            return KeyChain((trusted,), (0,))
        at = self.keys.index(trusted)
        return KeyChain(self.keys[at:], self.starts[at:])

    @property
    def current(self) -> Verifier:
        return self.keys[-1]

    def key_at(self, size: int) -> Verifier:
        """The key that signs checkpoints of tree size ``size``."""
        if size < self.starts[0]:
            raise VerificationError(
                f"the checkpoint of size {size} predates the trusted key "
                f"{key_label(self.keys[0])}, which signs from tree size {self.starts[0]} on; "
                "check it with the key before"
            )
        return next(
            k for k, s in zip(reversed(self.keys), reversed(self.starts), strict=True) if s <= size
        )

    def open_checkpoint(self, note: str) -> Checkpoint:
        """Verify a signed checkpoint against the key that was the log's at its tree size."""
        text, signatures = parse_note(note)
        size = Checkpoint.from_text(text).size
        key = self.key_at(size)
        try:
            return Checkpoint.open(note, key)
        except VerificationError as exc:
            signed = {(s.name, s.key_id) for s in signatures}
            other = [k for k in self.keys if k != key and (k.name, k.key_id) in signed]
            if not other:
                raise
            raise VerificationError(
                f"the checkpoint of size {size} is signed by {key_label(other[0])}, but "
                f"{key_label(key)} is the log's key at that size"
            ) from exc


def _open_link(i: int, note: str) -> Rotation:
    try:
        return Rotation.open(note)
    except (FormatError, VerificationError) as exc:
        raise type(exc)(f"key rotation {i}: {exc.message}", exc.errors) from None
