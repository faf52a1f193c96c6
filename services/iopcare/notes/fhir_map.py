"""Team messages, clinical notes, signatures and consents as FHIR R4 resources."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iopcare.kit import fhir, privacy
from iopcare.notes import codes
from iopcare.notes.domain import documents
from iopcare.notes.domain.messages import NewMessage


def communication(
    message_id: str,
    message: NewMessage,
    sent_at: datetime,
    *,
    status: str = "completed",
    version: int = 1,
    updated: datetime | None = None,
) -> str:
    """The stored Communication for a message (canonical JSON)."""
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": message_id,
        "meta": {"versionId": str(version), "lastUpdated": fhir.instant(updated or sent_at)},
        "status": status,
        "category": [{"coding": [{"system": codes.CATEGORY_SYSTEM, "code": message.category}]}],
        "priority": message.priority,
        "subject": {"reference": f"Patient/{message.patient_id}"},
        "sent": fhir.instant(sent_at),
        "sender": {"reference": message.sender},
        "payload": [{"contentString": message.text}],
    }
    if message.about:
        resource["about"] = [{"reference": ref} for ref in message.about]
    if message.recipients:
        resource["recipient"] = [{"reference": ref} for ref in message.recipients]
    if message.in_response_to:
        resource["inResponseTo"] = [{"reference": f"Communication/{message.in_response_to}"}]
    if message.part_of:
        resource["partOf"] = [{"reference": ref} for ref in message.part_of]
    for ref in message.attachments:
        resource["payload"].append({"contentReference": {"reference": ref}})
    if message.security:
        resource["meta"]["security"] = [
            {"system": system, "code": code} if system else {"code": code}
            for system, code in message.security
        ]
    return fhir.to_json(fhir.parse_resource(resource, "Communication"))


def crisis_flag(flag_id: str, patient_id: str, text: str, about: str, at: datetime) -> str:
    """The Flag a crisis raises on the patient (FHIR R4 Flag, category safety)."""
    resource = {
        "resourceType": "Flag",
        "id": flag_id,
        "meta": {"versionId": "1", "lastUpdated": fhir.instant(at)},
        "status": "active",
        "category": [
            {
                "coding": [
                    {"system": codes.FLAG_CATEGORY_SYSTEM, "code": "safety", "display": "Safety"}
                ]
            }
        ],
        "code": {"text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": fhir.instant(at)},
        "author": {"reference": codes.SYSTEM_SENDER},
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/flag-detail",
                "valueReference": {"reference": about},
            }
        ],
    }
    return fhir.to_json(fhir.parse_resource(resource, "Flag"))


def acknowledged_flag(flag: dict[str, Any], by: str, at: datetime, version: int) -> str:
    """The Flag with who acknowledged the crisis and when (it stays active until resolved)."""
    data = dict(flag)
    data["extension"] = [
        *data.get("extension", []),
        {
            "url": codes.ACKNOWLEDGED_EXTENSION,
            "extension": [
                {"url": "by", "valueReference": {"reference": by}},
                {"url": "at", "valueDateTime": fhir.instant(at)},
            ],
        },
    ]
    return fhir.with_identity(fhir.parse_resource(data, "Flag"), data["id"], version, at)


# Clinical notes ---------------------------------------------------------------------------------


def security_labels(
    confidentiality: str, sensitivity: frozenset[str], extra: tuple[str, ...] = ()
) -> list[dict[str, str]]:
    """meta.security: the confidentiality code, then the sensitivity and obligation codes."""
    labels = [{"system": privacy.CONFIDENTIALITY_SYSTEM, "code": confidentiality}]
    labels += [{"system": privacy.ACT_CODE_SYSTEM, "code": c} for c in sorted(sensitivity)]
    labels += [{"system": privacy.ACT_CODE_SYSTEM, "code": c} for c in extra]
    return labels


def _attachment(title: str, text: str) -> dict[str, Any]:
    data = text.encode()
    return {
        "attachment": {
            "contentType": "text/plain; charset=utf-8",
            "language": "en",
            "data": base64.b64encode(data).decode(),
            # SHA-1 of the data, as R4 Attachment.hash defines it: a reader can check that the
            # signed content is what it receives.
            "hash": base64.b64encode(hashlib.sha1(data).digest()).decode(),
            "title": title,
        }
    }


@dataclass(frozen=True)
class NoteState:
    """Everything the DocumentReference of a note says."""

    id: str
    version: int
    patient_id: str
    kind: str
    author: str
    status: str  # draft, signed, entered-in-error
    title: str
    text: str
    shared_text: str
    confidentiality: str
    sensitivity: frozenset[str]
    created_at: datetime
    updated_at: datetime
    group_id: str | None = None
    relates_to: str | None = None
    relation: str | None = None
    relation_reason: str | None = None
    signed_at: datetime | None = None
    signed_by: str | None = None


def document_reference(note: NoteState, *, content: bool = True) -> str:
    """The FHIR R4 DocumentReference of a note. Without `content`, only the reference and its
    labels: what events and other services get (labelled text never leaves in an event)."""
    code, display = documents.NOTE_KINDS[note.kind]
    doc_status = {"draft": "preliminary", "signed": "final"}.get(note.status)
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": note.id,
        "meta": {
            "versionId": str(note.version),
            "lastUpdated": fhir.instant(note.updated_at),
            "security": security_labels(note.confidentiality, note.sensitivity),
        },
        "status": "entered-in-error" if note.status == "entered-in-error" else "current",
        "type": {"coding": [{"system": documents.LOINC, "code": code, "display": display}]},
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                        "code": "clinical-note",
                        "display": "Clinical Note",
                    }
                ]
            }
        ],
        "subject": {"reference": f"Patient/{note.patient_id}"},
        "date": fhir.instant(note.created_at),
        "author": [{"reference": note.author}],
        "content": [],
    }
    if doc_status:
        resource["docStatus"] = doc_status
    if note.signed_by and note.signed_at:
        resource["authenticator"] = {"reference": note.signed_by}
    if note.title:
        resource["description"] = note.title
    if note.relates_to and note.relation:
        resource["relatesTo"] = [
            {"code": note.relation, "target": {"reference": f"DocumentReference/{note.relates_to}"}}
        ]
        if note.relation_reason:
            resource["extension"] = [
                {"url": codes.AMENDMENT_REASON_EXTENSION, "valueString": note.relation_reason}
            ]
    if note.group_id:
        resource["context"] = {
            "related": [
                {"identifier": {"system": codes.GROUP_SESSION_SYSTEM, "value": note.group_id}}
            ]
        }
    if content:
        if note.shared_text:
            resource["content"].append(_attachment("Group session (shared part)", note.shared_text))
        if note.text or not note.shared_text:
            title = "Individual part" if note.kind == "group" else (note.title or "Note")
            resource["content"].append(_attachment(title, note.text))
    else:
        # A reference only: content is required by R4 (1..*), so one attachment that points at
        # the note instead of carrying it. The title and the reason of an addendum or amendment
        # are the author's free text too (issue 4: labelled content only as a reference).
        resource.pop("description", None)
        resource.pop("extension", None)
        resource["content"] = [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "url": f"DocumentReference/{note.id}",
                }
            }
        ]
    return fhir.to_json(fhir.parse_resource(resource, "DocumentReference"))


def disclosed(resource_json: str, add_labels: tuple[str, ...], notice: str | None) -> str:
    """A record (a note, or a labelled resource the gateway releases) as it leaves the program:
    its labels plus the obligations of the disclosure (e.g. NORDSCLCD), and the redisclosure
    notice (42 CFR 2.32) in an extension."""
    data = json.loads(resource_json)
    security = data.setdefault("meta", {}).setdefault("security", [])
    for code in add_labels:
        security.append({"system": privacy.ACT_CODE_SYSTEM, "code": code})
    if notice:
        data.setdefault("extension", []).append(
            {"url": codes.REDISCLOSURE_NOTICE_EXTENSION, "valueString": notice}
        )
    return fhir.to_json(fhir.parse_resource(data, data.get("resourceType")))


def signature_provenance(
    provenance_id: str, note_id: str, version: int, signer: str, at: datetime
) -> str:
    """The Provenance of a signature: who signed which version of the note, and when."""
    resource = {
        "resourceType": "Provenance",
        "id": provenance_id,
        "target": [{"reference": f"DocumentReference/{note_id}/_history/{version}"}],
        "recorded": fhir.instant(at),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "UPDATE",
                }
            ],
            "text": "signed",
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": {"reference": signer},
            }
        ],
        "signature": [
            {
                "type": [
                    {
                        "system": "urn:iso-astm:E1762-95:2013",
                        "code": "1.2.840.10065.1.12.1.1",
                        "display": "Author's Signature",
                    }
                ],
                "when": fhir.instant(at),
                "who": {"reference": signer},
            }
        ],
    }
    return fhir.to_json(fhir.parse_resource(resource, "Provenance"))


@dataclass(frozen=True)
class ConsentRecord:
    """What a recorded consent says (42 CFR 2.31(a)): whose records, to whom, which, until when,
    and the patient's signature (when, the form on file) as attested by whom."""

    patient_id: str
    recipient: str  # the recipient's client id
    recipient_type: str  # Organization or Device
    recipient_display: str
    scope: str  # all, sud
    start: datetime | None
    end: datetime | None
    signed_at: datetime
    signed_document: str  # DocumentReference/{id}, an https URL, or "" (the patient's own act)
    attester: str  # Patient/{id} or Practitioner/{id}
    attested_at: datetime


def _consent_provision(c: ConsentRecord) -> dict[str, Any]:
    """The consent's one provision: permit disclosing to the recipient, for the period, of the
    scope's records."""
    period: dict[str, str] = {}
    if c.start:
        period["start"] = fhir.instant(c.start)
    if c.end:
        period["end"] = fhir.instant(c.end)
    recipient: dict[str, Any] = {
        "type": c.recipient_type,
        "identifier": {"system": codes.CLIENT_ID_SYSTEM, "value": c.recipient},
    }
    if c.recipient_display:
        recipient["display"] = c.recipient_display
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                            "display": "information recipient",
                        }
                    ]
                },
                "reference": recipient,
            }
        ],
        "action": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                        "code": "disclose",
                    }
                ]
            }
        ],
    }
    if period:
        provision["period"] = period
    if c.scope == "sud":
        provision["securityLabel"] = [{"system": privacy.ACT_CODE_SYSTEM, "code": "SUD"}]
    return provision


def consent_resource(consent_id: str, version: int, status: str, c: ConsentRecord) -> str:
    """A patient's consent to disclose (privacy consent, opt-in) to one identified recipient."""
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": consent_id,
        "meta": {"versionId": str(version), "lastUpdated": fhir.instant(c.attested_at)},
        # Who recorded the patient's signature, and when (R4 Consent has no attester element).
        "extension": [
            {
                "url": codes.CONSENT_ATTESTATION_EXTENSION,
                "extension": [
                    {"url": "attester", "valueReference": {"reference": c.attester}},
                    {"url": "time", "valueDateTime": fhir.instant(c.attested_at)},
                ],
            }
        ],
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{c.patient_id}"},
        # When the patient signed: the consent is theirs (performer), whoever typed it in.
        "dateTime": fhir.instant(c.signed_at),
        "performer": [{"reference": f"Patient/{c.patient_id}"}],
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": _consent_provision(c),
    }
    if c.signed_document.startswith("DocumentReference/"):
        resource["sourceReference"] = {"reference": c.signed_document}
    elif c.signed_document:
        resource["sourceAttachment"] = {
            "url": c.signed_document,
            "creation": fhir.instant(c.signed_at),
        }
    return fhir.to_json(fhir.parse_resource(resource, "Consent"))


def revised_consent(resource_json: str, version: int, status: str, at: datetime) -> str:
    """The stored consent with a new status (a revocation): everything it said is kept."""
    resource = json.loads(resource_json)
    resource["status"] = status
    resource["meta"] = {**resource.get("meta", {}), "versionId": str(version)}
    resource["meta"]["lastUpdated"] = fhir.instant(at)
    return fhir.to_json(fhir.parse_resource(resource, "Consent"))
