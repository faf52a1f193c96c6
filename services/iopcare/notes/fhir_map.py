"""Team messages as FHIR R4 Communication resources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from iopcare.kit import fhir
from iopcare.notes import codes
from iopcare.notes.domain.messages import NewMessage


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def communication(message_id: str, message: NewMessage, sent_at: datetime) -> str:
    """The stored Communication for a message (canonical JSON, version 1)."""
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": message_id,
        "meta": {"versionId": "1", "lastUpdated": _instant(sent_at)},
        "status": "completed",
        "category": [{"coding": [{"system": codes.CATEGORY_SYSTEM, "code": message.category}]}],
        "priority": message.priority,
        "subject": {"reference": f"Patient/{message.patient_id}"},
        "sent": _instant(sent_at),
        "sender": {"reference": message.sender},
        "payload": [{"contentString": message.text}],
    }
    if message.about:
        resource["about"] = [{"reference": ref} for ref in message.about]
    if message.recipients:
        resource["recipient"] = [{"reference": ref} for ref in message.recipients]
    return fhir.to_json(fhir.parse_resource(resource, "Communication"))
