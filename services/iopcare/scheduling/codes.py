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
