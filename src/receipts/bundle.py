"""Offline receipt bundles: ``{"entry": {…}, "proof": "<c2sp.org/tlog-proof@v1 text>"}``, and
``"rotations": [<signed rotation statement>, …]`` when the checkpoint is signed by a key the
log rotated to.

Verifying needs only the bundle and the log's verifier key: the entry's canonical bytes give
the leaf hash, the proof leads from it to the root of a checkpoint signed by that key, or by a
later key the bundle's rotation statements (each signed by the key before and the key after)
lead to. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ErrorDetail, FormatError, VerificationError
from .model import ENTRY_KEYS, canonical_bytes, leaf_hash
from .tlog import Checkpoint, KeyChain, TlogProof, Verifier

_FIELDS = frozenset({"entry", "proof", "rotations"})


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What a bundle proves: this entry is leaf ``index`` of the log under ``checkpoint``."""

    entry: dict[str, Any]
    index: int
    leaf_hash: bytes
    checkpoint: Checkpoint
    key: Verifier  # the key that signed the checkpoint: the trusted one or a later one

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": True,
            "id": self.entry.get("id"),
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "origin": self.checkpoint.origin,
            "tree_size": self.checkpoint.size,
            "root_hash": self.checkpoint.root_hash.hex(),
            "key": self.key.to_key_string(),
        }


def json_object(data: str | bytes, what: str, expected: str) -> dict[str, Any]:
    """``data`` parsed as a JSON object, else ``FormatError`` naming ``what`` it should be."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"{what} is not JSON", [ErrorDetail("", str(exc))]) from None
    if type(doc) is not dict:
        raise FormatError(f"{what} must be a JSON object", [ErrorDetail("", expected)])
    return doc


@dataclass(frozen=True, slots=True)
class Bundle:
    entry: dict[str, Any]
    proof: str
    rotations: tuple[str, ...] = ()  # from the log's first key to the checkpoint's

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"entry": self.entry, "proof": self.proof}
        if self.rotations:  # a bundle of a log that never rotated keeps its original form
            out["rotations"] = list(self.rotations)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: str | bytes) -> Bundle:
        doc = json_object(data, "bundle", "expected {entry, proof}")
        problems = [ErrorDetail(f"/{k}", "unknown field") for k in doc.keys() - _FIELDS]
        entry, proof, rotations = doc.get("entry"), doc.get("proof"), doc.get("rotations", [])
        if type(entry) is not dict:
            problems.append(ErrorDetail("/entry", "expected the receipt's entry object"))
        elif set(entry) != set(ENTRY_KEYS):
            problems.append(
                ErrorDetail("/entry", f"expected exactly the keys {sorted(ENTRY_KEYS)}")
            )
        if type(proof) is not str:
            problems.append(ErrorDetail("/proof", "expected c2sp.org/tlog-proof@v1 text"))
        if type(rotations) is not list:
            problems.append(ErrorDetail("/rotations", "expected an array of rotation statements"))
        else:
            problems += [
                ErrorDetail(f"/rotations/{i}", "expected a signed key rotation statement (text)")
                for i, r in enumerate(rotations)
                if type(r) is not str
            ]
        if problems:
            raise FormatError("malformed receipt bundle", problems)
        assert type(entry) is dict and type(proof) is str and type(rotations) is list
        return cls(entry, proof, tuple(rotations))

    def verify(self, verifier: Verifier | str) -> VerifiedReceipt:
        """Check the bundle offline; raises VerificationError or FormatError with the reason.
        ``verifier`` is trusted; a later key only through the bundle's rotation statements."""
        trusted = Verifier.from_key_string(verifier) if isinstance(verifier, str) else verifier
        chain = KeyChain.follow(trusted, self.rotations)
        proof = TlogProof.from_text(self.proof)
        checkpoint = chain.open_checkpoint(proof.checkpoint_note)  # signature, key, origin
        key = chain.key_at(checkpoint.size)
        leaf = leaf_hash(canonical_bytes(self.entry))
        try:
            proof.verify(leaf, key)
        except VerificationError as exc:
            raise VerificationError(
                f"inclusion proof fails for leaf {leaf.hex()} at index {proof.index} in the tree "
                f"of size {checkpoint.size}: the entry was altered or the proof is not for it "
                f"({exc.message})"
            ) from exc
        return VerifiedReceipt(self.entry, proof.index, leaf, checkpoint, key)
