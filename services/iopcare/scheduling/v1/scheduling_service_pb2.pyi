import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OpeningHours(_message.Message):
    __slots__ = ("day_of_week", "opens", "closes")
    DAY_OF_WEEK_FIELD_NUMBER: _ClassVar[int]
    OPENS_FIELD_NUMBER: _ClassVar[int]
    CLOSES_FIELD_NUMBER: _ClassVar[int]
    day_of_week: str
    opens: str
    closes: str
    def __init__(self, day_of_week: _Optional[str] = ..., opens: _Optional[str] = ..., closes: _Optional[str] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("id", "version", "actor", "kind", "role", "service_types", "capacity", "opening_hours", "active", "fhir_json", "closed_dates")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    OPENING_HOURS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    CLOSED_DATES_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    actor: str
    kind: str
    role: str
    service_types: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    opening_hours: _containers.RepeatedCompositeFieldContainer[OpeningHours]
    active: bool
    fhir_json: str
    closed_dates: _containers.RepeatedCompositeFieldContainer[_date_pb2.Date]
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., actor: _Optional[str] = ..., kind: _Optional[str] = ..., role: _Optional[str] = ..., service_types: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., opening_hours: _Optional[_Iterable[_Union[OpeningHours, _Mapping]]] = ..., active: _Optional[bool] = ..., fhir_json: _Optional[str] = ..., closed_dates: _Optional[_Iterable[_Union[_date_pb2.Date, _Mapping]]] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("request_id", "schedule")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schedule: Schedule
    def __init__(self, request_id: _Optional[str] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class CreateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("actor", "kind", "role", "service_type", "page_size", "page_token")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    kind: str
    role: str
    service_type: str
    page_size: int
    page_token: str
    def __init__(self, actor: _Optional[str] = ..., kind: _Optional[str] = ..., role: _Optional[str] = ..., service_type: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules", "next_page_token")
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    next_page_token: str
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateScheduleRequest(_message.Message):
    __slots__ = ("schedule", "expected_version", "update_mask", "request_id")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    expected_version: int
    update_mask: _field_mask_pb2.FieldMask
    request_id: str
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ..., expected_version: _Optional[int] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class FindSlotsRequest(_message.Message):
    __slots__ = ("schedule_id", "actor", "role", "service_type", "start_time", "end_time", "duration_minutes", "page_size")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    actor: str
    role: str
    service_type: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    duration_minutes: int
    page_size: int
    def __init__(self, schedule_id: _Optional[str] = ..., actor: _Optional[str] = ..., role: _Optional[str] = ..., service_type: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_minutes: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class Slot(_message.Message):
    __slots__ = ("schedule_id", "actor", "start_time", "end_time", "appointment_id", "seats_left", "fhir_json")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    APPOINTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEATS_LEFT_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    actor: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    appointment_id: str
    seats_left: int
    fhir_json: str
    def __init__(self, schedule_id: _Optional[str] = ..., actor: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., appointment_id: _Optional[str] = ..., seats_left: _Optional[int] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class FindSlotsResponse(_message.Message):
    __slots__ = ("slots", "truncated")
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedCompositeFieldContainer[Slot]
    truncated: bool
    def __init__(self, slots: _Optional[_Iterable[_Union[Slot, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class Appointment(_message.Message):
    __slots__ = ("id", "version", "patient_id", "status", "start_time", "end_time", "care_plan_id", "fhir_json", "kind", "capacity", "seats_taken")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CARE_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SEATS_TAKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    status: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    care_plan_id: str
    fhir_json: str
    kind: str
    capacity: int
    seats_taken: int
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., status: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., care_plan_id: _Optional[str] = ..., fhir_json: _Optional[str] = ..., kind: _Optional[str] = ..., capacity: _Optional[int] = ..., seats_taken: _Optional[int] = ...) -> None: ...

class BookAppointmentRequest(_message.Message):
    __slots__ = ("request_id", "patient_id", "practitioner_ids", "location_id", "start_time", "end_time", "service_type", "description", "care_plan_id", "related_person_ids")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PRACTITIONER_IDS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CARE_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    RELATED_PERSON_IDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    patient_id: str
    practitioner_ids: _containers.RepeatedScalarFieldContainer[str]
    location_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    service_type: str
    description: str
    care_plan_id: str
    related_person_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., practitioner_ids: _Optional[_Iterable[str]] = ..., location_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., service_type: _Optional[str] = ..., description: _Optional[str] = ..., care_plan_id: _Optional[str] = ..., related_person_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BookAppointmentResponse(_message.Message):
    __slots__ = ("appointment",)
    APPOINTMENT_FIELD_NUMBER: _ClassVar[int]
    appointment: Appointment
    def __init__(self, appointment: _Optional[_Union[Appointment, _Mapping]] = ...) -> None: ...

class CreateGroupSessionRequest(_message.Message):
    __slots__ = ("request_id", "location_id", "facilitator_ids", "start_time", "end_time", "capacity", "service_type", "description")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    FACILITATOR_IDS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    location_id: str
    facilitator_ids: _containers.RepeatedScalarFieldContainer[str]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    capacity: int
    service_type: str
    description: str
    def __init__(self, request_id: _Optional[str] = ..., location_id: _Optional[str] = ..., facilitator_ids: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., capacity: _Optional[int] = ..., service_type: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CreateGroupSessionResponse(_message.Message):
    __slots__ = ("appointment",)
    APPOINTMENT_FIELD_NUMBER: _ClassVar[int]
    appointment: Appointment
    def __init__(self, appointment: _Optional[_Union[Appointment, _Mapping]] = ...) -> None: ...

class JoinGroupSessionRequest(_message.Message):
    __slots__ = ("request_id", "appointment_id", "patient_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    APPOINTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    appointment_id: str
    patient_id: str
    def __init__(self, request_id: _Optional[str] = ..., appointment_id: _Optional[str] = ..., patient_id: _Optional[str] = ...) -> None: ...

class JoinGroupSessionResponse(_message.Message):
    __slots__ = ("appointment",)
    APPOINTMENT_FIELD_NUMBER: _ClassVar[int]
    appointment: Appointment
    def __init__(self, appointment: _Optional[_Union[Appointment, _Mapping]] = ...) -> None: ...

class CancelAppointmentRequest(_message.Message):
    __slots__ = ("appointment_id", "expected_version", "reason", "patient_id", "request_id")
    APPOINTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    appointment_id: str
    expected_version: int
    reason: str
    patient_id: str
    request_id: str
    def __init__(self, appointment_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ..., patient_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CancelAppointmentResponse(_message.Message):
    __slots__ = ("appointment", "late")
    APPOINTMENT_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    appointment: Appointment
    late: bool
    def __init__(self, appointment: _Optional[_Union[Appointment, _Mapping]] = ..., late: _Optional[bool] = ...) -> None: ...

class RescheduleAppointmentRequest(_message.Message):
    __slots__ = ("appointment_id", "expected_version", "start_time", "end_time", "reason", "request_id")
    APPOINTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    appointment_id: str
    expected_version: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    reason: str
    request_id: str
    def __init__(self, appointment_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RescheduleAppointmentResponse(_message.Message):
    __slots__ = ("appointment",)
    APPOINTMENT_FIELD_NUMBER: _ClassVar[int]
    appointment: Appointment
    def __init__(self, appointment: _Optional[_Union[Appointment, _Mapping]] = ...) -> None: ...

class GetAppointmentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetAppointmentResponse(_message.Message):
    __slots__ = ("appointment",)
    APPOINTMENT_FIELD_NUMBER: _ClassVar[int]
    appointment: Appointment
    def __init__(self, appointment: _Optional[_Union[Appointment, _Mapping]] = ...) -> None: ...

class ListAppointmentsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token", "actor", "statuses", "start_time", "end_time")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    actor: str
    statuses: _containers.RepeatedScalarFieldContainer[str]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., actor: _Optional[str] = ..., statuses: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAppointmentsResponse(_message.Message):
    __slots__ = ("appointments", "next_page_token")
    APPOINTMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    appointments: _containers.RepeatedCompositeFieldContainer[Appointment]
    next_page_token: str
    def __init__(self, appointments: _Optional[_Iterable[_Union[Appointment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordAttendanceRequest(_message.Message):
    __slots__ = ("appointment_id", "expected_version", "status", "reason", "patient_id", "request_id", "family_attended")
    APPOINTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_ATTENDED_FIELD_NUMBER: _ClassVar[int]
    appointment_id: str
    expected_version: int
    status: str
    reason: str
    patient_id: str
    request_id: str
    family_attended: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, appointment_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., patient_id: _Optional[str] = ..., request_id: _Optional[str] = ..., family_attended: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordAttendanceResponse(_message.Message):
    __slots__ = ("appointment",)
    APPOINTMENT_FIELD_NUMBER: _ClassVar[int]
    appointment: Appointment
    def __init__(self, appointment: _Optional[_Union[Appointment, _Mapping]] = ...) -> None: ...

class GetIntensityRequest(_message.Message):
    __slots__ = ("patient_id", "program", "start_date", "end_date")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    program: str
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    def __init__(self, patient_id: _Optional[str] = ..., program: _Optional[str] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class WeekIntensity(_message.Message):
    __slots__ = ("iso_week", "scheduled_hours", "attended_hours", "minimum_hours", "maximum_hours", "below_minimum", "above_maximum", "missed_sessions")
    ISO_WEEK_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_HOURS_FIELD_NUMBER: _ClassVar[int]
    ATTENDED_HOURS_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_HOURS_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_HOURS_FIELD_NUMBER: _ClassVar[int]
    BELOW_MINIMUM_FIELD_NUMBER: _ClassVar[int]
    ABOVE_MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    MISSED_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    iso_week: str
    scheduled_hours: float
    attended_hours: float
    minimum_hours: float
    maximum_hours: float
    below_minimum: bool
    above_maximum: bool
    missed_sessions: int
    def __init__(self, iso_week: _Optional[str] = ..., scheduled_hours: _Optional[float] = ..., attended_hours: _Optional[float] = ..., minimum_hours: _Optional[float] = ..., maximum_hours: _Optional[float] = ..., below_minimum: _Optional[bool] = ..., above_maximum: _Optional[bool] = ..., missed_sessions: _Optional[int] = ...) -> None: ...

class GetIntensityResponse(_message.Message):
    __slots__ = ("weeks", "missed_two_in_a_row")
    WEEKS_FIELD_NUMBER: _ClassVar[int]
    MISSED_TWO_IN_A_ROW_FIELD_NUMBER: _ClassVar[int]
    weeks: _containers.RepeatedCompositeFieldContainer[WeekIntensity]
    missed_two_in_a_row: bool
    def __init__(self, weeks: _Optional[_Iterable[_Union[WeekIntensity, _Mapping]]] = ..., missed_two_in_a_row: _Optional[bool] = ...) -> None: ...

class RecordCheckInRequest(_message.Message):
    __slots__ = ("patient_id", "request_id", "answers")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    request_id: str
    answers: CheckInAnswers
    def __init__(self, patient_id: _Optional[str] = ..., request_id: _Optional[str] = ..., answers: _Optional[_Union[CheckInAnswers, _Mapping]] = ...) -> None: ...

class CheckInAnswers(_message.Message):
    __slots__ = ("mood", "craving", "sleep_hours", "medication_taken", "self_harm_thoughts")
    MOOD_FIELD_NUMBER: _ClassVar[int]
    CRAVING_FIELD_NUMBER: _ClassVar[int]
    SLEEP_HOURS_FIELD_NUMBER: _ClassVar[int]
    MEDICATION_TAKEN_FIELD_NUMBER: _ClassVar[int]
    SELF_HARM_THOUGHTS_FIELD_NUMBER: _ClassVar[int]
    mood: int
    craving: int
    sleep_hours: float
    medication_taken: bool
    self_harm_thoughts: bool
    def __init__(self, mood: _Optional[int] = ..., craving: _Optional[int] = ..., sleep_hours: _Optional[float] = ..., medication_taken: _Optional[bool] = ..., self_harm_thoughts: _Optional[bool] = ...) -> None: ...

class RecordCheckInResponse(_message.Message):
    __slots__ = ("day", "check_in_time", "late", "already_recorded", "response")
    DAY_FIELD_NUMBER: _ClassVar[int]
    CHECK_IN_TIME_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RECORDED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    day: _date_pb2.Date
    check_in_time: _timestamp_pb2.Timestamp
    late: bool
    already_recorded: bool
    response: CheckInResponse
    def __init__(self, day: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., check_in_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., late: _Optional[bool] = ..., already_recorded: _Optional[bool] = ..., response: _Optional[_Union[CheckInResponse, _Mapping]] = ...) -> None: ...

class CheckInResponse(_message.Message):
    __slots__ = ("id", "patient_id", "authored_time", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORED_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    patient_id: str
    authored_time: _timestamp_pb2.Timestamp
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., patient_id: _Optional[str] = ..., authored_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class ListCheckInResponsesRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCheckInResponsesResponse(_message.Message):
    __slots__ = ("responses", "next_page_token")
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[CheckInResponse]
    next_page_token: str
    def __init__(self, responses: _Optional[_Iterable[_Union[CheckInResponse, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListEncountersRequest(_message.Message):
    __slots__ = ("patient_id", "start_time", "end_time", "code", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    code: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., code: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Encounter(_message.Message):
    __slots__ = ("id", "version", "patient_id", "appointment_id", "code", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    APPOINTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    appointment_id: str
    code: str
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., appointment_id: _Optional[str] = ..., code: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class ListEncountersResponse(_message.Message):
    __slots__ = ("encounters", "next_page_token")
    ENCOUNTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    encounters: _containers.RepeatedCompositeFieldContainer[Encounter]
    next_page_token: str
    def __init__(self, encounters: _Optional[_Iterable[_Union[Encounter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportEncountersCsvRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "patient_id")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    patient_id: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., patient_id: _Optional[str] = ...) -> None: ...

class ExportEncountersCsvResponse(_message.Message):
    __slots__ = ("csv", "encounter_count")
    CSV_FIELD_NUMBER: _ClassVar[int]
    ENCOUNTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    csv: bytes
    encounter_count: int
    def __init__(self, csv: _Optional[bytes] = ..., encounter_count: _Optional[int] = ...) -> None: ...
