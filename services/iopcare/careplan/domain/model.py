"""The treatment plan and its rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from iopcare.careplan import codes
from iopcare.kit.errors import FieldViolations


@dataclass(frozen=True)
class Activity:
    """One intervention of the plan (group therapy, individual therapy, ...)."""

    index: int
    code: str | None
    display: str | None
    status: str | None
    has_timing: bool


@dataclass(frozen=True)
class CarePlanDraft:
    """What a client asked us to store, reduced to what the rules look at."""

    patient_id: str | None
    status: str | None
    intent: str | None
    title: str | None
    activities: list[Activity] = field(default_factory=list)


def check_new_plan(draft: CarePlanDraft, field_prefix: str = "") -> None:
    """Raises InvalidArgument listing every reason the plan cannot be created as given."""
    problems = FieldViolations()
    p = f"{field_prefix}CarePlan."
    if not draft.patient_id:
        # Every plan belongs to one patient: the key of all its events and of access control.
        problems.add(f"{p}subject", "must reference a Patient (Patient/{id})")
    if draft.status not in codes.CREATABLE_STATUSES:
        problems.add(
            f"{p}status",
            f"a new plan must be {' or '.join(sorted(codes.CREATABLE_STATUSES))}, "
            f"not {draft.status!r}",
        )
    if draft.intent not in codes.PLAN_INTENTS:
        problems.add(f"{p}intent", f"must be one of {', '.join(sorted(codes.PLAN_INTENTS))}")
    for activity in draft.activities:
        if activity.status is not None and activity.status not in codes.ACTIVITY_STATUSES:
            problems.add(
                f"{p}activity[{activity.index}].detail.status",
                f"unknown activity status {activity.status!r}",
            )
    problems.raise_if_any("the CarePlan cannot be created")
