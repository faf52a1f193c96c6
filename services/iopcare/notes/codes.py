"""Codes the notes service uses, in one place."""

from __future__ import annotations

SOURCE = "/iopcare/notes"
EVENT_MESSAGE_POSTED = "iopcare.notes.message.posted.v1"

#: Team message categories (issue 4): our own code system until a standard one fits.
CATEGORY_SYSTEM = "https://iopcare.org/fhir/CodeSystem/team-message-category"
CATEGORIES = frozenset({"update", "question", "handoff", "crisis", "system"})

#: http://hl7.org/fhir/request-priority
PRIORITIES = ("routine", "urgent", "asap", "stat")

#: The identity system messages are sent under (a Device per producing service).
SYSTEM_SENDER = "Device/iopcare-notes"

EVENT_CRISIS_RAISED = "iopcare.notes.crisis.raised.v1"
EVENT_CRISIS_ACKNOWLEDGED = "iopcare.notes.crisis.acknowledged.v1"
#: http://terminology.hl7.org/CodeSystem/flag-category
FLAG_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-category"
ACKNOWLEDGED_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/crisis-acknowledged"
