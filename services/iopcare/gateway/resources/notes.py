"""Resources the notes service owns: Communication (team messages) and Flag; DocumentReference
(signed clinical notes) plugs in here once notes offers the RPCs (docs/gateway.md, "Seams")."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from iopcare.gateway.client import Caller
from iopcare.gateway.errors import http_error
from iopcare.gateway.resources.base import (
    Created,
    Found,
    ResourceHandler,
    reference_id,
    require_patient,
)
from iopcare.gateway.search import DATE, REFERENCE, TOKEN, SearchParam
from iopcare.notes.v1 import notes_service_pb2 as pb

MAX_PAGES = 10


def message_found(message: Any) -> Found:
    return Found(
        message.id,
        1,
        message.patient_id,
        message.sent_time.ToDatetime(tzinfo=UTC),
        message.fhir_json,
    )


class CommunicationHandler(ResourceHandler):
    type = "Communication"
    service = "notes"
    params = (
        SearchParam("patient", REFERENCE, ("subject",), "the patient"),
        SearchParam("subject", REFERENCE, ("subject",), "the patient"),
        SearchParam("category", TOKEN, ("category",), "update | question | handoff | crisis"),
        SearchParam("priority", TOKEN, ("priority",), "routine | urgent | asap | stat"),
        SearchParam("status", TOKEN, ("status",), "completed | ..."),
        SearchParam("sent", DATE, ("sent",), "when it was sent"),
    )
    documentation = (
        "The patient's team thread. A create posts a message: subject (the Patient), "
        "payload[0].contentString (the text) and priority are taken; the sender is the caller."
    )

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        patient_id = reference_id(resource.get("subject", {}).get("reference"), "Patient")
        texts = [p["contentString"] for p in resource.get("payload", []) if "contentString" in p]
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
        response = self.services.call(
            caller,
            self.services.notes.PostMessage,
            pb.PostMessageRequest(
                request_id=request_id,
                patient_id=patient_id,
                text="\n\n".join(texts),
                priority=str(resource.get("priority", "")),
            ),
        )
        return Created(message_found(response.message))

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        patient = require_patient(patient_id, self.type)
        results: list[Found] = []
        token = ""
        for _ in range(MAX_PAGES):
            response = self.services.call(
                caller,
                self.services.notes.ListThread,
                pb.ListThreadRequest(patient_id=patient, page_size=1000, page_token=token),
            )
            results.extend(message_found(m) for m in response.messages)
            token = response.next_page_token
            if not token:
                break
        return results


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
    documentation = "Safety flags raised by crises (search only)."

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        response = self.services.call(
            caller,
            self.services.notes.ListFlags,
            pb.ListFlagsRequest(patient_id=require_patient(patient_id, self.type)),
        )
        return [
            Found(f.id, int(f.version), f.patient_id, None, f.fhir_json) for f in response.flags
        ]
