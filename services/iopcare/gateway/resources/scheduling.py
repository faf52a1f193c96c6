"""Resources the scheduling service owns: Appointment today; Schedule and Slot plug in here once
scheduling offers the RPCs (see docs/gateway.md, "Seams")."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from iopcare.gateway.client import Caller
from iopcare.gateway.resources.base import Found, ResourceHandler, require_patient
from iopcare.gateway.search import DATE, REFERENCE, TOKEN, SearchParam
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb

#: Pages of ListAppointments read for one search at most (1,000 appointments each).
MAX_PAGES = 10


def found(message: Any) -> Found:
    return Found(message.id, int(message.version), message.patient_id, None, message.fhir_json)


class AppointmentHandler(ResourceHandler):
    type = "Appointment"
    service = "scheduling"
    params = (
        SearchParam("patient", REFERENCE, ("participant.actor",), "the patient"),
        SearchParam("actor", REFERENCE, ("participant.actor",), "the patient (Patient/{id})"),
        SearchParam("status", TOKEN, ("status",), "proposed | booked | arrived | fulfilled | ..."),
        SearchParam("date", DATE, ("start",), "when the session starts"),
        SearchParam("service-category", TOKEN, ("serviceCategory",), "the kind of session"),
    )
    documentation = (
        "Sessions of the patient's timetable (search only: scheduling has no single-appointment "
        "read yet). Attendance changes through scheduling's RecordAttendance."
    )

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        patient = require_patient(patient_id, self.type)
        results: list[Found] = []
        token = ""
        for _ in range(MAX_PAGES):
            response = self.services.call(
                caller,
                self.services.scheduling.ListAppointments,
                pb.ListAppointmentsRequest(patient_id=patient, page_size=1000, page_token=token),
            )
            results.extend(found(a) for a in response.appointments)
            token = response.next_page_token
            if not token:
                break
        return results


def _utc(value: Any) -> Any:
    return value.ToDatetime(tzinfo=UTC)
