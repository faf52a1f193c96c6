"""What careplan publishes for the other services and the gateway: nothing else of careplan's may
be imported from outside it (`tests/unit/test_architecture.py`).

- Events: careplan's topic, its CloudEvents `source` and every event type it emits (the payload is
  the FHIR resource as stored: CarePlan, CareTeam, Goal, Observation, EpisodeOfCare, Patient,
  MedicationStatement, ...; a reconciliation overdue carries the team's Task).
- Payload readers: `measure_from_fhir` reads a recorded measure (the Observation of
  `EVENT_MEASURE_RECORDED` and `EVENT_CRISIS`) the way careplan's own rules read it, so a consumer
  never re-implements careplan's reading of PHQ-9 totals, item 9 and effective times.
  `alerts_from_fhir` reads why a crisis event was raised (the ALERT_EXTENSION its Observation
  carries: kind `psychiatric` or `medical`, severity, the measure, its value and unit, a reason
  and the roles to alert; `medical` alerts go to the physician and the psychiatrist).
  `CSSRS_SCREEN_RISK` is the measure of a C-SSRS screen's alert (severity `urgent` for high
  risk, a crisis; `moderate` for moderate risk, an alert).

The names are defined in careplan's own modules and re-exported here: changing anything listed
below changes careplan's public surface, and its consumers with it.
"""

from __future__ import annotations

from iopcare.careplan.codes import (
    ALERT_EXTENSION,
    CSSRS_SCREEN_RISK,
    EVENT_AUTHORIZATION_ALERT,
    EVENT_CREATED,
    EVENT_CRISIS,
    EVENT_EPISODE,
    EVENT_FOR_CHANGE,
    EVENT_GOAL_CREATED,
    EVENT_GOAL_UPDATED,
    EVENT_MEASURE_RECORDED,
    EVENT_MEDICATION_CREATED,
    EVENT_MEDICATION_UPDATED,
    EVENT_PATIENT_CREATED,
    EVENT_PATIENT_UPDATED,
    EVENT_PRACTITIONER_CREATED,
    EVENT_PRACTITIONER_ROLE_CREATED,
    EVENT_RECONCILIATION_OVERDUE,
    EVENT_RELATED_PERSON_CREATED,
    EVENT_REVIEW_DUE_NOW,
    EVENT_REVIEWED,
    EVENT_TEAM_CREATED,
    EVENT_TEAM_UPDATED,
    EVENT_UPDATED,
    PLAN_EVENTS,
    SOURCE,
    TEAM_EVENTS,
)
from iopcare.careplan.domain.measures import Measure
from iopcare.careplan.domain.monitoring import Alert
from iopcare.careplan.fhir_map import alerts_from_fhir, measure_from_fhir
from iopcare.kit import topics

#: The topic careplan's relay publishes every event on (key: the patient's id).
TOPIC = topics.CAREPLAN

__all__ = [
    "ALERT_EXTENSION",
    "CSSRS_SCREEN_RISK",
    "EVENT_AUTHORIZATION_ALERT",
    "EVENT_CREATED",
    "EVENT_CRISIS",
    "EVENT_EPISODE",
    "EVENT_FOR_CHANGE",
    "EVENT_GOAL_CREATED",
    "EVENT_GOAL_UPDATED",
    "EVENT_MEASURE_RECORDED",
    "EVENT_MEDICATION_CREATED",
    "EVENT_MEDICATION_UPDATED",
    "EVENT_PATIENT_CREATED",
    "EVENT_PATIENT_UPDATED",
    "EVENT_PRACTITIONER_CREATED",
    "EVENT_PRACTITIONER_ROLE_CREATED",
    "EVENT_RECONCILIATION_OVERDUE",
    "EVENT_RELATED_PERSON_CREATED",
    "EVENT_REVIEWED",
    "EVENT_REVIEW_DUE_NOW",
    "EVENT_TEAM_CREATED",
    "EVENT_TEAM_UPDATED",
    "EVENT_UPDATED",
    "PLAN_EVENTS",
    "SOURCE",
    "TEAM_EVENTS",
    "TOPIC",
    "Alert",
    "Measure",
    "alerts_from_fhir",
    "measure_from_fhir",
]
