"""Medication reconciliation rules (issue 12, part 1; the domain rules only so far)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from iopcare.careplan.domain import medications as meds
from iopcare.kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

RECEIVED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SERTRALINE = meds.Medication(
    "312940", "sertraline 50 MG Oral Tablet", "50 mg", "oral", "daily", date(2026, 11, 20)
)
BUPRENORPHINE = meds.Medication(
    "1010600",
    "buprenorphine 8 MG / naloxone 2 MG Sublingual Film",
    "8 mg",
    "sublingual",
    "daily",
    date(2026, 11, 25),
)


def _item(medication: meds.Medication = SERTRALINE) -> meds.Item:
    return meds.Item("i1", medication, RECEIVED)


def test_a_medication_needs_rxnorm_status_dose_and_a_stop_after_its_start() -> None:
    meds.check_medication(SERTRALINE)
    bad = meds.Medication("sertraline", None, None, None, None, None, date(2026, 1, 1), "taking")
    with pytest.raises(InvalidArgument) as caught:
        meds.check_medication(bad)
    assert {v.field for v in caught.value.violations} == {"medication.code", "medication.status"}
    backwards = meds.Medication(
        "312940", None, "50 mg", "oral", "daily", date(2026, 2, 1), date(2026, 1, 1)
    )
    with pytest.raises(InvalidArgument) as caught:
        meds.check_medication(backwards)
    assert [v.field for v in caught.value.violations] == ["medication.effectivePeriod.end"]


@pytest.mark.parametrize("role", ["therapist", "dietitian", "nurse", "case-manager", "admin"])
def test_only_a_prescriber_resolves_an_item(role: str) -> None:
    with pytest.raises(PermissionDenied):
        meds.resolve(_item(), meds.CONTINUE, role=role, by="Practitioner/x", at=RECEIVED)


def test_continue_change_and_stop_are_recorded_with_who_when_and_why() -> None:
    at = RECEIVED + timedelta(hours=3)
    kept = meds.resolve(_item(), meds.CONTINUE, role="psychiatrist", by="Practitioner/psy-1", at=at)
    assert (kept.decision, kept.decided_by, kept.decided_at) == (
        "continue",
        "Practitioner/psy-1",
        at,
    )
    lower = meds.Medication(
        "312938", "sertraline 25 MG Oral Tablet", "25 mg", "oral", "daily", date(2026, 12, 1)
    )
    changed = meds.resolve(
        _item(),
        meds.CHANGE,
        role="physician",
        by="Practitioner/doc-1",
        at=at,
        reason="GI upset",
        changed_to=lower,
    )
    stopped = meds.resolve(
        meds.Item("i3", SERTRALINE, RECEIVED),
        meds.STOP,
        role="psychiatrist",
        by="p",
        at=at,
        reason="no longer needed",
    )
    assert meds.active_list([kept, changed, stopped]) == [SERTRALINE, lower]


def test_change_and_stop_need_a_reason_and_a_change_its_new_dose() -> None:
    with pytest.raises(InvalidArgument) as caught:
        meds.resolve(_item(), meds.CHANGE, role="psychiatrist", by="p", at=RECEIVED)
    assert {v.field for v in caught.value.violations} == {"reason", "changed_to"}
    with pytest.raises(InvalidArgument):
        meds.resolve(_item(), meds.STOP, role="psychiatrist", by="p", at=RECEIVED)
    with pytest.raises(InvalidArgument):
        meds.resolve(_item(), "pause", role="psychiatrist", by="p", at=RECEIVED)


def test_resolving_again_is_a_retry_and_another_decision_is_refused() -> None:
    first = meds.resolve(_item(), meds.CONTINUE, role="psychiatrist", by="p", at=RECEIVED)
    assert meds.resolve(first, meds.CONTINUE, role="psychiatrist", by="q", at=RECEIVED) == first
    with pytest.raises(FailedPrecondition) as caught:
        meds.resolve(first, meds.STOP, role="psychiatrist", by="q", at=RECEIVED, reason="x")
    assert caught.value.reason == "ALREADY_RECONCILED"


def test_unresolved_items_past_48_hours_are_overdue() -> None:
    pending = [_item(), meds.Item("i2", BUPRENORPHINE, RECEIVED)]
    assert meds.reconciliation_status(pending, RECEIVED + timedelta(hours=47)) == "pending"
    assert meds.reconciliation_status(pending, RECEIVED + timedelta(hours=49)) == "overdue"
    assert len(meds.overdue(pending, RECEIVED + timedelta(hours=49))) == 2
    done = [
        meds.resolve(i, meds.CONTINUE, role="psychiatrist", by="p", at=RECEIVED) for i in pending
    ]
    assert meds.reconciliation_status(done, RECEIVED + timedelta(hours=49)) == "reconciled"
    assert (
        meds.reconciliation_status(pending, RECEIVED + timedelta(hours=13), timedelta(hours=12))
        == "overdue"
    )


def test_medications_for_opioid_or_alcohol_use_disorder_are_part2() -> None:
    assert meds.is_part2(BUPRENORPHINE)
    assert meds.is_part2(meds.Medication("6813", None, "60 mg", "oral", "daily", date(2026, 1, 1)))
    assert not meds.is_part2(SERTRALINE)


def test_a_dose_names_its_unit() -> None:
    unitless = meds.Medication("312940", None, "50", "oral", "daily", date(2026, 11, 20))
    with pytest.raises(InvalidArgument) as caught:
        meds.check_medication(unitless)
    assert [v.field for v in caught.value.violations] == [
        "medication.dosage.doseAndRate.doseQuantity.unit"
    ]
    assert meds.has_unit("50 mg") and not meds.has_unit("50")


def test_continuing_an_inbound_medication_needs_one_the_list_may_hold() -> None:
    undosed = meds.Medication("1483744", "naltrexone 50 MG", None, None, None, None)
    with pytest.raises(InvalidArgument) as caught:
        meds.resolve(
            meds.Item("i", undosed, RECEIVED),
            meds.CONTINUE,
            role="psychiatrist",
            by="p",
            at=RECEIVED,
        )
    assert [v.field for v in caught.value.violations] == ["medication.dosage.doseAndRate"]
    # Without a start of its own it is continued from the day of the decision.
    no_start = meds.Medication("312940", None, "50 mg", "oral", "daily", None)
    kept = meds.resolve(
        meds.Item("j", no_start, RECEIVED), meds.CONTINUE, role="physician", by="d", at=RECEIVED
    )
    assert kept.resolved


def test_fhir_statements_and_requests_read_as_the_rules_read_them() -> None:
    from iopcare.careplan import medication_fhir as mf

    dosage = {
        "route": {"text": "sublingual"},
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": 8, "unit": "mg", "code": "mg"}}],
    }
    concept = {"coding": [{"system": meds.RXNORM, "code": "1010600", "display": "buprenorphine"}]}
    statement = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": concept,
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2026-11-25"},
        "dosage": [dosage],
    }
    read = mf.medication_of(statement)
    assert (read.rxnorm, read.dose, read.route, read.frequency, read.start) == (
        "1010600",
        "8 mg",
        "sublingual",
        "1 per 1 d",
        date(2026, 11, 25),
    )
    assert mf.patient_of(statement) == "p1"
    labelled = mf.with_part2_label(statement, read)
    assert labelled["meta"]["security"] == [meds.PART2_LABEL]
    assert mf.with_part2_label(labelled, read) == labelled  # labels only once
    request = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://example.org", "code": "x"}]},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-11-27",
        "dosageInstruction": [dosage],
    }
    read = mf.medication_of(request)
    assert (read.rxnorm, read.status, read.start) == (None, "intended", date(2026, 11, 27))
    stopped = mf.statement_from(
        statement,
        "p1",
        status="stopped",
        on=date(2026, 11, 28),
        reason="tapered",
        by="P/1",
        plan_id="plan",
    )
    assert stopped["effectivePeriod"] == {"start": "2026-11-25", "end": "2026-11-28"}
    assert stopped["statusReason"] == [{"text": "tapered"}]
