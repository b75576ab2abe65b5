"""``receipts demo``: a believable week of a local-events app, in every domain.

The story is data: ``demo.json`` holds its requests in the order they happen, each with a
``name``, the ``producer`` that writes it and its ``request``. Only the ids are made here:
derived from the names (UUIDv5), a revision's ``supersedes`` naming the step it revises. So
running the demo again replays the same requests and the ledger answers them idempotently:
nothing is written twice. It writes only into a ledger that holds nothing but its own story
(see ``only_the_demo``).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from importlib import resources
from typing import Any

from rich.console import Console
from rich.table import Table

from ..answer import AnswerBundle
from ..bundle import Bundle
from ..ledger import Ledger
from ..model import Receipt

_NAMESPACE = uuid.UUID("5c1c0f5e-2b8e-4e55-9a53-7d6a4e0c2f10")
TRACE = "checkout-jazz-night-7f3a"  # the correlation_id of the story's payment and refund


def demo_id(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"demo/{name}"))


def story() -> list[tuple[str, dict[str, Any]]]:
    """(producer, request) pairs in the order they happen."""
    text = resources.files("receipts.cli").joinpath("demo.json").read_text("utf-8")
    return [
        (step["producer"], _request(step["name"], step["request"])) for step in json.loads(text)
    ]


def _request(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    request = {"id": demo_id(name)}
    for key, value in fields.items():
        if key == "supersedes":
            request["supersedes_id"] = demo_id(value)
        else:
            request[key] = value
    return request


def only_the_demo(ledger: Ledger) -> bool:
    """Whether ``ledger`` holds nothing but (part of) the demo's own story."""
    ours = {request["id"] for _, request in story()}
    size = ledger.size()
    return size <= len(ours) and all(r.id in ours for r in ledger.query(limit=len(ours)))


def run_demo(ledger: Ledger, console: Console | None = None) -> list[Receipt]:
    console = console or Console(highlight=False, soft_wrap=True)
    before = ledger.size()
    stored = [ledger.append(request, producer=producer) for producer, request in story()]
    added = ledger.size() - before
    where = ledger.location
    if added:
        console.print(f"Recorded [bold]{added}[/] receipts in {where}")
    else:
        console.print(f"All {len(stored)} demo receipts were already in {where}: "
                      "the replay was idempotent, nothing was written twice.")  # fmt: skip
    _summary(ledger, stored, console)
    return stored


def _summary(ledger: Ledger, stored: list[Receipt], console: Console) -> None:
    counts = Counter(r.domain for r in stored)
    table = Table("domain", "receipts", title="Demo receipts per domain")
    for domain in sorted(ledger.catalog.domains):
        table.add_row(domain, str(counts.get(domain, 0)))
    console.print(table)

    console.print("\n[bold]History of event:evt_jazz_night[/] (an amend corrected the venue)")
    for r in ledger.history("event:evt_jazz_night"):
        console.print(f"  seq {r.seq:>4}  {r.op:<7} rev {r.revision}  "
                      f"location={r.payload.get('location')!r}")  # fmt: skip

    console.print(f"\n[bold]Trace {TRACE}[/] (payment to refund)")
    for r in ledger.trace(TRACE):
        console.print(f"  seq {r.seq:>4}  {r.occurred_at[:19]}  {r.event_type:<24} "
                      f"by {r.producer}")  # fmt: skip

    voided = ledger.current("community:cm_lisbon_jazz", include_voided=True)
    shown = ledger.current("community:cm_lisbon_jazz")
    console.print(f"\nCurrent view of community:cm_lisbon_jazz: {len(shown)} live event(s), "
                  f"{len(voided) - len(shown)} voided (hidden unless asked for).")  # fmt: skip
    _doors(ledger, console)
    if ledger.signer is not None:
        _prove(ledger, console)
    console.print(f"Ledger size: {ledger.size()} receipts. Try: receipts history "
                  f"payment_intent:pi_3Qx9")  # fmt: skip


def _doors(ledger: Ledger, console: Console) -> None:
    """The questions the story raises, answered from its receipts, with the evidence."""
    console.print("\n[bold]Doors[/] (answers derived from receipts; docs/doors.md)")
    questions = [
        ("May refund rf_88 be paid out?", "refund", ["refund:rf_88"]),
        ("Is user_7f3a age-verified?", "age_verification", ["user:user_7f3a"]),
        ("Is user_spam_66 muted right now?", "sanctions", ["user", "user_spam_66"]),
    ]
    for question, name, key in questions:
        answer = ledger.state(name, key)
        value = answer.value
        if "status" in value:
            said = f"{name} is [bold]{value['status']}[/]"
        else:
            active, ended = value["sanctions"]["active"], value["sanctions"]["ended"]
            said = (f"[bold]{len(active)} active[/] sanction(s), {len(ended)} ended"
                    + (f" ({ended[0]['action']} lifted at {ended[0]['ended_at'][:16]})"
                       if ended and ended[0]["ended_at"] else ""))  # fmt: skip
        evidence = ", ".join(f"seq {e['seq']} {e['event_type']}" for e in answer.evidence)
        console.print(f"  {question} {said}\n      because: {evidence}")
    console.print("  Try: receipts why user:user_7f3a | receipts state refund refund:rf_88")


def _prove(ledger: Ledger, console: Console) -> None:
    """Sign a checkpoint and check one receipt the way an outsider would: offline."""
    checkpoint = ledger.checkpoint()
    assert ledger.signer is not None
    vkey = ledger.signer.verifier()
    bundle = ledger.prove(demo_id("refund-done"))
    verified = Bundle.from_json(bundle.to_json()).verify(vkey)
    console.print(f"\n[bold]Signed checkpoint[/] of {checkpoint.size} receipts, root "
                  f"{checkpoint.root_hash.hex()[:16]}…, key {vkey.to_key_string()}")  # fmt: skip
    console.print(
        f"Offline proof: refund_completed is leaf {verified.index} of that tree "
        "[green]✓ verified[/] (receipts prove ID | receipts verify-bundle - --key KEY)"
    )
    answer = ledger.prove_state("refund", ["refund:rf_88"])
    checked = AnswerBundle.from_json(answer.to_json()).verify(vkey)
    console.print(
        f"Offline answer: refund rf_88 is {checked['value']['status']}, folded again from "
        f"{checked['receipts']} proven receipts [green]✓ verified[/] (receipts state refund "
        "refund:rf_88 --prove | receipts verify-answer - --key KEY)"
    )
