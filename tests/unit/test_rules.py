"""Domain rules of the skeleton: what a new plan and a team message must be."""

from __future__ import annotations

import pytest

from iopcare.careplan.domain.model import (
    Activity,
    CarePlanDraft,
    apply_mask,
    check_new_plan,
    check_revision,
)
from iopcare.kit.errors import FailedPrecondition, InvalidArgument
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
        "activities": [Activity(0, "76168009", "Group psychotherapy", "scheduled", True)],
        "care_teams": 1,
        "goals": 1,
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


def test_a_plan_cannot_be_active_without_a_team_a_goal_and_an_activity() -> None:
    check_new_plan(_draft(status="draft", care_teams=0, goals=0, activities=[]))
    with pytest.raises(FailedPrecondition) as caught:
        check_new_plan(_draft(care_teams=0, goals=0, activities=[]))
    assert caught.value.reason == "PLAN_NOT_READY"
    assert caught.value.metadata["missing"] == (
        "a care team, at least one goal, at least one activity"
    )


@pytest.mark.parametrize(
    ("before", "after", "change"),
    [
        ("draft", "draft", "update"),
        ("draft", "active", "activate"),
        ("active", "on-hold", "suspend"),
        ("on-hold", "active", "resume"),
        ("active", "completed", "complete"),
        ("on-hold", "revoked", "revoke"),
        ("active", "entered-in-error", "enter-in-error"),
    ],
)
def test_the_plan_lifecycle_names_each_transition(before: str, after: str, change: str) -> None:
    assert check_revision(_draft(status=before), _draft(status=after)) == change


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        ("completed", "active", "PLAN_CLOSED"),
        ("revoked", "revoked", "PLAN_CLOSED"),
        ("entered-in-error", "draft", "PLAN_CLOSED"),
        ("active", "draft", "INVALID_TRANSITION"),
        ("draft", "completed", "INVALID_TRANSITION"),
        ("draft", "on-hold", "INVALID_TRANSITION"),
    ],
)
def test_closed_plans_and_impossible_transitions_are_refused(
    before: str, after: str, reason: str
) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        check_revision(_draft(status=before), _draft(status=after))
    assert caught.value.reason == reason


def test_activating_needs_the_same_readiness_as_creating_active() -> None:
    with pytest.raises(FailedPrecondition, match="needs a care team"):
        check_revision(_draft(status="draft"), _draft(status="active", care_teams=0))


def test_a_revision_cannot_move_the_plan_to_another_patient() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_revision(_draft(), _draft(patient_id="p2"))
    assert [v.field for v in caught.value.violations] == ["fhir_json.CarePlan.subject"]


def test_an_update_mask_takes_only_the_named_elements() -> None:
    current = {
        "resourceType": "CarePlan",
        "status": "draft",
        "title": "Old",
        "note": [{"text": "x"}],
    }
    revised = {"resourceType": "CarePlan", "status": "active", "title": "New"}
    assert apply_mask(current, revised, []) == revised
    assert apply_mask(current, revised, ["title", "note"]) == {
        "resourceType": "CarePlan",
        "status": "draft",
        "title": "New",
    }
    with pytest.raises(InvalidArgument) as caught:
        apply_mask(current, revised, ["title", "subject", "id"])
    assert [v.field for v in caught.value.violations] == [
        "update_mask.paths[1]",
        "update_mask.paths[2]",
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


def _activity(index: int, code: str, detail: str = "") -> Activity:
    return Activity(index, code, None, "scheduled", True, fingerprint=f"{code}:{detail}")


def test_only_the_owning_discipline_or_the_psychiatrist_changes_an_activity() -> None:
    from iopcare.careplan.domain.model import check_activity_changes
    from iopcare.kit.errors import PermissionDenied

    group, nutrition = _activity(0, "76168009"), _activity(1, "61310001")
    current = _draft(activities=[group, nutrition])
    moved_nutrition = _draft(activities=[group, _activity(1, "61310001", "Thursdays now")])
    check_activity_changes(current, moved_nutrition, "dietitian")
    check_activity_changes(current, moved_nutrition, "psychiatrist")
    with pytest.raises(PermissionDenied) as caught:
        check_activity_changes(current, moved_nutrition, "therapist")
    assert caught.value.reason == "NOT_ACTIVITY_OWNER"
    dropped_group = _draft(activities=[nutrition])
    with pytest.raises(PermissionDenied, match="only the therapist"):
        check_activity_changes(current, dropped_group, "dietitian")
    # A free-form activity (no owning discipline) may be added by anyone on the team.
    check_activity_changes(
        current, _draft(activities=[group, nutrition, _activity(2, "x")]), "nurse"
    )
    # Re-ordering changes nothing.
    check_activity_changes(current, _draft(activities=[nutrition, group]), "nurse")


def test_attendance_is_counted_per_activity() -> None:
    from iopcare.careplan.domain.progress import attendance_by_activity

    counts = attendance_by_activity(
        [("Group therapy", "fulfilled"), ("Group therapy", "noshow"), ("Nutrition", "cancelled")]
    )
    assert (counts["Group therapy"].attended, counts["Group therapy"].missed) == (1, 1)
    assert counts["Nutrition"].cancelled == 1
