"""Who may see a patient's data: the one access policy every service applies (pure rules).

Team membership grants access; `iopcare.kit.teams` keeps the memberships in each service's
database and applies this rule to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from iopcare.kit.errors import PermissionDenied

SNOMED = "http://snomed.info/sct"

#: Care team roles (CareTeam.participant.role): our name -> SNOMED CT occupation.
TEAM_ROLES = {
    "psychiatrist": ("80584001", "Psychiatrist"),
    "therapist": ("224588003", "Psychotherapist"),
    "psychologist": ("59944000", "Psychologist"),
    "dietitian": ("40127002", "Dietitian (general)"),
    "physician": ("59058001", "General physician"),
    "nurse": ("106292003", "Professional nurse"),
    "case-manager": ("768832004", "Case manager"),
    "patient": ("116154003", "Patient"),
}
TEAM_ROLE_BY_CODE = {code: role for role, (code, _) in TEAM_ROLES.items()}

#: Program identities: administrators and internal services (the services calling each other,
#: the gateway's own calls, consumers). They see every patient without team membership and act for
#: the program (team management, registration); each such access is audited with the role as its
#: basis so that it can be reviewed. Role `service` is issued only to internal clients.
PRIVILEGED_ROLES = frozenset({"admin", "service"})

#: An outside EHR's backend token (SMART Backend Services). It is not a program identity: it is
#: limited to its scopes and its launch context (kit.rpc applies them to every call) and never
#: manages teams or acts for the program; within what its scopes open it sees patients' data,
#: each access audited with this role as the basis.
EHR_ROLE = "system"

#: Roles break-glass never opens a record to: it is for clinicians in an emergency (42 CFR
#: 2.51), not for billing staff.
NO_BREAK_GLASS = frozenset({"billing"})

#: Roles not limited to their own calendar or sessions in scheduling (the patients in them are
#: still shown only under `access_basis`, scopes and launch context).
PROGRAM_WIDE_ROLES = PRIVILEGED_ROLES | {EHR_ROLE}


@dataclass(frozen=True)
class Membership:
    """One participant of a team: `Practitioner/p1` as `psychiatrist` from a date to a date."""

    reference: str
    role: str | None
    period_start: date | None
    period_end: date | None


def within_launch_context(patient_limit: str | None, patient_id: str) -> None:
    """A call granted only through a `patient/` scope touches only the token's launch patient
    (SMART App Launch: patient-level scopes are for the patient in context). Checked here, where
    every service reaches a patient's data, so no RPC can go around it."""
    if patient_limit is not None and patient_id != patient_limit:
        raise PermissionDenied(
            "the token's scopes open only the patient of its launch context",
            reason="OUTSIDE_LAUNCH_CONTEXT",
        )


def access_basis(
    role: str,
    break_glass: bool,
    on_team: bool,
    *,
    patient_id: str | None = None,
    patient_limit: str | None = None,
) -> str:
    """Why a caller may see a patient's data, or PermissionDenied.

    A clinician sees a patient while on one of the patient's active care teams (HIPAA minimum
    necessary, 45 CFR 164.502(b): access follows the treatment relationship). Administrative and
    service identities see everyone, an EHR what its scopes open, and break-glass grants
    emergency access; all are audited with the basis so that they can be reviewed. Whatever the
    basis, a call pinned to a launch patient reaches no other patient.
    """
    if patient_id is not None:
        within_launch_context(patient_limit, patient_id)
    if on_team:
        return "care-team"
    if role in PRIVILEGED_ROLES or role == EHR_ROLE:
        return f"role:{role}"
    if break_glass and role not in NO_BREAK_GLASS:
        return "break-glass"
    raise PermissionDenied(
        "the caller is not on this patient's care team", reason="NOT_ON_CARE_TEAM"
    )
