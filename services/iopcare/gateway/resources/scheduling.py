"""Resources the scheduling service owns: Schedule (calendars), Slot (free time, computed) and
Appointment (sessions).

What a write asks of scheduling is scheduling's to say: its contract maps the FHIR resource to
the request (`iopcare.scheduling.contract`: CreateSchedule, UpdateSchedule with a field mask,
BookAppointment or CreateGroupSession, and for a PUT of an Appointment the one change it asks
for: CancelAppointment, RecordAttendance or RescheduleAppointment). The handlers here only carry
the request to the service and its answer back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import iopcare.scheduling.contract as scheduling
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, Problem, http_error
from iopcare.gateway.resources.base import (
    Change,
    Found,
    TableCreate,
    TableHandler,
    TableRead,
    command,
    found_by_meta,
    keyed,
    pages,
    reference_id,
    require_patient,
    timestamp,
)
from iopcare.gateway.search import DATE, REFERENCE, TOKEN, SearchParam, date_bounds
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb

SERVICE_TYPE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/session-type"
CAPACITY_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/capacity"
APPOINTMENT_KIND_SYSTEM = "https://iopcare.org/fhir/CodeSystem/appointment-kind"
AVAILABLE_TIME_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/schedule-available-time"
#: Slot search without a start range: this many days from now.
DEFAULT_SLOT_DAYS = 14
#: FindSlots' longest range.
MAX_SLOT_DAYS = 92


class SchedulingTable(TableHandler):
    """A scheduling resource as a table (base.TableHandler)."""

    service = "scheduling"


class ScheduleHandler(SchedulingTable, TableRead, TableCreate):
    type = "Schedule"
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
    get_request = pb.GetScheduleRequest
    create_command = scheduling.create_schedule_request
    field = "schedule"
    paths = scheduling.SCHEDULE_PATHS

    def stored(self, message: Any) -> Found:
        """A calendar belongs to no patient."""
        return found_by_meta(message, "")

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
        schedules = pages(
            lambda token: self.send(
                caller,
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
        return [self.stored(s) for s in schedules]

    def update(self, caller: Caller, change: Change) -> Found:
        current = self.send(caller, pb.GetScheduleRequest(id=change.resource_id)).schedule
        mapping = scheduling.update_schedule_request
        request = command(mapping, change.resource, current, change.expected_version)
        return self.written(caller, keyed(request, change.request_id))


class SlotHandler(SchedulingTable):
    type = "Slot"
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
        response = self.send(
            caller,
            pb.FindSlotsRequest(
                schedule_id=schedule_id,
                service_type="" if schedule_id else service_type,
                start_time=timestamp(low),
                end_time=timestamp(high),
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


class AppointmentHandler(SchedulingTable, TableRead, TableCreate):
    type = "Appointment"
    reads_old_versions = False
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
    get_request = pb.GetAppointmentRequest
    create_command = scheduling.create_appointment_request
    field = "appointment"
    paths = scheduling.APPOINTMENT_PATHS

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        return self.current_version_only(caller, resource_id, version)

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
            request.start_time.CopyFrom(timestamp(low))
        if high is not None:
            request.end_time.CopyFrom(timestamp(high))

        def page(token: str) -> Any:
            request.page_token = token
            return self.send(caller, request)

        return [self.stored(a) for a in pages(page, "appointments")]

    def update(self, caller: Caller, change: Change) -> Found:
        current = self.read(caller, change.resource_id)
        if current.version != change.expected_version:
            stale = FhirHttpError(
                412,
                Problem(
                    "conflict",
                    f"Appointment/{change.resource_id} is at version {current.version}, not "
                    f"{change.expected_version}",
                ),
                headers={"ETag": f'W/"{current.version}"'},
            )
            if not change.request_id:
                raise stale
            return self._repeated(caller, current, change, stale)
        request = command(
            scheduling.update_appointment_request,
            current.resource,
            change.resource,
            change.resource_id,
            change.expected_version,
            individual=current.patient_id != "",
        )
        if request is None:
            return current
        return self.written(caller, keyed(request, change.request_id))

    def _repeated(
        self, caller: Caller, current: Found, change: Change, stale: FhirHttpError
    ) -> Found:
        """A PUT based on an older version, sent with a request id: a retry of an update that
        was applied is that update's first result (its change is asked again, under the same
        request id, of the version it was based on); anything else is the stale version's 412
        (the service refuses another request under the id, or applies nothing to a stale one)."""
        try:
            request = command(
                scheduling.repeated_appointment_request,
                change.resource,
                current.id,
                change.expected_version,
                individual=current.patient_id != "",
            )
            request.request_id = change.request_id
            return self.written(caller, request)
        except FhirHttpError as exc:
            if exc.status >= 500:
                raise
            raise stale from None


class EncounterHandler(SchedulingTable):
    type = "Encounter"
    params = (
        SearchParam("patient", REFERENCE, ("subject",), "the patient"),
        SearchParam("date", DATE, ("period",), "when the session took place (ge/lt bound it)"),
        SearchParam(
            "type",
            TOKEN,
            ("type",),
            "the billing code: https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets|S9480 "
            "or H0015, http://www.ama-assn.org/go/cpt|90853, 90834, 90837, 90847, 99213, ...",
        ),
        SearchParam("class", TOKEN, ("class",), "AMB (v3-ActCode): every session is ambulatory"),
        SearchParam("status", TOKEN, ("status",), "arrived | finished"),
        SearchParam("service-type", TOKEN, ("serviceType",), "the session type"),
    )
    documentation = (
        "Attended sessions for billing: scheduling makes one Encounter per patient and session "
        "when the attendance is recorded (arrived, checked-in: status arrived; fulfilled: "
        "finished; a no-show none), with class AMB, the billing code in type (HCPCS S9480 or "
        "H0015 per diem with CPT 90853 for a group, CPT 90832/90834/90837 individual by "
        "length, 90847 family with the patient present, 99213/99214 medication management), "
        "period, participants (practitioners, family members who came), serviceType, the stay "
        "(episodeOfCare) when the plan names one, and the session's security labels. Search "
        "only, one patient at a time (billing staff export a whole period as CSV with "
        "scheduling's ExportEncountersCsv, docs/scheduling.md)."
    )
    field = "encounter"

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        patient_id = require_patient(patient_id, self.type)
        low, high = date_bounds(query, "date")
        request = pb.ListEncountersRequest(patient_id=patient_id, page_size=1000)
        if low is not None:
            request.start_time.CopyFrom(timestamp(low))
        if high is not None:
            request.end_time.CopyFrom(timestamp(high))

        def page(token: str) -> Any:
            request.page_token = token
            return self.send(caller, request)

        return [self.stored(e) for e in pages(page, "encounters")]
