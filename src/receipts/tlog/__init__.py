"""The verifiable log core: RFC 9162 Merkle trees and C2SP signed formats.

Pure: no I/O, no clock, no database. Storage fetches node hashes by the ids
this package computes and hands them back here to be checked.
"""

from .checkpoint import Checkpoint
from .compact import CompactRange
from .hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    leaf_hash,
    node_hash,
    range_hash,
    root_from_leaf_hashes,
)
from .note import Note, NoteSignature, Signer, Verifier, open_note, parse_note, sign_note
from .proof import Node, Range, consistency_ranges, inclusion_ranges, subtree_nodes
from .prooftext import TLOG_PROOF_HEADER, TlogProof
from .rotation import ROTATION_HEADER, KeyChain, Rotation
from .verify import root_from_inclusion_proof, verify_consistency, verify_inclusion

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "ROTATION_HEADER",
    "TLOG_PROOF_HEADER",
    "Checkpoint",
    "CompactRange",
    "KeyChain",
    "Node",
    "Note",
    "NoteSignature",
    "Range",
    "Rotation",
    "Signer",
    "TlogProof",
    "Verifier",
    "consistency_ranges",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "open_note",
    "parse_note",
    "range_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "sign_note",
    "subtree_nodes",
    "verify_consistency",
    "verify_inclusion",
]
