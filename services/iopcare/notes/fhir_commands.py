"""FHIR in: the notes request a FHIR Communication, DocumentReference or Consent asks for (the
inbound half of `fhir_map`, which builds the resources notes stores, emits and discloses).

Pure functions, published through `iopcare.notes.contract` so the gateway speaks FHIR to notes
without knowing its fields: each takes the client's resource (already a valid FHIR R4 document)
and returns the request message, or raises `kit.fhir.FhirError` naming the FHIR element that
cannot be mapped. Notes' own rules (who may write, consent, privacy) stay in the service; what is
checked here is only what the request cannot say (a note with two confidentiality codes, a PUT
that changes an element no RPC changes).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask

from iopcare.kit import fhir, privacy
from iopcare.kit.fhir import refusal
from iopcare.kit.protoconv import timestamp
from iopcare.notes.codes import CLIENT_ID_SYSTEM
from iopcare.notes.domain.documents import KIND_BY_CODE, LOINC
from iopcare.notes.v1 import notes_service_pb2 as pb

#: Message categories PostMessage takes.
CATEGORIES = ("update", "question", "handoff", "crisis")

#: notes' request fields, as the FHIR elements they come from (a refusal of the service names
#: the client's element with these).
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
#: Where a consent names its recipient.
RECIPIENT_PATH = "Consent.provision.actor[0].reference"
#: Elements a PUT of a DocumentReference may differ in without asking for a change.
NOTE_CHANGES = frozenset({"meta", "text", "id", "docStatus", "description", "content"})


def _unchanged_except(
    stored: dict[str, Any], resource: dict[str, Any], changes: frozenset[str], why: str, type_: str
) -> None:
    """422 naming every element a PUT changes that is not in `changes`."""
    other = sorted(
        key
        for key in set(stored) | set(resource)
        if key not in changes and stored.get(key) != resource.get(key)
    )
    if other:
        raise fhir.FhirError(
            why, [fhir.Issue("error", "business-rule", why, f"{type_}.{key}") for key in other]
        )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _refs(items: Any) -> list[str]:
    return [str(r["reference"]) for r in items or [] if isinstance(r, dict) and r.get("reference")]


# -- Communication -----------------------------------------------------------------------------


def _answered(resource: dict[str, Any]) -> str:
    """The message a message answers (inResponseTo), or ''."""
    answers = []
    for index, reference in enumerate(_refs(resource.get("inResponseTo"))):
        answer = fhir.loose_reference_id(reference, "Communication")
        if not answer:
            raise refusal(
                "value",
                "inResponseTo names a Communication of the same thread",
                f"Communication.inResponseTo[{index}]",
            )
        answers.append(answer)
    if len(answers) > 1:
        raise refusal("value", "a message answers one message", "Communication.inResponseTo")
    return answers[0] if answers else ""


def post_message_request(resource: dict[str, Any], request_id: str) -> pb.PostMessageRequest:
    """A new Communication: a message in the patient's team thread (the sender is the caller)."""
    patient_id = fhir.loose_reference_id(resource.get("subject", {}).get("reference"), "Patient")
    payload = resource.get("payload", [])
    texts = [p["contentString"] for p in payload if "contentString" in p]
    attachments = _refs([p.get("contentReference") for p in payload])
    attachments += [
        str(p["contentAttachment"]["url"])
        for p in payload
        if p.get("contentAttachment", {}).get("url")
    ]
    if not patient_id:
        raise refusal("required", "subject must reference a Patient", "Communication.subject")
    if not texts:
        raise refusal(
            "required", "the message text goes in payload.contentString", "Communication.payload"
        )
    categories = [
        c.get("code")
        for concept in resource.get("category", [])
        for c in concept.get("coding", [])
        if c.get("code") in CATEGORIES
    ]
    if resource.get("category") and not categories:
        raise refusal(
            "value", f"category is one of {', '.join(CATEGORIES)}", "Communication.category"
        )
    return pb.PostMessageRequest(
        request_id=request_id,
        patient_id=patient_id,
        text="\n\n".join(texts),
        priority=str(resource.get("priority", "")),
        category=categories[0] if categories else "",
        recipients=_refs(resource.get("recipient")),
        in_response_to=_answered(resource),
        part_of=_refs(resource.get("partOf")),
        about=_refs(resource.get("about")),
        attachments=attachments,
    )


# -- DocumentReference -------------------------------------------------------------------------


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
            raise refusal("required", "a security label needs a code", where)
        if system == privacy.CONFIDENTIALITY_SYSTEM:
            if confidentiality and confidentiality != code:
                raise refusal("business-rule", "one confidentiality code per note", where)
            confidentiality = code
        elif system == privacy.ACT_CODE_SYSTEM:
            sensitivity.append(code)
        else:
            raise refusal(
                "not-supported",
                f"a note keeps labels of {privacy.CONFIDENTIALITY_SYSTEM} (confidentiality) and "
                f"{privacy.ACT_CODE_SYSTEM} (sensitivity)",
                where,
            )
    return confidentiality, sensitivity


def note_text(resource: dict[str, Any]) -> str:
    """The note's text: the first content attachment, text/plain, base64 `data`."""
    contents = resource.get("content", [])
    if not contents:
        raise refusal(
            "required", "the note's text goes in content[0].attachment", "DocumentReference"
        )
    attachment = contents[0].get("attachment", {})
    if attachment.get("contentType", "text/plain").split(";")[0].strip() != "text/plain":
        raise refusal(
            "not-supported",
            "notes are text/plain",
            "DocumentReference.content[0].attachment.contentType",
        )
    try:
        return base64.b64decode(attachment.get("data", ""), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise refusal(
            "value",
            "attachment.data must be base64 of UTF-8 text",
            "DocumentReference.content[0].attachment.data",
        ) from None


def _note_kind(resource: dict[str, Any]) -> str:
    codes = [
        c.get("code")
        for c in resource.get("type", {}).get("coding", [])
        if c.get("system") == LOINC and c.get("code") in KIND_BY_CODE
    ]
    if not codes:
        raise refusal(
            "required",
            f"type is a LOINC note type: {', '.join(KIND_BY_CODE)}",
            "DocumentReference.type",
        )
    if KIND_BY_CODE[codes[0]] == "group":
        raise refusal(
            "not-supported",
            "group notes (one per attendee) are written in the notes service",
            "DocumentReference.type",
        )
    return KIND_BY_CODE[codes[0]]


def create_note_request(resource: dict[str, Any], request_id: str) -> pb.CreateNoteRequest:
    """A new DocumentReference: a draft note (docStatus preliminary or absent)."""
    patient_id = fhir.loose_reference_id(resource.get("subject", {}).get("reference"), "Patient")
    if not patient_id:
        raise refusal("required", "subject must reference a Patient", "DocumentReference.subject")
    if resource.get("docStatus") not in (None, "preliminary"):
        raise refusal(
            "business-rule",
            "a note is created as a draft (docStatus preliminary); sign it with an update to final",
            "DocumentReference.docStatus",
        )
    kind = _note_kind(resource)
    confidentiality, sensitivity = _labels(resource)
    note = pb.NoteInput(
        patient_id=patient_id,
        kind=kind,
        title=str(resource.get("description", "")),
        text=note_text(resource),
        confidentiality=confidentiality,
        sensitivity=sensitivity,
    )
    return pb.CreateNoteRequest(request_id=request_id, note=note)


def update_note_request(
    stored: dict[str, Any], resource: dict[str, Any], note_id: str, expected_version: int
) -> pb.UpdateNoteRequest | pb.SignNoteRequest | None:
    """The one change a PUT of a DocumentReference asks of the stored note `stored` (None: it
    changes nothing): a draft's description or text (UpdateNote), or signing it (SignNote)."""
    _unchanged_except(
        stored,
        resource,
        NOTE_CHANGES,
        "a note changes only by its description and text (a draft) or by being signed "
        "(docStatus final)",
        "DocumentReference",
    )
    signing = stored.get("docStatus") == "preliminary" and resource.get("docStatus") == "final"
    if resource.get("docStatus") != stored.get("docStatus") and not signing:
        raise refusal(
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
        note.text = note_text(resource)
    if mask and signing:
        raise refusal(
            "business-rule",
            "edit the draft and sign it in two updates",
            "DocumentReference.docStatus",
        )
    if mask:
        return pb.UpdateNoteRequest(
            id=note_id,
            expected_version=expected_version,
            note=note,
            update_mask=FieldMask(paths=mask),
        )
    if signing:
        return pb.SignNoteRequest(id=note_id, expected_version=expected_version)
    return None


# -- Consent -----------------------------------------------------------------------------------


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
        if identifier.get("system") != CLIENT_ID_SYSTEM or not isinstance(
            identifier.get("value"), str
        ):
            raise refusal(
                "value",
                f"the recipient is identified by its client id: identifier.system "
                f"{CLIENT_ID_SYSTEM} (the subject of the tokens it calls with)",
                RECIPIENT_PATH,
            )
        kind = kind or (literal.partition("/")[0] if isinstance(literal, str) else "Organization")
        client = str(identifier["value"])
    elif isinstance(literal, str) and literal.startswith("Device/"):
        kind, client = kind or "Device", literal.removeprefix("Device/")
    else:
        raise refusal(
            "required",
            "the recipient must be an identified Organization or Device: identifier "
            f"{CLIENT_ID_SYSTEM}|<client id>, or Device/<client id>; a display name "
            "is not an identity",
            RECIPIENT_PATH,
        )
    if kind not in ("Organization", "Device"):
        raise refusal(
            "value", "the recipient is an Organization or a Device", f"{RECIPIENT_PATH}.type"
        )
    if not privacy.valid_client_id(client):
        raise refusal(
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


def _first_instant(value: str, path: str) -> datetime:
    """The first instant of a FHIR date or dateTime (a partial date, 2026 or 2026-12, starts at
    its first instant)."""
    try:
        if len(value) in (4, 7):
            return datetime(int(value[:4]), int(value[5:7] or 1), 1, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise refusal("value", "not a date or dateTime", path) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record_consent_request(resource: dict[str, Any], request_id: str) -> pb.RecordConsentRequest:
    """A new Consent: the patient's consent to disclose their records to one recipient."""
    patient_id = fhir.loose_reference_id(_dict(resource.get("patient")).get("reference"), "Patient")
    if not patient_id:
        raise refusal("required", "patient must reference a Patient", "Consent.patient")
    if resource.get("status") != "active":
        raise refusal("business-rule", "a consent is recorded active", "Consent.status")
    provision = _dict(resource.get("provision"))
    actors = provision.get("actor")
    if not isinstance(actors, list) or not actors:
        raise refusal(
            "required", "provision.actor names the recipient (role IRCP)", "Consent.provision.actor"
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
            getattr(request, field).CopyFrom(timestamp(_first_instant(str(value), path)))
    return request


def update_consent_request(
    stored: dict[str, Any], resource: dict[str, Any], consent_id: str
) -> pb.RevokeConsentRequest | None:
    """What a PUT of a Consent asks (None: nothing): revocation, status active -> inactive (42 CFR
    2.31(a)(6): the patient may revoke at any time); nothing else of a consent changes."""
    _unchanged_except(
        stored,
        resource,
        frozenset({"meta", "text", "id", "status"}),
        "a consent changes only by being revoked (status inactive)",
        "Consent",
    )
    if resource.get("status") == stored.get("status"):
        return None
    if stored.get("status") != "active" or resource.get("status") != "inactive":
        raise refusal(
            "business-rule",
            "a consent goes from active to inactive (revoked), never back",
            "Consent.status",
        )
    return pb.RevokeConsentRequest(id=consent_id)
