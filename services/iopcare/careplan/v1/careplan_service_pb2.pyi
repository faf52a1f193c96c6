import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CarePlan(_message.Message):
    __slots__ = ("id", "version", "patient_id", "status", "update_time", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    status: str
    update_time: _timestamp_pb2.Timestamp
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., status: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateCarePlanRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateCarePlanResponse(_message.Message):
    __slots__ = ("care_plan",)
    CARE_PLAN_FIELD_NUMBER: _ClassVar[int]
    care_plan: CarePlan
    def __init__(self, care_plan: _Optional[_Union[CarePlan, _Mapping]] = ...) -> None: ...

class GetCarePlanRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetCarePlanResponse(_message.Message):
    __slots__ = ("care_plan",)
    CARE_PLAN_FIELD_NUMBER: _ClassVar[int]
    care_plan: CarePlan
    def __init__(self, care_plan: _Optional[_Union[CarePlan, _Mapping]] = ...) -> None: ...
