"""The events careplan consumes from scheduling and notes, and what it does with them.

Sessions, team messages and signed notes are projected into careplan's tables (so the holistic
view, `patient_view`, never fans out at read time); attendance feeds the attendance-rate measure
and its goals (`measures`); a crisis raised in the team thread brings the patient's plan reviews
forward (`reviews`). Every handler runs in the consumer's unit of work, with the inbox row that
makes it run once per event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, insert, select

import iopcare.notes.contract as notes
import iopcare.scheduling.contract as scheduling
from iopcare.careplan import store
from iopcare.careplan.domain.progress import note_title
from iopcare.careplan.measures import Measures
from iopcare.careplan.reviews import make_reviews_due
from iopcare.careplan.utilization import Utilization
from iopcare.kit import fhir, privacy
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.events import ReceivedEvent

#: Who revises a plan when careplan acts on another service's event (the Provenance agent).
SYSTEM = Principal(subject="service:careplan", role="service")

Handler = Callable[[UnitOfWork, ReceivedEvent], None]


def _patient_status(session_status: str, participant: Any) -> str:
    """What a session is for one of its patients: in a group session their own attendance
    (scheduling's participant extension), or cancelled once they left it (declined)."""
    for extension in participant.extension or []:
        if extension.url == scheduling.ATTENDANCE_EXTENSION and extension.valueCode:
            return str(extension.valueCode)
    if participant.status == "declined" and session_status not in ("cancelled", "noshow"):
        return "cancelled"
    return session_status


def on_appointments_proposed(uow: UnitOfWork, received: ReceivedEvent) -> None:
    for entry in received.resource.entry or []:
        _project_appointment(uow.conn, entry.resource)


def on_appointment_updated(uow: UnitOfWork, received: ReceivedEvent) -> list[str]:
    """Projects a booked or changed session; returns the patients whose row changed."""
    return _project_appointment(uow.conn, received.resource)


def statuses(conn: Connection, patient_id: str) -> list[str]:
    """The statuses of all the patient's sessions, as projected."""
    v = store.session_view.c
    return [str(s) for s in conn.scalars(select(v.status).where(v.patient_id == patient_id))]


def _project_appointment(conn: Connection, appointment: fhir.Resource) -> list[str]:
    """One row per patient the Appointment names: scheduling sends a group session once per
    patient, each copy naming that patient alone with their own attendance."""
    changed: list[str] = []
    if appointment.start is None or appointment.end is None:
        return changed
    version = int(appointment.meta.versionId or 1) if appointment.meta else 1
    plan_id = next(
        (
            fhir.reference_id(ref.reference, "CarePlan")
            for ref in appointment.supportingInformation or []
            if fhir.reference_id(ref.reference, "CarePlan")
        ),
        None,
    )
    v = store.session_view.c
    for participant in appointment.participant or []:
        patient_id = fhir.reference_id(
            participant.actor.reference if participant.actor else None, "Patient"
        )
        if not patient_id:
            continue
        row = (v.appointment_id == appointment.id) & (v.patient_id == patient_id)
        current = conn.execute(select(v.version).where(row)).scalar()
        if current is not None and current >= version:
            continue  # a replay or a late copy: never roll the view back
        conn.execute(delete(store.session_view).where(row))
        conn.execute(
            insert(store.session_view).values(
                appointment_id=appointment.id,
                patient_id=patient_id,
                care_plan_id=plan_id,
                start=appointment.start,
                end=appointment.end,
                status=_patient_status(appointment.status, participant),
                description=(appointment.description or "")[:200] or None,
                version=version,
            )
        )
        changed.append(patient_id)
    return changed


def on_message_posted(uow: UnitOfWork, received: ReceivedEvent) -> None:
    message = received.resource
    patient_id = fhir.reference_id(
        message.subject.reference if message.subject else None, "Patient"
    )
    exists = uow.conn.execute(
        select(store.note_view.c.communication_id).where(
            store.note_view.c.communication_id == message.id
        )
    ).first()
    if not patient_id or exists is not None:
        return
    text = next((p.contentString for p in message.payload or [] if p.contentString), "")
    category = next(
        (c.code for concept in message.category or [] for c in concept.coding or []), "update"
    )
    uow.conn.execute(
        insert(store.note_view).values(
            communication_id=message.id,
            patient_id=patient_id,
            sender=message.sender.reference if message.sender else "",
            title=note_title(text),
            category=category,
            priority=message.priority or "routine",
            sent_at=message.sent or received.event.time,
        )
    )


def on_message_retracted(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """A message the sender marked entered-in-error leaves the view (notes keeps it)."""
    uow.conn.execute(
        delete(store.note_view).where(store.note_view.c.communication_id == received.resource.id)
    )


def on_note_signed(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """A signed clinical note: its reference, type, author and labels (never its text)."""
    note = received.resource
    patient_id = fhir.reference_id(note.subject.reference if note.subject else None, "Patient")
    code = next((c.code for c in (note.type.coding if note.type else None) or []), None)
    kind = notes.KIND_BY_CODE.get(code or "")
    if not patient_id or not note.id or kind is None:
        return
    version = int(note.meta.versionId or 1) if note.meta else 1
    v = store.document_view.c
    current = uow.conn.execute(select(v.version).where(v.document_id == note.id)).scalar()
    if current is not None and current >= version:
        return  # a replay or a late copy
    uow.conn.execute(delete(store.document_view).where(v.document_id == note.id))
    if note.status == "entered-in-error":
        return
    labels = [s.code for s in (note.meta.security if note.meta else None) or [] if s.code]
    confidentiality = next((c for c in labels if c in privacy.CONFIDENTIALITY), "N")
    uow.conn.execute(
        insert(store.document_view).values(
            document_id=note.id,
            patient_id=patient_id,
            version=version,
            author=next((a.reference for a in note.author or [] if a.reference), ""),
            kind=kind,
            title=notes.NOTE_KINDS[kind][1],
            confidentiality=confidentiality,
            sensitivity=" ".join(sorted(set(labels) & privacy.SENSITIVITY)),
            signed_at=note.date or received.event.time,
        )
    )


def on_crisis_raised(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """A crisis raised in the team thread (a clinician's crisis message, or careplan's own
    PHQ-9 crisis coming back as an alert): the patient's active plans are due for review
    today. Idempotent per day, so the alert for careplan's own crisis changes nothing more."""
    flag = received.resource
    patient_id = fhir.reference_id(flag.subject.reference if flag.subject else None, "Patient")
    if not patient_id:
        return
    make_reviews_due(
        uow,
        SYSTEM,
        patient_id,
        received.event.time.date(),
        "crisis raised in the team thread",
    )


def handlers(measures: Measures, utilization: Utilization | None = None) -> dict[str, Handler]:
    """The consumer's table: event type -> handler."""

    def on_appointment(uow: UnitOfWork, received: ReceivedEvent) -> None:
        # The view first, then attendance goals measured from the view's sessions, then the
        # units the patient's authorizations have used (utilization review alerts).
        for patient_id in on_appointment_updated(uow, received):
            measures.on_attendance(uow, SYSTEM, patient_id, statuses(uow.conn, patient_id))
            if utilization is not None:
                utilization.check_patient(uow, patient_id, received.event.traceparent)

    return {
        scheduling.EVENT_APPOINTMENTS_PROPOSED: on_appointments_proposed,
        scheduling.EVENT_APPOINTMENT_UPDATED: on_appointment,
        scheduling.EVENT_APPOINTMENT_BOOKED: on_appointment,
        notes.EVENT_MESSAGE_POSTED: on_message_posted,
        notes.EVENT_MESSAGE_RETRACTED: on_message_retracted,
        notes.EVENT_NOTE_SIGNED: on_note_signed,
        notes.EVENT_CRISIS_RAISED: on_crisis_raised,
    }
