import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("id", "patient_id", "sender", "text", "priority", "sent_time", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    patient_id: str
    sender: str
    text: str
    priority: str
    sent_time: _timestamp_pb2.Timestamp
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., patient_id: _Optional[str] = ..., sender: _Optional[str] = ..., text: _Optional[str] = ..., priority: _Optional[str] = ..., sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class PostMessageRequest(_message.Message):
    __slots__ = ("request_id", "patient_id", "text", "priority")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    patient_id: str
    text: str
    priority: str
    def __init__(self, request_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., text: _Optional[str] = ..., priority: _Optional[str] = ...) -> None: ...

class PostMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class ListThreadRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListThreadResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Flag(_message.Message):
    __slots__ = ("id", "version", "patient_id", "status", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    status: str
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., status: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class AcknowledgeCrisisRequest(_message.Message):
    __slots__ = ("flag_id", "note")
    FLAG_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    flag_id: str
    note: str
    def __init__(self, flag_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class AcknowledgeCrisisResponse(_message.Message):
    __slots__ = ("flag",)
    FLAG_FIELD_NUMBER: _ClassVar[int]
    flag: Flag
    def __init__(self, flag: _Optional[_Union[Flag, _Mapping]] = ...) -> None: ...

class ListFlagsRequest(_message.Message):
    __slots__ = ("patient_id",)
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    def __init__(self, patient_id: _Optional[str] = ...) -> None: ...

class ListFlagsResponse(_message.Message):
    __slots__ = ("flags",)
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    flags: _containers.RepeatedCompositeFieldContainer[Flag]
    def __init__(self, flags: _Optional[_Iterable[_Union[Flag, _Mapping]]] = ...) -> None: ...
