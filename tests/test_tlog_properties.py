"""Hypothesis properties of inclusion and consistency proofs on trees of up to 2048 leaves.

Every genuine proof verifies; any single flipped bit in a proof hash, a root or the
leaf is rejected; so is a wrong index or old size. A wrong *tree* size is subtler:
RFC 9162 verification only sees the left/right pattern of the path, and different
sizes can share it (index 0 has the same path in trees of size 3 and 4). For those,
the properties say exactly when the verifier must accept and when it must reject.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import assume, given
from hypothesis import strategies as st

from receipts.errors import VerificationError
from receipts.tlog import (
    EMPTY_ROOT,
    CompactRange,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    range_hash,
    subtree_nodes,
    verify_consistency,
    verify_inclusion,
)
from receipts.tlog._encoding import control_char

MAX_SIZE = 2048


def _build() -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    leaves = [leaf_hash(b"entry %d" % i) for i in range(MAX_SIZE)]
    nodes = {(0, i): h for i, h in enumerate(leaves)}
    cr = CompactRange()
    for h in leaves:
        nodes.update(cr.append(h))
    return leaves, nodes


LEAVES, NODES = _build()


def tree_hash(lo: int, hi: int) -> bytes:
    return range_hash([NODES[n] for n in subtree_nodes(lo, hi)])


def root(size: int) -> bytes:
    return tree_hash(0, size)


def inclusion_proof(index: int, size: int) -> list[bytes]:
    return [tree_hash(a, b) for a, b in inclusion_ranges(index, size)]


def consistency_proof(old: int, new: int) -> list[bytes]:
    return [tree_hash(a, b) for a, b in consistency_ranges(old, new)]


def inclusion_shape(index: int, size: int) -> tuple[bool, ...]:
    """What the verifier sees of (index, size): is each sibling on the left?"""
    return tuple(a < index for a, _ in inclusion_ranges(index, size))


def consistency_shape(old: int, new: int) -> tuple[bool, tuple[bool, ...]]:
    return old & (old - 1) == 0, tuple(a < old for a, _ in consistency_ranges(old, new))


def rejects(check: Callable[[], None]) -> bool:
    try:
        check()
    except VerificationError:
        return True
    return False


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, new)), new


bits = st.integers(0, 255)


@given(tree_and_index())
def test_inclusion_proofs_verify(case: tuple[int, int]) -> None:
    size, index = case
    verify_inclusion(LEAVES[index], index, size, inclusion_proof(index, size), root(size))


@given(tree_and_index(), st.data())
def test_inclusion_flipped_bit_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    proof, r, leaf = inclusion_proof(index, size), root(size), LEAVES[index]
    bit = data.draw(bits)
    assert rejects(lambda: verify_inclusion(leaf, index, size, proof, flip(r, bit)))
    assert rejects(lambda: verify_inclusion(flip(leaf, bit), index, size, proof, r))
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
        assert rejects(lambda: verify_inclusion(leaf, index, size, bad, r))


@given(tree_and_index(), st.data())
def test_inclusion_wrong_index_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    other = data.draw(st.integers(0, size + 4).filter(lambda i: i != index))
    proof, r = inclusion_proof(index, size), root(size)
    assert rejects(lambda: verify_inclusion(LEAVES[index], other, size, proof, r))


@given(tree_and_index(), st.data())
def test_inclusion_wrong_size(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    other = data.draw(st.integers(0, MAX_SIZE).filter(lambda s: s != size))
    proof, r = inclusion_proof(index, size), root(size)
    rejected = rejects(lambda: verify_inclusion(LEAVES[index], index, other, proof, r))
    same_path = index < other and inclusion_shape(index, other) == inclusion_shape(index, size)
    assert rejected is not same_path


@given(two_sizes())
def test_consistency_proofs_verify(case: tuple[int, int]) -> None:
    old, new = case
    verify_consistency(old, new, consistency_proof(old, new), root(old), root(new))


@given(two_sizes(), st.data())
def test_consistency_flipped_bit_fails(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    proof, r1, r2 = consistency_proof(old, new), root(old), root(new)
    bit = data.draw(bits)
    assert rejects(lambda: verify_consistency(old, new, proof, flip(r1, bit), r2))
    if old:  # from the empty tree every new root is consistent: nothing to check
        assert rejects(lambda: verify_consistency(old, new, proof, r1, flip(r2, bit)))
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
        assert rejects(lambda: verify_consistency(old, new, bad, r1, r2))


@given(two_sizes(), st.data())
def test_consistency_wrong_old_size_fails(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    other = data.draw(st.integers(0, new + 4).filter(lambda s: s != old))
    proof, r1, r2 = consistency_proof(old, new), root(old), root(new)
    assert rejects(lambda: verify_consistency(other, new, proof, r1, r2))


@given(two_sizes(), st.data())
def test_consistency_wrong_new_size(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    assume(0 < old < new)
    other = data.draw(st.integers(0, MAX_SIZE).filter(lambda s: s != new))
    proof, r1, r2 = consistency_proof(old, new), root(old), root(new)
    rejected = rejects(lambda: verify_consistency(old, other, proof, r1, r2))
    same_path = old < other and consistency_shape(old, other) == consistency_shape(old, new)
    assert rejected is not same_path


@given(two_sizes())
def test_consistency_with_swapped_roots_fails(case: tuple[int, int]) -> None:
    old, new = case
    assume(old < new)
    proof = consistency_proof(old, new)
    assert rejects(lambda: verify_consistency(old, new, proof, root(new), root(old)))


def test_empty_tree_is_consistent_with_everything() -> None:
    verify_consistency(0, 5, [], EMPTY_ROOT, root(5))
    assert rejects(lambda: verify_consistency(0, 5, [], root(1), root(5)))


def test_a_proof_can_verify_for_two_sizes_with_the_same_path() -> None:
    """Index 0 has the same path in trees of 3 and 4 leaves: the hashes alone can't tell."""
    proof = inclusion_proof(0, 3)
    assert inclusion_shape(0, 3) == inclusion_shape(0, 4)
    verify_inclusion(LEAVES[0], 0, 4, proof, root(3))


@given(st.text(st.characters(max_codepoint=0x7F)) | st.text())
def test_control_char_finds_the_first_control_character_but_newline(text: str) -> None:
    expected = next((i for i, ch in enumerate(text) if ch < " " and ch != "\n"), None)
    assert control_char(text) == expected
