"""CarePlan FHIR resources to the domain's terms, and back."""

from __future__ import annotations

from datetime import datetime

from iopcare.careplan import codes
from iopcare.careplan.domain.model import Activity, CarePlanDraft
from iopcare.careplan.domain.team import CareTeamDraft, Member
from iopcare.kit import fhir
from iopcare.kit.teams import as_date


def draft_from_fhir(plan: fhir.Resource) -> CarePlanDraft:
    subject = getattr(plan, "subject", None)
    patient_id = fhir.reference_id(getattr(subject, "reference", None), "Patient")
    activities = []
    for index, activity in enumerate(getattr(plan, "activity", None) or []):
        detail = activity.detail
        coding = (detail.code.coding or [None])[0] if detail and detail.code else None
        activities.append(
            Activity(
                index=index,
                code=coding.code if coding else None,
                display=(coding.display if coding else None)
                or (detail.code.text if detail and detail.code else None),
                status=detail.status if detail else None,
                has_timing=bool(detail and detail.scheduledTiming),
            )
        )
    return CarePlanDraft(
        patient_id=patient_id,
        status=getattr(plan, "status", None),
        intent=getattr(plan, "intent", None),
        title=getattr(plan, "title", None),
        activities=activities,
        care_teams=len(getattr(plan, "careTeam", None) or []),
        goals=len(getattr(plan, "goal", None) or []),
    )


def stamp(plan: fhir.Resource, plan_id: str, version: int, updated: datetime) -> str:
    """The stored form: server id and meta (versionId, lastUpdated) set; canonical JSON."""
    return fhir.with_identity(plan, plan_id, version, updated)


def team_from_fhir(team: fhir.Resource) -> CareTeamDraft:
    subject = getattr(team, "subject", None)
    members = []
    for index, participant in enumerate(getattr(team, "participant", None) or []):
        role_codes = tuple(
            coding.code
            for concept in (participant.role or [])
            for coding in (concept.coding or [])
            if coding.system == codes.SNOMED and coding.code
        )
        role = next(
            (codes.TEAM_ROLE_BY_CODE[c] for c in role_codes if c in codes.TEAM_ROLE_BY_CODE), None
        )
        period = participant.period
        members.append(
            Member(
                index=index,
                reference=participant.member.reference if participant.member else None,
                role=role,
                role_codes=role_codes,
                period_start=as_date(period.start) if period else None,
                period_end=as_date(period.end) if period else None,
            )
        )
    return CareTeamDraft(
        patient_id=fhir.reference_id(getattr(subject, "reference", None), "Patient"),
        status=getattr(team, "status", None),
        members=members,
    )


def plan_team_ids(plan: fhir.Resource) -> list[tuple[int, str | None]]:
    """(index, CareTeam id) of each careTeam reference of a plan; None when not CareTeam/{id}."""
    return [
        (index, fhir.reference_id(ref.reference, "CareTeam"))
        for index, ref in enumerate(getattr(plan, "careTeam", None) or [])
    ]
