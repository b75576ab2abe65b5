"""Published Merkle tree vectors, re-expressed as data, and a cross-check with pymerkle.

Sources (github.com/transparency-dev/merkle):
- rfc6962/rfc6962_test.go          TestRFC6962Hasher
- testonly/constants.go            LeafInputs, NodeHashes, RootHashes, CompactTrees
- testonly/reference_test.go       TestRefInclusionProof, TestRefConsistencyProof
- proof/verify_test.go             inclusionProofs, consistencyProofs, the corruption
                                   probes and the TestVerifyConsistency edge cases
- testonly/vectors_test.go         the accumulated "Subtree Test Vectors" of
                                   draft-ietf-plants-merkle-tree-certs (sizes up to 130)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

import pymerkle
import pytest

from receipts.errors import VerificationError
from receipts.tlog import (
    EMPTY_ROOT,
    CompactRange,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_hash,
    root_from_leaf_hashes,
    subtree_nodes,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

# --- rfc6962/rfc6962_test.go ---------------------------------------------------------------


def test_rfc6962_hasher() -> None:
    empty = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert hashlib.sha256(b"").digest() == empty
    assert root_from_leaf_hashes([]) == empty
    assert empty == EMPTY_ROOT
    assert leaf_hash(b"") == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert leaf_hash(b"L123456") == h(
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456") == h(
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_rfc6962_hasher_collisions() -> None:
    h1, h2 = leaf_hash(b"Hello"), leaf_hash(b"World")
    assert h1 != h2
    assert node_hash(h1, h2) != leaf_hash(h1 + h2)  # second-preimage resistance
    assert node_hash(h1, h2) != node_hash(h2, h1)


# --- testonly/constants.go: the 8-leaf tree ------------------------------------------------

LEAF_INPUTS = [
    h(x)
    for x in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
NODES = {(lvl, i): h(x) for lvl, row in enumerate(NODE_HASHES) for i, x in enumerate(row)}

ROOT_HASHES = [EMPTY_ROOT] + [
    h(x)
    for x in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

# CompactTrees(): the compact range after each size, as (level, index) node ids.
COMPACT_TREES: list[list[tuple[int, int]]] = [
    [],
    [(0, 0)],
    [(1, 0)],
    [(1, 0), (0, 2)],
    [(2, 0)],
    [(2, 0), (0, 4)],
    [(2, 0), (1, 2)],
    [(2, 0), (1, 2), (0, 6)],
    [(3, 0)],
]


def test_eight_leaf_tree_nodes_roots_and_compact_ranges() -> None:
    cr = CompactRange()
    seen = {}
    assert cr.root() == ROOT_HASHES[0]
    for size, data in enumerate(LEAF_INPUTS, start=1):
        lh = leaf_hash(data)
        seen[(0, size - 1)] = lh
        seen.update(cr.append(lh))
        assert cr.root() == ROOT_HASHES[size]
        assert list(cr.hashes) == [NODES[n] for n in COMPACT_TREES[size]]
        assert subtree_nodes(0, size) == COMPACT_TREES[size]
    assert seen == NODES


def _proof(ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    return [range_hash([NODES[n] for n in subtree_nodes(a, b)]) for a, b in ranges]


# (index, size, proof): reference_test.go TestRefInclusionProof, and verify_test.go
# inclusionProofs with its 1-based leaf numbers made 0-based.
INCLUSION = [
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# (old, new, proof): reference_test.go TestRefConsistencyProof and verify_test.go.
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.mark.parametrize(("index", "size", "want"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, want: list[str]) -> None:
    proof = _proof(inclusion_ranges(index, size))
    assert proof == [h(x) for x in want]
    verify_inclusion(leaf_hash(LEAF_INPUTS[index]), index, size, proof, ROOT_HASHES[size])


@pytest.mark.parametrize(("old", "new", "want"), CONSISTENCY)
def test_consistency_vectors(old: int, new: int, want: list[str]) -> None:
    proof = _proof(consistency_ranges(old, new))
    assert proof == [h(x) for x in want]
    verify_consistency(old, new, proof, ROOT_HASHES[old], ROOT_HASHES[new])


def _flip(proof: list[bytes], i: int, mask: int) -> list[bytes]:
    return [bytes([p[0] ^ mask, *p[1:]]) if j == i else p for j, p in enumerate(proof)]


def _rejects(check: Callable[[], None]) -> bool:
    try:
        check()
    except VerificationError:
        return True
    return False


@pytest.mark.parametrize(("index", "size", "want"), [v for v in INCLUSION if v[2]])
def test_inclusion_corruption_probes(index: int, size: int, want: list[str]) -> None:
    """verify_test.go corruptInclusionProof: every probe must be rejected."""
    proof, root, leaf = [h(x) for x in want], ROOT_HASHES[size], leaf_hash(LEAF_INPUTS[index])
    probes: dict[str, tuple[int, int, bytes, bytes, list[bytes]]] = {
        "index - 1": (index - 1, size, root, leaf, proof),
        "index + 1": (index + 1, size, root, leaf, proof),
        "index ^ 2": (index ^ 2, size, root, leaf, proof),
        "size * 2": (index, size * 2, root, leaf, proof),
        "size / 2": (index, size // 2, root, leaf, proof),
        "wrong leaf": (index, size, root, leaf_hash(b"WrongLeaf"), proof),
        "empty root": (index, size, EMPTY_ROOT, leaf, proof),
        "random root": (index, size, SOME_HASH, leaf, proof),
        "trailing garbage": (index, size, root, leaf, [*proof, b""]),
        "trailing root": (index, size, root, leaf, [*proof, root]),
        "preceding garbage": (index, size, root, leaf, [b"", *proof]),
        "preceding root": (index, size, root, leaf, [root, *proof]),
        "removed component": (index, size, root, leaf, proof[:-1]),
    }
    for i in range(len(proof)):
        probes[f"proof[{i}] bit 3"] = (index, size, root, leaf, _flip(proof, i, 8))
    if len(proof) > 1:
        probes["inserted component"] = (index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]])
    accepted = [
        name
        for name, (i, s, r, lf, p) in probes.items()
        if not _rejects(lambda i=i, s=s, r=r, lf=lf, p=p: verify_inclusion(lf, i, s, p, r))
    ]
    assert accepted == []


@pytest.mark.parametrize(("old", "new", "want"), [v for v in CONSISTENCY if v[2]])
def test_consistency_corruption_probes(old: int, new: int, want: list[str]) -> None:
    """verify_test.go corruptConsistencyProof: every probe must be rejected."""
    proof, r1, r2 = [h(x) for x in want], ROOT_HASHES[old], ROOT_HASHES[new]
    wrong = hashlib.sha256(b"WrongRoot").digest()
    probes: dict[str, tuple[int, int, bytes, bytes, list[bytes]]] = {
        "old - 1": (old - 1, new, r1, r2, proof),
        "old + 1": (old + 1, new, r1, r2, proof),
        "old ^ 2": (old ^ 2, new, r1, r2, proof),
        "new * 2": (old, new * 2, r1, r2, proof),
        "new / 2": (old, new // 2, r1, r2, proof),
        "wrong old root": (old, new, wrong, r2, proof),
        "wrong new root": (old, new, r1, wrong, proof),
        "swapped roots": (old, new, r2, r1, proof),
        "empty proof": (old, new, r1, r2, []),
        "trailing garbage": (old, new, r1, r2, [*proof, b""]),
        "trailing old root": (old, new, r1, r2, [*proof, r1]),
        "trailing new root": (old, new, r1, r2, [*proof, r2]),
        "preceding garbage": (old, new, r1, r2, [b"", *proof]),
        "preceding old root": (old, new, r1, r2, [r1, *proof]),
        "preceding new root": (old, new, r1, r2, [r2, *proof]),
        "preceding proof[0]": (old, new, r1, r2, [proof[0], *proof]),
        "truncated proof": (old, new, r1, r2, proof[:-1]),
    }
    for i in range(len(proof)):
        probes[f"proof[{i}] bit 4"] = (old, new, r1, r2, _flip(proof, i, 16))
    accepted = [
        name
        for name, (o, n, a, b, p) in probes.items()
        if not _rejects(lambda o=o, n=n, a=a, b=b, p=p: verify_consistency(o, n, p, a, b))
    ]
    assert accepted == []


# verify_test.go TestVerifyConsistency edge cases. Go uses short placeholder roots
# ("don't care"); we require 32-byte hashes, so the placeholders are hashes here.
# One deliberate difference: Go accepts any old root for size 0, we require the
# empty-tree root (a size-0 checkpoint with another root is bogus).
R1 = hashlib.sha256(b"don't care 1").digest()
R2 = hashlib.sha256(b"don't care 2").digest()
CONSISTENCY_EDGES = [
    (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
    (0, 1, EMPTY_ROOT, R2, [], True),
    (0, 1, R1, R2, [], False),  # Go: accepted
    (1, 1, R2, R2, [], True),
    (1, 1, R1, R2, [], False),
    (1, 0, R1, R2, [], False),  # time travel to the past
    (2, 1, R1, R2, [], False),
    (1, 2, R1, R2, [], False),  # empty proof
    (0, 0, EMPTY_ROOT, R2, [], False),  # roots don't match
    (1, 1, EMPTY_ROOT, R2, [], False),
    (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),  # roots match, proof not empty
    (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
]


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof", "ok"),
    CONSISTENCY_EDGES,
    ids=[f"case{i}:{c[0]}-{c[1]}" for i, c in enumerate(CONSISTENCY_EDGES)],
)
def test_consistency_edge_cases(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes], ok: bool
) -> None:
    assert _rejects(lambda: verify_consistency(old, new, proof, r1, r2)) is not ok


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_edge_cases(index: int, size: int) -> None:
    """verify_test.go TestVerifyInclusion: nothing verifies with an empty proof here."""
    assert _rejects(lambda: verify_inclusion(SOME_HASH, index, size, [], b""))
    assert _rejects(lambda: verify_inclusion(b"", index, size, [], EMPTY_ROOT))
    assert _rejects(lambda: verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT))


def test_single_entry_inclusion() -> None:
    """verify_test.go TestVerifyInclusionSingleEntry: root and leaf hash coincide."""
    lh = leaf_hash(b"data")
    verify_inclusion(lh, 0, 1, [], lh)
    for leaf, root in [(lh, b""), (b"", lh), (b"", b"")]:
        assert _rejects(lambda leaf=leaf, root=root: verify_inclusion(leaf, 0, 1, [], root))


# --- draft-ietf-plants-merkle-tree-certs "Subtree Test Vectors" ------------------------------
# Tree D with d[i] = bytes([i]) for i < 130; every valid subtree [start, end) (start a
# multiple of bit_ceil(end - start)) is written as a line into one rolling SHA-256.

VECTOR_MAX = 130


def _vector_tree() -> Callable[[int, int], bytes]:
    nodes = {}
    cr = CompactRange()
    for i in range(VECTOR_MAX):
        nodes[(0, i)] = leaf_hash(bytes([i]))
        nodes.update(cr.append(nodes[(0, i)]))
    return lambda a, b: range_hash([nodes[n] for n in subtree_nodes(a, b)])


def _valid_subtrees(end: int) -> list[int]:
    return [s for s in range(end) if s == 0 or s % (1 << (end - s - 1).bit_length()) == 0]


def _proof_line(prefix: str, proof: list[bytes]) -> bytes:
    return (prefix + "".join(" " + p.hex() for p in proof) + "\n").encode()


def test_subtree_hash_vector() -> None:
    tree, acc = _vector_tree(), hashlib.sha256()
    for end in range(1, VECTOR_MAX + 1):
        for start in _valid_subtrees(end):
            acc.update(f"[{start}, {end}) {tree(start, end).hex()}\n".encode())
    assert acc.hexdigest() == "94a95384a8c69acea9b50d035a58285b3a777cb7a724005faa5e1f1e1190007f"


def test_subtree_inclusion_proof_vector() -> None:
    """A subtree's inclusion proof is the one for index - start in the tree D[start:end]."""
    tree, acc = _vector_tree(), hashlib.sha256()
    for end in range(1, VECTOR_MAX + 1):
        for start in _valid_subtrees(end):
            for index in range(start, end):
                ranges = inclusion_ranges(index - start, end - start)
                proof = [tree(start + a, start + b) for a, b in ranges]
                acc.update(_proof_line(f"{index} [{start}, {end})", proof))
    assert acc.hexdigest() == "ac2a8f989e44d99e399db448050ff5f19757df53cfb716aa81015d3955d8163f"


def _subtree_consistency(
    lo: int, size: int, start: int, end: int, known: bool
) -> list[tuple[int, int]]:
    """The draft's subtree consistency proof, for start > 0 (ours covers start == 0)."""
    if start == 0 and end == size:
        return [] if known else [(lo, lo + size)]
    k = 1 << ((size - 1).bit_length() - 1)
    if end <= k:
        return [*_subtree_consistency(lo, k, start, end, known), (lo + k, lo + size)]
    if k <= start:
        return [*_subtree_consistency(lo + k, size - k, start - k, end - k, known), (lo, lo + k)]
    return [*_subtree_consistency(lo + k, size - k, 0, end - k, False), (lo, lo + k)]


def test_subtree_consistency_proof_vector() -> None:
    """Lines with start == 0 are exactly our consistency proofs for every old <= new <= 130."""
    tree, acc = _vector_tree(), hashlib.sha256()
    for n in range(VECTOR_MAX + 1):
        for end in range(1, n + 1):
            for start in _valid_subtrees(end):
                if start == 0:
                    ranges = consistency_ranges(end, n)
                else:
                    ranges = _subtree_consistency(0, n, start, end, True)
                proof = [tree(a, b) for a, b in ranges]
                acc.update(_proof_line(f"[{start}, {end}) {n}", proof))
    assert acc.hexdigest() == "c586ebbb73a5621baf2140095d87dde934e3b6503a562a1a5215b8209edd083d"


# --- pymerkle (an independent RFC 9162 implementation) -------------------------------------


def test_roots_match_pymerkle() -> None:
    rng = random.Random(9162)
    for _ in range(300):
        size = rng.randint(0, 300)
        entries = [rng.randbytes(rng.randint(0, 40)) for _ in range(size)]
        # Security mode (the default) is RFC 9162's 0x00 / 0x01 prefixing.
        reference = pymerkle.InmemoryTree(algorithm="sha256")
        for e in entries:
            reference.append_entry(e)
        want = reference.get_root()
        hashes = [leaf_hash(e) for e in entries]
        assert root_from_leaf_hashes(hashes) == want
        cr = CompactRange()
        for lh in hashes:
            cr.append(lh)
        assert cr.root() == want
        if size:
            assert reference.get_leaf(size) == hashes[-1]  # pymerkle counts from one
