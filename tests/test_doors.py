"""Derived states ("doors"): answers folded from receipts, with their evidence, as of a time or
a seq; lifecycle rules checked in the write transaction (docs/doors.md). Both backends."""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.strategies
import orjson
import psycopg
import pytest
import rfc8785

from pg import insert_sql
from receipts import Ledger, RuleViolationError, ValidationError
from receipts.model import Receipt

T0 = "2026-12-01T10:00:00Z"


def write(
    ledger: Ledger, event_type: str, entity: str, payload: dict[str, Any], **fields: Any
) -> Receipt:
    entity_type, entity_id = entity.split(":", 1)
    request = {
        "domain": ledger.catalog.get(event_type).domain,
        "event_type": event_type,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "payload": payload,
        **fields,
    }
    return ledger.append(request)


REQUESTED = {"paymentIntentId": "pi_1", "requestedByUserId": "u_1", "reasonCode": "late"}


def refund(ledger: Ledger, entity: str = "refund:rf_1") -> list[Receipt]:
    return [
        write(ledger, "refund_requested", entity, REQUESTED),
        write(ledger, "refund_approved", entity, {"approvedBy": "policy"}),
    ]


def seqs(answer: Any) -> list[int]:
    return [e["seq"] for e in answer.evidence]


def test_a_state_machine_with_its_evidence(ledger: Ledger) -> None:
    requested, approved = refund(ledger)
    done = write(ledger, "refund_completed", "refund:rf_1", {"providerRefundId": "re_1"})
    answer = ledger.state("refund", ["refund:rf_1"])
    assert answer.value["status"] == "completed"
    assert answer.value["paymentIntentId"] == "pi_1" and answer.value["providerRefundId"] == "re_1"
    assert seqs(answer) == [requested.seq, approved.seq, done.seq]
    assert [e["id"] for e in answer.evidence] == [requested.id, approved.id, done.id]
    assert answer.violations == []
    assert answer.definition == ledger.catalog.state("refund").digest
    assert ledger.state("refund", ["refund:rf_9"]).value == {"status": "none"}


def test_a_rule_refuses_a_transition_and_writes_nothing(ledger: Ledger) -> None:
    requested = write(ledger, "refund_requested", "refund:rf_1", REQUESTED)
    with pytest.raises(RuleViolationError) as caught:
        write(ledger, "refund_completed", "refund:rf_1", {"providerRefundId": "re_1"})
    error = caught.value
    assert error.code == "rule_violated" and error.http_status == 409 and error.exit_code == 1
    assert error.message == (
        "rule 'refund' refuses refund_completed for refund ['refund:rf_1']: it needs "
        f"'approved', found 'requested' (receipts consulted: seq {requested.seq} "
        "refund_requested)"
    )
    assert [(e.pointer, e.message) for e in error.errors] == [
        ("/event_type", "refund is 'requested'; needs 'approved'")
    ]
    assert error.to_dict()["rule"] == "refund" and error.to_dict()["found"] == "requested"
    assert [c["id"] for c in error.consulted] == [requested.id]
    assert ledger.size() == 1


def test_a_batch_is_refused_whole_and_points_at_the_request(ledger: Ledger) -> None:
    base = {"domain": "payments", "entity_type": "refund", "entity_id": "rf_2"}
    batch = [
        {**base, "event_type": "refund_requested", "payload": REQUESTED},
        {**base, "event_type": "refund_approved", "payload": {"approvedBy": "policy"}},
        {**base, "event_type": "refund_denied", "payload": {"approvedBy": "policy"}},
    ]
    with pytest.raises(RuleViolationError) as caught:
        ledger.append_batch(batch)
    assert [e.pointer for e in caught.value.errors] == ["/2/event_type"]
    assert ledger.size() == 0
    ledger.append_batch(batch[:2])  # in order, one batch: requested then approved
    assert ledger.state("refund", ["refund:rf_2"]).value["status"] == "approved"


@pytest.mark.parametrize(
    ("event_type", "entity", "payload", "needs"),
    [
        ("refund_approved", "refund:r", {"approvedBy": "policy"}, "'requested'"),
        ("payout_completed", "payout:p", {}, "'scheduled'"),
        ("partnership_completed", "partnership:p", {"eventId": "e", "wasDisputed": False},
         "'locked' or 'resolved'"),
        ("age_verification_approved", "user:u", {"reviewedBy": "admin"}, "'submitted'"),
        ("business_verification_denied", "business:b", {"reviewedBy": "admin"}, "'submitted'"),
        ("admin_export_downloaded", "export:x", {"exportId": "x", "downloadedByAdminId": "a"},
         "'generated' or 'downloaded'"),
    ],
)  # fmt: skip
def test_the_rules_of_the_catalog(
    ledger: Ledger, event_type: str, entity: str, payload: dict[str, Any], needs: str
) -> None:
    with pytest.raises(RuleViolationError, match=f"it needs {needs}, found 'none'"):
        write(ledger, event_type, entity, payload)


def test_a_locked_revenue_split_cannot_be_redefined(ledger: Ledger) -> None:
    split = {"eventId": "e1", "partners": [{"partyId": "p", "partyType": "user", "percent": 90}],
             "platformFeePercent": 10}  # fmt: skip
    write(ledger, "revenue_split_defined", "revenue_split:s1", split)
    write(ledger, "revenue_split_defined", "revenue_split:s1", {**split, "platformFeePercent": 12})
    write(
        ledger, "revenue_split_locked", "revenue_split:s1", {"lockedAt": T0, "lockedBy": "system"}
    )
    with pytest.raises(RuleViolationError, match="found 'locked'"):
        write(ledger, "revenue_split_defined", "revenue_split:s1", split)
    answer = ledger.state("revenue_split", ["revenue_split:s1"])
    assert answer.value["status"] == "locked" and answer.value["platformFeePercent"] == 12


def test_revisions_count_as_the_current_view_has_them(ledger: Ledger) -> None:
    requested, approved = refund(ledger)
    amended = ledger.amend(approved.id, {"approvedBy": "admin", "policyRule": "r7"})
    assert ledger.state("refund", ["refund:rf_1"]).value["decidedBy"] == "admin"
    voided = ledger.void(amended.id, "approved by mistake", "admin_1")
    answer = ledger.state("refund", ["refund:rf_1"])
    assert answer.value["status"] == "requested" and "decidedBy" not in answer.value
    assert seqs(answer) == [requested.seq, voided.seq]  # the void is evidence of the removal
    restated = ledger.restate(voided.id, {"approvedBy": "policy"})
    answer = ledger.state("refund", ["refund:rf_1"])
    assert answer.value["status"] == "approved" and seqs(answer) == [requested.seq, restated.seq]
    # as of before the void, the amend stood
    assert ledger.state("refund", ["refund:rf_1"], at_seq=voided.seq).value["decidedBy"] == "admin"


def test_a_void_that_would_break_a_later_transition_is_refused(ledger: Ledger) -> None:
    _, approved = refund(ledger)
    write(ledger, "refund_completed", "refund:rf_1", {"providerRefundId": "re_1"})
    with pytest.raises(RuleViolationError, match="refuses refund_completed"):
        ledger.void(approved.id, "mistake", "admin_1")


MUTE = {"action": "mute", "targetType": "user", "targetId": "u_9", "durationSeconds": 3600,
        "policyRule": "spam"}  # fmt: skip


def test_timed_facts_are_judged_at_a_time(ledger: Ledger) -> None:
    applied = write(ledger, "moderation_action_applied", "moderation_action:ma_1", MUTE,
                    occurred_at=T0)  # fmt: skip
    during = ledger.state("sanctions", ["user", "u_9"], as_of="2026-12-01T10:30:00Z")
    [active] = during.value["sanctions"]["active"]
    assert active["action"] == "mute" and active["until"] == "2026-12-01T11:00:00.000000Z"
    assert during.as_of["judged_at"] == "2026-12-01T10:30:00.000000Z"
    after = ledger.state("sanctions", ["user", "u_9"], as_of="2026-12-01T11:00:00Z")
    assert after.value["sanctions"]["active"] == [] and len(after.value["sanctions"]["ended"]) == 1
    before = ledger.state("sanctions", ["user", "u_9"], as_of="2026-12-01T09:59:59Z")
    assert before.value["sanctions"] == {"active": [], "ended": []} and before.evidence == []
    lifted = write(ledger, "moderation_action_lifted", "moderation_action:ma_1",
                   {"liftReasonCode": "appeal", "liftedBy": "admin"},
                   occurred_at="2026-12-01T10:10:00Z")  # fmt: skip
    answer = ledger.state("sanctions", ["user", "u_9"], as_of="2026-12-01T10:30:00Z")
    [ended] = answer.value["sanctions"]["ended"]
    assert ended["ended_at"] == "2026-12-01T10:10:00.000000Z" and ended["ended_by"] == lifted.id
    assert seqs(answer) == [applied.seq, lifted.seq]
    # what was known before the lift was recorded: still muted at 10:30
    known = ledger.state("sanctions", ["user", "u_9"], at_seq=lifted.seq,
                         as_of="2026-12-01T10:30:00Z")  # fmt: skip
    assert len(known.value["sanctions"]["active"]) == 1


def test_a_lift_needs_an_active_action(ledger: Ledger) -> None:
    lift = {"liftReasonCode": "appeal", "liftedBy": "admin"}
    with pytest.raises(RuleViolationError, match="an earlier receipt about moderation_action:ma_7"):
        write(ledger, "moderation_action_lifted", "moderation_action:ma_7", lift)
    write(ledger, "moderation_action_applied", "moderation_action:ma_1", MUTE, occurred_at=T0)
    with pytest.raises(RuleViolationError, match="found 'no active fact'"):  # expired by then
        write(ledger, "moderation_action_lifted", "moderation_action:ma_1", lift,
              occurred_at="2026-12-01T12:00:00Z")  # fmt: skip
    write(ledger, "moderation_action_lifted", "moderation_action:ma_1", lift,
          occurred_at="2026-12-01T10:05:00Z")  # fmt: skip
    with pytest.raises(RuleViolationError, match="found 'no active fact'"):  # lifted already
        write(ledger, "moderation_action_lifted", "moderation_action:ma_1", lift,
              occurred_at="2026-12-01T10:06:00Z")  # fmt: skip


def test_sets_counters_and_latest_values(ledger: Ledger) -> None:
    write(ledger, "community_joined", "community:c_1", {"role": "member"}, owner_user_id="u_1")
    write(ledger, "community_joined", "community:c_1", {"role": "member"}, owner_user_id="u_2")
    write(ledger, "community_left", "community:c_1", {"role": "member"}, owner_user_id="u_1")
    members = ledger.state("community_membership", ["community:c_1"]).value["members"]
    assert list(members) == ["u_2"] and members["u_2"]["role"] == "member"
    write(ledger, "club_role_granted", "club:k_1", {"role": "admin"}, owner_user_id="u_2")
    write(ledger, "club_role_granted", "club:k_1", {"role": "leader"}, owner_user_id="u_2")
    write(ledger, "club_role_revoked", "club:k_1", {"role": "admin"}, owner_user_id="u_2")
    assert ledger.state("club_roles", ["club:k_1", "u_2"]).value == {"roles": ["leader"]}
    for code in ("nsfw", "selfharm"):
        write(
            ledger, "model_safety_blocked", "user:u_2", {"reasonCode": code, "policyVersion": "3"}
        )
    safety = ledger.state("model_safety", ["user:u_2"]).value
    assert safety["blocks"] == 2 and safety["lastReasonCode"] == "selfharm"
    write(
        ledger,
        "expertise_level_asserted",
        "expertise:u_2:music",
        {"level": "local", "source": "derived"},
    )
    write(
        ledger,
        "expertise_level_asserted",
        "expertise:u_2:music",
        {"level": "city", "source": "derived"},
    )
    assert ledger.state("expertise_level", ["expertise:u_2:music"]).value["level"] == "city"


def test_why_lists_every_state_about_an_entity(ledger: Ledger) -> None:
    write(ledger, "age_verification_submitted", "user:u_9", {"method": "document", "version": "2"})
    write(ledger, "moderation_action_applied", "moderation_action:ma_1", MUTE, occurred_at=T0)
    write(ledger, "club_role_granted", "club:k_1", {"role": "admin"}, owner_user_id="u_9")
    # Named only in a state's value: a community's member, the user who asked for a refund.
    write(ledger, "community_joined", "community:c_1", {"role": "member"}, owner_user_id="u_9")
    write(ledger, "community_joined", "community:c_2", {"role": "member", "userId": "u_9"})
    write(ledger, "community_joined", "community:c_3", {"role": "member"}, owner_user_id="u_1")
    write(ledger, "refund_requested", "refund:rf_9", {**REQUESTED, "requestedByUserId": "u_9"})
    found = {(a.state, a.key) for a in ledger.why("user:u_9")}
    assert found == {("age_verification", ("user:u_9",)), ("sanctions", ("user", "u_9")),
                     ("club_roles", ("club:k_1", "u_9")),
                     ("community_membership", ("community:c_1",)),
                     ("community_membership", ("community:c_2",)),
                     ("refund", ("refund:rf_9",))}  # fmt: skip
    assert ledger.why("user:nobody") == []
    before = [a.to_dict() for a in ledger.why("user:u_9")]
    ledger.rebuild_states()
    assert [a.to_dict() | {"as_of": None} for a in ledger.why("user:u_9")] == [
        b | {"as_of": None} for b in before
    ]


def test_a_reader_sees_states_only_from_receipts_it_may_read(ledger: Ledger) -> None:
    write(ledger, "community_joined", "community:c_1", {"role": "member"}, owner_user_id="u_1")
    write(ledger, "community_joined", "community:c_1", {"role": "member"}, owner_user_id="u_2")
    mine = ledger.state("community_membership", ["community:c_1"], visible_to="u_1")
    assert list(mine.value["members"]) == ["u_1"] and len(mine.evidence) == 1
    ledger.grant("community:c_1", "u_1")
    shared = ledger.state("community_membership", ["community:c_1"], visible_to="u_1")
    assert sorted(shared.value["members"]) == ["u_1", "u_2"]


def test_bad_questions_are_named(ledger: Ledger) -> None:
    with pytest.raises(Exception, match="unknown state 'refnd'") as caught:
        ledger.state("refnd", ["refund:r"])
    assert "did you mean 'refund'?" in caught.value.errors[0].message  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as wrong:
        ledger.state("club_roles", ["club:k_1"])
    assert wrong.value.errors[0].message == "expected club user"
    with pytest.raises(ValidationError, match="bad --as-of"):
        ledger.state("refund", ["refund:r"], as_of="yesterday")


def test_known_at_is_what_was_recorded_by_then(ledger_url: str) -> None:
    from receipts import Catalog
    from receipts.store import open_store

    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    minutes = (start + timedelta(minutes=i) for i in itertools.count())  # one tick a stamp
    catalog = Catalog.load()
    with Ledger(open_store(ledger_url, catalog), catalog, clock=lambda: next(minutes)) as ledger:
        requested, approved = refund(ledger)
        assert requested.recorded_at < approved.recorded_at
        answer = ledger.state("refund", ["refund:rf_1"], known_at=requested.recorded_at)
        assert answer.value["status"] == "requested" and seqs(answer) == [requested.seq]
        assert answer.as_of["recorded_at"] == requested.recorded_at
        later = ledger.state("refund", ["refund:rf_1"], known_at=approved.recorded_at)
        assert later.value["status"] == "approved"
        assert seqs(ledger.state("refund", ["refund:rf_1"], known_at="2000-01-01T00:00:00Z")) == []


def test_racing_writers_never_both_pass_a_rule(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as setup:
        write(setup, "refund_requested", "refund:rf_1", REQUESTED)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def decide(event_type: str) -> None:
        with Ledger.open(ledger_url) as ledger:
            start.wait()
            try:
                write(ledger, event_type, "refund:rf_1", {"approvedBy": "policy"})
                outcomes.append("ok")
            except RuleViolationError:
                outcomes.append("refused")

    threads = [
        threading.Thread(target=decide, args=(t,)) for t in ("refund_approved", "refund_denied")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    with Ledger.open(ledger_url) as ledger:
        assert ledger.state("refund", ["refund:rf_1"]).value["status"] in ("approved", "denied")


def test_rules_switched_off_for_a_backfill(ledger_url: str) -> None:
    with Ledger.open(ledger_url, rules=False, rules_off_reason="2025 refunds") as backfill:
        done = write(backfill, "refund_completed", "refund:rf_1", {"providerRefundId": "re_1"})
        answer = backfill.state("refund", ["refund:rf_1"])
        write(backfill, "refund_requested", "refund:rf_0", REQUESTED)
        switch = backfill.state("lifecycle_rules", ["ledger:lifecycle_rules"])
    # The switch is recorded in the transaction of the first receipt written unchecked, just
    # before it, and its end when the writer closes.
    assert (switch.value["status"], switch.value["reason"]) == ("suspended", "2025 refunds")
    assert [e["seq"] for e in switch.evidence] == [done.seq - 1]
    suspension = switch.evidence[0]["id"]
    assert switch.value["openSuspensions"] == [suspension]
    assert answer.value["status"] == "completed"
    assert answer.violations == [{"seq": done.seq, "id": done.id, "logical_id": done.logical_id,
                                  "event_type": "refund_completed", "found": "none",
                                  "allowed": ["approved"]}]  # fmt: skip
    with Ledger.open(ledger_url) as ledger:  # a known violation does not block what follows
        write(ledger, "refund_requested", "refund:rf_2", REQUESTED)
        assert ledger.state("refund", ["refund:rf_1"]).violations == answer.violations
        switch = ledger.state("lifecycle_rules", ["ledger:lifecycle_rules"])
        assert switch.value["status"] == "resumed" and switch.value["openSuspensions"] == []
        assert switch.value["suspensions"] == 1 and len(switch.evidence) == 2
        resumed = ledger.get(switch.evidence[1]["id"])
        assert resumed.payload["suspension"] == suspension
        assert resumed.payload["writer"].endswith(f"(pid {os.getpid()})")
    twice = Ledger.open(ledger_url, rules=False)
    write(twice, "refund_requested", "refund:rf_4", REQUESTED)
    twice.close()
    twice.close()  # nothing more: one suspension, one resumption
    # A writer that never writes records nothing; one that dies leaves its suspension open.
    with Ledger.open(ledger_url, rules=False) as reader:
        reader.state("refund", ["refund:rf_1"])
    crashed = Ledger.open(ledger_url, rules=False)
    write(crashed, "refund_requested", "refund:rf_3", REQUESTED)
    crashed.store.close()  # no resumption recorded
    with Ledger.open(ledger_url) as ledger:
        switch = ledger.state("lifecycle_rules", ["ledger:lifecycle_rules"])
        assert switch.value["status"] == "suspended" and switch.value["suspensions"] == 3
        assert len(switch.value["openSuspensions"]) == 1


def test_the_index_rebuilt_is_the_index_maintained(ledger: Ledger) -> None:
    refund(ledger)
    write(ledger, "moderation_action_applied", "moderation_action:ma_1", MUTE, occurred_at=T0)
    write(
        ledger,
        "moderation_action_lifted",
        "moderation_action:ma_1",
        {"liftReasonCode": "appeal", "liftedBy": "admin"},
        occurred_at="2026-12-01T10:10:00Z",
    )
    before = [a.to_dict() for a in ledger.why("user:u_9")]
    assert ledger.rebuild_states() == ledger.size()
    assert [a.to_dict() | {"as_of": None} for a in ledger.why("user:u_9")] == [
        b | {"as_of": None} for b in before
    ]


# --- the fold against a naive reference, on generated histories ------------------------------

REFUND_STEPS = {  # event type -> (allowed from, to, {field: payload key})
    "refund_requested": (("none", "requested", "denied"), "requested", {k: k for k in REQUESTED}),
    "refund_approved": (
        ("requested",),
        "approved",
        {"decidedBy": "approvedBy", "policyRule": "policyRule"},
    ),
    "refund_denied": (
        ("requested",),
        "denied",
        {"decidedBy": "approvedBy", "policyRule": "policyRule"},
    ),
    "refund_completed": (("approved",), "completed", {"providerRefundId": "providerRefundId"}),
    "refund_failed": (("approved",), "failed", {"errorCode": "errorCode"}),
}
PAYLOADS = {
    "refund_requested": lambda n: {**REQUESTED, "paymentIntentId": f"pi_{n}"},
    "refund_approved": lambda n: {"approvedBy": ["policy", "admin"][n % 2]},
    "refund_denied": lambda n: {"approvedBy": "admin"},
    "refund_completed": lambda n: {"providerRefundId": f"re_{n}"},
    "refund_failed": lambda n: {"errorCode": f"e_{n}"},
}


def reference_refund(ledger: Ledger, entity: str) -> tuple[dict[str, Any], list[int], int]:
    """The refund state the slow, obvious way: the store's current view of the entity (its own
    SQL), each live head at the place of its logical event's first receipt, applied in turn."""
    heads = ledger.current(entity, include_voided=True)
    placed = sorted(heads, key=lambda h: ledger.get(h.logical_id).seq)
    value: dict[str, Any] = {"status": "none"}
    violations = 0
    for head in placed:
        if head.op == "void":
            continue
        allowed, to, fields = REFUND_STEPS[head.event_type]
        violations += value["status"] not in allowed
        value["status"], value["since"] = to, head.occurred_at
        value.update({k: head.payload[p] for k, p in fields.items() if p in head.payload})
    return value, [h.seq for h in placed], violations


@hypothesis.given(steps=hypothesis.strategies.lists(
    hypothesis.strategies.tuples(
        hypothesis.strategies.sampled_from(["assert", "amend", "void", "restate"]),
        hypothesis.strategies.sampled_from(sorted(REFUND_STEPS)),
        hypothesis.strategies.integers(0, 50),
    ), min_size=1, max_size=12,
))  # fmt: skip
@hypothesis.settings(
    max_examples=40, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
def test_the_fold_is_the_reference_fold(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str, int]]
) -> None:
    path = tmp_path_factory.mktemp("fold") / "l.db"
    entity = "refund:rf_h"
    with Ledger.open(path, rules=False) as ledger:
        for op, event_type, n in steps:
            heads = ledger.current(entity, include_voided=True)
            live = [h for h in heads if h.op != "void"]
            dead = [h for h in heads if h.op == "void"]
            minute = f"2026-12-01T10:{n:02d}:00Z"
            if (
                op == "assert"
                or (op in ("amend", "void") and not live)
                or (op == "restate" and not dead)
            ):
                write(ledger, event_type, entity, PAYLOADS[event_type](n), occurred_at=minute)
            elif op == "amend":
                head = live[n % len(live)]
                ledger.amend(head.id, PAYLOADS[head.event_type](n), occurred_at=minute)
            elif op == "void":
                ledger.void(live[n % len(live)].id, "generated", "tester")
            else:
                head = dead[n % len(dead)]
                ledger.restate(head.id, PAYLOADS[head.event_type](n))
            answer = ledger.state("refund", [entity])  # incremental: after every write
            value, evidence, violations = reference_refund(ledger, entity)
            assert answer.value == value
            assert seqs(answer) == evidence
            assert len(answer.violations) == violations
        final = answer.to_dict()
        ledger.rebuild_states()
        rebuilt = ledger.state("refund", [entity]).to_dict()
        assert rebuilt | {"as_of": None} == final | {"as_of": None}


def test_an_answer_proves_itself_offline(ledger: Ledger) -> None:
    from receipts import VerificationError
    from receipts.answer import AnswerBundle
    from receipts.tlog import Signer

    signer = Signer.generate("example.com/doors")
    refund(ledger)
    ledger.checkpoint(signer)
    write(ledger, "refund_completed", "refund:rf_1", {"providerRefundId": "re_1"})  # after it
    bundle = ledger.prove_state("refund", ["refund:rf_1"])
    assert bundle.answer["value"]["status"] == "approved"  # as of the checkpoint
    assert bundle.answer["as_of"]["seq"] == 2
    checked = AnswerBundle.from_json(bundle.to_json()).verify(signer.verifier())
    assert checked["verified"] and checked["receipts"] == 2 and checked["tree_size"] == 2
    assert checked["value"]["status"] == "approved"
    # a bundle whose answer was changed, or whose receipt was changed, does not verify
    doc = bundle.to_dict()
    doc["answer"]["value"]["status"] = "completed"
    forged = AnswerBundle.from_json(orjson.dumps(doc))
    with pytest.raises(VerificationError, match="fold into another value"):
        forged.verify(signer.verifier())
    doc = bundle.to_dict()
    doc["receipts"][1]["entry"]["payload"]["approvedBy"] = "admin"
    with pytest.raises(VerificationError, match="inclusion proof fails"):
        AnswerBundle.from_json(orjson.dumps(doc)).verify(signer.verifier())
    doc = bundle.to_dict()
    del doc["receipts"][1]  # leaving out a receipt changes the answer
    with pytest.raises(VerificationError, match="another value"):
        AnswerBundle.from_json(orjson.dumps(doc)).verify(signer.verifier())
    other = Signer.generate("example.com/doors")
    with pytest.raises(VerificationError):
        bundle.verify(other.verifier())


def test_the_command_line_answers_proves_and_refuses(tmp_path: Path) -> None:
    from test_cli import Cli

    cli = Cli(tmp_path, tmp_path / "demo.db")
    assert cli("demo").code == 0
    answer = cli("state", "refund", "refund:rf_88")
    assert answer.code == 0 and answer.json["value"]["status"] == "completed"
    muted = cli("state", "sanctions", "user", "user_spam_66", "--as-of", "2026-11-19T08:00:00Z")
    assert [s["action"] for s in muted.json["value"]["sanctions"]["active"]] == ["mute"]
    why = cli("why", "user:user_7f3a")
    assert {a["state"] for a in why.receipts} >= {"age_verification", "device_capabilities"}
    proved = cli("state", "refund", "refund:rf_88", "--prove")
    assert proved.code == 0, proved.err
    (tmp_path / "answer.json").write_text(proved.out)
    key = cli("keys", "show").out.strip()
    checked = cli("verify-answer", str(tmp_path / "answer.json"), "--key", key, db=False)
    assert checked.code == 0, checked.err
    assert checked.json["verified"] is True and checked.json["value"]["status"] == "completed"
    refused = cli("append", stdin=orjson.dumps({
        "domain": "payments", "event_type": "refund_completed", "entity_type": "refund",
        "entity_id": "rf_new", "payload": {}}).decode())  # fmt: skip
    assert refused.code == 1 and refused.error["code"] == "rule_violated"
    assert refused.error["rule"] == "refund"
    backfill = cli("--no-rules", "append", stdin=orjson.dumps({
        "domain": "payments", "event_type": "refund_completed", "entity_type": "refund",
        "entity_id": "rf_new", "payload": {}}).decode())  # fmt: skip
    assert backfill.code == 0, backfill.err
    assert cli("state", "refund", "refund:rf_new").json["violations"][0]["found"] == "none"
    switched = cli("state", "lifecycle_rules", "ledger:lifecycle_rules").json
    assert [e["event_type"] for e in switched["evidence"]] == [
        "lifecycle_rules_suspended", "lifecycle_rules_resumed"]  # fmt: skip
    assert switched["value"]["reason"] == "receipts --no-rules append"
    assert len(cli("catalog", "states").json) == 22


def doors_table_rows() -> list[str]:
    """The rows docs/doors.md must hold, one per state of the built-in catalog."""
    from receipts.catalog import Catalog

    rows = []
    for s in sorted(Catalog.load().states.values(), key=lambda s: (s.domain, s.name)):
        events = ", ".join(f"`{e}`" for e in s.steps)
        key = " ".join(f"`{k}`" for k in s.key_names)
        rule = "yes" if s.rules else ""
        rows.append(
            f"| `{s.name}` | {s.domain} | {s.kind} | {key} | {events} | {s.values} | {rule} |"
        )
    return rows


def test_the_doors_page_lists_every_state() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "doors.md").read_text()
    missing = [row for row in doors_table_rows() if row not in page.splitlines()]
    assert not missing, "docs/doors.md lacks (or has stale) rows:\n" + "\n".join(missing)


def test_the_answer_bundle_parser_round_trips_and_names_what_is_wrong(ledger: Ledger) -> None:
    from receipts import FormatError
    from receipts.answer import AnswerBundle
    from receipts.tlog import Signer

    refund(ledger)
    ledger.checkpoint(Signer.generate("example.com/doors"))
    bundle = ledger.prove_state("refund", ["refund:rf_1"])
    again = AnswerBundle.from_json(bundle.to_json())
    assert again == bundle and again.to_json() == bundle.to_json()
    with pytest.raises(FormatError, match="answer bundle is not JSON"):
        AnswerBundle.from_json(b"{")
    with pytest.raises(FormatError, match="answer bundle must be a JSON object") as caught:
        AnswerBundle.from_json(b"[]")
    assert caught.value.errors[0].message == "receipts/answer-bundle/v1"
    doc = bundle.to_dict() | {"format": "v0", "extra": 1}
    del doc["state"]
    with pytest.raises(FormatError, match="malformed answer bundle") as caught:
        AnswerBundle.from_json(orjson.dumps(doc))
    assert [e.pointer for e in caught.value.errors] == ["/extra", "/format", "/state"]
    doc = bundle.to_dict()
    del doc["receipts"][0]["proof"]
    with pytest.raises(FormatError) as caught:
        AnswerBundle.from_json(orjson.dumps(doc))
    assert caught.value.errors[0].pointer == "/receipts/0/proof"


# --- the index: filed in the write transaction, in SQL by entity, made again from nothing ------

AWKWARD_IDS = ["plain-1", 'quote"back\\slash', "tab\tnew\nline\x01\x1f\x7f", "é 😀 \u2028 ünï"]


def index_rows(url: str) -> list[tuple[Any, ...]]:
    """The index's rows, then the mentions' (entity, state, key)."""
    index = "SELECT state, state_key, seq, logical_id::text FROM {}ledger_state_index_v0 "
    index += "ORDER BY 3, 1, 2"
    mentions = "SELECT entity, state, state_key FROM {}ledger_state_mentions_v0 ORDER BY 1, 2, 3"
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            return [tuple(r) for sql in (index, mentions)
                    for r in conn.execute(sql.format("public."))]  # fmt: skip
    with sqlite3.connect(url) as conn:
        return [tuple(r) for sql in (index, mentions)
                for r in conn.execute(sql.format("").replace("::text", ""))]  # fmt: skip


def test_every_state_files_alike_at_write_after_a_direct_insert_and_rebuilt(
    ledger_url: str,
) -> None:
    """Every catalog type's example under awkward entity ids (quotes, backslashes, control
    characters, astral and line-separator characters), with revisions: the rows the write path
    files (Python for payload keys, SQL for entity keys) are the rows a rebuild files from
    nothing, and each key is the RFC 8785 array the fold looks up."""
    ids = list(AWKWARD_IDS)
    with Ledger.open(ledger_url, rules=False) as ledger:
        catalog = ledger.catalog
        for n, entity_id in enumerate(AWKWARD_IDS):
            batch = [
                {
                    "domain": t.domain,
                    "event_type": t.name,
                    "entity_type": entity_type,
                    "entity_id": entity_id,
                    "payload": dict(t.example or {}),
                    "owner_user_id": "u_1",
                }
                for t in catalog
                for entity_type in t.entity_types[n % len(t.entity_types) :][:1]
            ]
            ledger.append_batch(batch, producer="service_role_pipeline")
        # What a value may name, as the fold reads it: the first of userId and the owner that
        # is present and not null, if it is a non-empty string (a number names no one).
        for n, user in enumerate([7, None, "", {"x": 1}, 'u "q"', "é", "v_1"]):
            payload = {"role": "member", "userId": user} if n != 6 else {"role": "member"}
            owner = "o_1" if n % 2 else None
            ledger.append({"domain": "expertise", "event_type": "community_joined",
                           "entity_type": "community", "entity_id": f"c_{n}",
                           "owner_user_id": owner, "payload": payload})  # fmt: skip
        heads = ledger.current(f"moderation_action:{AWKWARD_IDS[1]}")
        lift = next(h for h in heads if h.event_type == "moderation_action_lifted")
        applied = next(h for h in heads if h.event_type == "moderation_action_applied")
        ledger.amend(applied.id, {**applied.payload, "targetId": 'u "9"'})
        if ledger_url.startswith("postgresql"):  # filed by the next write's catch-up
            direct = {"domain": "payments", "event_type": "refund_requested",
                      "entity_type": "refund", "entity_id": "direct\t\"1\"",
                      "payload": REQUESTED}  # fmt: skip
            with psycopg.connect(ledger_url, autocommit=True) as conn:
                insert_sql(conn, direct)
            ids.append(direct["entity_id"])
        ledger.void(lift.id, "wrong", "admin")
        maintained = index_rows(ledger_url)
        filed = [row for row in maintained if len(row) == 4]
        assert {s for s, _, _, _ in filed} == set(catalog.states)
        assert {row[1] for row in maintained if len(row) == 3} == {
            s.name for s in catalog.states.values() if s.about
        }
        for state, text, _, _ in filed:
            assert text == rfc8785.dumps(orjson.loads(text)).decode(), (state, text)
        for entity_id in ids:  # looked up by the key the fold makes in Python
            assert ledger.state("refund", [f"refund:{entity_id}"]).evidence
        named = {(row[0], row[2]) for row in maintained if len(row) == 3}
        assert {e for e, key in named if key.startswith('["community:c_')} == {
            "user:o_1", 'user:u "q"', "user:é"}  # fmt: skip
        assert ledger.rebuild_states() == ledger.size()
        assert index_rows(ledger_url) == maintained


@hypothesis.given(parts=hypothesis.strategies.lists(hypothesis.strategies.text(), max_size=3))
def test_a_key_is_stored_as_its_rfc8785_text(parts: list[str]) -> None:
    from receipts.fold import key_text
    from receipts.store.sql import SQLITE

    expected = rfc8785.dumps(parts).decode()
    assert key_text(tuple(parts)) == expected
    if len(parts) == 1 and "\x00" not in parts[0]:  # SQLite's json_quote stops at NUL
        with sqlite3.connect(":memory:") as conn:
            quoted = conn.execute(f"SELECT {SQLITE.json_string.format('?')}", parts).fetchone()
        assert f"[{quoted[0]}]" == expected
