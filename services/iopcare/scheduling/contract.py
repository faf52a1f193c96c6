"""What scheduling publishes for the other services and the gateway: nothing else of scheduling's
may be imported from outside it (`tests/unit/test_architecture.py`).

- Events: scheduling's topic, its CloudEvents `source` and every event type it emits (the payload
  is the FHIR resource as stored: an Appointment, a Bundle of proposed Appointments, a Schedule, a
  Flag for alerts).
- FHIR in (`fhir_commands`): the request a FHIR Schedule or Appointment asks for, and the FHIR
  element each request field comes from, so the gateway speaks FHIR to scheduling without
  knowing its fields (and re-checks none of its rules).
- Payload vocabulary: the extension that carries one patient's attendance in a group session
  (on `Appointment.participant`) and the identifier system of the plan occurrence a proposed
  appointment carries out.

The names are defined in scheduling's own modules and re-exported here: changing anything listed
below changes scheduling's public surface, and its consumers with it.
"""

from __future__ import annotations

from iopcare.kit import topics
from iopcare.scheduling.checkin_form import (
    QUESTIONNAIRE,
    QUESTIONNAIRE_URL,
    answers_from_response,
    record_check_in_request,
)
from iopcare.scheduling.checkin_form import self_harm_answer as checkin_self_harm
from iopcare.scheduling.codes import (
    ATTENDANCE_EXTENSION,
    EVENT_APPOINTMENT_BOOKED,
    EVENT_APPOINTMENT_RESPONSE,
    EVENT_APPOINTMENT_UPDATED,
    EVENT_APPOINTMENTS_PROPOSED,
    EVENT_CHECKIN_MISSED,
    EVENT_CHECKIN_RECORDED,
    EVENT_DROPOUT_RISK,
    EVENT_GROUP_SESSION_CREATED,
    EVENT_INTENSITY_BELOW_MINIMUM,
    EVENT_SCHEDULE_CREATED,
    EVENT_SCHEDULE_UPDATED,
    EVENT_SERIES_CONFLICT,
    OCCURRENCE_SYSTEM,
    SOURCE,
)
from iopcare.scheduling.encounter_reads import encounters_csv
from iopcare.scheduling.fhir_commands import (
    APPOINTMENT_PATHS,
    SCHEDULE_PATHS,
    create_appointment_request,
    create_schedule_request,
    repeated_appointment_request,
    update_appointment_request,
    update_schedule_request,
)

#: The topic scheduling's relay publishes every event on (key: the patient's id).
TOPIC = topics.SCHEDULING

__all__ = [
    "APPOINTMENT_PATHS",
    "ATTENDANCE_EXTENSION",
    "EVENT_APPOINTMENTS_PROPOSED",
    "EVENT_APPOINTMENT_BOOKED",
    "EVENT_APPOINTMENT_RESPONSE",
    "EVENT_APPOINTMENT_UPDATED",
    "EVENT_CHECKIN_MISSED",
    "EVENT_CHECKIN_RECORDED",
    "EVENT_DROPOUT_RISK",
    "EVENT_GROUP_SESSION_CREATED",
    "EVENT_INTENSITY_BELOW_MINIMUM",
    "EVENT_SCHEDULE_CREATED",
    "EVENT_SCHEDULE_UPDATED",
    "EVENT_SERIES_CONFLICT",
    "OCCURRENCE_SYSTEM",
    "QUESTIONNAIRE",
    "QUESTIONNAIRE_URL",
    "SCHEDULE_PATHS",
    "SOURCE",
    "TOPIC",
    "answers_from_response",
    "checkin_self_harm",
    "create_appointment_request",
    "create_schedule_request",
    "encounters_csv",
    "record_check_in_request",
    "repeated_appointment_request",
    "update_appointment_request",
    "update_schedule_request",
]
