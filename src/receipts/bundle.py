"""Offline receipt bundles: ``{"entry": {…}, "proof": "<c2sp.org/tlog-proof@v1 text>"}``.

Verifying needs only the bundle and the log's verifier key: the entry's canonical bytes give
the leaf hash, the proof leads from it to the root of a checkpoint signed by that key. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ErrorDetail, FormatError, VerificationError
from .model import ENTRY_KEYS, canonical_bytes, leaf_hash
from .tlog import Checkpoint, TlogProof, Verifier


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What a bundle proves: this entry is leaf ``index`` of the log under ``checkpoint``."""

    entry: dict[str, Any]
    index: int
    leaf_hash: bytes
    checkpoint: Checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": True,
            "id": self.entry.get("id"),
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "origin": self.checkpoint.origin,
            "tree_size": self.checkpoint.size,
            "root_hash": self.checkpoint.root_hash.hex(),
        }


@dataclass(frozen=True, slots=True)
class Bundle:
    entry: dict[str, Any]
    proof: str

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "proof": self.proof}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: str | bytes) -> Bundle:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise FormatError("bundle is not JSON", [ErrorDetail("", str(exc))]) from None
        problems = []
        if type(doc) is not dict:
            raise FormatError(
                "bundle must be a JSON object", [ErrorDetail("", "expected {entry, proof}")]
            )
        problems += [ErrorDetail(f"/{k}", "unknown field") for k in doc.keys() - {"entry", "proof"}]
        entry, proof = doc.get("entry"), doc.get("proof")
        if type(entry) is not dict:
            problems.append(ErrorDetail("/entry", "expected the receipt's entry object"))
        elif set(entry) != set(ENTRY_KEYS):
            problems.append(
                ErrorDetail("/entry", f"expected exactly the keys {sorted(ENTRY_KEYS)}")
            )
        if type(proof) is not str:
            problems.append(ErrorDetail("/proof", "expected c2sp.org/tlog-proof@v1 text"))
        if problems:
            raise FormatError("malformed receipt bundle", problems)
        assert type(entry) is dict and type(proof) is str
        return cls(entry, proof)

    def verify(self, verifier: Verifier | str) -> VerifiedReceipt:
        """Check the bundle offline; raises VerificationError or FormatError with the reason."""
        key = Verifier.from_key_string(verifier) if isinstance(verifier, str) else verifier
        proof = TlogProof.from_text(self.proof)
        checkpoint = Checkpoint.open(proof.checkpoint_note, key)  # signature, key, origin
        leaf = leaf_hash(canonical_bytes(self.entry))
        try:
            proof.verify(leaf, key)
        except VerificationError as exc:
            raise VerificationError(
                f"inclusion proof fails for leaf {leaf.hex()} at index {proof.index} in the tree "
                f"of size {checkpoint.size}: the entry was altered or the proof is not for it "
                f"({exc.message})"
            ) from exc
        return VerifiedReceipt(self.entry, proof.index, leaf, checkpoint)
