"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): a signed tree head."""

from __future__ import annotations

from dataclasses import dataclass

from receipts.errors import FormatError, VerificationError

from ._encoding import b64decode, b64encode, control_char, parse_u64
from .hashing import HASH_SIZE
from .note import Signer, Verifier, open_note, sign_note

__all__ = ["Checkpoint"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Origin, tree size and root hash, plus opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # One set of rules for building and parsing: what formats, parses back.
        for what, line in [("origin", self.origin), *(("extension", e) for e in self.extensions)]:
            if not line or "\n" in line or control_char(line) is not None:
                raise FormatError(f"checkpoint {what} must be one non-empty line: {line!r}")
        if not 0 <= self.size < 1 << 64:
            raise FormatError(f"checkpoint size {self.size} is not a uint64")
        if len(self.root_hash) != HASH_SIZE:
            raise FormatError(f"checkpoint root hash is {len(self.root_hash)} bytes")

    def to_text(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly; FormatError names the offending line."""
        if not text.endswith("\n"):
            raise FormatError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(f"checkpoint has {len(lines)} lines, needs origin, size and root")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise FormatError("checkpoint line 1: origin is empty")
        size = parse_u64(size_text)
        if size is None:
            raise FormatError(f"checkpoint line 2: {size_text!r} is not a decimal tree size")
        root = b64decode(root_text)
        if root is None or len(root) != HASH_SIZE:
            raise FormatError(f"checkpoint line 3: {root_text!r} is not a base64 SHA-256 hash")
        for n, ext in enumerate(extensions, start=4):
            if not ext:
                raise FormatError(f"checkpoint line {n}: extension lines must be non-empty")
        return cls(origin, size, root, tuple(extensions))

    def sign(self, *signers: Signer) -> str:
        """The signed note carrying this checkpoint."""
        return sign_note(self.to_text(), *signers)

    @classmethod
    def open(cls, note: str | bytes, verifier: Verifier, origin: str | None = None) -> Checkpoint:
        """Verify a signed checkpoint and parse it.

        The origin must equal `origin`, which defaults to the verifier's key
        name: logs sign with a key named after their origin.
        """
        checkpoint = cls.from_text(open_note(note, verifier).text)
        expected = verifier.name if origin is None else origin
        if checkpoint.origin != expected:
            raise VerificationError(
                f"checkpoint origin {checkpoint.origin!r} is not the expected {expected!r}"
            )
        return checkpoint
