"""The gRPC edge of the scheduling service."""

from __future__ import annotations

import grpc

from iopcare.kit.auth import current_principal
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.scheduling.service import Scheduling
from iopcare.scheduling.store import StoredAppointment
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SchedulingService"].full_name


def to_message(a: StoredAppointment) -> pb.Appointment:
    return pb.Appointment(
        id=a.id,
        version=a.version,
        patient_id=a.patient_id,
        status=a.status,
        start_time=timestamp(a.start),
        end_time=timestamp(a.end),
        care_plan_id=a.care_plan_id or "",
        fhir_json=a.resource,
    )


class SchedulingServicer(pb_grpc.SchedulingServiceServicer):
    def __init__(self, scheduling: Scheduling) -> None:
        self.scheduling = scheduling

    def ListAppointments(
        self, request: pb.ListAppointmentsRequest, context: grpc.ServicerContext
    ) -> pb.ListAppointmentsResponse:
        items, token = self.scheduling.list_appointments(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListAppointmentsResponse(
            appointments=[to_message(a) for a in items], next_page_token=token
        )

    def RecordAttendance(
        self, request: pb.RecordAttendanceRequest, context: grpc.ServicerContext
    ) -> pb.RecordAttendanceResponse:
        appointment = self.scheduling.record_attendance(
            current_principal(),
            require_id(request.appointment_id, "appointment_id"),
            request.expected_version,
            request.status,
            request.reason,
        )
        return pb.RecordAttendanceResponse(appointment=to_message(appointment))
