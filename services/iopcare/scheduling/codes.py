"""Codes the scheduling service uses, in one place."""

from __future__ import annotations

SOURCE = "/iopcare/scheduling"
EVENT_APPOINTMENTS_PROPOSED = "iopcare.scheduling.appointments.proposed.v1"
#: Identifier system of the occurrence a proposed appointment carries out: plan/activity/start.
OCCURRENCE_SYSTEM = "urn:iopcare:careplan-activity-occurrence"
#: Who may take part in an Appointment (R4 Appointment.participant.actor).
PARTICIPANT_TYPES = frozenset(
    {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "RelatedPerson",
        "Device",
        "HealthcareService",
        "Location",
    }
)
EVENT_APPOINTMENT_UPDATED = "iopcare.scheduling.appointment.updated.v1"
#: Cancellation reasons (http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason
#: has no "late" code, so the lateness is our own coding beside the reason text).
LATE_CANCELLATION_SYSTEM = "https://iopcare.org/fhir/CodeSystem/cancellation-timing"
