"""Offline answer bundles: a derived state's answer, the state's definition, and every receipt
the answer was folded from, each with its inclusion proof in one signed checkpoint.

``AnswerBundle.verify`` needs only the bundle and the log's verifier key: it checks every
receipt's proof into the checkpoint (the same one for all), checks that the definition is the
one the answer names, folds the state again from the proven receipts and compares. What it
proves: these receipts are in the log, and this definition folds them into this answer. What
it does not: that no other receipt in the log files under the key — the index is not
committed to by the tree (docs/doors.md says what that would take). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from .bundle import Bundle, json_object
from .catalog.states import parse_states
from .errors import ErrorDetail, FormatError, ReceiptsError, VerificationError
from .fold import fold
from .model import Receipt
from .tlog import Verifier

FORMAT: Final = "receipts/answer-bundle/v1"
_FIELDS = frozenset({"format", "answer", "state", "receipts"})


@dataclass(frozen=True)
class AnswerBundle:
    answer: dict[str, Any]  # Answer.to_dict()
    state: dict[str, Any]  # {"name", "domain", "definition"}: as the catalog defines it
    receipts: tuple[Bundle, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "answer": self.answer,
            "state": self.state,
            "receipts": [b.to_dict() for b in self.receipts],
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: str | bytes) -> AnswerBundle:
        doc = json_object(data, "answer bundle", FORMAT)
        problems = [ErrorDetail(f"/{k}", "unknown field") for k in sorted(doc.keys() - _FIELDS)]
        if doc.get("format") != FORMAT:
            problems.append(ErrorDetail("/format", f"expected {FORMAT!r}"))
        answer, state, receipts = doc.get("answer"), doc.get("state"), doc.get("receipts")
        if type(answer) is not dict or not {"key", "value", "evidence", "as_of"} <= answer.keys():
            problems.append(ErrorDetail("/answer", "expected an answer: key, value, evidence…"))
        if type(state) is not dict or not {"name", "domain", "definition"} <= state.keys():
            problems.append(ErrorDetail("/state", "expected {name, domain, definition}"))
        if type(receipts) is not list:
            problems.append(ErrorDetail("/receipts", "expected an array of receipt bundles"))
        if problems:
            raise FormatError("malformed answer bundle", problems)
        assert type(answer) is dict and type(state) is dict and type(receipts) is list
        bundles = []
        for i, item in enumerate(receipts):
            try:
                bundles.append(Bundle.from_json(orjson.dumps(item)))
            except FormatError as exc:
                problems = [ErrorDetail(f"/receipts/{i}{e.pointer}", e.message) for e in exc.errors]
                raise FormatError(exc.message, problems) from None
        return cls(answer, state, tuple(bundles))

    def verify(self, verifier: Verifier | str) -> dict[str, Any]:
        """Check the bundle offline and fold the answer again; raises VerificationError or
        FormatError naming what does not hold."""
        name = self.state["name"]
        try:
            states = parse_states(self.state["domain"], {name: self.state["definition"]},
                                  "the answer bundle")  # fmt: skip
        except ReceiptsError as exc:
            raise FormatError(f"the bundle's state definition is malformed: {exc.message}",
                              exc.errors) from None  # fmt: skip
        state = states[name]
        if state.digest != self.answer.get("definition"):
            raise VerificationError(
                f"the answer was folded by definition {self.answer.get('definition')}, the "
                f"bundle holds {state.digest}"
            )
        verified = [b.verify(verifier) for b in self.receipts]
        trees = {(v.checkpoint.size, v.checkpoint.root_hash) for v in verified}
        if len(trees) > 1:
            raise VerificationError("the receipts prove into different checkpoints")
        receipts = [Receipt.from_entry(v.index, v.entry) for v in verified]
        as_of = self.answer["as_of"]
        size = verified[0].checkpoint.size if verified else None
        if size is not None and (as_of.get("seq") is None or as_of["seq"] > size):
            raise VerificationError(f"the answer is not as of the checkpoint of size {size}")
        again = fold(state, tuple(self.answer["key"]), receipts, now=as_of["judged_at"],
                     at_seq=as_of.get("seq"), valid_at=as_of.get("occurred_at"),
                     known_at=as_of.get("recorded_at")).to_dict()  # fmt: skip
        for field in ("value", "evidence", "violations"):
            if again[field] != self.answer.get(field):
                raise VerificationError(
                    f"the proven receipts fold into another {field} than the answer's: "
                    f"{orjson.dumps(again[field]).decode()}"
                )
        checkpoint = verified[0].checkpoint if verified else None
        return {
            "verified": True,
            "state": name,
            "key": self.answer["key"],
            "value": again["value"],
            "receipts": len(verified),
            "tree_size": None if checkpoint is None else checkpoint.size,
            "root_hash": None if checkpoint is None else checkpoint.root_hash.hex(),
            "proves": "these receipts are in the log and fold into this answer; not that no "
            "other receipt files under the key",
        }
