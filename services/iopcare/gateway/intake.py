"""The intake appointment a `$handoff` books: the first free slot of an intake-capable
practitioner before the program's intake window closes, through scheduling's FindSlots and
BookAppointment (handoff.py step 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from iopcare.gateway import scopes
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError
from iopcare.gateway.http import GatewayContext
from iopcare.gateway.resources.base import reference_id, timestamp
from iopcare.scheduling.v1 import scheduling_service_pb2 as scheduling_pb

#: The session type of intake appointments: calendars serving it are intake-capable.
INTAKE_SERVICE_TYPE = "intake"
INTAKE_MINUTES = 60
#: Slots tried when the first ones are taken between FindSlots and BookAppointment.
INTAKE_ATTEMPTS = 5


def book_intake(
    gateway: GatewayContext,
    caller: Caller,
    intake_request_id: str,
    patient_id: str,
    plan_id: str,
    due: datetime,
) -> tuple[str | None, str]:
    """Books the intake appointment: the first free slot of an intake-capable practitioner
    (a calendar serving session type `intake`) before `due`, through scheduling's FindSlots and
    BookAppointment with a request id derived from the bundle, so a repeated bundle books once.
    A repeat after the slot was taken finds the booked intake among the patient's appointments.
    Returns the Appointment reference, or None and why (a warning: the handoff itself stands)."""
    due_text = due.isoformat(timespec="minutes")
    if not scopes.allows(caller.scopes, "Appointment", scopes.CREATE):
        return None, (
            f"no intake appointment was booked: the token may not create Appointments; the "
            f"intake is due by {due_text}"
        )
    try:
        booked = _booked_intake(gateway, caller, patient_id)
        if booked:
            return booked, ""
        now = datetime.now(UTC)
        if due <= now:
            return None, f"no intake appointment was booked: the window closed at {due_text}"
        request = scheduling_pb.FindSlotsRequest(
            service_type=INTAKE_SERVICE_TYPE,
            start_time=timestamp(now),
            end_time=timestamp(due),
            duration_minutes=INTAKE_MINUTES,
            page_size=1000,
        )
        slots = gateway.services.send(caller, "scheduling", request).slots
        booked = _book_first_free(gateway, caller, intake_request_id, patient_id, plan_id, slots)
        if booked:
            return booked, ""
    except FhirHttpError as exc:
        # The stay and the plan exist; a repeat of the bundle tries again (same request id).
        return None, (
            f"no intake appointment was booked ({exc.status}: {exc}); the intake is due by "
            f"{due_text}; send the bundle again"
        )
    return None, (
        f"no intake appointment was booked: no intake-capable practitioner (a calendar serving "
        f"{INTAKE_SERVICE_TYPE!r}) has a free {INTAKE_MINUTES}-minute slot before {due_text}"
    )


def _book_first_free(
    gateway: GatewayContext,
    caller: Caller,
    intake_request_id: str,
    patient_id: str,
    plan_id: str,
    slots: Any,
) -> str | None:
    """Books the first of `slots` still free when asked (at most INTAKE_ATTEMPTS tries): the
    Appointment reference, or None when every one tried was taken meanwhile."""
    attempts = 0
    for slot in slots:
        practitioner = reference_id(slot.actor, "Practitioner")
        if not practitioner or slot.appointment_id:
            continue
        attempts += 1
        if attempts > INTAKE_ATTEMPTS:
            break
        request = scheduling_pb.BookAppointmentRequest(
            request_id=intake_request_id,
            patient_id=patient_id,
            practitioner_ids=[practitioner],
            start_time=slot.start_time,
            end_time=slot.end_time,
            service_type=INTAKE_SERVICE_TYPE,
            description="Intake (step-down handoff)",
            care_plan_id=plan_id,
        )
        try:
            appointment = gateway.services.send(caller, "scheduling", request).appointment
        except FhirHttpError as exc:
            if exc.reason == "REQUEST_ID_REUSED":
                # A concurrent repeat of this handoff booked the intake (another slot)
                # under this request id first: that booking is the intake.
                booked = _booked_intake(gateway, caller, patient_id)
                if booked:
                    return booked
                raise
            if exc.status == 409:
                continue  # taken since FindSlots answered (DOUBLE_BOOKED): the next one
            raise
        return f"Appointment/{appointment.id}"
    return None


def _booked_intake(gateway: GatewayContext, caller: Caller, patient_id: str) -> str | None:
    """The patient's booked intake appointment, if there is one."""
    request = scheduling_pb.ListAppointmentsRequest(
        patient_id=patient_id, statuses=["booked"], page_size=1000
    )
    for a in gateway.services.send(caller, "scheduling", request).appointments:
        if INTAKE_SERVICE_TYPE in json.dumps(json.loads(a.fhir_json).get("serviceType", [])):
            return f"Appointment/{a.id}"
    return None
