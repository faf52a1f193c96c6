"""Resources the notes service owns: Communication (team messages), DocumentReference (clinical
notes), Flag and Consent.

Clinical notes and privacy. The notes service applies its privacy rules to the caller's own
identity (the gateway forwards the token). A system caller (an EHR's backend token: a disclosure
outside the program) gets every note through `DiscloseNote` with itself as the recipient: notes
releases a 42 CFR Part 2 or restricted note only under the patient's active Consent naming that
recipient, with the NORDSCLCD label and the redisclosure notice, and never psychotherapy or V
notes; such a released copy is marked `released` so the gateway does not withhold it a second
time (disclosure.py stays the one rule for everything else). A clinician's token reads through
GetNote and SearchNotes, and the gateway's label rule then applies as to every other resource.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from typing import Any

import iopcare.notes.contract as notes_contract
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, Problem, http_error
from iopcare.gateway.resources.base import (
    SUBJECT_PARAMS,
    Change,
    Created,
    Found,
    TableCreate,
    TableHandler,
    TableRead,
    TableSearch,
    command,
    keyed,
    meta_version,
    pages,
    reference_id,
    require_patient,
    time_of,
    timestamp,
)
from iopcare.gateway.resources.paths import fhir_paths
from iopcare.gateway.search import DATE, REFERENCE, TOKEN, SearchParam, date_bounds
from iopcare.notes.v1 import notes_service_pb2 as pb

#: Identities whose reads of notes are disclosures outside the program (notes' DISCLOSING_ROLES).
DISCLOSING_ROLES = frozenset({"system", "service", "admin"})
#: The special search parameter type (`_content`): pushed down, never filtered here.
SPECIAL = "special"


def message_found(message: Any) -> Found:
    return Found(
        message.id,
        int(message.version) or 1,
        message.patient_id,
        message.sent_time.ToDatetime(tzinfo=UTC),
        message.fhir_json,
    )


def _note_found(note: Any) -> Found:
    return Found(
        note.id,
        int(note.version),
        note.patient_id,
        time_of(note.sign_time) or time_of(note.create_time),
        note.fhir_json,
    )


def _disclosing(caller: Caller) -> bool:
    return caller.principal.role in DISCLOSING_ROLES


def _check_version(what: str, current: Any, expected_version: int) -> None:
    if int(current.version) != expected_version:
        raise FhirHttpError(
            412,
            Problem("conflict", f"the {what} is at version {current.version}"),
            headers={"ETag": f'W/"{current.version}"'},
        )


class NotesTable(TableHandler):
    """A notes resource as a table (base.TableHandler); Flag and Consent messages are stored as
    `TableHandler.stored` reads them (their time is meta.lastUpdated)."""

    service = "notes"


class CommunicationHandler(NotesTable, TableRead, TableCreate, TableSearch):
    type = "Communication"
    params = (
        *SUBJECT_PARAMS,
        SearchParam("category", TOKEN, ("category",), "update | question | handoff | crisis"),
        SearchParam("priority", TOKEN, ("priority",), "routine | urgent | asap | stat"),
        SearchParam("status", TOKEN, ("status",), "completed | entered-in-error"),
        SearchParam("sent", DATE, ("sent",), "when it was sent"),
    )
    documentation = (
        "The patient's team thread. A create posts a message (PostMessage): subject (the "
        "Patient), payload contentString (the text; contentReference and contentAttachment.url "
        "as attachments by reference), category (update, question, handoff, crisis: a crisis "
        "raises the crisis alert), priority, recipient (Practitioner/{id}), inResponseTo, partOf "
        "and about; the sender is the caller. Messages are not edited (no update)."
    )

    get_request = pb.GetCommunicationRequest
    create_command = notes_contract.post_message_request
    list_request = pb.ListThreadRequest
    field = "message"
    items = "messages"
    paths = notes_contract.MESSAGE_PATHS

    def stored(self, message: Any) -> Found:
        return message_found(message)


class FlagHandler(NotesTable, TableSearch):
    type = "Flag"
    params = (
        *SUBJECT_PARAMS,
        SearchParam("status", TOKEN, ("status",), "active | inactive | entered-in-error"),
        SearchParam("category", TOKEN, ("category",), "e.g. safety"),
        SearchParam("date", DATE, ("period",), "the flag's period"),
    )
    documentation = "Safety flags raised by crises and attendance alerts (search only)."
    list_request = pb.ListFlagsRequest
    items = "flags"


class DocumentReferenceHandler(NotesTable):
    type = "DocumentReference"
    reads_old_versions = False
    params = (
        *SUBJECT_PARAMS,
        SearchParam("author", REFERENCE, ("author",), "Practitioner/{id}"),
        SearchParam("type", TOKEN, ("type",), "LOINC document type (e.g. 11506-3)"),
        SearchParam("category", TOKEN, ("category",), "clinical-note"),
        SearchParam("status", TOKEN, ("status",), "current | entered-in-error"),
        SearchParam("date", DATE, ("date",), "when the note was written"),
        SearchParam("_content", SPECIAL, (), "words that must all occur in the note (full text)"),
    )
    documentation = (
        "Clinical notes. A system caller (an EHR: a disclosure outside the program) reads each "
        "note through notes' DiscloseNote with its token's subject as the recipient: signed "
        "notes only; 42 CFR Part 2 and restricted notes only under the patient's active Consent "
        "naming that recipient, then with the NORDSCLCD label and the redisclosure notice; "
        "psychotherapy and V notes never. Its searches (SearchNotes with the same recipient) "
        "return exactly the notes that may be disclosed to it, as disclosed. A clinician's "
        "token reads under notes' privacy rules, and "
        "labelled notes are then withheld like any labelled resource. Create makes a draft "
        "(CreateNote: subject, type (LOINC), description as the title, content[0].attachment "
        "text/plain data, meta.security confidentiality and sensitivity); update edits a draft's "
        "description or text (UpdateNote) or signs it (docStatus preliminary -> final, "
        "SignNote). vread serves the current version only."
    )
    field = "note"
    paths = notes_contract.NOTE_PATHS

    def stored(self, message: Any) -> Found:
        return _note_found(message)

    def read(self, caller: Caller, resource_id: str) -> Found:
        if _disclosing(caller):
            return self._disclosed(caller, resource_id)
        return self.one(caller, pb.GetNoteRequest(id=resource_id))

    def _disclosed(self, caller: Caller, note_id: str) -> Found:
        text = self.send(caller, pb.DiscloseNoteRequest(id=note_id)).fhir_json
        version, updated = meta_version(text)
        patient = reference_id(json.loads(text).get("subject", {}).get("reference"), "Patient")
        return Found(note_id, version, patient, updated, text, released=True)

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        return self.current_version_only(caller, resource_id, version)

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        patient = require_patient(patient_id, self.type)
        low, high = date_bounds(query, "date")
        type_codes = [t.rpartition("|")[2] for t in query.get("type", "").split(",") if t]
        author = query.get("author", "")
        if author and not reference_id(author, "Practitioner"):
            raise http_error(400, "value", "author must be Practitioner/{id}", "author")
        request = pb.SearchNotesRequest(
            patient_id=patient,
            author=author,
            type_codes=type_codes,
            text=query.get("_content", ""),
            page_size=1000,
            # A system caller's hits are what DiscloseNote would release to it, as released.
            recipient=caller.principal.subject if _disclosing(caller) else "",
        )
        if low is not None:
            request.date_from.CopyFrom(timestamp(low))
        if high is not None:
            request.date_to.CopyFrom(timestamp(high))

        def page(token: str) -> Any:
            request.page_token = token
            return self.send(caller, request)

        notes = pages(page, "notes")
        if not _disclosing(caller):
            return [_note_found(n) for n in notes]
        return [replace(_note_found(n), released=True) for n in notes]

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        request = command(notes_contract.create_note_request, resource, request_id)
        with fhir_paths(self.paths):
            return Created(self.stored(self.send(caller, request).notes[0]))

    def update(self, caller: Caller, change: Change) -> Found:
        current = self.send(caller, pb.GetNoteRequest(id=change.resource_id)).note
        mapping = notes_contract.update_note_request
        request = _update(mapping, current, change, change.expected_version)
        if request is None:
            _check_version("note", current, change.expected_version)
            return _note_found(current)
        return self.written(caller, request)


class ConsentHandler(NotesTable, TableRead, TableCreate, TableSearch):
    type = "Consent"
    params = (
        SearchParam("patient", REFERENCE, ("patient",), "the patient"),
        SearchParam("status", TOKEN, ("status",), "active | inactive"),
    )
    documentation = (
        "The patient's consents to disclose their records (42 CFR 2.31). Create records one "
        "(RecordConsent): patient, status active, the recipient as provision.actor (role IRCP) "
        "reference: type Organization or Device with identifier "
        f"{notes_contract.CLIENT_ID_SYSTEM}|<client id> (the subject of the recipient's tokens) or "
        "Device/<client id>, never a display name; provision.securityLabel SUD or ETH for Part 2 "
        "records only (else all records), provision.period. A consent is the patient's act: "
        "recorded with the patient's own token (role patient, launch context that patient), or "
        "by program staff on the patient's care team with the signed form: dateTime (when the "
        "patient signed) and sourceReference DocumentReference/{id} or sourceAttachment.url "
        "(https). Never by the recipient or an outside system (403). Read by id (GetConsent); "
        "search by patient (ListConsents). Update revokes: status active -> inactive "
        "(RevokeConsent), If-Match required; nothing else changes."
    )

    get_request = pb.GetConsentRequest
    create_command = notes_contract.record_consent_request
    list_request = pb.ListConsentsRequest
    field = "consent"
    items = "consents"
    paths = notes_contract.CONSENT_PATHS

    def update(self, caller: Caller, change: Change) -> Found:
        """Revocation (42 CFR 2.31(a)(6): the patient may revoke at any time): status active ->
        inactive is RevokeConsent; nothing else of a consent changes (notes' contract says)."""
        current = self.send(caller, pb.GetConsentRequest(id=change.resource_id)).consent
        _check_version("consent", current, change.expected_version)
        request = _update(notes_contract.update_consent_request, current, change)
        if request is None:
            return self.stored(current)
        return self.one(caller, request)


def _update(mapping: Callable[..., Any], current: Any, change: Change, *more: Any) -> Any:
    """The update request notes' contract maps a change of `current` (the stored message) to
    (None: no change), keyed by the change's request id."""
    old = json.loads(current.fhir_json)
    request = command(mapping, old, change.resource, change.resource_id, *more)
    return keyed(request, change.request_id)
