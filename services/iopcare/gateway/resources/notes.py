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

import base64
import binascii
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

import iopcare.notes.contract as notes_contract
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, Problem, http_error
from iopcare.gateway.resources.base import (
    Created,
    Found,
    ResourceHandler,
    reference_id,
    require_patient,
)
from iopcare.gateway.resources.paths import fhir_paths
from iopcare.gateway.search import (
    DATE,
    REFERENCE,
    TOKEN,
    SearchParam,
    date_bounds,
    parse_date_range,
)
from iopcare.kit import privacy
from iopcare.notes.v1 import notes_service_pb2 as pb

MAX_PAGES = 10
#: Identities whose reads of notes are disclosures outside the program (notes' DISCLOSING_ROLES).
DISCLOSING_ROLES = frozenset({"system", "service", "admin"})
CATEGORIES = ("update", "question", "handoff", "crisis")
LOINC = "http://loinc.org"
#: Note kinds by their LOINC document type (docs/notes.md).
KIND_BY_LOINC = {
    "11506-3": "progress",
    "28627-8": "psychiatric",
    "34904-3": "therapy",
    "34801-1": "nutrition",
    "34787-2": "group",
    "78306-8": "intake",
    "18842-5": "discharge",
}
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: notes' request fields, as the FHIR elements the gateway took them from.
MESSAGE_PATHS = {
    "patient_id": "Communication.subject",
    "text": "Communication.payload",
    "priority": "Communication.priority",
    "category": "Communication.category",
    "recipients": "Communication.recipient",
    "in_response_to": "Communication.inResponseTo",
    "part_of": "Communication.partOf",
    "about": "Communication.about",
    "attachments": "Communication.payload",
}
NOTE_PATHS = {
    "note": "DocumentReference",
    "patient_id": "DocumentReference.subject",
    "note.patient_id": "DocumentReference.subject",
    "kind": "DocumentReference.type",
    "title": "DocumentReference.description",
    "text": "DocumentReference.content",
    "security": "DocumentReference.meta.security",
    "confidentiality": "DocumentReference.meta.security",
    "sensitivity": "DocumentReference.meta.security",
}
CONSENT_PATHS = {
    "patient_id": "Consent.patient",
    "recipient": "Consent.provision.actor[0].reference",
    "recipient_type": "Consent.provision.actor[0].reference.type",
    "recipient_display": "Consent.provision.actor[0].reference.display",
    "scope": "Consent.provision.securityLabel",
    "start_time": "Consent.provision.period.start",
    "end_time": "Consent.provision.period.end",
    "signed_time": "Consent.dateTime",
    "signed_document": "Consent.sourceReference",
}
#: The special search parameter type (`_content`): pushed down, never filtered here.
SPECIAL = "special"


def _time(value: Timestamp) -> datetime | None:
    return value.ToDatetime(tzinfo=UTC) if value.seconds or value.nanos else None


def _ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def _pages(fetch: Any, items: str) -> list[Any]:
    results: list[Any] = []
    token = ""
    for _ in range(MAX_PAGES):
        response = fetch(token)
        results.extend(getattr(response, items))
        token = response.next_page_token
        if not token:
            break
    return results


def _meta_version(resource_json: str) -> tuple[int, datetime | None]:
    meta = json.loads(resource_json).get("meta", {})
    updated = meta.get("lastUpdated")
    try:
        version = int(meta.get("versionId", 1))
    except (TypeError, ValueError):
        version = 1
    when = datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None
    return version, when


def message_found(message: Any) -> Found:
    return Found(
        message.id,
        int(message.version) or 1,
        message.patient_id,
        message.sent_time.ToDatetime(tzinfo=UTC),
        message.fhir_json,
    )


def _refs(items: Any) -> list[str]:
    return [str(r["reference"]) for r in items or [] if isinstance(r, dict) and r.get("reference")]


class CommunicationHandler(ResourceHandler):
    type = "Communication"
    service = "notes"
    params = (
        SearchParam("patient", REFERENCE, ("subject",), "the patient"),
        SearchParam("subject", REFERENCE, ("subject",), "the patient"),
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

    def read(self, caller: Caller, resource_id: str) -> Found:
        response = self.services.call(
            caller,
            self.services.notes.GetCommunication,
            pb.GetCommunicationRequest(id=resource_id),
        )
        return message_found(response.message)

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        patient_id = reference_id(resource.get("subject", {}).get("reference"), "Patient")
        payload = resource.get("payload", [])
        texts = [p["contentString"] for p in payload if "contentString" in p]
        attachments = _refs([p.get("contentReference") for p in payload])
        attachments += [
            str(p["contentAttachment"]["url"])
            for p in payload
            if p.get("contentAttachment", {}).get("url")
        ]
        if not patient_id:
            raise http_error(
                422, "required", "subject must reference a Patient", "Communication.subject"
            )
        if not texts:
            raise http_error(
                422,
                "required",
                "the message text goes in payload.contentString",
                "Communication.payload",
            )
        categories = [
            c.get("code")
            for concept in resource.get("category", [])
            for c in concept.get("coding", [])
            if c.get("code") in CATEGORIES
        ]
        if resource.get("category") and not categories:
            raise http_error(
                422,
                "value",
                f"category is one of {', '.join(CATEGORIES)}",
                "Communication.category",
            )
        answers = []
        for index, reference in enumerate(_refs(resource.get("inResponseTo"))):
            answer = reference_id(reference, "Communication")
            if not answer:
                raise http_error(
                    422,
                    "value",
                    "inResponseTo names a Communication of the same thread",
                    f"Communication.inResponseTo[{index}]",
                )
            answers.append(answer)
        if len(answers) > 1:
            raise http_error(
                422, "value", "a message answers one message", "Communication.inResponseTo"
            )
        with fhir_paths(MESSAGE_PATHS):
            response = self.services.call(
                caller,
                self.services.notes.PostMessage,
                pb.PostMessageRequest(
                    request_id=request_id,
                    patient_id=patient_id,
                    text="\n\n".join(texts),
                    priority=str(resource.get("priority", "")),
                    category=categories[0] if categories else "",
                    recipients=_refs(resource.get("recipient")),
                    in_response_to=answers[0] if answers else "",
                    part_of=_refs(resource.get("partOf")),
                    about=_refs(resource.get("about")),
                    attachments=attachments,
                ),
            )
        return Created(message_found(response.message))

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        patient = require_patient(patient_id, self.type)
        messages = _pages(
            lambda token: self.services.call(
                caller,
                self.services.notes.ListThread,
                pb.ListThreadRequest(patient_id=patient, page_size=1000, page_token=token),
            ),
            "messages",
        )
        return [message_found(m) for m in messages]


class FlagHandler(ResourceHandler):
    type = "Flag"
    service = "notes"
    params = (
        SearchParam("patient", REFERENCE, ("subject",), "the patient"),
        SearchParam("subject", REFERENCE, ("subject",), "the patient"),
        SearchParam("status", TOKEN, ("status",), "active | inactive | entered-in-error"),
        SearchParam("category", TOKEN, ("category",), "e.g. safety"),
        SearchParam("date", DATE, ("period",), "the flag's period"),
    )
    documentation = "Safety flags raised by crises and attendance alerts (search only)."

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        response = self.services.call(
            caller,
            self.services.notes.ListFlags,
            pb.ListFlagsRequest(patient_id=require_patient(patient_id, self.type)),
        )
        return [
            Found(f.id, int(f.version), f.patient_id, _meta_version(f.fhir_json)[1], f.fhir_json)
            for f in response.flags
        ]


def _note_found(note: Any) -> Found:
    return Found(
        note.id,
        int(note.version),
        note.patient_id,
        _time(note.sign_time) or _time(note.create_time),
        note.fhir_json,
    )


def _disclosing(caller: Caller) -> bool:
    return caller.principal.role in DISCLOSING_ROLES


class DocumentReferenceHandler(ResourceHandler):
    type = "DocumentReference"
    reads_old_versions = False
    service = "notes"
    params = (
        SearchParam("patient", REFERENCE, ("subject",), "the patient"),
        SearchParam("subject", REFERENCE, ("subject",), "the patient"),
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

    def read(self, caller: Caller, resource_id: str) -> Found:
        if _disclosing(caller):
            return self._disclosed(caller, resource_id)
        response = self.services.call(
            caller, self.services.notes.GetNote, pb.GetNoteRequest(id=resource_id)
        )
        return _note_found(response.note)

    def _disclosed(self, caller: Caller, note_id: str) -> Found:
        text = self.services.call(
            caller,
            self.services.notes.DiscloseNote,
            pb.DiscloseNoteRequest(id=note_id),
        ).fhir_json
        version, updated = _meta_version(text)
        patient = reference_id(json.loads(text).get("subject", {}).get("reference"), "Patient")
        return Found(note_id, version, patient, updated, text, released=True)

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        current = self.read(caller, resource_id)
        if version != current.version:
            raise http_error(
                404,
                "not-found",
                f"DocumentReference/{resource_id} version {version} is not served (the current "
                f"version is {current.version})",
            )
        return current

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
            request.date_from.CopyFrom(_ts(low))
        if high is not None:
            request.date_to.CopyFrom(_ts(high))

        def page(token: str) -> Any:
            request.page_token = token
            return self.services.call(caller, self.services.notes.SearchNotes, request)

        notes = _pages(page, "notes")
        if not _disclosing(caller):
            return [_note_found(n) for n in notes]
        return [replace(_note_found(n), released=True) for n in notes]

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        patient_id = reference_id(resource.get("subject", {}).get("reference"), "Patient")
        if not patient_id:
            raise http_error(
                422, "required", "subject must reference a Patient", "DocumentReference.subject"
            )
        if resource.get("docStatus") not in (None, "preliminary"):
            raise http_error(
                422,
                "business-rule",
                "a note is created as a draft (docStatus preliminary); sign it with an update "
                "to final",
                "DocumentReference.docStatus",
            )
        codes = [
            c.get("code")
            for c in resource.get("type", {}).get("coding", [])
            if c.get("system") == LOINC and c.get("code") in KIND_BY_LOINC
        ]
        if not codes:
            raise http_error(
                422,
                "required",
                f"type is a LOINC note type: {', '.join(KIND_BY_LOINC)}",
                "DocumentReference.type",
            )
        if KIND_BY_LOINC[codes[0]] == "group":
            raise http_error(
                422,
                "not-supported",
                "group notes (one per attendee) are written in the notes service",
                "DocumentReference.type",
            )
        confidentiality, sensitivity = _labels(resource)
        note = pb.NoteInput(
            patient_id=patient_id,
            kind=KIND_BY_LOINC[codes[0]],
            title=str(resource.get("description", "")),
            text=_text(resource),
            confidentiality=confidentiality,
            sensitivity=sensitivity,
        )
        with fhir_paths(NOTE_PATHS):
            response = self.services.call(
                caller,
                self.services.notes.CreateNote,
                pb.CreateNoteRequest(request_id=request_id, note=note),
            )
        return Created(_note_found(response.notes[0]))

    #: What a PUT may differ in without asking for a change.
    IGNORED = frozenset({"meta", "text", "id", "docStatus", "description", "content"})

    def update(
        self, caller: Caller, resource_id: str, resource: dict[str, Any], expected_version: int
    ) -> Found:
        current = self.services.call(
            caller, self.services.notes.GetNote, pb.GetNoteRequest(id=resource_id)
        ).note
        stored = json.loads(current.fhir_json)
        other = sorted(
            key
            for key in set(stored) | set(resource)
            if key not in self.IGNORED and stored.get(key) != resource.get(key)
        )
        if other:
            raise FhirHttpError(
                422,
                [
                    Problem(
                        "business-rule",
                        "a note changes only by its description and text (a draft) or by being "
                        "signed (docStatus final)",
                        f"DocumentReference.{key}",
                    )
                    for key in other
                ],
            )
        signing = stored.get("docStatus") == "preliminary" and resource.get("docStatus") == "final"
        if resource.get("docStatus") != stored.get("docStatus") and not signing:
            raise http_error(
                422,
                "business-rule",
                "docStatus changes only from preliminary to final (signing)",
                "DocumentReference.docStatus",
            )
        mask = []
        note = pb.NoteInput()
        if resource.get("description", "") != stored.get("description", ""):
            mask.append("title")
            note.title = str(resource.get("description", ""))
        if resource.get("content") != stored.get("content"):
            mask.append("text")
            note.text = _text(resource)
        version = expected_version
        if mask:
            if signing:
                raise http_error(
                    422,
                    "business-rule",
                    "edit the draft and sign it in two updates",
                    "DocumentReference.docStatus",
                )
            with fhir_paths(NOTE_PATHS):
                updated = self.services.call(
                    caller,
                    self.services.notes.UpdateNote,
                    pb.UpdateNoteRequest(
                        id=resource_id,
                        expected_version=version,
                        note=note,
                        update_mask=FieldMask(paths=mask),
                    ),
                ).note
            return _note_found(updated)
        if signing:
            signed = self.services.call(
                caller,
                self.services.notes.SignNote,
                pb.SignNoteRequest(id=resource_id, expected_version=version),
            ).note
            return _note_found(signed)
        if int(current.version) != expected_version:
            raise FhirHttpError(
                412,
                Problem("conflict", f"the note is at version {current.version}"),
                headers={"ETag": f'W/"{current.version}"'},
            )
        return _note_found(current)


def _labels(resource: dict[str, Any]) -> tuple[str, list[str]]:
    """The note's confidentiality and sensitivity labels, every one passed on: notes keeps each
    v3 label as written and refuses (422) what it cannot keep, so nothing is dropped here."""
    confidentiality = ""
    sensitivity = []
    for index, label in enumerate(resource.get("meta", {}).get("security", [])):
        system = label.get("system") if isinstance(label, dict) else None
        code = label.get("code") if isinstance(label, dict) else None
        where = f"DocumentReference.meta.security[{index}]"
        if not isinstance(code, str) or not code:
            raise http_error(422, "required", "a security label needs a code", where)
        if system == CONFIDENTIALITY_SYSTEM:
            if confidentiality and confidentiality != code:
                raise http_error(422, "business-rule", "one confidentiality code per note", where)
            confidentiality = code
        elif system == ACT_CODE_SYSTEM:
            sensitivity.append(code)
        else:
            raise http_error(
                422,
                "not-supported",
                f"a note keeps labels of {CONFIDENTIALITY_SYSTEM} (confidentiality) and "
                f"{ACT_CODE_SYSTEM} (sensitivity)",
                where,
            )
    return confidentiality, sensitivity


def _text(resource: dict[str, Any]) -> str:
    """The note's text: the first content attachment, text/plain, base64 `data`."""
    contents = resource.get("content", [])
    if not contents:
        raise http_error(
            422, "required", "the note's text goes in content[0].attachment", "DocumentReference"
        )
    attachment = contents[0].get("attachment", {})
    if attachment.get("contentType", "text/plain").split(";")[0].strip() != "text/plain":
        raise http_error(
            422,
            "not-supported",
            "notes are text/plain",
            "DocumentReference.content[0].attachment.contentType",
        )
    try:
        return base64.b64decode(attachment.get("data", ""), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise http_error(
            422,
            "value",
            "attachment.data must be base64 of UTF-8 text",
            "DocumentReference.content[0].attachment.data",
        ) from None


class ConsentHandler(ResourceHandler):
    type = "Consent"
    service = "notes"
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

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        patient_id = reference_id(_dict(resource.get("patient")).get("reference"), "Patient")
        if not patient_id:
            raise http_error(422, "required", "patient must reference a Patient", "Consent.patient")
        if resource.get("status") != "active":
            raise http_error(422, "business-rule", "a consent is recorded active", "Consent.status")
        provision = _dict(resource.get("provision"))
        actors = provision.get("actor")
        if not isinstance(actors, list) or not actors:
            raise http_error(
                422,
                "required",
                "provision.actor names the recipient (role IRCP)",
                "Consent.provision.actor",
            )
        recipient_type, recipient, display = _recipient(_dict(_dict(actors[0]).get("reference")))
        given = provision.get("securityLabel")
        labels = {str(_dict(s).get("code")) for s in given} if isinstance(given, list) else set()
        request = pb.RecordConsentRequest(
            request_id=request_id,
            patient_id=patient_id,
            recipient=recipient,
            recipient_type=recipient_type,
            recipient_display=display,
            scope="sud" if labels & {"SUD", "ETH"} else "all",
            signed_document=_signed_document(resource),
        )
        period = _dict(provision.get("period"))
        moments = [
            (period.get("start"), "start_time", "Consent.provision.period.start"),
            (period.get("end"), "end_time", "Consent.provision.period.end"),
            (resource.get("dateTime"), "signed_time", "Consent.dateTime"),
        ]
        for value, field, path in moments:
            if value:
                try:
                    # A partial date (2026, 2026-12) starts at its first instant.
                    moment = parse_date_range(str(value), path)[0]
                except FhirHttpError:
                    raise http_error(422, "value", "not a date or dateTime", path) from None
                getattr(request, field).CopyFrom(_ts(moment))
        with fhir_paths(CONSENT_PATHS):
            response = self.services.call(caller, self.services.notes.RecordConsent, request)
        return Created(self._found(response.consent))

    def read(self, caller: Caller, resource_id: str) -> Found:
        response = self.services.call(
            caller, self.services.notes.GetConsent, pb.GetConsentRequest(id=resource_id)
        )
        return self._found(response.consent)

    def update(
        self, caller: Caller, resource_id: str, resource: dict[str, Any], expected_version: int
    ) -> Found:
        """Revocation (42 CFR 2.31(a)(6): the patient may revoke at any time): status active ->
        inactive is RevokeConsent; nothing else of a consent changes."""
        current = self.services.call(
            caller, self.services.notes.GetConsent, pb.GetConsentRequest(id=resource_id)
        ).consent
        if int(current.version) != expected_version:
            raise FhirHttpError(
                412,
                Problem("conflict", f"the consent is at version {current.version}"),
                headers={"ETag": f'W/"{current.version}"'},
            )
        stored = json.loads(current.fhir_json)
        other = sorted(
            key
            for key in set(stored) | set(resource)
            if key not in ("meta", "text", "id", "status") and stored.get(key) != resource.get(key)
        )
        if other:
            raise FhirHttpError(
                422,
                [
                    Problem(
                        "business-rule",
                        "a consent changes only by being revoked (status inactive)",
                        f"Consent.{key}",
                    )
                    for key in other
                ],
            )
        if resource.get("status") == stored.get("status"):
            return self._found(current)
        if stored.get("status") != "active" or resource.get("status") != "inactive":
            raise http_error(
                422,
                "business-rule",
                "a consent goes from active to inactive (revoked), never back",
                "Consent.status",
            )
        revoked = self.services.call(
            caller,
            self.services.notes.RevokeConsent,
            pb.RevokeConsentRequest(id=resource_id),
        ).consent
        return self._found(revoked)

    @staticmethod
    def _found(consent: Any) -> Found:
        return Found(
            consent.id,
            int(consent.version),
            consent.patient_id,
            _meta_version(consent.fhir_json)[1],
            consent.fhir_json,
        )

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        response = self.services.call(
            caller,
            self.services.notes.ListConsents,
            pb.ListConsentsRequest(patient_id=require_patient(patient_id, self.type)),
        )
        return [self._found(c) for c in response.consents]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


#: Where a consent names its recipient.
RECIPIENT_PATH = "Consent.provision.actor[0].reference"


def _recipient(reference: dict[str, Any]) -> tuple[str, str, str]:
    """(type, client id, display) of the consent's recipient. It must be identified the way the
    disclosure rules know callers, by its client id (42 CFR 2.31(a)(4): the consent names the
    recipient; a display string names nobody the program can authenticate)."""
    display = reference.get("display")
    display = display if isinstance(display, str) else ""
    identifier = _dict(reference.get("identifier"))
    literal = reference.get("reference")
    kind = reference.get("type")
    if identifier:
        if identifier.get("system") != notes_contract.CLIENT_ID_SYSTEM or not isinstance(
            identifier.get("value"), str
        ):
            raise http_error(
                422,
                "value",
                f"the recipient is identified by its client id: identifier.system "
                f"{notes_contract.CLIENT_ID_SYSTEM} (the subject of the tokens it calls with)",
                RECIPIENT_PATH,
            )
        kind = kind or (literal.partition("/")[0] if isinstance(literal, str) else "Organization")
        client = str(identifier["value"])
    elif isinstance(literal, str) and literal.startswith("Device/"):
        kind, client = kind or "Device", literal.removeprefix("Device/")
    else:
        raise http_error(
            422,
            "required",
            "the recipient must be an identified Organization or Device: identifier "
            f"{notes_contract.CLIENT_ID_SYSTEM}|<client id>, or Device/<client id>; a display name "
            "is not an identity",
            RECIPIENT_PATH,
        )
    if kind not in ("Organization", "Device"):
        raise http_error(
            422, "value", "the recipient is an Organization or a Device", f"{RECIPIENT_PATH}.type"
        )
    if not privacy.valid_client_id(client):
        raise http_error(
            422,
            "value",
            "a client id is letters, digits and .:_@/- (at most 200), not a display name",
            f"{RECIPIENT_PATH}.identifier.value",
        )
    return str(kind), client, display[:200]


def _signed_document(resource: dict[str, Any]) -> str:
    """Where the patient's signed consent form is: sourceReference or sourceAttachment.url."""
    source = _dict(resource.get("sourceReference")).get("reference")
    if isinstance(source, str) and source:
        return source
    url = _dict(resource.get("sourceAttachment")).get("url")
    return url if isinstance(url, str) else ""
