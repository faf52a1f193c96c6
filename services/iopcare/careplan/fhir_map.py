"""CarePlan FHIR resources to the domain's terms, and back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iopcare.careplan.domain.model import Activity, CarePlanDraft
from iopcare.kit import fhir


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


def stamp(document: dict[str, Any], plan_id: str, version: int, updated: datetime) -> str:
    """The stored form: server id and meta (versionId, lastUpdated) set; canonical JSON."""
    return fhir.with_identity(document, plan_id, version, updated)
