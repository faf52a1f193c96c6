import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("id", "patient_id", "sender", "text", "priority", "sent_time", "fhir_json", "category", "status", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    patient_id: str
    sender: str
    text: str
    priority: str
    sent_time: _timestamp_pb2.Timestamp
    fhir_json: str
    category: str
    status: str
    version: int
    def __init__(self, id: _Optional[str] = ..., patient_id: _Optional[str] = ..., sender: _Optional[str] = ..., text: _Optional[str] = ..., priority: _Optional[str] = ..., sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ..., category: _Optional[str] = ..., status: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class PostMessageRequest(_message.Message):
    __slots__ = ("request_id", "patient_id", "text", "priority", "category", "recipients", "in_response_to", "part_of", "about", "attachments")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    IN_RESPONSE_TO_FIELD_NUMBER: _ClassVar[int]
    PART_OF_FIELD_NUMBER: _ClassVar[int]
    ABOUT_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    patient_id: str
    text: str
    priority: str
    category: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    in_response_to: str
    part_of: _containers.RepeatedScalarFieldContainer[str]
    about: _containers.RepeatedScalarFieldContainer[str]
    attachments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., text: _Optional[str] = ..., priority: _Optional[str] = ..., category: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., in_response_to: _Optional[str] = ..., part_of: _Optional[_Iterable[str]] = ..., about: _Optional[_Iterable[str]] = ..., attachments: _Optional[_Iterable[str]] = ...) -> None: ...

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

class GetCommunicationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ReadReceipt(_message.Message):
    __slots__ = ("reader", "read_time")
    READER_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    reader: str
    read_time: _timestamp_pb2.Timestamp
    def __init__(self, reader: _Optional[str] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetCommunicationResponse(_message.Message):
    __slots__ = ("message", "receipts")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    message: Message
    receipts: _containers.RepeatedCompositeFieldContainer[ReadReceipt]
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ..., receipts: _Optional[_Iterable[_Union[ReadReceipt, _Mapping]]] = ...) -> None: ...

class RetractMessageRequest(_message.Message):
    __slots__ = ("id", "expected_version", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class RetractMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class MarkReadRequest(_message.Message):
    __slots__ = ("message_ids", "request_id")
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    message_ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, message_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class MarkReadResponse(_message.Message):
    __slots__ = ("new_receipts",)
    NEW_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    new_receipts: int
    def __init__(self, new_receipts: _Optional[int] = ...) -> None: ...

class MessageDraft(_message.Message):
    __slots__ = ("id", "patient_id", "version", "message", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    patient_id: str
    version: int
    message: PostMessageRequest
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., patient_id: _Optional[str] = ..., version: _Optional[int] = ..., message: _Optional[_Union[PostMessageRequest, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SaveMessageDraftRequest(_message.Message):
    __slots__ = ("draft_id", "expected_version", "message", "request_id")
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    expected_version: int
    message: PostMessageRequest
    request_id: str
    def __init__(self, draft_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., message: _Optional[_Union[PostMessageRequest, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SaveMessageDraftResponse(_message.Message):
    __slots__ = ("draft",)
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    draft: MessageDraft
    def __init__(self, draft: _Optional[_Union[MessageDraft, _Mapping]] = ...) -> None: ...

class ListMessageDraftsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMessageDraftsResponse(_message.Message):
    __slots__ = ("drafts", "next_page_token")
    DRAFTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    drafts: _containers.RepeatedCompositeFieldContainer[MessageDraft]
    next_page_token: str
    def __init__(self, drafts: _Optional[_Iterable[_Union[MessageDraft, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SendMessageDraftRequest(_message.Message):
    __slots__ = ("request_id", "draft_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    draft_id: str
    def __init__(self, request_id: _Optional[str] = ..., draft_id: _Optional[str] = ...) -> None: ...

class SendMessageDraftResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class DiscardMessageDraftRequest(_message.Message):
    __slots__ = ("draft_id", "request_id")
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    request_id: str
    def __init__(self, draft_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DiscardMessageDraftResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchThreadRequest(_message.Message):
    __slots__ = ("patient_id", "resume_token", "addressed_to_me")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ADDRESSED_TO_ME_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    resume_token: str
    addressed_to_me: bool
    def __init__(self, patient_id: _Optional[str] = ..., resume_token: _Optional[str] = ..., addressed_to_me: _Optional[bool] = ...) -> None: ...

class WatchThreadResponse(_message.Message):
    __slots__ = ("message", "resume_token")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    message: Message
    resume_token: str
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ..., resume_token: _Optional[str] = ...) -> None: ...

class Note(_message.Message):
    __slots__ = ("id", "version", "patient_id", "kind", "type_code", "author", "status", "title", "text", "shared_text", "confidentiality", "sensitivity", "shared_with", "group_id", "relates_to", "relation", "relation_reason", "create_time", "sign_time", "signed_by", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TYPE_CODE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SHARED_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENTIALITY_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    SHARED_WITH_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    RELATES_TO_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    RELATION_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SIGN_TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNED_BY_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    kind: str
    type_code: str
    author: str
    status: str
    title: str
    text: str
    shared_text: str
    confidentiality: str
    sensitivity: _containers.RepeatedScalarFieldContainer[str]
    shared_with: _containers.RepeatedScalarFieldContainer[str]
    group_id: str
    relates_to: str
    relation: str
    relation_reason: str
    create_time: _timestamp_pb2.Timestamp
    sign_time: _timestamp_pb2.Timestamp
    signed_by: str
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., kind: _Optional[str] = ..., type_code: _Optional[str] = ..., author: _Optional[str] = ..., status: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., shared_text: _Optional[str] = ..., confidentiality: _Optional[str] = ..., sensitivity: _Optional[_Iterable[str]] = ..., shared_with: _Optional[_Iterable[str]] = ..., group_id: _Optional[str] = ..., relates_to: _Optional[str] = ..., relation: _Optional[str] = ..., relation_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sign_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signed_by: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class NoteInput(_message.Message):
    __slots__ = ("patient_id", "kind", "title", "text", "shared_text", "confidentiality", "sensitivity", "shared_with")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SHARED_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENTIALITY_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    SHARED_WITH_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    kind: str
    title: str
    text: str
    shared_text: str
    confidentiality: str
    sensitivity: _containers.RepeatedScalarFieldContainer[str]
    shared_with: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, patient_id: _Optional[str] = ..., kind: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., shared_text: _Optional[str] = ..., confidentiality: _Optional[str] = ..., sensitivity: _Optional[_Iterable[str]] = ..., shared_with: _Optional[_Iterable[str]] = ...) -> None: ...

class Attendee(_message.Message):
    __slots__ = ("patient_id", "text")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    text: str
    def __init__(self, patient_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class CreateNoteRequest(_message.Message):
    __slots__ = ("request_id", "note", "attendees")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ATTENDEES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    note: NoteInput
    attendees: _containers.RepeatedCompositeFieldContainer[Attendee]
    def __init__(self, request_id: _Optional[str] = ..., note: _Optional[_Union[NoteInput, _Mapping]] = ..., attendees: _Optional[_Iterable[_Union[Attendee, _Mapping]]] = ...) -> None: ...

class CreateNoteResponse(_message.Message):
    __slots__ = ("notes",)
    NOTES_FIELD_NUMBER: _ClassVar[int]
    notes: _containers.RepeatedCompositeFieldContainer[Note]
    def __init__(self, notes: _Optional[_Iterable[_Union[Note, _Mapping]]] = ...) -> None: ...

class UpdateNoteRequest(_message.Message):
    __slots__ = ("id", "expected_version", "note", "update_mask", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    note: NoteInput
    update_mask: _field_mask_pb2.FieldMask
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., note: _Optional[_Union[NoteInput, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateNoteResponse(_message.Message):
    __slots__ = ("note",)
    NOTE_FIELD_NUMBER: _ClassVar[int]
    note: Note
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ...) -> None: ...

class SignNoteRequest(_message.Message):
    __slots__ = ("id", "expected_version", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class SignNoteResponse(_message.Message):
    __slots__ = ("note", "provenance_json")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_JSON_FIELD_NUMBER: _ClassVar[int]
    note: Note
    provenance_json: str
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ..., provenance_json: _Optional[str] = ...) -> None: ...

class AmendNoteRequest(_message.Message):
    __slots__ = ("request_id", "id", "relation", "reason", "text", "title")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id: str
    relation: str
    reason: str
    text: str
    title: str
    def __init__(self, request_id: _Optional[str] = ..., id: _Optional[str] = ..., relation: _Optional[str] = ..., reason: _Optional[str] = ..., text: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class AmendNoteResponse(_message.Message):
    __slots__ = ("note",)
    NOTE_FIELD_NUMBER: _ClassVar[int]
    note: Note
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ...) -> None: ...

class GetNoteRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetNoteResponse(_message.Message):
    __slots__ = ("note", "related_ids", "provenance_json", "break_glass")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    RELATED_IDS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_JSON_FIELD_NUMBER: _ClassVar[int]
    BREAK_GLASS_FIELD_NUMBER: _ClassVar[int]
    note: Note
    related_ids: _containers.RepeatedScalarFieldContainer[str]
    provenance_json: _containers.RepeatedScalarFieldContainer[str]
    break_glass: bool
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ..., related_ids: _Optional[_Iterable[str]] = ..., provenance_json: _Optional[_Iterable[str]] = ..., break_glass: _Optional[bool] = ...) -> None: ...

class SearchNotesRequest(_message.Message):
    __slots__ = ("patient_id", "author", "kinds", "date_from", "date_to", "text", "page_size", "page_token", "type_codes", "recipient")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TYPE_CODES_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    author: str
    kinds: _containers.RepeatedScalarFieldContainer[str]
    date_from: _timestamp_pb2.Timestamp
    date_to: _timestamp_pb2.Timestamp
    text: str
    page_size: int
    page_token: str
    type_codes: _containers.RepeatedScalarFieldContainer[str]
    recipient: str
    def __init__(self, patient_id: _Optional[str] = ..., author: _Optional[str] = ..., kinds: _Optional[_Iterable[str]] = ..., date_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., date_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., text: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., type_codes: _Optional[_Iterable[str]] = ..., recipient: _Optional[str] = ...) -> None: ...

class SearchNotesResponse(_message.Message):
    __slots__ = ("notes", "next_page_token")
    NOTES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    notes: _containers.RepeatedCompositeFieldContainer[Note]
    next_page_token: str
    def __init__(self, notes: _Optional[_Iterable[_Union[Note, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DiscloseNoteRequest(_message.Message):
    __slots__ = ("id", "recipient")
    ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    recipient: str
    def __init__(self, id: _Optional[str] = ..., recipient: _Optional[str] = ...) -> None: ...

class DiscloseNoteResponse(_message.Message):
    __slots__ = ("fhir_json",)
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    fhir_json: str
    def __init__(self, fhir_json: _Optional[str] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("id", "patient_id", "recipient", "scope", "status", "version", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    patient_id: str
    recipient: str
    scope: str
    status: str
    version: int
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., patient_id: _Optional[str] = ..., recipient: _Optional[str] = ..., scope: _Optional[str] = ..., status: _Optional[str] = ..., version: _Optional[int] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class RecordConsentRequest(_message.Message):
    __slots__ = ("request_id", "patient_id", "recipient", "scope", "start_time", "end_time", "recipient_type", "recipient_display", "signed_time", "signed_document")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_DISPLAY_FIELD_NUMBER: _ClassVar[int]
    SIGNED_TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNED_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    patient_id: str
    recipient: str
    scope: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    recipient_type: str
    recipient_display: str
    signed_time: _timestamp_pb2.Timestamp
    signed_document: str
    def __init__(self, request_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., recipient: _Optional[str] = ..., scope: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recipient_type: _Optional[str] = ..., recipient_display: _Optional[str] = ..., signed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signed_document: _Optional[str] = ...) -> None: ...

class RecordConsentResponse(_message.Message):
    __slots__ = ("consent",)
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

class RevokeConsentRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RevokeConsentResponse(_message.Message):
    __slots__ = ("consent",)
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

class GetConsentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetConsentResponse(_message.Message):
    __slots__ = ("consent",)
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

class ListConsentsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConsentsResponse(_message.Message):
    __slots__ = ("consents", "next_page_token")
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    next_page_token: str
    def __init__(self, consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("flag_id", "note", "request_id")
    FLAG_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    flag_id: str
    note: str
    request_id: str
    def __init__(self, flag_id: _Optional[str] = ..., note: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AcknowledgeCrisisResponse(_message.Message):
    __slots__ = ("flag",)
    FLAG_FIELD_NUMBER: _ClassVar[int]
    flag: Flag
    def __init__(self, flag: _Optional[_Union[Flag, _Mapping]] = ...) -> None: ...

class ListFlagsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFlagsResponse(_message.Message):
    __slots__ = ("flags", "next_page_token")
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flags: _containers.RepeatedCompositeFieldContainer[Flag]
    next_page_token: str
    def __init__(self, flags: _Optional[_Iterable[_Union[Flag, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SafetyPlan(_message.Message):
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

class SafetyPlanReview(_message.Message):
    __slots__ = ("id", "patient_id", "due_time", "reason", "flag_id", "crises")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FLAG_ID_FIELD_NUMBER: _ClassVar[int]
    CRISES_FIELD_NUMBER: _ClassVar[int]
    id: str
    patient_id: str
    due_time: _timestamp_pb2.Timestamp
    reason: str
    flag_id: str
    crises: int
    def __init__(self, id: _Optional[str] = ..., patient_id: _Optional[str] = ..., due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., flag_id: _Optional[str] = ..., crises: _Optional[int] = ...) -> None: ...

class GetSafetyPlanQuestionnaireRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSafetyPlanQuestionnaireResponse(_message.Message):
    __slots__ = ("fhir_json",)
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    fhir_json: str
    def __init__(self, fhir_json: _Optional[str] = ...) -> None: ...

class SaveSafetyPlanRequest(_message.Message):
    __slots__ = ("request_id", "patient_id", "fhir_json", "expected_version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    patient_id: str
    fhir_json: str
    expected_version: int
    def __init__(self, request_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., fhir_json: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SaveSafetyPlanResponse(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: SafetyPlan
    def __init__(self, plan: _Optional[_Union[SafetyPlan, _Mapping]] = ...) -> None: ...

class GetSafetyPlanRequest(_message.Message):
    __slots__ = ("id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetSafetyPlanResponse(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: SafetyPlan
    def __init__(self, plan: _Optional[_Union[SafetyPlan, _Mapping]] = ...) -> None: ...

class GetPatientSafetyPlanRequest(_message.Message):
    __slots__ = ("patient_id",)
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    def __init__(self, patient_id: _Optional[str] = ...) -> None: ...

class GetPatientSafetyPlanResponse(_message.Message):
    __slots__ = ("plan", "review")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    plan: SafetyPlan
    review: SafetyPlanReview
    def __init__(self, plan: _Optional[_Union[SafetyPlan, _Mapping]] = ..., review: _Optional[_Union[SafetyPlanReview, _Mapping]] = ...) -> None: ...

class ListSafetyPlanVersionsRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListSafetyPlanVersionsResponse(_message.Message):
    __slots__ = ("plans",)
    PLANS_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[SafetyPlan]
    def __init__(self, plans: _Optional[_Iterable[_Union[SafetyPlan, _Mapping]]] = ...) -> None: ...

class ListSafetyPlanReviewsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSafetyPlanReviewsResponse(_message.Message):
    __slots__ = ("reviews", "next_page_token")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[SafetyPlanReview]
    next_page_token: str
    def __init__(self, reviews: _Optional[_Iterable[_Union[SafetyPlanReview, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class OnCallShift(_message.Message):
    __slots__ = ("start_time", "end_time", "clinicians")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CLINICIANS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    clinicians: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clinicians: _Optional[_Iterable[str]] = ...) -> None: ...

class OnCallRoster(_message.Message):
    __slots__ = ("version", "shifts", "update_time", "updated_by")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHIFTS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    version: int
    shifts: _containers.RepeatedCompositeFieldContainer[OnCallShift]
    update_time: _timestamp_pb2.Timestamp
    updated_by: str
    def __init__(self, version: _Optional[int] = ..., shifts: _Optional[_Iterable[_Union[OnCallShift, _Mapping]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_by: _Optional[str] = ...) -> None: ...

class SetOnCallRosterRequest(_message.Message):
    __slots__ = ("shifts", "request_id")
    SHIFTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    shifts: _containers.RepeatedCompositeFieldContainer[OnCallShift]
    request_id: str
    def __init__(self, shifts: _Optional[_Iterable[_Union[OnCallShift, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetOnCallRosterResponse(_message.Message):
    __slots__ = ("roster",)
    ROSTER_FIELD_NUMBER: _ClassVar[int]
    roster: OnCallRoster
    def __init__(self, roster: _Optional[_Union[OnCallRoster, _Mapping]] = ...) -> None: ...

class GetOnCallRosterRequest(_message.Message):
    __slots__ = ("at_time",)
    AT_TIME_FIELD_NUMBER: _ClassVar[int]
    at_time: _timestamp_pb2.Timestamp
    def __init__(self, at_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetOnCallRosterResponse(_message.Message):
    __slots__ = ("roster", "on_call", "in_program_hours")
    ROSTER_FIELD_NUMBER: _ClassVar[int]
    ON_CALL_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRAM_HOURS_FIELD_NUMBER: _ClassVar[int]
    roster: OnCallRoster
    on_call: _containers.RepeatedScalarFieldContainer[str]
    in_program_hours: bool
    def __init__(self, roster: _Optional[_Union[OnCallRoster, _Mapping]] = ..., on_call: _Optional[_Iterable[str]] = ..., in_program_hours: _Optional[bool] = ...) -> None: ...

class ImportDocumentRequest(_message.Message):
    __slots__ = ("request_id", "note", "episode_id", "author", "author_display", "document_time", "source_identifier")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_DISPLAY_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    note: NoteInput
    episode_id: str
    author: str
    author_display: str
    document_time: _timestamp_pb2.Timestamp
    source_identifier: str
    def __init__(self, request_id: _Optional[str] = ..., note: _Optional[_Union[NoteInput, _Mapping]] = ..., episode_id: _Optional[str] = ..., author: _Optional[str] = ..., author_display: _Optional[str] = ..., document_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_identifier: _Optional[str] = ...) -> None: ...

class ImportDocumentResponse(_message.Message):
    __slots__ = ("id", "version", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., fhir_json: _Optional[str] = ...) -> None: ...
