"""The care team: who works on one patient, in which role, for which period, and who may see what.

Team membership is what grants a clinician access to a patient (issue 6, item 7): the rules
below decide it from plain values, the store supplies the memberships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from iopcare.careplan import codes
from iopcare.careplan.domain.model import require_subject
from iopcare.kit.errors import FailedPrecondition, FieldViolations, PermissionDenied


@dataclass(frozen=True)
class Member:
    """One participant: a reference (`Practitioner/p1`), our role name, and the period."""

    index: int
    reference: str | None
    role: str | None
    #: The type the reference points to: its prefix, or for `#id` that of the contained resource.
    reference_type: str | None = None
    role_codes: tuple[str, ...] = ()
    period_start: date | None = None
    period_end: date | None = None

    def current_on(self, day: date) -> bool:
        started = self.period_start is None or self.period_start <= day
        not_ended = self.period_end is None or day <= self.period_end
        return started and not_ended


@dataclass(frozen=True)
class CareTeamDraft:
    patient_id: str | None
    status: str | None
    members: list[Member] = field(default_factory=list)


def _check_members(team: CareTeamDraft, p: str, problems: FieldViolations) -> None:
    for m in team.members:
        at = f"{p}participant[{m.index}]"
        if not m.reference or m.reference_type not in codes.TEAM_MEMBER_TYPES:
            problems.add(
                f"{at}.member",
                "must reference a Practitioner, PractitionerRole, "
                "RelatedPerson, Patient, Organization or CareTeam",
            )
        if m.reference and len(m.reference) > 200:
            problems.add(f"{at}.member", "a reference of at most 200 characters")
        if m.period_start and m.period_end and m.period_end < m.period_start:
            problems.add(f"{at}.period", "ends before it starts")


def check_new_team(team: CareTeamDraft, field_prefix: str = "") -> None:
    problems = FieldViolations()
    p = f"{field_prefix}CareTeam."
    require_subject(team.patient_id, p, problems)
    if team.status not in codes.TEAM_CREATABLE_STATUSES:
        problems.add(f"{p}status", "a new team must be proposed or active")
    _check_members(team, p, problems)
    problems.raise_if_any("the CareTeam cannot be created")


def check_team_revision(current: CareTeamDraft, revised: CareTeamDraft) -> str:
    """Checks a new version of a team; returns the kind of change (update, activate, ...)."""
    problems = FieldViolations()
    p = "fhir_json.CareTeam."
    if revised.patient_id != current.patient_id:
        problems.add(f"{p}subject", "the subject of a team cannot change")
    if revised.status not in codes.TEAM_STATUSES:
        problems.add(f"{p}status", f"unknown team status {revised.status!r}")
    _check_members(revised, p, problems)
    problems.raise_if_any("the CareTeam revision is invalid")
    if current.status in codes.TEAM_CLOSED_STATUSES:
        raise FailedPrecondition(
            f"the team is {current.status} and can no longer change", reason="TEAM_CLOSED"
        )
    if revised.status == current.status:
        return "update"
    if revised.status == "entered-in-error":
        return "enter-in-error"
    transition = codes.TEAM_TRANSITIONS.get((str(current.status), str(revised.status)))
    if transition is None:
        raise FailedPrecondition(
            f"a team cannot go from {current.status} to {revised.status}",
            reason="INVALID_TRANSITION",
        )
    return transition


def may_manage_team(role: str, on_team: bool) -> None:
    """Team membership grants access, so changing a team is itself guarded.

    Only members change a team: the case manager and the psychiatrist (team lead) on it.
    Administrators and internal service identities act for the program; an outside EHR never
    does. Otherwise a case manager could add themselves to any team and so read any patient
    (HIPAA minimum necessary).
    """
    if role in codes.PRIVILEGED_ROLES:
        return
    if role in TEAM_LEADS and on_team:
        return
    raise PermissionDenied(
        "only a case manager, an administrator or the team's psychiatrist may change a care team",
        reason="TEAM_MANAGEMENT_DENIED",
    )


#: Team members who may change their team or enrol a later one.
TEAM_LEADS = frozenset({"case-manager", "psychiatrist"})


def enrolment_basis(role: str, has_active_team: bool, on_active_team: bool, assigned: bool) -> str:
    """Who may enrol a care team for a patient (a team is what grants access, issue 10 item 4).

    - The first team: the case manager the program assigned to the patient (an episode of care
      naming them as its careManager: an intake the program accepted, not one they chose), or an
      administrator or internal service acting for the program.
    - Later teams (the patient has an active team): only a lead of that team (its case manager or
      psychiatrist), or an administrator. Being assigned later does not open someone else's team.
    An outside EHR never enrols a team.
    """
    if role in codes.PRIVILEGED_ROLES:
        return f"team-enrolment:role:{role}"
    if has_active_team:
        if not on_active_team:
            raise PermissionDenied(
                "only a member of the patient's active care team or an administrator may enrol "
                "another team",
                reason="NOT_ON_ACTIVE_TEAM",
            )
        if role not in TEAM_LEADS:
            raise PermissionDenied(
                "only the team's case manager or psychiatrist may enrol another team",
                reason="TEAM_MANAGEMENT_DENIED",
            )
        return "team-enrolment:team-member"
    if role == "case-manager" and assigned:
        return "team-enrolment:program-assignment"
    raise PermissionDenied(
        "a first care team is enrolled by the case manager the program assigned to the patient "
        "(an episode of care naming them) or an administrator",
        reason="NO_PROGRAM_ASSIGNMENT",
    )
