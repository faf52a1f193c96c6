"""What notes publishes for the other services and the gateway: nothing else of notes' may be
imported from outside it (`tests/unit/test_architecture.py`). The privacy and disclosure rules
themselves are shared policy, in `iopcare.kit.privacy`.

- Events: notes' topic, its CloudEvents `source` and every event type it emits (the payload is
  the FHIR resource as stored: a Communication, a Flag, a signed DocumentReference).
- Payload vocabulary: the note kinds and their LOINC document type codes (a signed note's
  `DocumentReference.type`), the identifier system a Consent names its recipient's client id
  with, and the redisclosure notice extension.
- FHIR in (`fhir_commands`): the request a FHIR Communication, DocumentReference or Consent
  asks for, and the FHIR element each request field comes from, so the gateway speaks FHIR to
  notes without knowing its fields (and re-checks none of its rules).
- `disclosed`: the shape of a record as it leaves the program (its labels plus the obligations of
  the disclosure, e.g. NORDSCLCD, and the 42 CFR 2.32 notice), so the gateway releases a labelled
  resource exactly as notes discloses a note.

The names are defined in notes' own modules and re-exported here: changing anything listed below
changes notes' public surface, and its consumers with it.
"""

from __future__ import annotations

from iopcare.kit import topics
from iopcare.notes.codes import (
    CLIENT_ID_SYSTEM,
    EVENT_CRISIS_ACKNOWLEDGED,
    EVENT_CRISIS_RAISED,
    EVENT_MESSAGE_POSTED,
    EVENT_MESSAGE_RETRACTED,
    EVENT_NOTE_SIGNED,
    REDISCLOSURE_NOTICE_EXTENSION,
    SOURCE,
)
from iopcare.notes.domain.documents import KIND_BY_CODE, LOINC, NOTE_KINDS
from iopcare.notes.domain.safety_plan import QUESTIONNAIRE_ID as SAFETY_PLAN_QUESTIONNAIRE_ID
from iopcare.notes.domain.safety_plan import QUESTIONNAIRE_URL as SAFETY_PLAN_QUESTIONNAIRE
from iopcare.notes.fhir_commands import (
    CONSENT_PATHS,
    MESSAGE_PATHS,
    NOTE_PATHS,
    create_note_request,
    post_message_request,
    record_consent_request,
    update_consent_request,
    update_note_request,
)
from iopcare.notes.fhir_map import disclosed

#: The topic notes' relay publishes every event on (key: the patient's id).
TOPIC = topics.NOTES

__all__ = [
    "CLIENT_ID_SYSTEM",
    "CONSENT_PATHS",
    "EVENT_CRISIS_ACKNOWLEDGED",
    "EVENT_CRISIS_RAISED",
    "EVENT_MESSAGE_POSTED",
    "EVENT_MESSAGE_RETRACTED",
    "EVENT_NOTE_SIGNED",
    "KIND_BY_CODE",
    "LOINC",
    "MESSAGE_PATHS",
    "NOTE_KINDS",
    "NOTE_PATHS",
    "REDISCLOSURE_NOTICE_EXTENSION",
    "SAFETY_PLAN_QUESTIONNAIRE",
    "SAFETY_PLAN_QUESTIONNAIRE_ID",
    "SOURCE",
    "TOPIC",
    "create_note_request",
    "disclosed",
    "post_message_request",
    "record_consent_request",
    "update_consent_request",
    "update_note_request",
]
