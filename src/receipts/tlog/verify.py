"""RFC 9162 §2.1.3.2 and §2.1.4.2: checking inclusion and consistency proofs."""

from __future__ import annotations

from collections.abc import Sequence

from receipts.errors import VerificationError

from .hashing import EMPTY_ROOT, HASH_SIZE, node_hash
from .proof import consistency_ranges, inclusion_ranges

__all__ = ["root_from_inclusion_proof", "verify_consistency", "verify_inclusion"]


def _check_hash(what: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(h)} bytes, expected {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes], expected: int, where: str) -> None:
    # The RFC loop would also fail on a wrong length; checking first gives
    # the caller a message that says what is actually wrong.
    if len(proof) != expected:
        raise VerificationError(f"proof has {len(proof)} hashes, expected {expected} {where}")
    for i, h in enumerate(proof):
        _check_hash(f"proof hash {i}", h)


def _shift_to_set_bit(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift fn and sn together until LSB(fn) is set or fn is 0."""
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1-4)."""
    if not 0 <= index < size:
        raise VerificationError(f"index {index} is outside a tree of size {size}")
    _check_hash("leaf hash", leaf_hash)
    _check_proof(proof, len(inclusion_ranges(index, size)), f"for index {index} in size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _shift_to_set_bit(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise VerificationError unless `proof` shows the leaf at `index` under `root`."""
    _check_hash("root hash", root)
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise VerificationError(
            f"inclusion proof for index {index} in size {size} leads to root "
            f"{computed.hex()}, not the expected {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Raise VerificationError unless the tree at `new_size` extends the one at `old_size`."""
    _check_hash("old root hash", old_root)
    _check_hash("new root hash", new_root)
    if not 0 <= old_size <= new_size:
        raise VerificationError(f"old size {old_size} is not within new size {new_size}")
    where = f"from size {old_size} to size {new_size}"
    _check_proof(proof, len(consistency_ranges(old_size, new_size)), where)
    if old_size == new_size and old_root != new_root:
        raise VerificationError(f"different roots for the same size {old_size}")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise VerificationError("old root is not the empty-tree root for size 0")
    if old_size in (0, new_size):
        return  # every tree extends the empty tree and itself
    fr, sr = _consistency_roots(old_size, new_size, proof, old_root)
    if fr != old_root:
        raise VerificationError(
            f"consistency proof {where} leads to old root {fr.hex()}, "
            f"not the expected {old_root.hex()}"
        )
    if sr != new_root:
        raise VerificationError(
            f"consistency proof {where} leads to new root {sr.hex()}, "
            f"not the expected {new_root.hex()}"
        )


def _consistency_roots(
    first: int, second: int, proof: Sequence[bytes], first_hash: bytes
) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 2-6 for 0 < first < second: the (old, new) roots."""
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: its root is a node of the new tree
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            fn, sn = _shift_to_set_bit(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than the path to the root")
    return fr, sr
