"""FHIR to the scheduling domain's terms (Timing), and Appointments back to FHIR."""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    security: list[dict[str, Any]] | None = None,
) -> str:
    """A proposed Appointment for one occurrence, as stored (canonical JSON, version 1), with
    the security labels of the plan it carries out."""
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
    if security:
        resource["meta"]["security"] = security
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


# Calendars, slots and bookings ----------------------------------------------------------------
def _concepts(codes_: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    return [
        {"coding": [{"system": codes.SERVICE_TYPE_SYSTEM, "code": c}], "text": c} for c in codes_
    ]


def schedule_resource(
    schedule_id: str,
    version: int,
    actor: str,
    kind: str,
    role: str | None,
    service_types: tuple[str, ...],
    capacity: int,
    active: bool,
    horizon_end: datetime | None,
    at: datetime,
) -> str:
    """The FHIR Schedule of a calendar. R4 Schedule has no opening hours (those live on
    PractitionerRole.availableTime and Location.hoursOfOperation); the calendar's hours are served
    beside it by the API, and the room's capacity rides in an extension."""
    resource: dict[str, Any] = {
        "resourceType": "Schedule",
        "id": schedule_id,
        "active": active,
        "actor": [{"reference": actor}],
        "comment": f"{kind} calendar",
    }
    if service_types:
        resource["serviceType"] = _concepts(service_types)
    if role:
        resource["specialty"] = [{"coding": [{"system": codes.ROLE_SYSTEM, "code": role}]}]
    if kind == "room":
        resource["extension"] = [{"url": codes.CAPACITY_EXTENSION, "valueInteger": capacity}]
    if horizon_end is not None:
        resource["planningHorizon"] = {"start": fhir.instant(at), "end": fhir.instant(horizon_end)}
    return fhir.with_identity(fhir.parse_resource(resource, "Schedule"), schedule_id, version, at)


def slot_json(schedule_id: str, start: datetime, end: datetime, seats_left: int) -> str:
    """A computed Slot (never stored). Built as plain JSON: FindSlots answers hundreds of them
    within its latency budget, and the shape is checked against the R4 model by the unit tests."""
    resource: dict[str, Any] = {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{schedule_id}"},
        "status": "free",
        "start": fhir.instant(start),
        "end": fhir.instant(end),
    }
    if seats_left:
        resource["comment"] = f"{seats_left} seats left in a group session"
    return json.dumps(resource, separators=(",", ":"))


def booked_appointment(
    appointment_id: str,
    *,
    kind: str,
    patients: list[str],
    practitioners: list[str],
    location: str | None,
    related_persons: Sequence[str] = (),
    start: datetime,
    end: datetime,
    service_type: str,
    description: str,
    care_plan_id: str,
    capacity: int,
    at: datetime,
) -> str:
    """A booked Appointment (version 1): an individual session, or a group session whose
    patients join later."""
    participants: list[dict[str, Any]] = [
        {"actor": {"reference": f"Patient/{p}"}, "required": "required", "status": "accepted"}
        for p in patients
    ]
    participants += [
        {
            "type": [{"coding": [{"system": codes.PARTICIPATION_SYSTEM, "code": "PPRF"}]}],
            "actor": {"reference": f"Practitioner/{p}"},
            "required": "required",
            "status": "accepted",
        }
        for p in practitioners
    ]
    participants += [
        {"actor": {"reference": f"RelatedPerson/{p}"}, "required": "required", "status": "accepted"}
        for p in related_persons
    ]
    if location:
        participants.append(
            {
                "actor": {"reference": f"Location/{location}"},
                "required": "required",
                "status": "accepted",
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": fhir.instant(start),
        "end": fhir.instant(end),
        "minutesDuration": int((end - start).total_seconds() // 60),
        "created": fhir.instant(at)[:10],
        "participant": participants,
    }
    if kind == "group":
        resource["appointmentType"] = {
            "coding": [{"system": codes.APPOINTMENT_KIND_SYSTEM, "code": "group"}]
        }
        resource["extension"] = [{"url": codes.CAPACITY_EXTENSION, "valueInteger": capacity}]
    if service_type:
        resource["serviceType"] = _concepts([service_type])
    if description:
        resource["description"] = description
    if care_plan_id:
        resource["supportingInformation"] = [{"reference": f"CarePlan/{care_plan_id}"}]
    return fhir.with_identity(fhir.parse_resource(resource, "Appointment"), appointment_id, 1, at)


def revised_appointment(
    stored: str,
    version: int,
    at: datetime,
    *,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    add_patient: str | None = None,
    remove_patient: str | None = None,
    patient_status: tuple[str, str] | None = None,
    cancellation: tuple[str, bool] | None = None,
    comment: str | None = None,
) -> str:
    """The next version of a stored Appointment with the changes given.

    `patient_status` is (patient id, FHIR participationstatus) for one patient's answer or
    attendance in a group; `cancellation` is (reason, late)."""
    data: dict[str, Any] = json.loads(stored)
    participants: list[dict[str, Any]] = list(data.get("participant", []))
    # Removal first: a patient who left and joins again has one participant entry.
    if remove_patient is not None:
        participants = [
            p for p in participants if p["actor"]["reference"] != f"Patient/{remove_patient}"
        ]
    if add_patient is not None:
        participants.insert(
            0,
            {
                "actor": {"reference": f"Patient/{add_patient}"},
                "required": "required",
                "status": "accepted",
            },
        )
    if patient_status is not None:
        ref = f"Patient/{patient_status[0]}"
        participants = [
            {**p, "status": patient_status[1]} if p["actor"]["reference"] == ref else p
            for p in participants
        ]
    data["participant"] = participants
    if status is not None:
        data["status"] = status
    if start is not None and end is not None:
        data["start"] = fhir.instant(start)
        data["end"] = fhir.instant(end)
        data["minutesDuration"] = int((end - start).total_seconds() // 60)
    if cancellation is not None:
        data["cancelationReason"] = {
            "coding": [
                {
                    "system": codes.LATE_CANCELLATION_SYSTEM,
                    "code": "late" if cancellation[1] else "timely",
                }
            ],
            "text": cancellation[0],
        }
    if comment:
        data["comment"] = comment
    return fhir.with_identity(fhir.parse_resource(data, "Appointment"), data["id"], version, at)


def appointment_response(
    response_id: str, appointment_id: str, actor: str, status: str, comment: str, at: datetime
) -> str:
    """A participant's answer to an Appointment (accepted when a patient joins a group,
    declined when they leave it)."""
    resource = {
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": f"Appointment/{appointment_id}"},
        "actor": {"reference": actor},
        "participantStatus": status,
    }
    if comment:
        resource["comment"] = comment
    return fhir.with_identity(
        fhir.parse_resource(resource, "AppointmentResponse"), response_id, 1, at
    )


def visible_to(stored: str, hidden_patients: set[str]) -> str:
    """A group session as one caller sees it: patients they may not see are left out (their
    presence in a group is itself health information, 45 CFR 164.502(b))."""
    if not hidden_patients:
        return stored
    data = json.loads(stored)
    hidden = {f"Patient/{h}" for h in hidden_patients}
    data["participant"] = [
        p for p in data.get("participant", []) if p["actor"]["reference"] not in hidden
    ]
    return json.dumps(data, separators=(",", ":"))


def with_family_attendance(data: dict[str, Any], family: dict[str, str]) -> dict[str, Any]:
    """An individual session's FHIR data with each family participant's attendance on their
    participant (the ATTENDANCE_EXTENSION, as a group session's patients have it)."""
    participants = []
    for p in data.get("participant", []):
        ref = p.get("actor", {}).get("reference", "")
        status = family.get(ref.removeprefix("RelatedPerson/")) if ref.startswith("Rel") else None
        if status is not None:
            others = [e for e in p.get("extension", []) if e["url"] != codes.ATTENDANCE_EXTENSION]
            p = {
                **p,
                "extension": [*others, {"url": codes.ATTENDANCE_EXTENSION, "valueCode": status}],
            }
        participants.append(p)
    return {**data, "participant": participants}


def family_in(stored: str) -> list[str]:
    """The ids of a session's family participants (RelatedPersons), in order."""
    data: dict[str, Any] = json.loads(stored)
    return [
        ref.removeprefix("RelatedPerson/")
        for p in data.get("participant", [])
        if (ref := p.get("actor", {}).get("reference", "")).startswith("RelatedPerson/")
    ]


def with_participant_attendance(
    stored: str, patient_id: str, status: str, version: int, at: datetime
) -> str:
    """A group session after one patient's attendance was recorded. R4 has one status per
    Appointment, so each patient's attendance rides on their participant in an extension."""
    data: dict[str, Any] = json.loads(stored)
    ref = f"Patient/{patient_id}"
    participants = []
    for p in data.get("participant", []):
        if p["actor"]["reference"] == ref:
            others = [e for e in p.get("extension", []) if e["url"] != codes.ATTENDANCE_EXTENSION]
            p = {
                **p,
                "extension": [*others, {"url": codes.ATTENDANCE_EXTENSION, "valueCode": status}],
            }
        participants.append(p)
    data["participant"] = participants
    return fhir.with_identity(fhir.parse_resource(data, "Appointment"), data["id"], version, at)


def alert_flag(flag_id: str, patient_id: str, text: str, at: datetime) -> str:
    """An alert for the care team about a patient's attendance (a clinical Flag)."""
    resource = {
        "resourceType": "Flag",
        "status": "active",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "clinical",
                    }
                ]
            }
        ],
        "code": {"text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": fhir.instant(at)},
    }
    return fhir.with_identity(fhir.parse_resource(resource, "Flag"), flag_id, 1, at)


def patients_in(stored: str) -> set[str]:
    """Ids of every patient a stored Appointment names (also one who left a group, declined)."""
    return {
        ref.split("/", 1)[1]
        for p in json.loads(stored).get("participant", [])
        if (ref := p.get("actor", {}).get("reference", "")).startswith("Patient/")
    }


def with_comment(stored: str, comment: str) -> str:
    """A resource's JSON with a comment (a conflict report; not stored, so no new version)."""
    data: dict[str, Any] = json.loads(stored)
    data["comment"] = comment
    return json.dumps(data, separators=(",", ":"))
