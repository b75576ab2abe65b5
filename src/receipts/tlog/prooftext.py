"""c2sp.org/tlog-proof@v1: an offline inclusion proof with its signed checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from receipts.errors import FormatError, VerificationError

from ._encoding import b64decode, b64encode, parse_u64
from .checkpoint import Checkpoint
from .hashing import HASH_SIZE
from .note import Verifier, parse_note
from .verify import verify_inclusion

__all__ = ["TLOG_PROOF_HEADER", "TlogProof"]

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True, slots=True, init=False)
class TlogProof:
    """Leaf index, inclusion hashes (sibling first) and the checkpoint note verbatim.

    `extra` is the spec's optional opaque data; it is not authenticated, so
    nothing here trusts it.
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def __init__(
        self,
        index: int,
        hashes: Sequence[bytes],
        checkpoint_note: str,
        extra: bytes | None = None,
    ) -> None:
        # A hand-written __init__ so `hashes` accepts any sequence yet stays a tuple.
        if not 0 <= index < 1 << 64:
            raise FormatError(f"tlog-proof index {index} is not a uint64")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise FormatError(f"tlog-proof hashes must be {HASH_SIZE} bytes each")
        parse_note(checkpoint_note)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "hashes", tuple(hashes))
        object.__setattr__(self, "checkpoint_note", checkpoint_note)
        object.__setattr__(self, "extra", extra)

    def to_text(self) -> str:
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines += [b64encode(h) for h in self.hashes]
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def from_text(cls, text: str) -> TlogProof:
        """Parse strictly: exactly what `to_text` writes, or FormatError naming the line."""
        # Header, index and hash lines are never empty, so the first blank
        # line is the one before the checkpoint.
        head, blank, note = text.partition("\n\n")
        if not blank:
            raise FormatError("tlog-proof has no empty line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != TLOG_PROOF_HEADER:
            raise FormatError(f"tlog-proof line 1 must be {TLOG_PROOF_HEADER!r}")
        n, extra = 1, None
        if len(lines) > n and lines[n].startswith("extra "):
            extra = b64decode(lines[n].removeprefix("extra "))
            if extra is None:
                raise FormatError(f"tlog-proof line {n + 1}: extra data is not base64")
            n += 1
        index = parse_u64(lines[n].removeprefix("index ")) if len(lines) > n else None
        if index is None or not lines[n].startswith("index "):
            raise FormatError(f"tlog-proof line {n + 1} must be 'index <decimal>'")
        hashes = []
        for i, line in enumerate(lines[n + 1 :], start=n + 2):
            h = b64decode(line)
            if h is None or len(h) != HASH_SIZE:
                raise FormatError(f"tlog-proof line {i}: {line!r} is not a base64 SHA-256 hash")
            hashes.append(h)
        return cls(index, hashes, note, extra)

    def verify(self, leaf_hash: bytes, verifier: Verifier) -> Checkpoint:
        """Check the checkpoint's signature and origin, then the leaf's inclusion under it."""
        checkpoint = Checkpoint.open(self.checkpoint_note, verifier)
        if self.index >= checkpoint.size:
            raise VerificationError(
                f"index {self.index} is outside the checkpoint's tree of size {checkpoint.size}"
            )
        verify_inclusion(leaf_hash, self.index, checkpoint.size, self.hashes, checkpoint.root_hash)
        return checkpoint
