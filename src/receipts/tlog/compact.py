"""The right edge of a growing tree, for amortised O(1) appends."""

from __future__ import annotations

from collections.abc import Sequence

from .hashing import EMPTY_ROOT, HASH_SIZE, node_hash, range_hash
from .proof import Node

__all__ = ["CompactRange"]


class CompactRange:
    """Hashes of `subtree_nodes(0, size)`: all a log needs to keep appending."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError(f"negative tree size {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} needs {size.bit_count()} hashes")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError(f"every hash must be {HASH_SIZE} bytes")
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> list[tuple[Node, bytes]]:
        """Add a leaf; return the complete subtrees (level >= 1) it completes, lowest first."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        created: list[tuple[Node, bytes]] = []
        acc, level, index = leaf_hash, 0, self._size
        # Each set low bit of the old size is a left sibling of equal height
        # waiting on the edge: merge with it, like a binary carry.
        while (self._size >> level) & 1:
            acc = node_hash(self._hashes.pop(), acc)
            level, index = level + 1, index >> 1
            created.append(((level, index), acc))
        self._hashes.append(acc)
        self._size += 1
        return created

    def root(self) -> bytes:
        """The RFC 9162 root hash; EMPTY_ROOT for the empty tree."""
        return range_hash(self._hashes) if self._hashes else EMPTY_ROOT

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"
