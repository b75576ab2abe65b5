"""Pure index math for RFC 9162 proofs: which subtrees, never their hashes.

A node ``(level, index)`` is the complete subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes.
Storage fetches the hashes of `subtree_nodes(a, b)` for every range these
functions return and folds them with `range_hash`.
"""

from __future__ import annotations

__all__ = ["Node", "Range", "consistency_ranges", "inclusion_ranges", "subtree_nodes"]

Node = tuple[int, int]
Range = tuple[int, int]


def _split(n: int) -> int:
    """RFC 9162 k: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_nodes(begin: int, end: int) -> list[Node]:
    """Maximal complete subtrees covering ``[begin, end)``, left to right.

    Only ranges that are RFC 9162 subtrees are accepted: ``begin`` must be a
    multiple of the smallest power of two >= ``end - begin``. Their subtrees
    then shrink left to right, which is what `range_hash` relies on.
    """
    if not 0 <= begin <= end:
        raise ValueError(f"invalid leaf range [{begin}, {end})")
    width = end - begin
    if width and begin % (1 << (width - 1).bit_length()):
        raise ValueError(f"[{begin}, {end}) is not a subtree of an RFC 9162 tree")
    nodes: list[Node] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """Leaf ranges of the RFC 9162 inclusion proof (PATH), the leaf's sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    ranges: list[Range] = []
    lo, hi = 0, size
    # Walk down from the root as PATH recurses; the proof lists the same
    # subtrees bottom-up, so reverse at the end.
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def consistency_ranges(old: int, new: int) -> list[Range]:
    """Leaf ranges of the RFC 9162 §2.1.4 consistency proof from ``old`` to ``new``."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    ranges: list[Range] = []
    lo, hi, m = 0, new, old
    known = True  # SUBPROOF's b: the verifier already holds MTH(D[lo:lo+m]).
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, known = lo + k, m - k, False
    if not known:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges
