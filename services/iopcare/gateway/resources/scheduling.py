"""Resources the scheduling service owns: Schedule (calendars), Slot (free time, computed) and
Appointment (sessions).

Writes map FHIR onto scheduling's operations: a calendar is created and changed field by field
(CreateSchedule, UpdateSchedule with a field mask); an Appointment is booked (BookAppointment, or
CreateGroupSession for `appointmentType` group) and then changes only through what scheduling
lets happen to a session: cancelled (CancelAppointment), moved (RescheduleAppointment) or
attended (RecordAttendance). A PUT is read as whichever one of those it asks for; any other
change is refused with the element that changed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, Problem, http_error
from iopcare.gateway.resources.base import (
    Created,
    Found,
    ResourceHandler,
    reference_id,
    require_patient,
)
from iopcare.gateway.resources.paths import fhir_paths
from iopcare.gateway.search import DATE, REFERENCE, TOKEN, SearchParam, date_bounds
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb

#: Pages of a listing read for one search at most (1,000 items each).
MAX_PAGES = 10
SERVICE_TYPE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/session-type"
ROLE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/practitioner-role"
CAPACITY_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/capacity"
APPOINTMENT_KIND_SYSTEM = "https://iopcare.org/fhir/CodeSystem/appointment-kind"
#: Opening hours of a calendar on a FHIR Schedule (R4 Schedule has no element for them): one
#: extension per span, shaped like PractitionerRole.availableTime (daysOfWeek,
#: availableStartTime, availableEndTime).
AVAILABLE_TIME_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/schedule-available-time"
#: Slot search without a start range: this many days from now.
DEFAULT_SLOT_DAYS = 14
#: FindSlots' longest range.
MAX_SLOT_DAYS = 92
#: Attendance statuses RecordAttendance takes.
ATTENDANCE = ("arrived", "checked-in", "fulfilled", "noshow")


def _time(value: Timestamp) -> datetime | None:
    return value.ToDatetime(tzinfo=UTC) if value.seconds or value.nanos else None


def _ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def _updated(resource_json: str) -> datetime | None:
    try:
        text = json.loads(resource_json).get("meta", {}).get("lastUpdated")
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except (ValueError, AttributeError):
        return None


def found(message: Any) -> Found:
    """An Appointment message as a Found."""
    return Found(
        message.id,
        int(message.version),
        message.patient_id,
        _updated(message.fhir_json),
        message.fhir_json,
    )


def _pages(fetch: Any, items: str) -> list[Any]:
    results: list[Any] = []
    token = ""
    for _ in range(MAX_PAGES):
        response = fetch(token)
        results.extend(getattr(response, items))
        token = response.next_page_token
        if not token:
            break
    return results


def _instant(resource: dict[str, Any], name: str, resource_type: str) -> datetime:
    value = resource.get(name)
    if not isinstance(value, str) or "T" not in value:
        raise http_error(
            422, "required", f"{name} is required (an instant)", f"{resource_type}.{name}"
        )
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


def _who(resource: dict[str, Any]) -> list[Any]:
    """The participants without their answers (status, attendance): who takes part."""
    return [
        {k: v for k, v in p.items() if k not in ("status", "extension")}
        for p in resource.get("participant", [])
    ]


#: scheduling's field paths of a calendar, as the FHIR Schedule elements they come from.
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
    "service_type": "Appointment.serviceType",
    "description": "Appointment.description",
    "care_plan_id": "Appointment.supportingInformation",
    "capacity": f"Appointment.extension('{CAPACITY_EXTENSION}')",
    "reason": "Appointment.cancelationReason",
    "status": "Appointment.status",
}


class ScheduleHandler(ResourceHandler):
    type = "Schedule"
    service = "scheduling"
    compartment = False
    params = (
        SearchParam("actor", REFERENCE, ("actor",), "Practitioner/{id} or Location/{id}"),
        SearchParam("service-type", TOKEN, ("serviceType",), "a session type it serves"),
        SearchParam("specialty", TOKEN, ("specialty",), "a practitioner's role"),
        SearchParam("active", TOKEN, ("active",), "true | false"),
    )
    documentation = (
        "The program's calendars (one per practitioner or group room). Created and updated by "
        "administrators and case managers (scheduling's CreateSchedule and UpdateSchedule): "
        "actor, serviceType (session-type codes), specialty (the practitioner's role), the "
        f"room's capacity ({CAPACITY_EXTENSION}), opening hours as {AVAILABLE_TIME_EXTENSION} "
        "extensions (daysOfWeek, availableStartTime, availableEndTime, local time) and active. "
        "The hours are taken in but not served back (R4 Schedule has no element for them). "
        "No vread or history: scheduling keeps only the current version."
    )

    def read(self, caller: Caller, resource_id: str) -> Found:
        response = self.services.call(
            caller, self.services.scheduling.GetSchedule, pb.GetScheduleRequest(id=resource_id)
        )
        return self._found(response.schedule)

    @staticmethod
    def _found(schedule: Any) -> Found:
        return Found(
            schedule.id, int(schedule.version), "", _updated(schedule.fhir_json), schedule.fhir_json
        )

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        if query.get("_id") and "," not in query["_id"]:
            try:
                return [self.read(caller, query["_id"])]
            except FhirHttpError as exc:
                if exc.status == 404:
                    return []
                raise
        actor = query.get("actor", "")
        if actor and actor.split("/")[0] not in ("Practitioner", "Location"):
            raise http_error(
                400, "value", "actor must be Practitioner/{id} or Location/{id}", "actor"
            )
        service_type = query.get("service-type", "").rpartition("|")[2]
        role = query.get("specialty", "").rpartition("|")[2]
        schedules = _pages(
            lambda token: self.services.call(
                caller,
                self.services.scheduling.ListSchedules,
                pb.ListSchedulesRequest(
                    actor=actor,
                    service_type="" if "," in service_type else service_type,
                    role="" if "," in role else role,
                    page_size=1000,
                    page_token=token,
                ),
            ),
            "schedules",
        )
        return [self._found(s) for s in schedules]

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        schedule = self._schedule(resource)
        with fhir_paths(SCHEDULE_PATHS):
            response = self.services.call(
                caller,
                self.services.scheduling.CreateSchedule,
                pb.CreateScheduleRequest(request_id=request_id, schedule=schedule),
            )
        return Created(self._found(response.schedule))

    def update(
        self, caller: Caller, resource_id: str, resource: dict[str, Any], expected_version: int
    ) -> Found:
        current = self.services.call(
            caller, self.services.scheduling.GetSchedule, pb.GetScheduleRequest(id=resource_id)
        ).schedule
        schedule = self._schedule(resource)
        if schedule.actor != current.actor:
            raise http_error(
                422, "business-rule", "a calendar's actor cannot change", "Schedule.actor"
            )
        schedule.id = resource_id
        schedule.active = resource.get("active", True) is not False
        paths = ["service_types", "active"]
        if current.kind == "practitioner":
            paths.append("role")
        else:
            paths.append("capacity")
        if _extension(resource, AVAILABLE_TIME_EXTENSION):
            paths.append("opening_hours")
        with fhir_paths(SCHEDULE_PATHS):
            response = self.services.call(
                caller,
                self.services.scheduling.UpdateSchedule,
                pb.UpdateScheduleRequest(
                    schedule=schedule,
                    expected_version=expected_version,
                    update_mask=FieldMask(paths=paths),
                ),
            )
        return self._found(response.schedule)

    @staticmethod
    def _schedule(resource: dict[str, Any]) -> Any:
        actors = [a.get("reference", "") for a in resource.get("actor", [])]
        if len(actors) != 1 or actors[0].split("/")[0] not in ("Practitioner", "Location"):
            raise http_error(
                422,
                "required",
                "a calendar has exactly one actor: Practitioner/{id} or Location/{id}",
                "Schedule.actor",
            )
        kind = "practitioner" if actors[0].startswith("Practitioner/") else "room"
        roles = _codes(resource.get("specialty"))
        capacity = [e.get("valueInteger") for e in _extension(resource, CAPACITY_EXTENSION)]
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
                raise http_error(
                    422,
                    "required",
                    "an opening-hours extension needs daysOfWeek, availableStartTime and "
                    "availableEndTime",
                    f"Schedule.extension[{index}]",
                )
            hours += [
                pb.OpeningHours(day_of_week=str(d), opens=str(opens)[:5], closes=str(closes)[:5])
                for d in days
            ]
        return pb.Schedule(
            actor=actors[0],
            kind=kind,
            role=roles[0] if roles and kind == "practitioner" else "",
            service_types=_codes(resource.get("serviceType")),
            capacity=int(capacity[0]) if capacity and isinstance(capacity[0], int) else 0,
            opening_hours=hours,
        )


class SlotHandler(ResourceHandler):
    type = "Slot"
    service = "scheduling"
    compartment = False
    params = (
        SearchParam("schedule", REFERENCE, ("schedule",), "Schedule/{id}"),
        SearchParam("start", DATE, ("start",), "the slot's start (ge/gt and lt/le bound it)"),
        SearchParam("service-type", TOKEN, ("serviceType",), "a session type"),
        SearchParam("status", TOKEN, ("status",), "free (the only status served)"),
    )
    documentation = (
        "Free time, computed on each search from the calendars' opening hours, holidays and "
        "bookings (scheduling's FindSlots); slots are not stored and have no id, so there is no "
        "read. Search needs schedule or service-type, and takes a start range (default: the "
        f"next {DEFAULT_SLOT_DAYS} days, at most {MAX_SLOT_DAYS}); 60-minute slots, at most "
        "1,000 per search. A slot can be gone by the time it is booked: the booking decides."
    )

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        schedule_id = reference_id(query.get("schedule"), "Schedule") or (
            query.get("schedule", "") if "/" not in query.get("schedule", "") else ""
        )
        service_type = query.get("service-type", "").rpartition("|")[2]
        if query.get("schedule") and not schedule_id:
            raise http_error(400, "value", "schedule must name a Schedule", "schedule")
        if not schedule_id and not service_type:
            raise http_error(
                400,
                "too-costly",
                "a Slot search needs schedule or service-type",
                "schedule",
            )
        low, high = date_bounds(query, "start")
        low = low or datetime.now(UTC)
        high = high or low + timedelta(days=DEFAULT_SLOT_DAYS)
        if high <= low or high - low > timedelta(days=MAX_SLOT_DAYS):
            raise http_error(
                400,
                "value",
                f"the start range must be non-empty and at most {MAX_SLOT_DAYS} days",
                "start",
            )
        response = self.services.call(
            caller,
            self.services.scheduling.FindSlots,
            pb.FindSlotsRequest(
                schedule_id=schedule_id,
                service_type="" if schedule_id else service_type,
                start_time=_ts(low),
                end_time=_ts(high),
                page_size=1000,
            ),
        )
        if schedule_id:
            return [Found("", 1, "", None, s.fhir_json) for s in response.slots]
        # Selected by session type: each slot says so (scheduling's Slot leaves it out).
        concept = [{"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": service_type}]}]
        return [
            Found("", 1, "", None, json.dumps({**json.loads(s.fhir_json), "serviceType": concept}))
            for s in response.slots
        ]


class AppointmentHandler(ResourceHandler):
    type = "Appointment"
    reads_old_versions = False
    service = "scheduling"
    params = (
        SearchParam("patient", REFERENCE, ("participant.actor",), "the patient"),
        SearchParam(
            "actor", REFERENCE, ("participant.actor",), "Patient/, Practitioner/ or Location/{id}"
        ),
        SearchParam("status", TOKEN, ("status",), "proposed | booked | arrived | fulfilled | ..."),
        SearchParam("date", DATE, ("start",), "when the session starts (ge/le bound it)"),
        SearchParam("service-type", TOKEN, ("serviceType",), "the session type"),
        SearchParam("service-category", TOKEN, ("serviceCategory",), "the kind of session"),
    )
    documentation = (
        "Sessions. Create books an individual session (participants: one Patient, one or two "
        "Practitioners, optionally a Location; start, end, serviceType; BookAppointment) or, with "
        f"appointmentType {APPOINTMENT_KIND_SYSTEM}|group, a group session in a room "
        "(CreateGroupSession; patients join it in scheduling). Update (If-Match required) makes "
        "one change: status cancelled (CancelAppointment, reason from cancelationReason.text), "
        "arrived/checked-in/fulfilled/noshow (RecordAttendance, individual sessions) or a new "
        "start/end (RescheduleAppointment, reason from comment); any other change is 422. "
        "Double booking and a full group are 409. vread serves the current version only."
    )

    def read(self, caller: Caller, resource_id: str) -> Found:
        response = self.services.call(
            caller,
            self.services.scheduling.GetAppointment,
            pb.GetAppointmentRequest(id=resource_id),
        )
        return found(response.appointment)

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        current = self.read(caller, resource_id)
        if version != current.version:
            raise http_error(
                404,
                "not-found",
                f"Appointment/{resource_id} version {version} is not served (scheduling keeps "
                f"the current version, {current.version})",
            )
        return current

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        actor = query.get("actor", "")
        if not (actor and actor.split("/")[0] in ("Practitioner", "Location")):
            actor = ""
            patient_id = require_patient(patient_id, self.type)
        low, high = date_bounds(query, "date")
        statuses = [s.rpartition("|")[2] for s in query.get("status", "").split(",") if s]
        request = pb.ListAppointmentsRequest(
            patient_id=patient_id or "", actor=actor, statuses=statuses, page_size=1000
        )
        if low is not None:
            request.start_time.CopyFrom(_ts(low))
        if high is not None:
            request.end_time.CopyFrom(_ts(high))

        def page(token: str) -> Any:
            request.page_token = token
            return self.services.call(caller, self.services.scheduling.ListAppointments, request)

        return [found(a) for a in _pages(page, "appointments")]

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        with fhir_paths(APPOINTMENT_PATHS):
            return self._create(caller, resource, request_id)

    def _create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        if resource.get("status") not in (None, "booked"):
            raise http_error(
                422,
                "business-rule",
                "a new appointment is booked (status booked or absent); proposed sessions come "
                "from care plans",
                "Appointment.status",
            )
        start = _instant(resource, "start", self.type)
        end = _instant(resource, "end", self.type)
        by_type: dict[str, list[str]] = {}
        for index, participant in enumerate(resource.get("participant", [])):
            reference = participant.get("actor", {}).get("reference", "")
            kind, _, ident = reference.partition("/")
            if kind not in ("Patient", "Practitioner", "Location") or not ident:
                raise http_error(
                    422,
                    "value",
                    "participants are Patient/{id}, Practitioner/{id} or Location/{id}",
                    f"Appointment.participant[{index}].actor",
                )
            by_type.setdefault(kind, []).append(ident)
        service_types = _codes(resource.get("serviceType"))
        group = "group" in _codes([resource.get("appointmentType") or {}])
        if group:
            if by_type.get("Patient"):
                raise http_error(
                    422,
                    "business-rule",
                    "a group session is created without patients; they join it in scheduling",
                    "Appointment.participant",
                )
            if len(by_type.get("Location", [])) != 1:
                raise http_error(
                    422, "required", "a group session needs one room (Location)", "Appointment"
                )
            capacity = [e.get("valueInteger") for e in _extension(resource, CAPACITY_EXTENSION)]
            response = self.services.call(
                caller,
                self.services.scheduling.CreateGroupSession,
                pb.CreateGroupSessionRequest(
                    request_id=request_id,
                    location_id=by_type["Location"][0],
                    facilitator_ids=by_type.get("Practitioner", []),
                    start_time=_ts(start),
                    end_time=_ts(end),
                    capacity=int(capacity[0]) if capacity and isinstance(capacity[0], int) else 0,
                    service_type=service_types[0] if service_types else "",
                    description=str(resource.get("description", "")),
                ),
            )
            return Created(found(response.appointment))
        if len(by_type.get("Patient", [])) != 1:
            raise http_error(
                422,
                "required",
                "an individual session has exactly one Patient participant",
                "Appointment.participant",
            )
        if len(by_type.get("Location", [])) > 1:
            raise http_error(422, "value", "at most one room", "Appointment.participant")
        plans = [
            reference_id(s.get("reference"), "CarePlan")
            for s in resource.get("supportingInformation", [])
        ]
        response = self.services.call(
            caller,
            self.services.scheduling.BookAppointment,
            pb.BookAppointmentRequest(
                request_id=request_id,
                patient_id=by_type["Patient"][0],
                practitioner_ids=by_type.get("Practitioner", []),
                location_id=(by_type.get("Location") or [""])[0],
                start_time=_ts(start),
                end_time=_ts(end),
                service_type=service_types[0] if service_types else "",
                description=str(resource.get("description", "")),
                care_plan_id=next((p for p in plans if p), ""),
            ),
        )
        return Created(found(response.appointment))

    #: Elements a PUT may differ in from the stored version without asking for a change
    #: (server-maintained or the reason of the one change asked for).
    IGNORED = frozenset(
        {"meta", "text", "id", "minutesDuration", "cancelationReason", "comment", "participant"}
    )

    def update(
        self, caller: Caller, resource_id: str, resource: dict[str, Any], expected_version: int
    ) -> Found:
        with fhir_paths(APPOINTMENT_PATHS):
            return self._update(caller, resource_id, resource, expected_version)

    def _update(
        self, caller: Caller, resource_id: str, resource: dict[str, Any], expected_version: int
    ) -> Found:
        current_found = self.read(caller, resource_id)
        if current_found.version != expected_version:
            raise FhirHttpError(
                412,
                Problem(
                    "conflict",
                    f"Appointment/{resource_id} is at version {current_found.version}, not "
                    f"{expected_version}",
                ),
                headers={"ETag": f'W/"{current_found.version}"'},
            )
        current = current_found.resource
        changed = sorted(
            key
            for key in set(current) | set(resource)
            if key not in self.IGNORED and current.get(key) != resource.get(key)
        )
        if _who(current) != _who(resource):
            changed.append("participant")
        other = [k for k in changed if k not in ("status", "start", "end")]
        if other:
            raise FhirHttpError(
                422,
                [
                    Problem(
                        "business-rule",
                        "an appointment changes only by its status (cancel, attendance) or its "
                        "time (reschedule)",
                        f"Appointment.{key}",
                    )
                    for key in other
                ],
            )
        if not changed:
            return current_found
        if "status" in changed and ({"start", "end"} & set(changed)):
            raise http_error(
                422,
                "business-rule",
                "change the status and the time in two updates",
                "Appointment.status",
            )
        scheduling = self.services.scheduling
        if "status" in changed:
            status = resource.get("status")
            reason = str(resource.get("cancelationReason", {}).get("text", "")) or str(
                resource.get("comment", "")
            )
            if status == "cancelled":
                response: Any = self.services.call(
                    caller,
                    scheduling.CancelAppointment,
                    pb.CancelAppointmentRequest(
                        appointment_id=resource_id,
                        expected_version=expected_version,
                        reason=reason,
                    ),
                )
            elif status in ATTENDANCE:
                if current_found.patient_id == "":
                    raise http_error(
                        422,
                        "not-supported",
                        "attendance in a group session is recorded per patient in scheduling",
                        "Appointment.status",
                    )
                response = self.services.call(
                    caller,
                    scheduling.RecordAttendance,
                    pb.RecordAttendanceRequest(
                        appointment_id=resource_id,
                        expected_version=expected_version,
                        status=str(status),
                        reason=reason,
                    ),
                )
            else:
                raise http_error(
                    422,
                    "business-rule",
                    f"status can become cancelled, {', '.join(ATTENDANCE)}; not {status!r}",
                    "Appointment.status",
                )
            return found(response.appointment)
        start = _instant(resource, "start", self.type)
        end = _instant(resource, "end", self.type)
        response = self.services.call(
            caller,
            scheduling.RescheduleAppointment,
            pb.RescheduleAppointmentRequest(
                appointment_id=resource_id,
                expected_version=expected_version,
                start_time=_ts(start),
                end_time=_ts(end),
                reason=str(resource.get("comment", "")) or "rescheduled through the FHIR gateway",
            ),
        )
        return found(response.appointment)
