"""Codes the care plan service uses, in one place (FHIR code systems, SNOMED CT)."""

from __future__ import annotations

#: http://hl7.org/fhir/request-status (CarePlan.status)
PLAN_STATUSES = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
#: Statuses a plan may be created in; the others are reached through its lifecycle.
CREATABLE_STATUSES = frozenset({"draft", "active"})
#: http://hl7.org/fhir/request-intent (CarePlan.intent)
PLAN_INTENTS = frozenset({"proposal", "plan", "order", "option"})
#: http://hl7.org/fhir/care-plan-activity-status
ACTIVITY_STATUSES = frozenset(
    {
        "not-started",
        "scheduled",
        "in-progress",
        "on-hold",
        "completed",
        "cancelled",
        "stopped",
        "unknown",
        "entered-in-error",
    }
)

SOURCE = "/iopcare/careplan"
EVENT_CREATED = "iopcare.careplan.created.v1"
