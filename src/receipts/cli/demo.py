"""``receipts demo``: a believable week of a local-events app, in every domain.

Ids are derived from names (UUIDv5), so running the demo again replays the same requests and
the ledger answers them idempotently: nothing is written twice. It writes only into a ledger
that holds nothing but its own story (see ``foreign_receipts``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from ..bundle import Bundle
from ..dburl import DatabaseUrl
from ..ledger import Ledger
from ..model import Receipt

_NAMESPACE = uuid.UUID("5c1c0f5e-2b8e-4e55-9a53-7d6a4e0c2f10")
TRACE = "checkout-jazz-night-7f3a"
HOST, GUEST, ADMIN = "user_host_91c2", "user_7f3a", "admin_ops_02"


def demo_id(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"demo/{name}"))


def _r(
    name: str,
    domain: str,
    event_type: str,
    entity: str,
    at: str,
    payload: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    entity_type, entity_id = entity.split(":", 1)
    return {
        "id": demo_id(name),
        "domain": domain,
        "event_type": event_type,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "occurred_at": f"2026-11-{at}Z",
        "payload": payload,
        **extra,
    }


def story() -> list[tuple[str, dict[str, Any]]]:
    """(producer, request) pairs in the order they happen."""
    pay = {"correlation_id": TRACE}
    server, client, edge = "service_role_pipeline", "client", "edge_function"
    event = {
        "category": "music", "eventType": "expertEvent", "startTime": "2026-11-20T19:00:00Z",
        "endTime": "2026-11-20T22:00:00Z", "isPaid": True, "price": 4500, "cityCode": "LIS",
        "visibility": "public", "location": "Café Tati, Lisbon",
    }  # fmt: skip
    return [
        (
            server,
            _r(
                "expertise",
                "expertise",
                "expertise_level_asserted",
                f"expertise:{HOST}:music",
                "14T09:00:00",
                {"level": "city", "source": "derived"},
                owner_user_id=HOST,
            ),
        ),
        (
            client,
            _r(
                "event",
                "expertise",
                "expert_event_created",
                "event:evt_jazz_night",
                "14T10:00:00",
                event,
                owner_user_id=HOST,
            ),
        ),
        (
            client,
            _r(
                "event-amend",
                "expertise",
                "expert_event_created",
                "event:evt_jazz_night",
                "14T10:30:00",
                {**event, "location": "Hot Clube, Lisbon", "notes": "venue moved"},
                op="amend",
                supersedes_id=demo_id("event"),
                owner_user_id=HOST,
            ),
        ),
        (
            edge,
            _r(
                "intent",
                "payments",
                "payment_intent_created",
                "payment_intent:pi_3Qx9",
                "15T18:02:11",
                {
                    "eventId": "evt_jazz_night",
                    "amount": 4500,
                    "currency": "EUR",
                    "payerUserId": GUEST,
                    "provider": "stripe",
                    **pay,
                },
                owner_user_id=GUEST,
            ),
        ),
        (
            edge,
            _r(
                "capture",
                "payments",
                "payment_captured",
                "payment_intent:pi_3Qx9",
                "15T18:02:14",
                {"amount": 4500, "providerChargeId": "ch_3Qx9a", **pay},
                owner_user_id=GUEST,
            ),
        ),
        (
            client,
            _r(
                "join",
                "expertise",
                "community_joined",
                "community:cm_lisbon_jazz",
                "15T18:05:00",
                {"role": "member"},
                owner_user_id=GUEST,
            ),
        ),
        (
            client,
            _r(
                "join-dup",
                "expertise",
                "community_joined",
                "community:cm_lisbon_jazz",
                "15T18:05:01",
                {"role": "member"},
                owner_user_id=GUEST,
            ),
        ),
        (
            server,
            _r(
                "join-dup-void",
                "expertise",
                "community_joined",
                "community:cm_lisbon_jazz",
                "15T18:05:01",
                {"void_reason": "duplicate tap", "voided_by": "dedupe_job"},
                op="void",
                supersedes_id=demo_id("join-dup"),
                owner_user_id=GUEST,
            ),
        ),
        (
            client,
            _r(
                "age",
                "identity",
                "age_verification_submitted",
                f"user:{GUEST}",
                "16T08:00:00",
                {"method": "provider", "provider": "veriff", "version": "3"},
                owner_user_id=GUEST,
            ),
        ),
        (
            server,
            _r(
                "age-ok",
                "identity",
                "age_verification_approved",
                f"user:{GUEST}",
                "16T08:01:30",
                {"reviewedBy": "provider"},
                owner_user_id=GUEST,
            ),
        ),
        (
            client,
            _r(
                "device",
                "device_capability",
                "device_capability_snapshot_recorded",
                f"user:{GUEST}",
                "16T08:10:00",
                {
                    "deviceClass": "phone_high",
                    "ramGb": 8,
                    "supportsOnDeviceLlm": True,
                    "batteryMode": "normal",
                },
                owner_user_id=GUEST,
            ),
        ),
        (
            client,
            _r(
                "pack",
                "model_lifecycle",
                "model_pack_download_started",
                "model_pack:mp_small",
                "16T08:11:00",
                {"packId": "mp_small", "version": "1.4.0", "source": "auto"},
                owner_user_id=GUEST,
            ),
        ),
        (
            client,
            _r(
                "pack-ok",
                "model_lifecycle",
                "model_pack_installed",
                "model_pack:mp_small",
                "16T08:14:40",
                {"packId": "mp_small", "version": "1.4.0", "success": True},
                owner_user_id=GUEST,
            ),
        ),
        (
            server,
            _r(
                "keys",
                "security",
                "agent_mapping_key_rotated",
                f"user:{GUEST}",
                "17T03:00:00",
                {
                    "oldKeyId": "k_2025_11",
                    "newKeyId": "k_2026_11",
                    "rotationBatchId": "rot_2026_11",
                },
                owner_user_id=GUEST,
            ),
        ),
        (
            client,
            _r(
                "report",
                "moderation",
                "report_created",
                "report:rp_51",
                "18T21:40:00",
                {
                    "reporterUserId": GUEST,
                    "targetType": "user",
                    "targetId": "user_spam_66",
                    "reasonCode": "spam",
                    "details": "DMs with payment links",
                },
                owner_user_id=GUEST,
            ),
        ),
        (
            server,
            _r(
                "mute",
                "moderation",
                "moderation_action_applied",
                "moderation_action:ma_51",
                "18T22:00:00",
                {
                    "action": "mute",
                    "targetType": "user",
                    "targetId": "user_spam_66",
                    "durationSeconds": 86400,
                    "policyRule": "spam.dm_links",
                },
            ),
        ),
        (
            server,
            _r(
                "unmute",
                "moderation",
                "moderation_action_lifted",
                "moderation_action:ma_51",
                "19T09:00:00",
                {"liftReasonCode": "appeal_accepted", "liftedBy": "admin"},
            ),
        ),
        (
            server,
            _r(
                "expand",
                "geo_expansion",
                "entity_expanded_to_locality",
                "community:cm_lisbon_jazz",
                "20T23:00:00",
                {
                    "eventId": "evt_jazz_night",
                    "localityCode": "LIS-ALF",
                    "cityCode": "LIS",
                    "trigger": "event_hosted",
                },
            ),
        ),
        (
            client,
            _r(
                "refund-ask",
                "payments",
                "refund_requested",
                "refund:rf_88",
                "21T10:00:00",
                {
                    "paymentIntentId": "pi_3Qx9",
                    "requestedByUserId": GUEST,
                    "reasonCode": "could_not_attend",
                    **pay,
                },
                owner_user_id=GUEST,
            ),
        ),
        (
            server,
            _r(
                "refund-ok",
                "payments",
                "refund_approved",
                "refund:rf_88",
                "21T10:00:05",
                {"approvedBy": "policy", "policyRule": "refund.48h_before", **pay},
                owner_user_id=GUEST,
            ),
        ),
        (
            edge,
            _r(
                "refund-done",
                "payments",
                "refund_completed",
                "refund:rf_88",
                "21T10:00:09",
                {"providerRefundId": "re_3Qx9", **pay},
                owner_user_id=GUEST,
            ),
        ),
        (
            server,
            _r(
                "export",
                "data_export",
                "admin_export_requested",
                "export:ex_7",
                "21T12:00:00",
                {
                    "requestedByAdminId": ADMIN,
                    "exportType": "refunds",
                    "filters": {"month": "2026-11"},
                    "purpose": "monthly audit",
                },
            ),
        ),
        (
            server,
            _r(
                "export-made",
                "data_export",
                "admin_export_generated",
                "export:ex_7",
                "21T12:00:40",
                {"exportId": "ex_7", "rowCount": 1, "storagePath": "exports/2026-11/refunds.csv"},
            ),
        ),
    ]


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
    where = DatabaseUrl.parse(ledger.store.url).shown()
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
    if ledger.signer is not None:
        _prove(ledger, console)
    console.print(f"Ledger size: {ledger.size()} receipts. Try: receipts history "
                  f"payment_intent:pi_3Qx9")  # fmt: skip


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
