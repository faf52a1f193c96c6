"""The gRPC edge of the scheduling service: requests to commands, results to messages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import grpc
from google.type import date_pb2

from iopcare.kit.auth import Principal, current_principal
from iopcare.kit.copying import by_name
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.kit.servicer import gets, one, rpc
from iopcare.scheduling.appointment_reads import Listing
from iopcare.scheduling.bookings import BookingRequest, GroupRequest
from iopcare.scheduling.calendars import CalendarInput, FoundSlot
from iopcare.scheduling.domain.checkin import CheckInAnswers
from iopcare.scheduling.domain.intensity import Week
from iopcare.scheduling.encounter_reads import EncounterQuery
from iopcare.scheduling.fhir_map import slot_json
from iopcare.scheduling.service import Scheduling
from iopcare.scheduling.store import StoredAppointment, StoredSchedule
from iopcare.scheduling.store.checkins import StoredResponse
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
        **by_name(a, "id version patient_id status kind capacity seats_taken"),
        start_time=timestamp(a.start),
        end_time=timestamp(a.end),
        care_plan_id=a.care_plan_id or "",
        fhir_json=a.resource,
    )


def schedule_message(s: StoredSchedule) -> pb.Schedule:
    return pb.Schedule(
        **by_name(s, "id version actor kind service_types capacity active"),
        role=s.role or "",
        opening_hours=[pb.OpeningHours(day_of_week=d, opens=o, closes=c) for d, o, c in s.hours],
        closed_dates=[date_message(date.fromisoformat(d)) for d in s.closed_dates],
        fhir_json=s.resource,
    )


def calendar_input(m: pb.Schedule, *, default_active: bool) -> CalendarInput:
    return CalendarInput(
        **by_name(m, "actor kind role capacity"),
        service_types=tuple(m.service_types),
        hours=tuple((h.day_of_week, h.opens, h.closes) for h in m.opening_hours),
        closed_dates=tuple(date_text(d) for d in m.closed_dates),
        active=m.active or default_active,
    )


def booking_request(r: pb.BookAppointmentRequest) -> BookingRequest:
    return BookingRequest(
        **by_name(r, "patient_id location_id service_type description care_plan_id"),
        practitioner_ids=tuple(r.practitioner_ids),
        start=instant(r, "start_time"),
        end=instant(r, "end_time"),
        related_person_ids=tuple(r.related_person_ids),
    )


def group_request(r: pb.CreateGroupSessionRequest) -> GroupRequest:
    return GroupRequest(
        **by_name(r, "location_id capacity service_type description"),
        facilitator_ids=tuple(r.facilitator_ids),
        start=instant(r, "start_time"),
        end=instant(r, "end_time"),
    )


def slot_message(s: FoundSlot) -> pb.Slot:
    return pb.Slot(
        **by_name(s, "schedule_id actor appointment_id seats_left"),
        start_time=timestamp(s.interval.start),
        end_time=timestamp(s.interval.end),
        fhir_json=slot_json(s.schedule_id, s.interval.start, s.interval.end, s.seats_left),
    )


def week_message(w: Week) -> pb.WeekIntensity:
    return pb.WeekIntensity(
        **by_name(w, "scheduled_hours attended_hours below_minimum above_maximum"),
        iso_week=w.label,
        minimum_hours=w.rule.minimum,
        maximum_hours=w.rule.maximum or 0,
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
            **by_name(request, "actor kind role service_type page_size page_token")
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
            **by_name(request, "schedule_id actor role service_type duration_minutes page_size"),
            start=instant(request, "start_time"),
            end=instant(request, "end_time"),
        )
        return pb.FindSlotsResponse(slots=[slot_message(s) for s in found], truncated=truncated)

    # Bookings ----------------------------------------------------------------------------------
    BookAppointment = rpc(
        lambda s, r: s.bookings.book(current_principal(), r.request_id, booking_request(r)),
        one(pb.BookAppointmentResponse, "appointment", to_message),
    )
    CreateGroupSession = rpc(
        lambda s, r: s.bookings.create_group(current_principal(), r.request_id, group_request(r)),
        one(pb.CreateGroupSessionResponse, "appointment", to_message),
    )

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
            Listing(
                patient_id=require_id(request.patient_id, "patient_id")
                if request.patient_id
                else "",
                **by_name(request, "actor page_size page_token"),
                statuses=list(request.statuses),
                start_from=instant(request, "start_time"),
                start_before=instant(request, "end_time"),
            ),
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
            family_attended=tuple(request.family_attended),
        )
        return pb.RecordAttendanceResponse(appointment=self._seen(principal, appointment))

    def RecordCheckIn(
        self, request: pb.RecordCheckInRequest, context: grpc.ServicerContext
    ) -> pb.RecordCheckInResponse:
        if request.HasField("answers"):
            (day, at, late, already), response = self.scheduling.record_check_in_answers(
                current_principal(),
                require_id(request.patient_id, "patient_id"),
                _answers(request.answers),
                request_id=request.request_id,
            )
            return pb.RecordCheckInResponse(
                day=date_message(day),
                check_in_time=timestamp(at),
                late=late,
                already_recorded=already,
                response=to_check_in_response(response),
            )
        day, at, late, already = self.scheduling.record_check_in(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request_id=request.request_id,
        )
        return pb.RecordCheckInResponse(
            day=date_message(day), check_in_time=timestamp(at), late=late, already_recorded=already
        )

    def ListCheckInResponses(
        self, request: pb.ListCheckInResponsesRequest, context: grpc.ServicerContext
    ) -> pb.ListCheckInResponsesResponse:
        found, token = self.scheduling.check_in_responses(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListCheckInResponsesResponse(
            responses=[to_check_in_response(r) for r in found], next_page_token=token
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

    # Encounters for billing ------------------------------------------------------------------
    def ListEncounters(
        self, request: pb.ListEncountersRequest, context: grpc.ServicerContext
    ) -> pb.ListEncountersResponse:
        found, token = self.scheduling.search_encounters(
            current_principal(),
            EncounterQuery(
                patient_id=request.patient_id,
                start_from=instant(request, "start_time"),
                start_before=instant(request, "end_time"),
                **by_name(request, "code page_size page_token"),
            ),
        )
        return pb.ListEncountersResponse(
            encounters=[
                pb.Encounter(
                    **by_name(e, "id version patient_id appointment_id code"), fhir_json=e.resource
                )
                for e in found
            ],
            next_page_token=token,
        )

    def ExportEncountersCsv(
        self, request: pb.ExportEncountersCsvRequest, context: grpc.ServicerContext
    ) -> pb.ExportEncountersCsvResponse:
        body, count = self.scheduling.export_encounters_csv(
            current_principal(),
            instant(request, "start_time"),
            instant(request, "end_time"),
            request.patient_id,
        )
        return pb.ExportEncountersCsvResponse(csv=body, encounter_count=count)


def _answers(given: pb.CheckInAnswers) -> CheckInAnswers:
    def value(name: str) -> Any:
        return getattr(given, name) if given.HasField(name) else None

    return CheckInAnswers(
        mood=value("mood"),
        craving=value("craving"),
        sleep_hours=value("sleep_hours"),
        medication_taken=value("medication_taken"),
        self_harm_thoughts=value("self_harm_thoughts"),
    )


def to_check_in_response(response: StoredResponse) -> pb.CheckInResponse:
    return pb.CheckInResponse(
        id=response.id,
        patient_id=response.patient_id,
        authored_time=timestamp(response.authored_at),
        fhir_json=response.resource,
    )
