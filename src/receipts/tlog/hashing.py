"""RFC 9162 §2.1 Merkle tree hashing: SHA-256 with domain-separating prefixes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "leaf_hash",
    "node_hash",
    "range_hash",
    "root_from_leaf_hashes",
]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def range_hash(hashes: Sequence[bytes]) -> bytes:
    """The RFC 9162 hash of a leaf range, given its `subtree_nodes` hashes left to right.

    The subtrees of an RFC 9162 range shrink from left to right, so the tree's
    shape is a right-leaning spine: fold from the right.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The root of a small in-memory tree, iteratively (no recursion depth limits)."""
    # stack holds (level, hash) of the complete subtrees on the right edge.
    stack: list[tuple[int, bytes]] = []
    for h in hashes:
        level, acc = 0, h
        while stack and stack[-1][0] == level:
            acc = node_hash(stack.pop()[1], acc)
            level += 1
        stack.append((level, acc))
    return range_hash([h for _, h in stack])
