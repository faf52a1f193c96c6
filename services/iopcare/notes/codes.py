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

EVENT_NOTE_SIGNED = "iopcare.notes.note.signed.v1"
EVENT_MESSAGE_RETRACTED = "iopcare.notes.message.retracted.v1"
#: Why an addendum or amendment was written (DocumentReference has no element for it).
AMENDMENT_REASON_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/amendment-reason"
#: The 42 CFR 2.32 notice that travels with a disclosed Part 2 record.
REDISCLOSURE_NOTICE_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/redisclosure-notice"
#: Identifiers of group sessions (the notes of one session's attendees share one).
GROUP_SESSION_SYSTEM = "https://iopcare.org/fhir/sid/group-session"

#: Identifiers of outside clients (an EHR's backend client id, the subject of its tokens): how a
#: Consent names its recipient so that the disclosure rules can compare it with the caller.
CLIENT_ID_SYSTEM = "https://iopcare.org/fhir/sid/client-id"
#: Who recorded a consent's signature and when (R4 Consent has no attester element).
CONSENT_ATTESTATION_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/consent-attestation"
