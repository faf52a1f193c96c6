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

#: Roles that see every patient without team membership; each such access is audited with the
#: role as its basis so that it can be reviewed.
PRIVILEGED_ROLES = frozenset({"admin", "system", "service"})


@dataclass(frozen=True)
class Membership:
    """One participant of a team: `Practitioner/p1` as `psychiatrist` from a date to a date."""

    reference: str
    role: str | None
    period_start: date | None
    period_end: date | None


def access_basis(role: str, break_glass: bool, on_team: bool) -> str:
    """Why a caller may see a patient's data, or PermissionDenied.

    A clinician sees a patient while on one of the patient's active care teams (HIPAA minimum
    necessary, 45 CFR 164.502(b): access follows the treatment relationship). Administrative and
    service identities see everyone, and break-glass grants emergency access; both are audited
    with the basis so that they can be reviewed.
    """
    if on_team:
        return "care-team"
    if role in PRIVILEGED_ROLES:
        return f"role:{role}"
    if break_glass:
        return "break-glass"
    raise PermissionDenied(
        "the caller is not on this patient's care team", reason="NOT_ON_CARE_TEAM"
    )
