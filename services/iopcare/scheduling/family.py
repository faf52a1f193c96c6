"""careplan's patient and related-person events, projected: a patient's birth date (minors'
sessions after school, the adolescent intensity rule) and their family members (family
sessions name only the patient's own family)."""

from __future__ import annotations

from datetime import date

from iopcare.kit import fhir
from iopcare.kit.db import UnitOfWork
from iopcare.kit.events import ReceivedEvent
from iopcare.scheduling import store


def _version(resource: fhir.Resource) -> int:
    meta = getattr(resource, "meta", None)
    return int(meta.versionId) if meta is not None and meta.versionId else 1


def _whole_date(value: object) -> date | None:
    """A birthDate that is a whole date (a year or a month alone says too little)."""
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def on_patient(uow: UnitOfWork, received: ReceivedEvent) -> None:
    patient = received.resource
    if not patient.id:
        return
    birth = _whole_date(fhir.to_dict(patient).get("birthDate"))
    store.family.save_patient_profile(uow.conn, str(patient.id), birth, _version(patient))


def on_related_person(uow: UnitOfWork, received: ReceivedEvent) -> None:
    person = received.resource
    patient_id = fhir.reference_id(person.patient.reference if person.patient else None, "Patient")
    if not person.id or not patient_id:
        return
    store.family.save_related_person(
        uow.conn, str(person.id), patient_id, person.active is not False, _version(person)
    )
