"""The gRPC edge of the notes service."""

from __future__ import annotations

import grpc

from iopcare.kit.auth import current_principal
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.kit.versioned import Stored
from iopcare.notes.service import Notes
from iopcare.notes.store import StoredMessage
from iopcare.notes.v1 import notes_service_pb2 as pb
from iopcare.notes.v1 import notes_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NotesService"].full_name


def to_message(m: StoredMessage) -> pb.Message:
    return pb.Message(
        id=m.id,
        patient_id=m.patient_id,
        sender=m.sender,
        text=m.text,
        priority=m.priority,
        sent_time=timestamp(m.sent_at),
        fhir_json=m.resource,
    )


class NotesServicer(pb_grpc.NotesServiceServicer):
    def __init__(self, notes: Notes) -> None:
        self.notes = notes

    def PostMessage(
        self, request: pb.PostMessageRequest, context: grpc.ServicerContext
    ) -> pb.PostMessageResponse:
        stored = self.notes.post(
            current_principal(),
            request.request_id,
            require_id(request.patient_id, "patient_id"),
            request.text,
            request.priority,
        )
        return pb.PostMessageResponse(message=to_message(stored))

    def ListThread(
        self, request: pb.ListThreadRequest, context: grpc.ServicerContext
    ) -> pb.ListThreadResponse:
        items, token = self.notes.thread(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListThreadResponse(messages=[to_message(m) for m in items], next_page_token=token)

    def AcknowledgeCrisis(
        self, request: pb.AcknowledgeCrisisRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeCrisisResponse:
        flag = self.notes.acknowledge_crisis(
            current_principal(), require_id(request.flag_id, "flag_id"), request.note
        )
        return pb.AcknowledgeCrisisResponse(flag=flag_message(flag))

    def ListFlags(
        self, request: pb.ListFlagsRequest, context: grpc.ServicerContext
    ) -> pb.ListFlagsResponse:
        found = self.notes.flags_for_patient(
            current_principal(), require_id(request.patient_id, "patient_id")
        )
        return pb.ListFlagsResponse(flags=[flag_message(f) for f in found])


def flag_message(flag: Stored) -> pb.Flag:
    return pb.Flag(
        id=flag.id,
        version=flag.version,
        patient_id=flag.patient_id,
        status=flag.status,
        fhir_json=flag.resource,
    )
