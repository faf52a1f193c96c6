"""FHIR to the scheduling domain's terms (Timing), and Appointments back to FHIR."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from iopcare.kit import fhir
from iopcare.scheduling import codes
from iopcare.scheduling.domain.timing import Occurrence, Timing, duration_of


@dataclass(frozen=True)
class PlannedActivity:
    """A plan activity that has a timing: what scheduling needs to propose its sessions."""

    index: int
    timing: Timing
    service_type: dict[str, Any] | None
    description: str | None
    performers: tuple[str, ...]


def _bound(value: Any) -> datetime | date | None:
    """A Period bound: an aware datetime, or a date read later in the program's zone."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return date(value.year, value.month, value.day)


def timing_from_fhir(timing: Any) -> Timing:
    repeat = getattr(timing, "repeat", None)
    if repeat is None:
        return Timing(unsupported=("Timing without repeat",))
    unsupported = [
        name for name in ("when", "boundsRange", "offset") if getattr(repeat, name, None)
    ]
    bounds = getattr(repeat, "boundsPeriod", None)
    bounds_duration = getattr(repeat, "boundsDuration", None)
    bounds_length: timedelta | None = None
    if bounds_duration is not None and bounds_duration.value is not None:
        unit = bounds_duration.code or bounds_duration.unit
        try:
            bounds_length = duration_of(float(bounds_duration.value), unit, timedelta(0))
        except ValueError:
            unsupported.append(f"boundsDuration unit {unit!r}")
    return Timing(
        frequency=int(repeat.frequency or 1),
        period=float(repeat.period or 1),
        period_unit=str(repeat.periodUnit or "wk"),
        days_of_week=tuple(str(d) for d in (repeat.dayOfWeek or ())),
        times_of_day=tuple(
            t if isinstance(t, time) else time.fromisoformat(str(t))
            for t in (repeat.timeOfDay or ())
        ),
        duration=float(repeat.duration) if repeat.duration is not None else None,
        duration_unit=str(repeat.durationUnit) if repeat.durationUnit else None,
        bounds_start=_bound(bounds.start) if bounds else None,
        bounds_end=_bound(bounds.end) if bounds else None,
        bounds_duration=bounds_length,
        count=int(repeat.count) if repeat.count is not None else None,
        unsupported=tuple(unsupported),
    )


def planned_activities(plan: Any) -> list[PlannedActivity]:
    result = []
    for index, activity in enumerate(getattr(plan, "activity", None) or []):
        detail = activity.detail
        if detail is None or detail.scheduledTiming is None:
            continue
        if detail.status in {"cancelled", "stopped", "completed", "entered-in-error"}:
            continue
        code = fhir.to_dict(detail.code) if detail.code is not None else None
        description = detail.description or (
            (detail.code.text or (detail.code.coding or [None])[0].display)
            if detail.code and (detail.code.text or detail.code.coding)
            else None
        )
        performers = tuple(
            p.reference
            for p in (detail.performer or [])
            if p.reference and p.reference.split("/")[0] in codes.PARTICIPANT_TYPES
        )
        result.append(
            PlannedActivity(
                index, timing_from_fhir(detail.scheduledTiming), code, description, performers
            )
        )
    return result


def proposed_appointment(
    appointment_id: str,
    plan_id: str,
    patient_id: str,
    activity: PlannedActivity,
    occurrence: Occurrence,
    stored_at: datetime,
) -> str:
    """A proposed Appointment for one occurrence, as stored (canonical JSON, version 1)."""
    participants = [
        {
            "actor": {"reference": f"Patient/{patient_id}"},
            "required": "required",
            "status": "needs-action",
        }
    ] + [
        {"actor": {"reference": ref}, "required": "required", "status": "needs-action"}
        for ref in activity.performers
    ]
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": appointment_id,
        "meta": {"versionId": "1", "lastUpdated": fhir.instant(stored_at)},
        "identifier": [
            {
                "system": codes.OCCURRENCE_SYSTEM,
                "value": f"{plan_id}/{activity.index}/{fhir.instant(occurrence.start)}",
            }
        ],
        "status": "proposed",
        "start": fhir.instant(occurrence.start),
        "end": fhir.instant(occurrence.end),
        "minutesDuration": int((occurrence.end - occurrence.start).total_seconds() // 60),
        "supportingInformation": [{"reference": f"CarePlan/{plan_id}"}],
        "participant": participants,
    }
    if activity.service_type:
        resource["serviceType"] = [activity.service_type]
    if activity.description:
        resource["description"] = activity.description
    return fhir.to_json(fhir.parse_resource(resource, "Appointment"))


def collection(resources: list[str], bundle_id: str, at: datetime) -> str:
    """A collection Bundle of stored resources (the payload of a batch event)."""
    entries = [{"resource": fhir.load_json(r)} for r in resources]
    return fhir.to_json(
        fhir.parse_resource(
            {
                "resourceType": "Bundle",
                "id": bundle_id,
                "type": "collection",
                "timestamp": fhir.instant(at),
                "entry": entries,
            },
            "Bundle",
        )
    )


def with_attendance(
    resource: dict[str, Any], status: str, reason: str, late: bool, version: int, at: datetime
) -> str:
    """The Appointment after attendance was recorded, as the new stored version."""
    data = dict(resource)
    data["status"] = status
    if status == "cancelled":
        data["cancelationReason"] = {
            "coding": [
                {"system": codes.LATE_CANCELLATION_SYSTEM, "code": "late" if late else "timely"}
            ],
            "text": reason,
        }
    if status in {"arrived", "checked-in", "fulfilled"}:
        data["participant"] = [
            {**p, "status": "accepted"} if p["actor"]["reference"].startswith("Patient/") else p
            for p in data.get("participant", [])
        ]
    return fhir.with_identity(fhir.parse_resource(data, "Appointment"), data["id"], version, at)
