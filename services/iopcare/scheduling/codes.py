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
EVENT_SCHEDULE_CREATED = "iopcare.scheduling.schedule.created.v1"
EVENT_SCHEDULE_UPDATED = "iopcare.scheduling.schedule.updated.v1"
EVENT_APPOINTMENT_BOOKED = "iopcare.scheduling.appointment.booked.v1"
EVENT_GROUP_SESSION_CREATED = "iopcare.scheduling.group-session.created.v1"
EVENT_APPOINTMENT_RESPONSE = "iopcare.scheduling.appointment-response.v1"
EVENT_DROPOUT_RISK = "iopcare.scheduling.dropout-risk.v1"
EVENT_INTENSITY_BELOW_MINIMUM = "iopcare.scheduling.intensity.below-minimum.v1"
#: Session types (Appointment.serviceType, Schedule.serviceType): the program's own codes.
SERVICE_TYPE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/session-type"
#: A practitioner calendar's role (Schedule.specialty).
ROLE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/practitioner-role"
#: Seats of a room or group session.
CAPACITY_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/capacity"
#: individual or group (Appointment.appointmentType).
APPOINTMENT_KIND_SYSTEM = "https://iopcare.org/fhir/CodeSystem/appointment-kind"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#: Alert kinds (alert_raised.kind).
ALERT_DROPOUT = "dropout-risk"
ALERT_BELOW_MINIMUM = "below-minimum"
#: A patient's attendance in a group session (on Appointment.participant).
ATTENDANCE_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/participant-attendance"
#: A plan occurrence the series could not carry out (patient booked then, group full).
EVENT_SERIES_CONFLICT = "iopcare.scheduling.series.conflict.v1"
EVENT_CHECKIN_MISSED = "iopcare.scheduling.checkin.missed.v1"
#: A patient's daily check-in answers (QuestionnaireResponse, checkin_form).
EVENT_CHECKIN_RECORDED = "iopcare.scheduling.checkin.recorded.v1"
ALERT_MISSED_CHECKIN = "missed-checkin"
#: The event each kind of alert goes out as.
EVENT_FOR_ALERT = {
    ALERT_DROPOUT: EVENT_DROPOUT_RISK,
    ALERT_BELOW_MINIMUM: EVENT_INTENSITY_BELOW_MINIMUM,
    ALERT_MISSED_CHECKIN: EVENT_CHECKIN_MISSED,
}
