"""The treatment plan and its rules."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from iopcare.careplan import codes
from iopcare.kit.errors import (
    FailedPrecondition,
    FieldViolations,
    PermissionDenied,
)

#: Versions are 32-bit integers in storage; anything larger is a malformed request.
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Activity:
    """One intervention of the plan (group therapy, individual therapy, ...)."""

    index: int
    code: str | None
    display: str | None
    status: str | None
    has_timing: bool
    #: The whole activity as canonical JSON: two activities are the same if this is.
    fingerprint: str = ""


@dataclass(frozen=True)
class CarePlanDraft:
    """What a client asked us to store, reduced to what the rules look at."""

    patient_id: str | None
    status: str | None
    intent: str | None
    title: str | None
    activities: list[Activity] = field(default_factory=list)
    care_teams: int = 0
    goals: int = 0


def require_subject(patient_id: str | None, prefix: str, problems: FieldViolations) -> None:
    """A plan, team or measure names its patient: the key of all its events and of access
    control (`prefix`: the field prefix of its `subject`)."""
    if not patient_id:
        problems.add(f"{prefix}subject", "must reference a Patient (Patient/{id})")


def check_new_plan(draft: CarePlanDraft, field_prefix: str = "") -> None:
    """Raises InvalidArgument listing every reason the plan cannot be created as given."""
    problems = FieldViolations()
    p = f"{field_prefix}CarePlan."
    require_subject(draft.patient_id, p, problems)
    if draft.status not in codes.CREATABLE_STATUSES:
        problems.add(
            f"{p}status",
            f"a new plan must be {' or '.join(sorted(codes.CREATABLE_STATUSES))}, "
            f"not {draft.status!r}",
        )
    if draft.intent not in codes.PLAN_INTENTS:
        problems.add(f"{p}intent", f"must be one of {', '.join(sorted(codes.PLAN_INTENTS))}")
    _check_activity_statuses(draft, p, problems)
    problems.raise_if_any("the CarePlan cannot be created")
    if draft.status == "active":
        check_ready_to_be_active(draft)


def _check_activity_statuses(draft: CarePlanDraft, p: str, problems: FieldViolations) -> None:
    """Every activity's status is a FHIR care-plan-activity-status (`p`: the field prefix)."""
    for activity in draft.activities:
        if activity.status is not None and activity.status not in codes.ACTIVITY_STATUSES:
            problems.add(
                f"{p}activity[{activity.index}].detail.status",
                f"unknown activity status {activity.status!r}",
            )


def check_revision(current: CarePlanDraft, revised: CarePlanDraft) -> str:
    """Checks a new version of a plan against the current one; returns the kind of change.

    The kind is `update` for an edit that keeps the status, or the lifecycle transition's name
    (`activate`, `suspend`, `resume`, `complete`, `revoke`, `enter-in-error`).
    """
    problems = FieldViolations()
    if revised.patient_id != current.patient_id:
        # A plan never moves to another patient: access, events and history are keyed by it.
        problems.add("fhir_json.CarePlan.subject", "the subject of a plan cannot change")
    if revised.intent not in codes.PLAN_INTENTS:
        problems.add(
            "fhir_json.CarePlan.intent", f"must be one of {', '.join(sorted(codes.PLAN_INTENTS))}"
        )
    if revised.status not in codes.PLAN_STATUSES:
        problems.add("fhir_json.CarePlan.status", f"unknown plan status {revised.status!r}")
    _check_activity_statuses(revised, "fhir_json.CarePlan.", problems)
    problems.raise_if_any("the CarePlan revision is invalid")
    if current.status in codes.CLOSED_STATUSES:
        raise FailedPrecondition(
            f"the plan is {current.status} and can no longer change",
            reason="PLAN_CLOSED",
            status=str(current.status),
        )
    if revised.status == current.status:
        change = "update"
    elif revised.status == "entered-in-error":
        change = codes.ENTER_IN_ERROR
    else:
        transition = codes.TRANSITIONS.get((str(current.status), str(revised.status)))
        if transition is None:
            raise FailedPrecondition(
                f"a plan cannot go from {current.status} to {revised.status}",
                reason="INVALID_TRANSITION",
                status=str(current.status),
            )
        change = transition
    if revised.status == "active":
        check_ready_to_be_active(revised)
    return change


def check_ready_to_be_active(plan: CarePlanDraft) -> None:
    """An active plan has a team, a goal and an activity (the IOP's own rule, issue 6)."""
    missing = []
    if plan.care_teams == 0:
        missing.append("a care team")
    if plan.goals == 0:
        missing.append("at least one goal")
    if not plan.activities:
        missing.append("at least one activity")
    if missing:
        raise FailedPrecondition(
            f"an active plan needs {', '.join(missing)}",
            reason="PLAN_NOT_READY",
            missing=", ".join(missing),
        )


def activity_owner(activity: Activity) -> str | None:
    """The discipline that owns an activity (None: any team member may change it)."""
    return codes.ACTIVITY_OWNERS.get(activity.code or "")


def check_activity_changes(current: CarePlanDraft, revised: CarePlanDraft, role: str) -> None:
    """Only the owning discipline, or the psychiatrist as team lead, adds, changes or removes an
    activity (issue 6: each activity is owned by a discipline). Administrative and system
    identities act for the program and are audited."""
    if role == "psychiatrist" or role in codes.PRIVILEGED_ROLES:
        return
    before = Counter((a.fingerprint, activity_owner(a)) for a in current.activities)
    after = Counter((a.fingerprint, activity_owner(a)) for a in revised.activities)
    changed = (before - after) + (after - before)
    foreign = sorted({owner for _, owner in changed if owner is not None and owner != role})
    if foreign:
        raise PermissionDenied(
            f"only the {' or the '.join(foreign)} (or the psychiatrist) may change "
            f"{'that activity' if len(changed) == 1 else 'those activities'}",
            reason="NOT_ACTIVITY_OWNER",
        )


def apply_mask(
    current: dict[str, object],
    revised: dict[str, object],
    paths: list[str],
    maskable: frozenset[str] = codes.MASKABLE_ELEMENTS,
) -> dict[str, object]:
    """The revised document: `revised` whole when `paths` is empty, else `current` with the named
    top-level elements taken from `revised` (absent there: removed). Only `maskable` elements
    (a CarePlan's by default) may be named."""
    if not paths:
        return revised
    problems = FieldViolations()
    for index, path in enumerate(paths):
        if path not in maskable:
            problems.add(
                f"update_mask.paths[{index}]", f"{path!r} is not an element an update may set"
            )
    problems.raise_if_any("the update mask is invalid")
    merged = dict(current)
    for path in paths:
        if path in revised:
            merged[path] = revised[path]
        else:
            merged.pop(path, None)
    return merged


def check_update_request(
    plan_id: str, document_id: object, expected_version: int, reason: str
) -> None:
    problems = FieldViolations()
    if not 1 <= expected_version <= MAX_VERSION:
        problems.add("expected_version", "the version the change is based on (>= 1) is required")
    if document_id is not None and document_id != plan_id:
        problems.add("fhir_json.CarePlan.id", "must be absent or equal to the id in the request")
    if len(reason) > 1000:
        problems.add("reason", "at most 1,000 characters")
    problems.raise_if_any("the update request is invalid")
