"""FHIR in: the scheduling request a FHIR Schedule or Appointment asks for (the inbound half of
`fhir_map`, which builds the resources scheduling stores and emits).

Pure functions, published through `iopcare.scheduling.contract` so the gateway speaks FHIR to
scheduling without knowing its fields: each takes the client's resource (already a valid FHIR R4
document) and returns the request message, or raises `kit.fhir.FhirError` naming the FHIR element
that cannot be mapped. Scheduling's own rules (opening hours, double booking, a room's capacity)
stay in the service; what is checked here is only what the request cannot say (an Appointment
with two rooms, a PUT that changes an element no RPC changes).

A calendar is created and changed field by field (CreateSchedule, UpdateSchedule with a field
mask); an Appointment is booked (BookAppointment, or CreateGroupSession for `appointmentType`
group) and then changes only through what scheduling lets happen to a session: cancelled
(CancelAppointment), moved (RescheduleAppointment) or attended (RecordAttendance).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask

from iopcare.kit import fhir
from iopcare.kit.fhir import refusal
from iopcare.kit.protoconv import timestamp
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb

SERVICE_TYPE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/session-type"
CAPACITY_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/capacity"
APPOINTMENT_KIND_SYSTEM = "https://iopcare.org/fhir/CodeSystem/appointment-kind"
#: Opening hours of a calendar on a FHIR Schedule (R4 Schedule has no element for them): one
#: extension per span, shaped like PractitionerRole.availableTime (daysOfWeek,
#: availableStartTime, availableEndTime).
AVAILABLE_TIME_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/schedule-available-time"
#: Attendance statuses RecordAttendance takes.
ATTENDANCE = ("arrived", "checked-in", "fulfilled", "noshow")
#: A participant's own attendance (a group session's patient, a family session's relative).
PARTICIPANT_ATTENDANCE_EXTENSION = (
    "https://iopcare.org/fhir/StructureDefinition/participant-attendance"
)

#: scheduling's field paths of a calendar, as the FHIR Schedule elements they come from (a
#: refusal of the service names the client's element with these).
SCHEDULE_PATHS = {
    "schedule.actor": "Schedule.actor",
    "schedule.kind": "Schedule.actor",
    "schedule.role": "Schedule.specialty",
    "schedule.service_types": "Schedule.serviceType",
    "schedule.capacity": f"Schedule.extension('{CAPACITY_EXTENSION}')",
    "schedule.opening_hours": f"Schedule.extension('{AVAILABLE_TIME_EXTENSION}')",
    "schedule.closed_dates": "Schedule",
    "schedule.active": "Schedule.active",
}
#: scheduling's booking fields, as the FHIR Appointment elements they come from.
APPOINTMENT_PATHS = {
    "start_time": "Appointment.start",
    "end_time": "Appointment.end",
    "patient_id": "Appointment.participant",
    "practitioner_ids": "Appointment.participant",
    "facilitator_ids": "Appointment.participant",
    "location_id": "Appointment.participant",
    "related_person_ids": "Appointment.participant",
    "family_attended": f"Appointment.participant.extension('{PARTICIPANT_ATTENDANCE_EXTENSION}')",
    "service_type": "Appointment.serviceType",
    "description": "Appointment.description",
    "care_plan_id": "Appointment.supportingInformation",
    "capacity": f"Appointment.extension('{CAPACITY_EXTENSION}')",
    "reason": "Appointment.cancelationReason",
    "status": "Appointment.status",
}

#: What changes an Appointment: the request of the one change a PUT asks for.
AppointmentChange = (
    pb.CancelAppointmentRequest | pb.RecordAttendanceRequest | pb.RescheduleAppointmentRequest
)
#: Elements a PUT of an Appointment may differ in from the stored version without asking for a
#: change (server-maintained, or the reason of the one change asked for).
APPOINTMENT_IGNORED = frozenset(
    {"meta", "text", "id", "minutesDuration", "cancelationReason", "comment", "participant"}
)


def _instant(resource: dict[str, Any], name: str, resource_type: str) -> datetime:
    value = resource.get(name)
    if not isinstance(value, str) or "T" not in value:
        raise refusal("required", f"{name} is required (an instant)", f"{resource_type}.{name}")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _codes(concepts: Any) -> list[str]:
    """The codes of a list of CodeableConcepts (their text when they have no coding)."""
    result = []
    for concept in concepts or []:
        codings = [c.get("code") for c in concept.get("coding", []) if c.get("code")]
        result += codings or ([concept["text"]] if concept.get("text") else [])
    return [str(c) for c in result]


def _extension(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension", []) if e.get("url") == url]


def _capacity(resource: dict[str, Any]) -> int:
    capacity = [e.get("valueInteger") for e in _extension(resource, CAPACITY_EXTENSION)]
    return int(capacity[0]) if capacity and isinstance(capacity[0], int) else 0


# -- Schedule ----------------------------------------------------------------------------------


def _opening_hours(resource: dict[str, Any]) -> list[pb.OpeningHours]:
    hours = []
    for index, span in enumerate(_extension(resource, AVAILABLE_TIME_EXTENSION)):
        parts: dict[str, list[Any]] = {}
        for part in span.get("extension", []):
            value = next((v for k, v in part.items() if k.startswith("value")), None)
            parts.setdefault(str(part.get("url")), []).append(value)
        opens = (parts.get("availableStartTime") or [""])[0]
        closes = (parts.get("availableEndTime") or [""])[0]
        days = parts.get("daysOfWeek") or []
        if not days or not opens or not closes:
            raise refusal(
                "required",
                "an opening-hours extension needs daysOfWeek, availableStartTime and "
                "availableEndTime",
                f"Schedule.extension[{index}]",
            )
        hours += [
            pb.OpeningHours(day_of_week=str(d), opens=str(opens)[:5], closes=str(closes)[:5])
            for d in days
        ]
    return hours


def schedule_from_fhir(resource: dict[str, Any]) -> pb.Schedule:
    """The calendar a FHIR Schedule describes (no id, version or `active`)."""
    actors = [a.get("reference", "") for a in resource.get("actor", [])]
    if len(actors) != 1 or actors[0].split("/")[0] not in ("Practitioner", "Location"):
        raise refusal(
            "required",
            "a calendar has exactly one actor: Practitioner/{id} or Location/{id}",
            "Schedule.actor",
        )
    kind = "practitioner" if actors[0].startswith("Practitioner/") else "room"
    roles = _codes(resource.get("specialty"))
    return pb.Schedule(
        actor=actors[0],
        kind=kind,
        role=roles[0] if roles and kind == "practitioner" else "",
        service_types=_codes(resource.get("serviceType")),
        capacity=_capacity(resource),
        opening_hours=_opening_hours(resource),
    )


def create_schedule_request(resource: dict[str, Any], request_id: str) -> pb.CreateScheduleRequest:
    return pb.CreateScheduleRequest(request_id=request_id, schedule=schedule_from_fhir(resource))


def update_schedule_request(
    resource: dict[str, Any], current: pb.Schedule, expected_version: int
) -> pb.UpdateScheduleRequest:
    """The change a PUT of a Schedule asks of the stored calendar `current`: what a calendar of
    its kind may change (a practitioner's role, a room's capacity), never its actor."""
    schedule = schedule_from_fhir(resource)
    if schedule.actor != current.actor:
        raise refusal("business-rule", "a calendar's actor cannot change", "Schedule.actor")
    schedule.id = current.id
    schedule.active = resource.get("active", True) is not False
    paths = ["service_types", "active", "role" if current.kind == "practitioner" else "capacity"]
    if _extension(resource, AVAILABLE_TIME_EXTENSION):
        paths.append("opening_hours")
    return pb.UpdateScheduleRequest(
        schedule=schedule, expected_version=expected_version, update_mask=FieldMask(paths=paths)
    )


# -- Appointment: create -----------------------------------------------------------------------


def _participants(resource: dict[str, Any]) -> dict[str, list[str]]:
    """The participants' ids by resource type (Patient, Practitioner, Location, RelatedPerson)."""
    by_type: dict[str, list[str]] = {}
    for index, participant in enumerate(resource.get("participant", [])):
        reference = participant.get("actor", {}).get("reference", "")
        kind, _, ident = reference.partition("/")
        if kind not in ("Patient", "Practitioner", "Location", "RelatedPerson") or not ident:
            raise refusal(
                "value",
                "participants are Patient/{id}, Practitioner/{id}, Location/{id} or "
                "RelatedPerson/{id} (a family member, in an individual session)",
                f"Appointment.participant[{index}].actor",
            )
        by_type.setdefault(kind, []).append(ident)
    return by_type


def _group_session(
    resource: dict[str, Any], by_type: dict[str, list[str]], request_id: str
) -> pb.CreateGroupSessionRequest:
    if by_type.get("Patient") or by_type.get("RelatedPerson"):
        raise refusal(
            "business-rule",
            "a group session is created without patients or their families; patients join it "
            "in scheduling",
            "Appointment.participant",
        )
    rooms = by_type.get("Location", [])
    if len(rooms) > 1:
        raise refusal("value", "a group session has one room", "Appointment.participant")
    service_types = _codes(resource.get("serviceType"))
    return pb.CreateGroupSessionRequest(
        request_id=request_id,
        # No room: scheduling refuses the session (location_id is required).
        location_id=(rooms or [""])[0],
        facilitator_ids=by_type.get("Practitioner", []),
        start_time=timestamp(_instant(resource, "start", "Appointment")),
        end_time=timestamp(_instant(resource, "end", "Appointment")),
        capacity=_capacity(resource),
        service_type=service_types[0] if service_types else "",
        description=str(resource.get("description", "")),
    )


def _booking(
    resource: dict[str, Any], by_type: dict[str, list[str]], request_id: str
) -> pb.BookAppointmentRequest:
    if len(by_type.get("Patient", [])) != 1:
        raise refusal(
            "required",
            "an individual session has exactly one Patient participant",
            "Appointment.participant",
        )
    if len(by_type.get("Location", [])) > 1:
        raise refusal("value", "at most one room", "Appointment.participant")
    plans = [
        fhir.loose_reference_id(s.get("reference"), "CarePlan")
        for s in resource.get("supportingInformation", [])
    ]
    service_types = _codes(resource.get("serviceType"))
    return pb.BookAppointmentRequest(
        request_id=request_id,
        patient_id=by_type["Patient"][0],
        practitioner_ids=by_type.get("Practitioner", []),
        location_id=(by_type.get("Location") or [""])[0],
        start_time=timestamp(_instant(resource, "start", "Appointment")),
        end_time=timestamp(_instant(resource, "end", "Appointment")),
        service_type=service_types[0] if service_types else "",
        description=str(resource.get("description", "")),
        care_plan_id=next((p for p in plans if p), ""),
        related_person_ids=by_type.get("RelatedPerson", []),
    )


def create_appointment_request(
    resource: dict[str, Any], request_id: str
) -> pb.BookAppointmentRequest | pb.CreateGroupSessionRequest:
    """A new Appointment: an individual booking, or a group session (`appointmentType` group)."""
    if resource.get("status") not in (None, "booked"):
        raise refusal(
            "business-rule",
            "a new appointment is booked (status booked or absent); proposed sessions come "
            "from care plans",
            "Appointment.status",
        )
    _instant(resource, "start", "Appointment")
    _instant(resource, "end", "Appointment")
    by_type = _participants(resource)
    if "group" in _codes([resource.get("appointmentType") or {}]):
        return _group_session(resource, by_type, request_id)
    return _booking(resource, by_type, request_id)


# -- Appointment: update -----------------------------------------------------------------------


def _who(resource: dict[str, Any]) -> list[Any]:
    """The participants without their answers (status, attendance): who takes part."""
    return [
        {k: v for k, v in p.items() if k not in ("status", "extension")}
        for p in resource.get("participant", [])
    ]


def _changed_elements(stored: dict[str, Any], resource: dict[str, Any]) -> list[str]:
    """The elements a PUT changes; 422 naming each one no RPC changes."""
    changed = sorted(
        key
        for key in set(stored) | set(resource)
        if key not in APPOINTMENT_IGNORED and stored.get(key) != resource.get(key)
    )
    if _who(stored) != _who(resource):
        changed.append("participant")
    other = [k for k in changed if k not in ("status", "start", "end")]
    if other:
        message = (
            "an appointment changes only by its status (cancel, attendance) or its time "
            "(reschedule)"
        )
        raise fhir.FhirError(
            message,
            [fhir.Issue("error", "business-rule", message, f"Appointment.{k}") for k in other],
        )
    if "status" in changed and ({"start", "end"} & set(changed)):
        raise refusal(
            "business-rule", "change the status and the time in two updates", "Appointment.status"
        )
    return changed


def _status_change(
    resource: dict[str, Any], appointment_id: str, expected_version: int, individual: bool
) -> pb.CancelAppointmentRequest | pb.RecordAttendanceRequest:
    status = resource.get("status")
    reason = str(resource.get("cancelationReason", {}).get("text", "")) or str(
        resource.get("comment", "")
    )
    if status == "cancelled":
        return pb.CancelAppointmentRequest(
            appointment_id=appointment_id, expected_version=expected_version, reason=reason
        )
    if status not in ATTENDANCE:
        raise refusal(
            "business-rule",
            f"status can become cancelled, {', '.join(ATTENDANCE)}; not {status!r}",
            "Appointment.status",
        )
    if not individual:
        raise refusal(
            "not-supported",
            "attendance in a group session is recorded per patient in scheduling",
            "Appointment.status",
        )
    return pb.RecordAttendanceRequest(
        appointment_id=appointment_id,
        expected_version=expected_version,
        status=str(status),
        reason=reason,
        family_attended=_family_attended(resource),
    )


def _family_attended(resource: dict[str, Any]) -> list[str]:
    """The family participants a PUT marks as having come (their participant-attendance
    extension arrived, checked-in or fulfilled); the others missed the session."""
    came = []
    for participant in resource.get("participant", []):
        reference = participant.get("actor", {}).get("reference", "")
        if not reference.startswith("RelatedPerson/"):
            continue
        for extension in participant.get("extension", []):
            if extension.get("url") == PARTICIPANT_ATTENDANCE_EXTENSION and extension.get(
                "valueCode"
            ) in ("arrived", "checked-in", "fulfilled"):
                came.append(reference.removeprefix("RelatedPerson/"))
    return came


def update_appointment_request(
    stored: dict[str, Any],
    resource: dict[str, Any],
    appointment_id: str,
    expected_version: int,
    *,
    individual: bool,
) -> AppointmentChange | None:
    """The one change a PUT of an Appointment asks of the stored version `stored` (None: it
    changes nothing): a status (cancel, attendance of an `individual` session) or a new time."""
    changed = _changed_elements(stored, resource)
    if not changed:
        return None
    if "status" in changed:
        return _status_change(resource, appointment_id, expected_version, individual)
    return _reschedule(resource, appointment_id, expected_version)


def _reschedule(
    resource: dict[str, Any], appointment_id: str, expected_version: int
) -> pb.RescheduleAppointmentRequest:
    return pb.RescheduleAppointmentRequest(
        appointment_id=appointment_id,
        expected_version=expected_version,
        start_time=timestamp(_instant(resource, "start", "Appointment")),
        end_time=timestamp(_instant(resource, "end", "Appointment")),
        reason=str(resource.get("comment", "")) or "rescheduled through the FHIR gateway",
    )


def repeated_appointment_request(
    resource: dict[str, Any], appointment_id: str, expected_version: int, *, individual: bool
) -> AppointmentChange:
    """The change a PUT of an Appointment asked when it is sent again after it was applied (the
    stored version is the one it made, so comparing with it finds nothing): what its status says
    (cancelled or attendance: that change; else a new time). Sent with the first attempt's
    request id, it is answered with the first result, or refused when it is another request."""
    if resource.get("status") == "cancelled" or resource.get("status") in ATTENDANCE:
        return _status_change(resource, appointment_id, expected_version, individual)
    return _reschedule(resource, appointment_id, expected_version)
