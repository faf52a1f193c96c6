"""The events of an appointment, through the journal: one copy per patient, keyed by the patient.

A patient's events stay in order on one partition; a group session's copy names only that
patient, so no consumer learns who else is in the group. A session with no patient yet is keyed
by its own id.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection

from iopcare.kit.db import UnitOfWork
from iopcare.scheduling import codes, fhir_map, store


def patient_ids(conn: Connection, appointment_id: str) -> list[str]:
    """The ids of a session's active patients."""
    return [
        actor.split("/", 1)[1]
        for actor, role, _ in store.participants(conn, appointment_id)
        if role == "patient"
    ]


def copies(a: store.StoredAppointment, patients: list[str]) -> list[tuple[str, str]]:
    """(partition key, data) of each copy of the appointment's event: an individual session's
    one, or one per named group patient showing only that patient."""
    if not a.is_group:
        return [(a.patient_id or a.id, a.resource)]
    named = fhir_map.patients_in(a.resource)
    if not patients:
        return [(a.id, fhir_map.visible_to(a.resource, named))]
    return [(patient, fhir_map.visible_to(a.resource, named - {patient})) for patient in patients]


def publish_appointment(
    uow: UnitOfWork,
    a: store.StoredAppointment,
    event_type: str,
    at: datetime,
    patients: list[str] | None = None,
    *,
    parent_trace: str | None = None,
) -> None:
    """The appointment's event in `uow` (see the module's docstring); a group session's copies
    go to `patients`, by default every patient in it."""
    if a.is_group and patients is None:
        patients = patient_ids(uow.conn, a.id)
    subject = f"Appointment/{a.id}/_history/{a.version}"
    for key, data in copies(a, patients or []):
        store.JOURNAL.publish(
            uow, event_type, subject, key=key, data=data, at=at, parent_trace=parent_trace
        )


def publish_response(
    uow: UnitOfWork, appointment_id: str, patient_id: str, status: str, at: datetime
) -> None:
    """A patient's answer to a group session (AppointmentResponse), as an event."""
    response_id = str(uuid.uuid4())
    store.JOURNAL.publish(
        uow,
        codes.EVENT_APPOINTMENT_RESPONSE,
        f"AppointmentResponse/{response_id}/_history/1",
        key=patient_id,
        data=fhir_map.appointment_response(
            response_id, appointment_id, f"Patient/{patient_id}", status, "", at
        ),
        at=at,
    )
