"""The gRPC edge of the care plan service: requests to use cases, results to responses."""

from __future__ import annotations

from datetime import UTC, date, datetime

import grpc
from google.type import date_pb2

from iopcare.careplan import fhir_map
from iopcare.careplan.care_teams import CareTeams
from iopcare.careplan.domain.review import Attestation, Review
from iopcare.careplan.domain.templates import Template
from iopcare.careplan.episodes import Episodes
from iopcare.careplan.listing import Listings
from iopcare.careplan.measures import Measures
from iopcare.careplan.patient_view import PatientView
from iopcare.careplan.registry import Registry
from iopcare.careplan.service import CarePlans
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.careplan.versions import PastVersion
from iopcare.kit import fhir
from iopcare.kit.auth import current_principal
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.kit.versioned import Stored

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CarePlanService"].full_name


def to_message(plan: Stored) -> pb.CarePlan:
    return pb.CarePlan(
        id=plan.id,
        version=plan.version,
        patient_id=plan.patient_id,
        status=plan.status,
        update_time=timestamp(plan.updated_at),
        fhir_json=plan.resource,
    )


def team_message(team: Stored) -> pb.CareTeam:
    return pb.CareTeam(
        id=team.id,
        version=team.version,
        patient_id=team.patient_id,
        status=team.status,
        update_time=timestamp(team.updated_at),
        fhir_json=team.resource,
    )


def goal_message(goal: Stored) -> pb.Goal:
    return pb.Goal(
        id=goal.id,
        version=goal.version,
        patient_id=goal.patient_id,
        lifecycle_status=goal.status,
        update_time=timestamp(goal.updated_at),
        fhir_json=goal.resource,
    )


def episode_message(episode: Stored) -> pb.EpisodeOfCare:
    state = fhir_map.episode_state(fhir.parse_resource(episode.resource))
    return pb.EpisodeOfCare(
        id=episode.id,
        version=episode.version,
        patient_id=episode.patient_id,
        status=episode.status,
        clinical_level=state.clinical_level or "",
        authorized_level=state.authorized_level or "",
        update_time=timestamp(episode.updated_at),
        fhir_json=episode.resource,
    )


def entry(item: Stored) -> pb.RegistryEntry:
    return pb.RegistryEntry(
        id=item.id,
        version=item.version,
        update_time=timestamp(item.updated_at),
        fhir_json=item.resource,
    )


def version_message(item: Stored, past: PastVersion | None = None) -> pb.ResourceVersion:
    """A version as stored; with its Provenance when listed (ListResourceVersions)."""
    message = pb.ResourceVersion(
        id=item.id,
        version=item.version,
        patient_id=item.patient_id,
        status=item.status,
        update_time=timestamp(item.updated_at),
        fhir_json=item.resource,
    )
    if past is not None:
        message.changed_by = past.provenance.changed_by
        message.change = past.provenance.change
        message.reason = past.provenance.reason or ""
    return message


def day_of(value: date_pb2.Date, field: str) -> date | None:
    """A google.type.Date as a date: None when unset (all zero), INVALID_ARGUMENT unless it is a
    whole calendar date (a year, month and day that exist)."""
    if not (value.year or value.month or value.day):
        return None
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument(
            f"{field} is not a date",
            [FieldViolation(field, "a whole calendar date: year, month and day")],
        ) from None


class CarePlanServicer(pb_grpc.CarePlanServiceServicer):
    def __init__(
        self,
        plans: CarePlans,
        teams: CareTeams,
        measures: Measures,
        episodes: Episodes,
        view: PatientView,
        registry: Registry,
        listings: Listings,
        templates: list[Template],
    ) -> None:
        self.plans = plans
        self.teams = teams
        self.measures = measures
        self.episodes = episodes
        self.view = view
        self.registry = registry
        self.listings = listings
        self.templates = templates

    def CreateCarePlan(
        self, request: pb.CreateCarePlanRequest, context: grpc.ServicerContext
    ) -> pb.CreateCarePlanResponse:
        plan = self.plans.create(current_principal(), request.request_id, request.fhir_json)
        return pb.CreateCarePlanResponse(care_plan=to_message(plan))

    def GetCarePlan(
        self, request: pb.GetCarePlanRequest, context: grpc.ServicerContext
    ) -> pb.GetCarePlanResponse:
        plan = self.plans.get(current_principal(), require_id(request.id, "id"))
        return pb.GetCarePlanResponse(care_plan=to_message(plan))

    def DraftCarePlan(
        self, request: pb.DraftCarePlanRequest, context: grpc.ServicerContext
    ) -> pb.DraftCarePlanResponse:
        plan = self.plans.draft_from_template(
            current_principal(),
            request.request_id,
            require_id(request.patient_id, "patient_id"),
            request.diagnosis_code,
            require_id(request.care_team_id, "care_team_id") if request.care_team_id else "",
            self.templates,
            request.additions_fhir_json,
        )
        return pb.DraftCarePlanResponse(care_plan=to_message(plan))

    def UpdateCarePlan(
        self, request: pb.UpdateCarePlanRequest, context: grpc.ServicerContext
    ) -> pb.UpdateCarePlanResponse:
        plan = self.plans.update(
            current_principal(),
            require_id(request.id, "id"),
            request.expected_version,
            request.fhir_json,
            list(request.update_mask.paths),
            request.reason,
            request.request_id,
            asked=request,  # fingerprinted without its request_id (kit.requests)
        )
        return pb.UpdateCarePlanResponse(care_plan=to_message(plan))

    def RecordPlanReview(
        self, request: pb.RecordPlanReviewRequest, context: grpc.ServicerContext
    ) -> pb.RecordPlanReviewResponse:
        reviewed_on = (
            day_of(request.reviewed_on, "reviewed_on") if request.HasField("reviewed_on") else None
        )
        review = Review(
            reviewed_on=reviewed_on or datetime.now(UTC).date(),
            outcome=request.outcome,
            summary=request.summary,
            attestations=[
                Attestation(a.practitioner_id, a.role, a.agrees, a.comment)
                for a in request.attestations
            ],
        )
        plan = self.plans.record_review(
            current_principal(),
            require_id(request.id, "id"),
            request.expected_version,
            review,
            request.request_id,
            asked=request,  # fingerprinted without its request_id (kit.requests)
        )
        return pb.RecordPlanReviewResponse(care_plan=to_message(plan))

    def CreateCareTeam(
        self, request: pb.CreateCareTeamRequest, context: grpc.ServicerContext
    ) -> pb.CreateCareTeamResponse:
        team = self.teams.create(current_principal(), request.request_id, request.fhir_json)
        return pb.CreateCareTeamResponse(care_team=team_message(team))

    def GetCareTeam(
        self, request: pb.GetCareTeamRequest, context: grpc.ServicerContext
    ) -> pb.GetCareTeamResponse:
        team = self.teams.get(current_principal(), require_id(request.id, "id"))
        return pb.GetCareTeamResponse(care_team=team_message(team))

    def UpdateCareTeam(
        self, request: pb.UpdateCareTeamRequest, context: grpc.ServicerContext
    ) -> pb.UpdateCareTeamResponse:
        team = self.teams.update(
            current_principal(),
            require_id(request.id, "id"),
            request.expected_version,
            request.fhir_json,
            request.reason,
            request.request_id,
            asked=request,
            mask=list(request.update_mask.paths),
        )
        return pb.UpdateCareTeamResponse(care_team=team_message(team))

    def ListCareTeams(
        self, request: pb.ListCareTeamsRequest, context: grpc.ServicerContext
    ) -> pb.ListCareTeamsResponse:
        page = self.listings.care_teams(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListCareTeamsResponse(
            care_teams=[team_message(t) for t in page.items], next_page_token=page.next_page_token
        )

    def CreateGoal(
        self, request: pb.CreateGoalRequest, context: grpc.ServicerContext
    ) -> pb.CreateGoalResponse:
        goal = self.measures.create_goal(current_principal(), request.request_id, request.fhir_json)
        return pb.CreateGoalResponse(goal=goal_message(goal))

    def GetGoal(
        self, request: pb.GetGoalRequest, context: grpc.ServicerContext
    ) -> pb.GetGoalResponse:
        goal = self.measures.get_goal(current_principal(), require_id(request.id, "id"))
        return pb.GetGoalResponse(goal=goal_message(goal))

    def ListGoals(
        self, request: pb.ListGoalsRequest, context: grpc.ServicerContext
    ) -> pb.ListGoalsResponse:
        page = self.listings.goals(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListGoalsResponse(
            goals=[goal_message(g) for g in page.items], next_page_token=page.next_page_token
        )

    def RecordMeasure(
        self, request: pb.RecordMeasureRequest, context: grpc.ServicerContext
    ) -> pb.RecordMeasureResponse:
        recorded = self.measures.record(current_principal(), request.request_id, request.fhir_json)
        return pb.RecordMeasureResponse(
            observation_id=recorded.observation_id,
            fhir_json=recorded.resource,
            updated_goals=[goal_message(g) for g in recorded.updated_goals],
            crisis_reasons=recorded.crisis_reasons,
        )

    def ListMeasures(
        self, request: pb.ListMeasuresRequest, context: grpc.ServicerContext
    ) -> pb.ListMeasuresResponse:
        page = self.listings.measures(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request.code,
            request.page_size,
            request.page_token,
        )
        return pb.ListMeasuresResponse(
            fhir_json=[resource for _, resource in page.items],
            next_page_token=page.next_page_token,
        )

    def CreateEpisode(
        self, request: pb.CreateEpisodeRequest, context: grpc.ServicerContext
    ) -> pb.CreateEpisodeResponse:
        episode = self.episodes.create(current_principal(), request.request_id, request.fhir_json)
        return pb.CreateEpisodeResponse(episode=episode_message(episode))

    def GetEpisode(
        self, request: pb.GetEpisodeRequest, context: grpc.ServicerContext
    ) -> pb.GetEpisodeResponse:
        episode = self.episodes.get(current_principal(), require_id(request.id, "id"))
        return pb.GetEpisodeResponse(episode=episode_message(episode))

    def ListEpisodes(
        self, request: pb.ListEpisodesRequest, context: grpc.ServicerContext
    ) -> pb.ListEpisodesResponse:
        page = self.listings.episodes(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListEpisodesResponse(
            episodes=[episode_message(e) for e in page.items],
            next_page_token=page.next_page_token,
        )

    def AdmitPatient(
        self, request: pb.AdmitPatientRequest, context: grpc.ServicerContext
    ) -> pb.AdmitPatientResponse:
        episode = self.episodes.admit(
            current_principal(),
            require_id(request.id, "id"),
            request.expected_version,
            request.reason,
            request.request_id,
            asked=request,
        )
        return pb.AdmitPatientResponse(episode=episode_message(episode))

    def ChangeLevelOfCare(
        self, request: pb.ChangeLevelOfCareRequest, context: grpc.ServicerContext
    ) -> pb.ChangeLevelOfCareResponse:
        episode = self.episodes.change_level(
            current_principal(),
            require_id(request.id, "id"),
            request.expected_version,
            request.clinical_level,
            request.authorized_level,
            request.reason,
            request.request_id,
            asked=request,
        )
        return pb.ChangeLevelOfCareResponse(episode=episode_message(episode))

    def DischargePatient(
        self, request: pb.DischargePatientRequest, context: grpc.ServicerContext
    ) -> pb.DischargePatientResponse:
        episode = self.episodes.discharge(
            current_principal(),
            require_id(request.id, "id"),
            request.expected_version,
            request.reason,
            request.request_id,
            asked=request,
        )
        return pb.DischargePatientResponse(episode=episode_message(episode))

    def GetPatientPlan(
        self, request: pb.GetPatientPlanRequest, context: grpc.ServicerContext
    ) -> pb.GetPatientPlanResponse:
        view = self.view.get(current_principal(), require_id(request.patient_id, "patient_id"))
        response = pb.GetPatientPlanResponse(
            care_teams=[team_message(t) for t in view.care_teams],
            upcoming_sessions=[
                pb.Session(
                    appointment_id=s.appointment_id,
                    start_time=timestamp(s.start),
                    end_time=timestamp(s.end),
                    status=s.status,
                    description=s.description or "",
                    care_plan_id=s.care_plan_id or "",
                )
                for s in view.upcoming
            ],
            attendance=pb.Attendance(
                scheduled=view.attendance.scheduled,
                attended=view.attendance.attended,
                missed=view.attendance.missed,
                cancelled=view.attendance.cancelled,
            ),
            latest_notes=[
                pb.NoteSummary(
                    id=n.id,
                    author=n.author,
                    title=n.title,
                    category=n.category,
                    priority=n.priority,
                    sent_time=timestamp(n.sent_at),
                    resource_type=n.resource_type,
                    security_labels=list(n.labels),
                )
                for n in view.notes
            ],
        )
        for activity, counts in view.by_activity.items():
            response.activity_attendance.add(
                activity=activity,
                attendance=pb.Attendance(
                    scheduled=counts.scheduled,
                    attended=counts.attended,
                    missed=counts.missed,
                    cancelled=counts.cancelled,
                ),
            )
        if view.episode is not None:
            response.episode.CopyFrom(episode_message(view.episode))
        if view.care_plan is not None:
            response.care_plan.CopyFrom(to_message(view.care_plan))
        for progress in view.goals:
            item = response.goals.add(
                goal=goal_message(progress.goal),
                measure_code=progress.measure or "",
                achievement=progress.achievement or "",
                has_latest_value=progress.latest is not None,
                latest_value=progress.latest or 0.0,
            )
            if progress.latest_at is not None:
                item.latest_time.CopyFrom(timestamp(progress.latest_at))
        return response

    def RegisterPatient(
        self, request: pb.RegisterPatientRequest, context: grpc.ServicerContext
    ) -> pb.RegisterPatientResponse:
        patient = self.registry.register_patient(
            current_principal(), request.request_id, request.fhir_json
        )
        return pb.RegisterPatientResponse(patient=entry(patient))

    def GetPatient(
        self, request: pb.GetPatientRequest, context: grpc.ServicerContext
    ) -> pb.GetPatientResponse:
        patient = self.registry.get_patient(current_principal(), require_id(request.id, "id"))
        return pb.GetPatientResponse(patient=entry(patient))

    def FindPatient(
        self, request: pb.FindPatientRequest, context: grpc.ServicerContext
    ) -> pb.FindPatientResponse:
        patient = self.registry.find_patient(current_principal(), request.system, request.value)
        return pb.FindPatientResponse(patient=entry(patient))

    def RegisterPractitioner(
        self, request: pb.RegisterPractitionerRequest, context: grpc.ServicerContext
    ) -> pb.RegisterPractitionerResponse:
        item = self.registry.register_practitioner(
            current_principal(), request.request_id, request.fhir_json, "Practitioner"
        )
        return pb.RegisterPractitionerResponse(practitioner=entry(item))

    def RegisterPractitionerRole(
        self, request: pb.RegisterPractitionerRoleRequest, context: grpc.ServicerContext
    ) -> pb.RegisterPractitionerRoleResponse:
        item = self.registry.register_practitioner(
            current_principal(), request.request_id, request.fhir_json, "PractitionerRole"
        )
        return pb.RegisterPractitionerRoleResponse(practitioner_role=entry(item))

    def GetPractitioner(
        self, request: pb.GetPractitionerRequest, context: grpc.ServicerContext
    ) -> pb.GetPractitionerResponse:
        principal = current_principal()
        practitioner_id = require_id(request.id, "id")
        item = self.registry.get_practitioner(principal, practitioner_id)
        roles = self.registry.roles_of(principal, practitioner_id)
        return pb.GetPractitionerResponse(
            practitioner=entry(item), roles=[entry(role) for role in roles]
        )

    def ListCarePlans(
        self, request: pb.ListCarePlansRequest, context: grpc.ServicerContext
    ) -> pb.ListCarePlansResponse:
        page = self.listings.care_plans(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListCarePlansResponse(
            care_plans=[to_message(p) for p in page.items], next_page_token=page.next_page_token
        )

    def GetMeasure(
        self, request: pb.GetMeasureRequest, context: grpc.ServicerContext
    ) -> pb.GetMeasureResponse:
        found = self.measures.get_measure(current_principal(), require_id(request.id, "id"))
        return pb.GetMeasureResponse(
            patient_id=found.patient_id,
            update_time=timestamp(found.updated_at),
            fhir_json=found.resource,
        )

    def GetResourceVersion(
        self, request: pb.GetResourceVersionRequest, context: grpc.ServicerContext
    ) -> pb.GetResourceVersionResponse:
        found = self.plans.resource_version(
            current_principal(),
            request.resource_type,
            require_id(request.id, "id"),
            request.version,
        )
        return pb.GetResourceVersionResponse(resource=version_message(found))

    def ListResourceVersions(
        self, request: pb.ListResourceVersionsRequest, context: grpc.ServicerContext
    ) -> pb.ListResourceVersionsResponse:
        found, token = self.plans.resource_versions(
            current_principal(),
            request.resource_type,
            require_id(request.id, "id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListResourceVersionsResponse(
            versions=[version_message(v.item, v) for v in found], next_page_token=token
        )
