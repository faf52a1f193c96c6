"""The gRPC edge of the scheduling service: requests to commands, results to messages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import grpc
from google.type import date_pb2

from iopcare.kit.auth import Principal, current_principal
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.kit.servicer import gets
from iopcare.scheduling.bookings import BookingRequest, GroupRequest
from iopcare.scheduling.calendars import CalendarInput, FoundSlot
from iopcare.scheduling.domain.intensity import Week
from iopcare.scheduling.fhir_map import slot_json
from iopcare.scheduling.service import Scheduling
from iopcare.scheduling.store import StoredAppointment, StoredSchedule
from iopcare.scheduling.v1 import scheduling_service_pb2 as pb
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SchedulingService"].full_name


def date_message(day: date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def date_text(value: date_pb2.Date) -> str:
    """A google.type.Date as `YYYY-MM-DD` for the use cases, which check it; an unset or
    partial date becomes text they refuse."""
    if not (value.year and value.month and value.day):
        return ""
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


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
        kind=a.kind,
        capacity=a.capacity,
        seats_taken=a.seats_taken,
    )


def schedule_message(s: StoredSchedule) -> pb.Schedule:
    return pb.Schedule(
        id=s.id,
        version=s.version,
        actor=s.actor,
        kind=s.kind,
        role=s.role or "",
        service_types=list(s.service_types),
        capacity=s.capacity,
        opening_hours=[pb.OpeningHours(day_of_week=d, opens=o, closes=c) for d, o, c in s.hours],
        closed_dates=[date_message(date.fromisoformat(d)) for d in s.closed_dates],
        active=s.active,
        fhir_json=s.resource,
    )


def calendar_input(m: pb.Schedule, *, default_active: bool) -> CalendarInput:
    return CalendarInput(
        actor=m.actor,
        kind=m.kind,
        role=m.role,
        service_types=tuple(m.service_types),
        capacity=m.capacity,
        hours=tuple((h.day_of_week, h.opens, h.closes) for h in m.opening_hours),
        closed_dates=tuple(date_text(d) for d in m.closed_dates),
        active=m.active or default_active,
    )


def slot_message(s: FoundSlot) -> pb.Slot:
    return pb.Slot(
        schedule_id=s.schedule_id,
        actor=s.actor,
        start_time=timestamp(s.interval.start),
        end_time=timestamp(s.interval.end),
        appointment_id=s.appointment_id,
        seats_left=s.seats_left,
        fhir_json=slot_json(s.schedule_id, s.interval.start, s.interval.end, s.seats_left),
    )


def week_message(w: Week) -> pb.WeekIntensity:
    return pb.WeekIntensity(
        iso_week=w.label,
        scheduled_hours=w.scheduled_hours,
        attended_hours=w.attended_hours,
        minimum_hours=w.rule.minimum,
        maximum_hours=w.rule.maximum or 0,
        below_minimum=w.below_minimum,
        above_maximum=w.above_maximum,
        missed_sessions=w.missed,
    )


def instant(message: Any, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime, or None when the field is unset."""
    if not message.HasField(field):
        return None
    try:
        value: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        # Seconds outside 0001-9999 (a client's garbage): bad input, never an internal error.
        raise InvalidArgument(
            f"{field} is not a valid time", [FieldViolation(field, "a valid timestamp")]
        ) from None
    return value


class SchedulingServicer(pb_grpc.SchedulingServiceServicer):
    def __init__(self, scheduling: Scheduling) -> None:
        self.scheduling = scheduling
        self.calendars = scheduling.calendars
        self.bookings = scheduling.bookings
        self.appointments = scheduling.appointments

    def _seen(self, principal: Principal, appointment: StoredAppointment) -> pb.Appointment:
        """The appointment a caller changed, as that caller may see it."""
        shown, _ = self.appointments.as_seen_by(principal, appointment, {})
        return to_message(shown)

    # Calendars ---------------------------------------------------------------------------------
    def CreateSchedule(
        self, request: pb.CreateScheduleRequest, context: grpc.ServicerContext
    ) -> pb.CreateScheduleResponse:
        created = self.calendars.create(
            current_principal(),
            request.request_id,
            # A new calendar is active: proto3 cannot tell "false" from "not set".
            calendar_input(request.schedule, default_active=True),
        )
        return pb.CreateScheduleResponse(schedule=schedule_message(created))

    def GetSchedule(
        self, request: pb.GetScheduleRequest, context: grpc.ServicerContext
    ) -> pb.GetScheduleResponse:
        current_principal()
        found = self.calendars.get(require_id(request.id, "id"))
        return pb.GetScheduleResponse(schedule=schedule_message(found))

    def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: grpc.ServicerContext
    ) -> pb.ListSchedulesResponse:
        current_principal()
        items, token = self.calendars.list_schedules(
            actor=request.actor,
            kind=request.kind,
            role=request.role,
            service_type=request.service_type,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListSchedulesResponse(
            schedules=[schedule_message(s) for s in items], next_page_token=token
        )

    def UpdateSchedule(
        self, request: pb.UpdateScheduleRequest, context: grpc.ServicerContext
    ) -> pb.UpdateScheduleResponse:
        updated = self.calendars.update(
            current_principal(),
            require_id(request.schedule.id, "schedule.id"),
            request.expected_version,
            calendar_input(request.schedule, default_active=False),
            list(request.update_mask.paths),
            request_id=request.request_id,
        )
        return pb.UpdateScheduleResponse(schedule=schedule_message(updated))

    def FindSlots(
        self, request: pb.FindSlotsRequest, context: grpc.ServicerContext
    ) -> pb.FindSlotsResponse:
        current_principal()
        found, truncated = self.calendars.find_slots(
            schedule_id=request.schedule_id,
            actor=request.actor,
            role=request.role,
            service_type=request.service_type,
            start=instant(request, "start_time"),
            end=instant(request, "end_time"),
            duration_minutes=request.duration_minutes,
            page_size=request.page_size,
        )
        return pb.FindSlotsResponse(slots=[slot_message(s) for s in found], truncated=truncated)

    # Bookings ----------------------------------------------------------------------------------
    def BookAppointment(
        self, request: pb.BookAppointmentRequest, context: grpc.ServicerContext
    ) -> pb.BookAppointmentResponse:
        booked = self.bookings.book(
            current_principal(),
            request.request_id,
            BookingRequest(
                patient_id=request.patient_id,
                practitioner_ids=tuple(request.practitioner_ids),
                location_id=request.location_id,
                start=instant(request, "start_time"),
                end=instant(request, "end_time"),
                service_type=request.service_type,
                description=request.description,
                care_plan_id=request.care_plan_id,
            ),
        )
        return pb.BookAppointmentResponse(appointment=to_message(booked))

    def CreateGroupSession(
        self, request: pb.CreateGroupSessionRequest, context: grpc.ServicerContext
    ) -> pb.CreateGroupSessionResponse:
        created = self.bookings.create_group(
            current_principal(),
            request.request_id,
            GroupRequest(
                location_id=request.location_id,
                facilitator_ids=tuple(request.facilitator_ids),
                start=instant(request, "start_time"),
                end=instant(request, "end_time"),
                capacity=request.capacity,
                service_type=request.service_type,
                description=request.description,
            ),
        )
        return pb.CreateGroupSessionResponse(appointment=to_message(created))

    def JoinGroupSession(
        self, request: pb.JoinGroupSessionRequest, context: grpc.ServicerContext
    ) -> pb.JoinGroupSessionResponse:
        principal = current_principal()
        joined = self.bookings.join(
            principal, request.request_id, request.appointment_id, request.patient_id
        )
        return pb.JoinGroupSessionResponse(appointment=self._seen(principal, joined))

    def CancelAppointment(
        self, request: pb.CancelAppointmentRequest, context: grpc.ServicerContext
    ) -> pb.CancelAppointmentResponse:
        principal = current_principal()
        cancelled, late = self.scheduling.changes.cancel(
            principal,
            request.appointment_id,
            request.expected_version,
            request.reason,
            request.patient_id,
            request_id=request.request_id,
        )
        return pb.CancelAppointmentResponse(appointment=self._seen(principal, cancelled), late=late)

    def RescheduleAppointment(
        self, request: pb.RescheduleAppointmentRequest, context: grpc.ServicerContext
    ) -> pb.RescheduleAppointmentResponse:
        principal = current_principal()
        moved = self.scheduling.changes.reschedule(
            principal,
            request.appointment_id,
            request.expected_version,
            instant(request, "start_time"),
            instant(request, "end_time"),
            request.reason,
            request_id=request.request_id,
        )
        return pb.RescheduleAppointmentResponse(appointment=self._seen(principal, moved))

    GetAppointment = gets(
        lambda s: s.appointments.get, pb.GetAppointmentResponse, "appointment", to_message
    )

    def ListAppointments(
        self, request: pb.ListAppointmentsRequest, context: grpc.ServicerContext
    ) -> pb.ListAppointmentsResponse:
        items, token = self.scheduling.list_appointments(
            current_principal(),
            patient_id=require_id(request.patient_id, "patient_id") if request.patient_id else "",
            actor=request.actor,
            statuses=list(request.statuses),
            start_from=instant(request, "start_time"),
            start_before=instant(request, "end_time"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListAppointmentsResponse(
            appointments=[to_message(a) for a in items], next_page_token=token
        )

    # Attendance and intensity ------------------------------------------------------------------
    def RecordAttendance(
        self, request: pb.RecordAttendanceRequest, context: grpc.ServicerContext
    ) -> pb.RecordAttendanceResponse:
        principal = current_principal()
        appointment = self.scheduling.record_attendance(
            principal,
            require_id(request.appointment_id, "appointment_id"),
            request.expected_version,
            request.status,
            request.reason,
            request.patient_id,
            request_id=request.request_id,
        )
        return pb.RecordAttendanceResponse(appointment=self._seen(principal, appointment))

    def RecordCheckIn(
        self, request: pb.RecordCheckInRequest, context: grpc.ServicerContext
    ) -> pb.RecordCheckInResponse:
        day, at, late, already = self.scheduling.record_check_in(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request_id=request.request_id,
        )
        return pb.RecordCheckInResponse(
            day=date_message(day), check_in_time=timestamp(at), late=late, already_recorded=already
        )

    def GetIntensity(
        self, request: pb.GetIntensityRequest, context: grpc.ServicerContext
    ) -> pb.GetIntensityResponse:
        weeks, streak = self.scheduling.intensity(
            current_principal(),
            request.patient_id,
            date_text(request.start_date),
            date_text(request.end_date),
            request.program,
        )
        return pb.GetIntensityResponse(
            weeks=[week_message(w) for w in weeks], missed_two_in_a_row=streak
        )
