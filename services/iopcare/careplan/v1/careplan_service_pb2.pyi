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

class DraftCarePlanRequest(_message.Message):
    __slots__ = ("request_id", "patient_id", "diagnosis_code", "care_team_id", "additions_fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_CODE_FIELD_NUMBER: _ClassVar[int]
    CARE_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    ADDITIONS_FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    patient_id: str
    diagnosis_code: str
    care_team_id: str
    additions_fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., diagnosis_code: _Optional[str] = ..., care_team_id: _Optional[str] = ..., additions_fhir_json: _Optional[str] = ...) -> None: ...

class DraftCarePlanResponse(_message.Message):
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

class ListCarePlansRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCarePlansResponse(_message.Message):
    __slots__ = ("care_plans", "next_page_token")
    CARE_PLANS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    care_plans: _containers.RepeatedCompositeFieldContainer[CarePlan]
    next_page_token: str
    def __init__(self, care_plans: _Optional[_Iterable[_Union[CarePlan, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCarePlanRequest(_message.Message):
    __slots__ = ("id", "expected_version", "fhir_json", "update_mask", "reason", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    fhir_json: str
    update_mask: _field_mask_pb2.FieldMask
    reason: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., fhir_json: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateCarePlanResponse(_message.Message):
    __slots__ = ("care_plan",)
    CARE_PLAN_FIELD_NUMBER: _ClassVar[int]
    care_plan: CarePlan
    def __init__(self, care_plan: _Optional[_Union[CarePlan, _Mapping]] = ...) -> None: ...

class RecordPlanReviewRequest(_message.Message):
    __slots__ = ("id", "expected_version", "outcome", "summary", "attestations", "reviewed_on", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ATTESTATIONS_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_ON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    outcome: str
    summary: str
    attestations: _containers.RepeatedCompositeFieldContainer[ReviewAttestation]
    reviewed_on: _date_pb2.Date
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., outcome: _Optional[str] = ..., summary: _Optional[str] = ..., attestations: _Optional[_Iterable[_Union[ReviewAttestation, _Mapping]]] = ..., reviewed_on: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReviewAttestation(_message.Message):
    __slots__ = ("practitioner_id", "role", "agrees", "comment")
    PRACTITIONER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AGREES_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    practitioner_id: str
    role: str
    agrees: bool
    comment: str
    def __init__(self, practitioner_id: _Optional[str] = ..., role: _Optional[str] = ..., agrees: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class RecordPlanReviewResponse(_message.Message):
    __slots__ = ("care_plan",)
    CARE_PLAN_FIELD_NUMBER: _ClassVar[int]
    care_plan: CarePlan
    def __init__(self, care_plan: _Optional[_Union[CarePlan, _Mapping]] = ...) -> None: ...

class GetResourceVersionRequest(_message.Message):
    __slots__ = ("resource_type", "id", "version")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    id: str
    version: int
    def __init__(self, resource_type: _Optional[str] = ..., id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetResourceVersionResponse(_message.Message):
    __slots__ = ("resource",)
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    resource: ResourceVersion
    def __init__(self, resource: _Optional[_Union[ResourceVersion, _Mapping]] = ...) -> None: ...

class ResourceVersion(_message.Message):
    __slots__ = ("id", "version", "patient_id", "status", "update_time", "changed_by", "change", "reason", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    status: str
    update_time: _timestamp_pb2.Timestamp
    changed_by: str
    change: str
    reason: str
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., status: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changed_by: _Optional[str] = ..., change: _Optional[str] = ..., reason: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class ListResourceVersionsRequest(_message.Message):
    __slots__ = ("resource_type", "id", "page_size", "page_token")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    id: str
    page_size: int
    page_token: str
    def __init__(self, resource_type: _Optional[str] = ..., id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResourceVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ResourceVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[ResourceVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateCareTeamRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateCareTeamResponse(_message.Message):
    __slots__ = ("care_team",)
    CARE_TEAM_FIELD_NUMBER: _ClassVar[int]
    care_team: CareTeam
    def __init__(self, care_team: _Optional[_Union[CareTeam, _Mapping]] = ...) -> None: ...

class CareTeam(_message.Message):
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

class GetCareTeamRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetCareTeamResponse(_message.Message):
    __slots__ = ("care_team",)
    CARE_TEAM_FIELD_NUMBER: _ClassVar[int]
    care_team: CareTeam
    def __init__(self, care_team: _Optional[_Union[CareTeam, _Mapping]] = ...) -> None: ...

class ListCareTeamsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCareTeamsResponse(_message.Message):
    __slots__ = ("care_teams", "next_page_token")
    CARE_TEAMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    care_teams: _containers.RepeatedCompositeFieldContainer[CareTeam]
    next_page_token: str
    def __init__(self, care_teams: _Optional[_Iterable[_Union[CareTeam, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCareTeamRequest(_message.Message):
    __slots__ = ("id", "expected_version", "fhir_json", "update_mask", "reason", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    fhir_json: str
    update_mask: _field_mask_pb2.FieldMask
    reason: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., fhir_json: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateCareTeamResponse(_message.Message):
    __slots__ = ("care_team",)
    CARE_TEAM_FIELD_NUMBER: _ClassVar[int]
    care_team: CareTeam
    def __init__(self, care_team: _Optional[_Union[CareTeam, _Mapping]] = ...) -> None: ...

class CreateGoalRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateGoalResponse(_message.Message):
    __slots__ = ("goal",)
    GOAL_FIELD_NUMBER: _ClassVar[int]
    goal: Goal
    def __init__(self, goal: _Optional[_Union[Goal, _Mapping]] = ...) -> None: ...

class Goal(_message.Message):
    __slots__ = ("id", "version", "patient_id", "lifecycle_status", "update_time", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    lifecycle_status: str
    update_time: _timestamp_pb2.Timestamp
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., lifecycle_status: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class GetGoalRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetGoalResponse(_message.Message):
    __slots__ = ("goal",)
    GOAL_FIELD_NUMBER: _ClassVar[int]
    goal: Goal
    def __init__(self, goal: _Optional[_Union[Goal, _Mapping]] = ...) -> None: ...

class ListGoalsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListGoalsResponse(_message.Message):
    __slots__ = ("goals", "next_page_token")
    GOALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    goals: _containers.RepeatedCompositeFieldContainer[Goal]
    next_page_token: str
    def __init__(self, goals: _Optional[_Iterable[_Union[Goal, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordMeasureRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class RecordMeasureResponse(_message.Message):
    __slots__ = ("observation_id", "fhir_json", "updated_goals", "crisis_reasons")
    OBSERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_GOALS_FIELD_NUMBER: _ClassVar[int]
    CRISIS_REASONS_FIELD_NUMBER: _ClassVar[int]
    observation_id: str
    fhir_json: str
    updated_goals: _containers.RepeatedCompositeFieldContainer[Goal]
    crisis_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, observation_id: _Optional[str] = ..., fhir_json: _Optional[str] = ..., updated_goals: _Optional[_Iterable[_Union[Goal, _Mapping]]] = ..., crisis_reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class GetMeasureRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetMeasureResponse(_message.Message):
    __slots__ = ("patient_id", "update_time", "fhir_json")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    update_time: _timestamp_pb2.Timestamp
    fhir_json: str
    def __init__(self, patient_id: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class ListMeasuresRequest(_message.Message):
    __slots__ = ("patient_id", "code", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    code: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., code: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMeasuresResponse(_message.Message):
    __slots__ = ("fhir_json", "next_page_token")
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    fhir_json: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, fhir_json: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateEpisodeRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateEpisodeResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: EpisodeOfCare
    def __init__(self, episode: _Optional[_Union[EpisodeOfCare, _Mapping]] = ...) -> None: ...

class EpisodeOfCare(_message.Message):
    __slots__ = ("id", "version", "patient_id", "status", "clinical_level", "authorized_level", "update_time", "fhir_json", "clinical_asam_level", "authorized_asam_level", "asam_ratings")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CLINICAL_LEVEL_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZED_LEVEL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    CLINICAL_ASAM_LEVEL_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZED_ASAM_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ASAM_RATINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    status: str
    clinical_level: str
    authorized_level: str
    update_time: _timestamp_pb2.Timestamp
    fhir_json: str
    clinical_asam_level: str
    authorized_asam_level: str
    asam_ratings: _containers.RepeatedCompositeFieldContainer[AsamRating]
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., status: _Optional[str] = ..., clinical_level: _Optional[str] = ..., authorized_level: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ..., clinical_asam_level: _Optional[str] = ..., authorized_asam_level: _Optional[str] = ..., asam_ratings: _Optional[_Iterable[_Union[AsamRating, _Mapping]]] = ...) -> None: ...

class GetEpisodeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetEpisodeResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: EpisodeOfCare
    def __init__(self, episode: _Optional[_Union[EpisodeOfCare, _Mapping]] = ...) -> None: ...

class ListEpisodesRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEpisodesResponse(_message.Message):
    __slots__ = ("episodes", "next_page_token")
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    episodes: _containers.RepeatedCompositeFieldContainer[EpisodeOfCare]
    next_page_token: str
    def __init__(self, episodes: _Optional[_Iterable[_Union[EpisodeOfCare, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AdmitPatientRequest(_message.Message):
    __slots__ = ("id", "expected_version", "reason", "request_id", "asam_ratings")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ASAM_RATINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    reason: str
    request_id: str
    asam_ratings: _containers.RepeatedCompositeFieldContainer[AsamRating]
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., asam_ratings: _Optional[_Iterable[_Union[AsamRating, _Mapping]]] = ...) -> None: ...

class AdmitPatientResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: EpisodeOfCare
    def __init__(self, episode: _Optional[_Union[EpisodeOfCare, _Mapping]] = ...) -> None: ...

class ChangeLevelOfCareRequest(_message.Message):
    __slots__ = ("id", "expected_version", "clinical_level", "authorized_level", "reason", "request_id", "asam_ratings")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLINICAL_LEVEL_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZED_LEVEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ASAM_RATINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    clinical_level: str
    authorized_level: str
    reason: str
    request_id: str
    asam_ratings: _containers.RepeatedCompositeFieldContainer[AsamRating]
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., clinical_level: _Optional[str] = ..., authorized_level: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., asam_ratings: _Optional[_Iterable[_Union[AsamRating, _Mapping]]] = ...) -> None: ...

class ChangeLevelOfCareResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: EpisodeOfCare
    def __init__(self, episode: _Optional[_Union[EpisodeOfCare, _Mapping]] = ...) -> None: ...

class DischargePatientRequest(_message.Message):
    __slots__ = ("id", "expected_version", "reason", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    reason: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DischargePatientResponse(_message.Message):
    __slots__ = ("episode",)
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    episode: EpisodeOfCare
    def __init__(self, episode: _Optional[_Union[EpisodeOfCare, _Mapping]] = ...) -> None: ...

class GetPatientPlanRequest(_message.Message):
    __slots__ = ("patient_id",)
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    def __init__(self, patient_id: _Optional[str] = ...) -> None: ...

class GetPatientPlanResponse(_message.Message):
    __slots__ = ("episode", "care_plan", "care_teams", "goals", "upcoming_sessions", "attendance", "latest_notes", "activity_attendance", "nutrition_order", "disciplines", "active_medications", "medication_reconciliation")
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    CARE_PLAN_FIELD_NUMBER: _ClassVar[int]
    CARE_TEAMS_FIELD_NUMBER: _ClassVar[int]
    GOALS_FIELD_NUMBER: _ClassVar[int]
    UPCOMING_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    LATEST_NOTES_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    NUTRITION_ORDER_FIELD_NUMBER: _ClassVar[int]
    DISCIPLINES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_MEDICATIONS_FIELD_NUMBER: _ClassVar[int]
    MEDICATION_RECONCILIATION_FIELD_NUMBER: _ClassVar[int]
    episode: EpisodeOfCare
    care_plan: CarePlan
    care_teams: _containers.RepeatedCompositeFieldContainer[CareTeam]
    goals: _containers.RepeatedCompositeFieldContainer[GoalProgress]
    upcoming_sessions: _containers.RepeatedCompositeFieldContainer[Session]
    attendance: Attendance
    latest_notes: _containers.RepeatedCompositeFieldContainer[NoteSummary]
    activity_attendance: _containers.RepeatedCompositeFieldContainer[ActivityAttendance]
    nutrition_order: NutritionOrder
    disciplines: _containers.RepeatedCompositeFieldContainer[DisciplineSection]
    active_medications: _containers.RepeatedCompositeFieldContainer[Medication]
    medication_reconciliation: MedicationReconciliation
    def __init__(self, episode: _Optional[_Union[EpisodeOfCare, _Mapping]] = ..., care_plan: _Optional[_Union[CarePlan, _Mapping]] = ..., care_teams: _Optional[_Iterable[_Union[CareTeam, _Mapping]]] = ..., goals: _Optional[_Iterable[_Union[GoalProgress, _Mapping]]] = ..., upcoming_sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., attendance: _Optional[_Union[Attendance, _Mapping]] = ..., latest_notes: _Optional[_Iterable[_Union[NoteSummary, _Mapping]]] = ..., activity_attendance: _Optional[_Iterable[_Union[ActivityAttendance, _Mapping]]] = ..., nutrition_order: _Optional[_Union[NutritionOrder, _Mapping]] = ..., disciplines: _Optional[_Iterable[_Union[DisciplineSection, _Mapping]]] = ..., active_medications: _Optional[_Iterable[_Union[Medication, _Mapping]]] = ..., medication_reconciliation: _Optional[_Union[MedicationReconciliation, _Mapping]] = ...) -> None: ...

class GoalProgress(_message.Message):
    __slots__ = ("goal", "measure_code", "has_latest_value", "latest_value", "latest_time", "achievement", "discipline", "trend", "has_previous_value", "previous_value", "value_count")
    GOAL_FIELD_NUMBER: _ClassVar[int]
    MEASURE_CODE_FIELD_NUMBER: _ClassVar[int]
    HAS_LATEST_VALUE_FIELD_NUMBER: _ClassVar[int]
    LATEST_VALUE_FIELD_NUMBER: _ClassVar[int]
    LATEST_TIME_FIELD_NUMBER: _ClassVar[int]
    ACHIEVEMENT_FIELD_NUMBER: _ClassVar[int]
    DISCIPLINE_FIELD_NUMBER: _ClassVar[int]
    TREND_FIELD_NUMBER: _ClassVar[int]
    HAS_PREVIOUS_VALUE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    goal: Goal
    measure_code: str
    has_latest_value: bool
    latest_value: float
    latest_time: _timestamp_pb2.Timestamp
    achievement: str
    discipline: str
    trend: str
    has_previous_value: bool
    previous_value: float
    value_count: int
    def __init__(self, goal: _Optional[_Union[Goal, _Mapping]] = ..., measure_code: _Optional[str] = ..., has_latest_value: _Optional[bool] = ..., latest_value: _Optional[float] = ..., latest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., achievement: _Optional[str] = ..., discipline: _Optional[str] = ..., trend: _Optional[str] = ..., has_previous_value: _Optional[bool] = ..., previous_value: _Optional[float] = ..., value_count: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("appointment_id", "start_time", "end_time", "status", "description", "care_plan_id")
    APPOINTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CARE_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    appointment_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    status: str
    description: str
    care_plan_id: str
    def __init__(self, appointment_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., description: _Optional[str] = ..., care_plan_id: _Optional[str] = ...) -> None: ...

class Attendance(_message.Message):
    __slots__ = ("scheduled", "attended", "missed", "cancelled")
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    ATTENDED_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    scheduled: int
    attended: int
    missed: int
    cancelled: int
    def __init__(self, scheduled: _Optional[int] = ..., attended: _Optional[int] = ..., missed: _Optional[int] = ..., cancelled: _Optional[int] = ...) -> None: ...

class NoteSummary(_message.Message):
    __slots__ = ("id", "author", "title", "category", "priority", "sent_time", "resource_type", "security_labels")
    ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SECURITY_LABELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    author: str
    title: str
    category: str
    priority: str
    sent_time: _timestamp_pb2.Timestamp
    resource_type: str
    security_labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., author: _Optional[str] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., priority: _Optional[str] = ..., sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resource_type: _Optional[str] = ..., security_labels: _Optional[_Iterable[str]] = ...) -> None: ...

class ActivityAttendance(_message.Message):
    __slots__ = ("activity", "attendance")
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    activity: str
    attendance: Attendance
    def __init__(self, activity: _Optional[str] = ..., attendance: _Optional[_Union[Attendance, _Mapping]] = ...) -> None: ...

class RegisterPatientRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class RegisterPatientResponse(_message.Message):
    __slots__ = ("patient",)
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    patient: RegistryEntry
    def __init__(self, patient: _Optional[_Union[RegistryEntry, _Mapping]] = ...) -> None: ...

class RegistryEntry(_message.Message):
    __slots__ = ("id", "version", "update_time", "fhir_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    update_time: _timestamp_pb2.Timestamp
    fhir_json: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class GetPatientRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetPatientResponse(_message.Message):
    __slots__ = ("patient",)
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    patient: RegistryEntry
    def __init__(self, patient: _Optional[_Union[RegistryEntry, _Mapping]] = ...) -> None: ...

class FindPatientRequest(_message.Message):
    __slots__ = ("system", "value")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    system: str
    value: str
    def __init__(self, system: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class FindPatientResponse(_message.Message):
    __slots__ = ("patient",)
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    patient: RegistryEntry
    def __init__(self, patient: _Optional[_Union[RegistryEntry, _Mapping]] = ...) -> None: ...

class RegisterPractitionerRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class RegisterPractitionerResponse(_message.Message):
    __slots__ = ("practitioner",)
    PRACTITIONER_FIELD_NUMBER: _ClassVar[int]
    practitioner: RegistryEntry
    def __init__(self, practitioner: _Optional[_Union[RegistryEntry, _Mapping]] = ...) -> None: ...

class RegisterPractitionerRoleRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class RegisterPractitionerRoleResponse(_message.Message):
    __slots__ = ("practitioner_role",)
    PRACTITIONER_ROLE_FIELD_NUMBER: _ClassVar[int]
    practitioner_role: RegistryEntry
    def __init__(self, practitioner_role: _Optional[_Union[RegistryEntry, _Mapping]] = ...) -> None: ...

class GetPractitionerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetPractitionerResponse(_message.Message):
    __slots__ = ("practitioner", "roles")
    PRACTITIONER_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    practitioner: RegistryEntry
    roles: _containers.RepeatedCompositeFieldContainer[RegistryEntry]
    def __init__(self, practitioner: _Optional[_Union[RegistryEntry, _Mapping]] = ..., roles: _Optional[_Iterable[_Union[RegistryEntry, _Mapping]]] = ...) -> None: ...

class Medication(_message.Message):
    __slots__ = ("id", "version", "patient_id", "status", "update_time", "fhir_json", "resource_type")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    status: str
    update_time: _timestamp_pb2.Timestamp
    fhir_json: str
    resource_type: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., status: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ..., resource_type: _Optional[str] = ...) -> None: ...

class CreateMedicationStatementRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateMedicationStatementResponse(_message.Message):
    __slots__ = ("medication",)
    MEDICATION_FIELD_NUMBER: _ClassVar[int]
    medication: Medication
    def __init__(self, medication: _Optional[_Union[Medication, _Mapping]] = ...) -> None: ...

class GetMedicationStatementRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetMedicationStatementResponse(_message.Message):
    __slots__ = ("medication",)
    MEDICATION_FIELD_NUMBER: _ClassVar[int]
    medication: Medication
    def __init__(self, medication: _Optional[_Union[Medication, _Mapping]] = ...) -> None: ...

class ListMedicationStatementsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMedicationStatementsResponse(_message.Message):
    __slots__ = ("medications", "next_page_token")
    MEDICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    medications: _containers.RepeatedCompositeFieldContainer[Medication]
    next_page_token: str
    def __init__(self, medications: _Optional[_Iterable[_Union[Medication, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateMedicationStatementRequest(_message.Message):
    __slots__ = ("id", "expected_version", "fhir_json", "update_mask", "reason", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    fhir_json: str
    update_mask: _field_mask_pb2.FieldMask
    reason: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., fhir_json: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateMedicationStatementResponse(_message.Message):
    __slots__ = ("medication",)
    MEDICATION_FIELD_NUMBER: _ClassVar[int]
    medication: Medication
    def __init__(self, medication: _Optional[_Union[Medication, _Mapping]] = ...) -> None: ...

class CreateMedicationRequestRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateMedicationRequestResponse(_message.Message):
    __slots__ = ("medication",)
    MEDICATION_FIELD_NUMBER: _ClassVar[int]
    medication: Medication
    def __init__(self, medication: _Optional[_Union[Medication, _Mapping]] = ...) -> None: ...

class GetMedicationRequestRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetMedicationRequestResponse(_message.Message):
    __slots__ = ("medication",)
    MEDICATION_FIELD_NUMBER: _ClassVar[int]
    medication: Medication
    def __init__(self, medication: _Optional[_Union[Medication, _Mapping]] = ...) -> None: ...

class ListMedicationRequestsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMedicationRequestsResponse(_message.Message):
    __slots__ = ("medications", "next_page_token")
    MEDICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    medications: _containers.RepeatedCompositeFieldContainer[Medication]
    next_page_token: str
    def __init__(self, medications: _Optional[_Iterable[_Union[Medication, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateMedicationRequestRequest(_message.Message):
    __slots__ = ("id", "expected_version", "fhir_json", "update_mask", "reason", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    fhir_json: str
    update_mask: _field_mask_pb2.FieldMask
    reason: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., fhir_json: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateMedicationRequestResponse(_message.Message):
    __slots__ = ("medication",)
    MEDICATION_FIELD_NUMBER: _ClassVar[int]
    medication: Medication
    def __init__(self, medication: _Optional[_Union[Medication, _Mapping]] = ...) -> None: ...

class ReconciliationItem(_message.Message):
    __slots__ = ("id", "patient_id", "care_plan_id", "fhir_json", "received_time", "decision", "decided_by", "decided_time", "reason", "medication_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CARE_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MEDICATION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    patient_id: str
    care_plan_id: str
    fhir_json: str
    received_time: _timestamp_pb2.Timestamp
    decision: str
    decided_by: str
    decided_time: _timestamp_pb2.Timestamp
    reason: str
    medication_id: str
    def __init__(self, id: _Optional[str] = ..., patient_id: _Optional[str] = ..., care_plan_id: _Optional[str] = ..., fhir_json: _Optional[str] = ..., received_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decision: _Optional[str] = ..., decided_by: _Optional[str] = ..., decided_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., medication_id: _Optional[str] = ...) -> None: ...

class MedicationReconciliation(_message.Message):
    __slots__ = ("status", "unresolved_count", "deadline_time", "plan_ready")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UNRESOLVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    PLAN_READY_FIELD_NUMBER: _ClassVar[int]
    status: str
    unresolved_count: int
    deadline_time: _timestamp_pb2.Timestamp
    plan_ready: bool
    def __init__(self, status: _Optional[str] = ..., unresolved_count: _Optional[int] = ..., deadline_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan_ready: _Optional[bool] = ...) -> None: ...

class GetMedicationReconciliationRequest(_message.Message):
    __slots__ = ("patient_id",)
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    def __init__(self, patient_id: _Optional[str] = ...) -> None: ...

class GetMedicationReconciliationResponse(_message.Message):
    __slots__ = ("reconciliation", "items")
    RECONCILIATION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    reconciliation: MedicationReconciliation
    items: _containers.RepeatedCompositeFieldContainer[ReconciliationItem]
    def __init__(self, reconciliation: _Optional[_Union[MedicationReconciliation, _Mapping]] = ..., items: _Optional[_Iterable[_Union[ReconciliationItem, _Mapping]]] = ...) -> None: ...

class ResolveReconciliationItemRequest(_message.Message):
    __slots__ = ("request_id", "patient_id", "id", "decision", "reason", "changed_to_fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGED_TO_FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    patient_id: str
    id: str
    decision: str
    reason: str
    changed_to_fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., id: _Optional[str] = ..., decision: _Optional[str] = ..., reason: _Optional[str] = ..., changed_to_fhir_json: _Optional[str] = ...) -> None: ...

class ResolveReconciliationItemResponse(_message.Message):
    __slots__ = ("item", "medication")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    MEDICATION_FIELD_NUMBER: _ClassVar[int]
    item: ReconciliationItem
    medication: Medication
    def __init__(self, item: _Optional[_Union[ReconciliationItem, _Mapping]] = ..., medication: _Optional[_Union[Medication, _Mapping]] = ...) -> None: ...

class DisciplineSection(_message.Message):
    __slots__ = ("role", "name", "goals", "activities", "latest_measures", "open_tasks")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GOALS_FIELD_NUMBER: _ClassVar[int]
    ACTIVITIES_FIELD_NUMBER: _ClassVar[int]
    LATEST_MEASURES_FIELD_NUMBER: _ClassVar[int]
    OPEN_TASKS_FIELD_NUMBER: _ClassVar[int]
    role: str
    name: str
    goals: _containers.RepeatedCompositeFieldContainer[GoalProgress]
    activities: _containers.RepeatedCompositeFieldContainer[PlanActivity]
    latest_measures: _containers.RepeatedCompositeFieldContainer[LatestMeasure]
    open_tasks: _containers.RepeatedCompositeFieldContainer[OpenTask]
    def __init__(self, role: _Optional[str] = ..., name: _Optional[str] = ..., goals: _Optional[_Iterable[_Union[GoalProgress, _Mapping]]] = ..., activities: _Optional[_Iterable[_Union[PlanActivity, _Mapping]]] = ..., latest_measures: _Optional[_Iterable[_Union[LatestMeasure, _Mapping]]] = ..., open_tasks: _Optional[_Iterable[_Union[OpenTask, _Mapping]]] = ...) -> None: ...

class PlanActivity(_message.Message):
    __slots__ = ("code", "description", "status", "attendance", "booked")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    BOOKED_FIELD_NUMBER: _ClassVar[int]
    code: str
    description: str
    status: str
    attendance: Attendance
    booked: bool
    def __init__(self, code: _Optional[str] = ..., description: _Optional[str] = ..., status: _Optional[str] = ..., attendance: _Optional[_Union[Attendance, _Mapping]] = ..., booked: _Optional[bool] = ...) -> None: ...

class LatestMeasure(_message.Message):
    __slots__ = ("code", "observation_id", "value", "unit", "time", "trend")
    CODE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TREND_FIELD_NUMBER: _ClassVar[int]
    code: str
    observation_id: str
    value: float
    unit: str
    time: _timestamp_pb2.Timestamp
    trend: str
    def __init__(self, code: _Optional[str] = ..., observation_id: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trend: _Optional[str] = ...) -> None: ...

class OpenTask(_message.Message):
    __slots__ = ("kind", "text", "reference")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    text: str
    reference: str
    def __init__(self, kind: _Optional[str] = ..., text: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class CreateNutritionOrderRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateNutritionOrderResponse(_message.Message):
    __slots__ = ("nutrition_order",)
    NUTRITION_ORDER_FIELD_NUMBER: _ClassVar[int]
    nutrition_order: NutritionOrder
    def __init__(self, nutrition_order: _Optional[_Union[NutritionOrder, _Mapping]] = ...) -> None: ...

class NutritionOrder(_message.Message):
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

class GetNutritionOrderRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetNutritionOrderResponse(_message.Message):
    __slots__ = ("nutrition_order",)
    NUTRITION_ORDER_FIELD_NUMBER: _ClassVar[int]
    nutrition_order: NutritionOrder
    def __init__(self, nutrition_order: _Optional[_Union[NutritionOrder, _Mapping]] = ...) -> None: ...

class ListNutritionOrdersRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListNutritionOrdersResponse(_message.Message):
    __slots__ = ("nutrition_orders", "next_page_token")
    NUTRITION_ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    nutrition_orders: _containers.RepeatedCompositeFieldContainer[NutritionOrder]
    next_page_token: str
    def __init__(self, nutrition_orders: _Optional[_Iterable[_Union[NutritionOrder, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateNutritionOrderRequest(_message.Message):
    __slots__ = ("id", "expected_version", "fhir_json", "update_mask", "reason", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    fhir_json: str
    update_mask: _field_mask_pb2.FieldMask
    reason: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., fhir_json: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateNutritionOrderResponse(_message.Message):
    __slots__ = ("nutrition_order",)
    NUTRITION_ORDER_FIELD_NUMBER: _ClassVar[int]
    nutrition_order: NutritionOrder
    def __init__(self, nutrition_order: _Optional[_Union[NutritionOrder, _Mapping]] = ...) -> None: ...

class CreateRelatedPersonRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateRelatedPersonResponse(_message.Message):
    __slots__ = ("related_person",)
    RELATED_PERSON_FIELD_NUMBER: _ClassVar[int]
    related_person: RelatedPerson
    def __init__(self, related_person: _Optional[_Union[RelatedPerson, _Mapping]] = ...) -> None: ...

class RelatedPerson(_message.Message):
    __slots__ = ("id", "version", "patient_id", "status", "update_time", "fhir_json", "may_receive_information", "information_basis")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    MAY_RECEIVE_INFORMATION_FIELD_NUMBER: _ClassVar[int]
    INFORMATION_BASIS_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    status: str
    update_time: _timestamp_pb2.Timestamp
    fhir_json: str
    may_receive_information: bool
    information_basis: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., status: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ..., may_receive_information: _Optional[bool] = ..., information_basis: _Optional[str] = ...) -> None: ...

class GetRelatedPersonRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetRelatedPersonResponse(_message.Message):
    __slots__ = ("related_person",)
    RELATED_PERSON_FIELD_NUMBER: _ClassVar[int]
    related_person: RelatedPerson
    def __init__(self, related_person: _Optional[_Union[RelatedPerson, _Mapping]] = ...) -> None: ...

class ListRelatedPersonsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRelatedPersonsResponse(_message.Message):
    __slots__ = ("related_persons", "next_page_token")
    RELATED_PERSONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    related_persons: _containers.RepeatedCompositeFieldContainer[RelatedPerson]
    next_page_token: str
    def __init__(self, related_persons: _Optional[_Iterable[_Union[RelatedPerson, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AsamRating(_message.Message):
    __slots__ = ("dimension", "rating", "note")
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    dimension: str
    rating: int
    note: str
    def __init__(self, dimension: _Optional[str] = ..., rating: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class CreateCoverageRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateCoverageResponse(_message.Message):
    __slots__ = ("coverage",)
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    coverage: Coverage
    def __init__(self, coverage: _Optional[_Union[Coverage, _Mapping]] = ...) -> None: ...

class Coverage(_message.Message):
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

class GetCoverageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetCoverageResponse(_message.Message):
    __slots__ = ("coverage",)
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    coverage: Coverage
    def __init__(self, coverage: _Optional[_Union[Coverage, _Mapping]] = ...) -> None: ...

class ListCoveragesRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCoveragesResponse(_message.Message):
    __slots__ = ("coverages", "next_page_token")
    COVERAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    coverages: _containers.RepeatedCompositeFieldContainer[Coverage]
    next_page_token: str
    def __init__(self, coverages: _Optional[_Iterable[_Union[Coverage, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateAuthorizationRequest(_message.Message):
    __slots__ = ("request_id", "fhir_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    fhir_json: str
    def __init__(self, request_id: _Optional[str] = ..., fhir_json: _Optional[str] = ...) -> None: ...

class CreateAuthorizationResponse(_message.Message):
    __slots__ = ("authorization",)
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    authorization: Authorization
    def __init__(self, authorization: _Optional[_Union[Authorization, _Mapping]] = ...) -> None: ...

class Authorization(_message.Message):
    __slots__ = ("id", "version", "patient_id", "status", "update_time", "fhir_json", "number", "episode_id", "level", "asam_level", "units_authorized", "unit", "units_used", "units_remaining", "start", "end", "tasks")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ASAM_LEVEL_FIELD_NUMBER: _ClassVar[int]
    UNITS_AUTHORIZED_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    UNITS_USED_FIELD_NUMBER: _ClassVar[int]
    UNITS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    patient_id: str
    status: str
    update_time: _timestamp_pb2.Timestamp
    fhir_json: str
    number: str
    episode_id: str
    level: str
    asam_level: str
    units_authorized: int
    unit: str
    units_used: int
    units_remaining: int
    start: _date_pb2.Date
    end: _date_pb2.Date
    tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., patient_id: _Optional[str] = ..., status: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fhir_json: _Optional[str] = ..., number: _Optional[str] = ..., episode_id: _Optional[str] = ..., level: _Optional[str] = ..., asam_level: _Optional[str] = ..., units_authorized: _Optional[int] = ..., unit: _Optional[str] = ..., units_used: _Optional[int] = ..., units_remaining: _Optional[int] = ..., start: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class GetAuthorizationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetAuthorizationResponse(_message.Message):
    __slots__ = ("authorization",)
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    authorization: Authorization
    def __init__(self, authorization: _Optional[_Union[Authorization, _Mapping]] = ...) -> None: ...

class ListAuthorizationsRequest(_message.Message):
    __slots__ = ("patient_id", "page_size", "page_token")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    page_size: int
    page_token: str
    def __init__(self, patient_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuthorizationsResponse(_message.Message):
    __slots__ = ("authorizations", "next_page_token")
    AUTHORIZATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    authorizations: _containers.RepeatedCompositeFieldContainer[Authorization]
    next_page_token: str
    def __init__(self, authorizations: _Optional[_Iterable[_Union[Authorization, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetUtilizationReviewPacketRequest(_message.Message):
    __slots__ = ("id", "requested_units", "requested_end", "reason", "base_url")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_UNITS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_END_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    id: str
    requested_units: int
    requested_end: _date_pb2.Date
    reason: str
    base_url: str
    def __init__(self, id: _Optional[str] = ..., requested_units: _Optional[int] = ..., requested_end: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., reason: _Optional[str] = ..., base_url: _Optional[str] = ...) -> None: ...

class GetUtilizationReviewPacketResponse(_message.Message):
    __slots__ = ("fhir_json",)
    FHIR_JSON_FIELD_NUMBER: _ClassVar[int]
    fhir_json: str
    def __init__(self, fhir_json: _Optional[str] = ...) -> None: ...
