"""The Merkle core against a deliberately naive RFC 9162 reference, for every size up to 130.

The reference below transcribes RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH) and
§2.1.4.1 (PROOF / SUBPROOF) with plain hashlib, sharing no code with
`receipts.tlog`. D[lo:hi] is written as the pair (lo, hi) over one fixed list
of entries, so trees of every size are prefixes of the same log.
"""

from __future__ import annotations

import hashlib
from functools import cache

import pytest

from receipts.tlog import (
    EMPTY_ROOT,
    CompactRange,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    range_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    subtree_nodes,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 130
ENTRIES = [b"receipt %d" % i for i in range(MAX_SIZE)]
SIZES = range(1, MAX_SIZE + 1)


# --- the reference: RFC 9162 §2.1, word for word ------------------------------------------


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + ENTRIES[lo]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi)).digest()


def path(m: int, lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, lo, lo + k), mth(lo + k, hi)]
    return [*path(m - k, lo + k, hi), mth(lo, lo + k)]


def proof(m: int, n: int) -> list[bytes]:
    return subproof(m, 0, n, True)


def subproof(m: int, lo: int, hi: int, b: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if b else [mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, lo, lo + k, b), mth(lo + k, hi)]
    return [*subproof(m - k, lo + k, hi, False), mth(lo, lo + k)]


# --- the code under test, used the way storage will use it --------------------------------


def _build() -> tuple[dict[tuple[int, int], bytes], list[list[tuple[tuple[int, int], bytes]]]]:
    """Append every entry to a CompactRange; keep level-0 leaves and emitted nodes."""
    nodes: dict[tuple[int, int], bytes] = {}
    emitted = []
    cr = CompactRange()
    for i, entry in enumerate(ENTRIES):
        nodes[(0, i)] = leaf_hash(entry)
        new = cr.append(nodes[(0, i)])
        nodes.update(new)
        emitted.append(new)
    return nodes, emitted


NODES, EMITTED = _build()


def stored_range_hash(lo: int, hi: int) -> bytes:
    """What the ledger will do: read subtree_nodes(lo, hi) from storage, fold them."""
    return range_hash([NODES[n] for n in subtree_nodes(lo, hi)])


def node_range(level: int, index: int) -> tuple[int, int]:
    return index << level, (index + 1) << level


# --- tests --------------------------------------------------------------------------------


def test_empty_tree() -> None:
    assert mth(0, 0) == EMPTY_ROOT == root_from_leaf_hashes([]) == CompactRange().root()
    assert subtree_nodes(0, 0) == []


@pytest.mark.parametrize("size", SIZES)
def test_roots(size: int) -> None:
    want = mth(0, size)
    assert stored_range_hash(0, size) == want
    assert root_from_leaf_hashes([leaf_hash(e) for e in ENTRIES[:size]]) == want
    cr = CompactRange()
    for e in ENTRIES[:size]:
        cr.append(leaf_hash(e))
    assert cr.size == size
    assert cr.root() == want


@pytest.mark.parametrize("size", SIZES)
def test_inclusion_proofs(size: int) -> None:
    root = mth(0, size)
    for index in range(size):
        got = [stored_range_hash(a, b) for a, b in inclusion_ranges(index, size)]
        assert got == path(index, 0, size), (index, size)
        leaf = leaf_hash(ENTRIES[index])
        assert root_from_inclusion_proof(leaf, index, size, got) == root
        verify_inclusion(leaf, index, size, got, root)


@pytest.mark.parametrize("new", SIZES)
def test_consistency_proofs(new: int) -> None:
    for old in range(new + 1):
        got = [stored_range_hash(a, b) for a, b in consistency_ranges(old, new)]
        want = proof(old, new) if 0 < old < new else []
        assert got == want, (old, new)
        verify_consistency(old, new, got, mth(0, old), mth(0, new))


@pytest.mark.parametrize("size", SIZES)
def test_compact_range_emits_exactly_the_new_complete_subtrees(size: int) -> None:
    new = EMITTED[size - 1]
    for (level, index), h in new:
        lo, hi = node_range(level, index)
        assert level >= 1
        assert hi == size  # a node is complete only once its last leaf arrives
        assert h == mth(lo, hi)
    # Lowest first, one per trailing one-bit of the old size.
    assert [lvl for (lvl, _), _ in new] == list(range(1, len(new) + 1))
    assert len(new) == ((size - 1) ^ size).bit_length() - 1


def test_compact_range_emits_every_node_once() -> None:
    seen = [n for new in EMITTED for n, _ in new]
    assert len(seen) == len(set(seen))
    want = {
        (level, index)
        for level in range(1, MAX_SIZE.bit_length())
        for index in range(MAX_SIZE >> level)
    }
    assert set(seen) == want


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_compact_range_hashes_and_resume(size: int) -> None:
    cr = CompactRange()
    for e in ENTRIES[:size]:
        cr.append(leaf_hash(e))
    assert cr.hashes == tuple(mth(*node_range(*n)) for n in subtree_nodes(0, size))
    # A range restored from storage continues exactly like the original.
    resumed = CompactRange(size, cr.hashes)
    for e in ENTRIES[size : size + 3]:
        assert resumed.append(leaf_hash(e)) == cr.append(leaf_hash(e))
    assert resumed.root() == cr.root()


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_subtree_nodes_cover_the_range(size: int) -> None:
    nodes = subtree_nodes(0, size)
    assert len(nodes) == size.bit_count()
    pos = 0
    for level, index in nodes:
        lo, hi = node_range(level, index)
        assert lo == pos
        pos = hi
    assert pos == size
    levels = [lvl for lvl, _ in nodes]
    assert levels == sorted(levels, reverse=True)
    assert len(set(levels)) == len(levels)


def test_subtree_nodes_inner_ranges() -> None:
    assert subtree_nodes(8, 13) == [(2, 2), (0, 12)]
    assert subtree_nodes(4, 8) == [(2, 1)]
    assert subtree_nodes(6, 7) == [(0, 6)]


@pytest.mark.parametrize(("begin", "end"), [(1, 3), (2, 5), (4, 9), (3, 2), (-1, 0)])
def test_subtree_nodes_rejects_ranges_outside_rfc_trees(begin: int, end: int) -> None:
    with pytest.raises(ValueError):
        subtree_nodes(begin, end)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (5, 3), (-1, 4)])
def test_inclusion_ranges_rejects_bad_index(index: int, size: int) -> None:
    with pytest.raises(ValueError):
        inclusion_ranges(index, size)


@pytest.mark.parametrize(("old", "new"), [(2, 1), (-1, 3)])
def test_consistency_ranges_rejects_bad_sizes(old: int, new: int) -> None:
    with pytest.raises(ValueError):
        consistency_ranges(old, new)


def test_compact_range_rejects_bad_state() -> None:
    with pytest.raises(ValueError):
        CompactRange(3, [EMPTY_ROOT])  # size 3 needs two hashes
    with pytest.raises(ValueError):
        CompactRange(1, [b"short"])
    with pytest.raises(ValueError):
        CompactRange().append(b"short")
