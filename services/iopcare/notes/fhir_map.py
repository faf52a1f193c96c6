"""Team messages as FHIR R4 Communication resources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iopcare.kit import fhir
from iopcare.notes import codes
from iopcare.notes.domain.messages import NewMessage


def communication(message_id: str, message: NewMessage, sent_at: datetime) -> str:
    """The stored Communication for a message (canonical JSON, version 1)."""
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": message_id,
        "meta": {"versionId": "1", "lastUpdated": fhir.instant(sent_at)},
        "status": "completed",
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
