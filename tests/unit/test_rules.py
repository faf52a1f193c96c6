"""Domain rules of the skeleton: what a new plan and a team message must be."""

from __future__ import annotations

import pytest

from iopcare.careplan.domain.model import Activity, CarePlanDraft, check_new_plan
from iopcare.kit.errors import InvalidArgument
from iopcare.notes.domain.messages import (
    NewMessage,
    check_message,
    plan_created_text,
    sessions_proposed_text,
)


def _draft(**changes: object) -> CarePlanDraft:
    values: dict[str, object] = {
        "patient_id": "p1",
        "status": "active",
        "intent": "plan",
        "title": "IOP",
        "activities": [],
    }
    values.update(changes)
    return CarePlanDraft(**values)  # type: ignore[arg-type]


def test_a_draft_or_active_plan_for_a_patient_can_be_created() -> None:
    check_new_plan(_draft())
    check_new_plan(_draft(status="draft"))


def test_every_reason_a_plan_cannot_be_created_is_reported_at_once() -> None:
    bad = _draft(
        patient_id=None,
        status="completed",
        intent="wish",
        activities=[Activity(0, None, None, "sleeping", False)],
    )
    with pytest.raises(InvalidArgument) as caught:
        check_new_plan(bad, field_prefix="fhir_json.")
    assert sorted(v.field for v in caught.value.violations) == [
        "fhir_json.CarePlan.activity[0].detail.status",
        "fhir_json.CarePlan.intent",
        "fhir_json.CarePlan.status",
        "fhir_json.CarePlan.subject",
    ]


def _message(**changes: object) -> NewMessage:
    values: dict[str, object] = {
        "patient_id": "p1",
        "text": "Seen today.",
        "priority": "routine",
        "category": "update",
        "sender": "Practitioner/t1",
    }
    values.update(changes)
    return NewMessage(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"text": "   "}, "text"),
        ({"text": "x" * 10_001}, "text"),
        ({"priority": "whenever"}, "priority"),
        ({"category": "gossip"}, "category"),
    ],
)
def test_messages_must_have_text_a_priority_and_a_category(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_message(_message(**changes))
    assert [v.field for v in caught.value.violations] == [field]


def test_system_message_texts_read_naturally() -> None:
    assert (
        plan_created_text("Adult IOP", 1)
        == "Care plan created \u201cAdult IOP\u201d with 1 activity."
    )
    assert plan_created_text(None, 4) == "Care plan created with 4 activities."
    assert (
        sessions_proposed_text(3) == "3 sessions proposed from the care plan; please confirm them."
    )
