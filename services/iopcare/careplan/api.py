"""The gRPC edge of the care plan service: requests to use cases, results to responses."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import grpc
from google.type import date_pb2

from iopcare.careplan import fhir_map
from iopcare.careplan.base import Change
from iopcare.careplan.care_teams import CareTeams
from iopcare.careplan.domain.goals import Section
from iopcare.careplan.domain.progress import Attendance
from iopcare.careplan.domain.review import Attestation, Review
from iopcare.careplan.domain.templates import Template
from iopcare.careplan.domain.utilization import ASAM_LEVEL, asam_ratings_of
from iopcare.careplan.episodes import Episodes
from iopcare.careplan.family_api import FamilyRpcs
from iopcare.careplan.listing import Listings
from iopcare.careplan.measures import Measures
from iopcare.careplan.medications import Medications
from iopcare.careplan.medications_api import MedicationRpcs
from iopcare.careplan.nutrition import NutritionPlans
from iopcare.careplan.patient_view import GoalProgress, NoteSummary, PatientView
from iopcare.careplan.registry import Registry
from iopcare.careplan.service import CarePlans
from iopcare.careplan.utilization_api import UtilizationRpcs, asam_messages, asam_of
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.careplan.versions import PastVersion
from iopcare.kit import fhir
from iopcare.kit.auth import current_principal
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.kit.servicer import creates, gets, lists, one, page, rpc, versioned
from iopcare.kit.versioned import Stored

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CarePlanService"].full_name


def stored(item: Stored) -> dict[str, Any]:
    """The fields every versioned resource's message has, from how it is stored."""
    return {
        "id": item.id,
        "version": item.version,
        "patient_id": item.patient_id,
        "status": item.status,
        "update_time": timestamp(item.updated_at),
        "fhir_json": item.resource,
    }


def to_message(plan: Stored) -> pb.CarePlan:
    return pb.CarePlan(**stored(plan))


def team_message(team: Stored) -> pb.CareTeam:
    return pb.CareTeam(**stored(team))


def goal_message(goal: Stored) -> pb.Goal:
    fields = stored(goal)
    fields["lifecycle_status"] = fields.pop("status")
    return pb.Goal(**fields)


def nutrition_message(order: Stored) -> pb.NutritionOrder:
    return pb.NutritionOrder(**stored(order))


def progress_message(progress: GoalProgress) -> pb.GoalProgress:
    """A goal, its owning discipline and how its measure is going."""
    item = pb.GoalProgress(
        goal=goal_message(progress.goal),
        measure_code=progress.measure or "",
        achievement=progress.achievement or "",
        has_latest_value=progress.latest is not None,
        latest_value=progress.latest or 0.0,
        discipline=progress.discipline,
        trend=progress.trend,
        has_previous_value=progress.previous is not None,
        previous_value=progress.previous or 0.0,
        value_count=progress.count,
    )
    if progress.latest_at is not None:
        item.latest_time.CopyFrom(timestamp(progress.latest_at))
    return item


def section_message(section: Section) -> pb.DisciplineSection:
    """One discipline's part of the holistic view (ADR 0022)."""
    return pb.DisciplineSection(
        role=section.role,
        name=section.name,
        goals=[progress_message(g) for g in section.goals],
        activities=[
            pb.PlanActivity(
                code=a.code,
                description=a.description,
                status=a.status,
                attendance=attendance_message(a.attendance),
                booked=a.booked,
            )
            for a in section.activities
        ],
        latest_measures=[
            pb.LatestMeasure(
                code=m.code,
                observation_id=m.observation_id,
                value=m.value,
                unit=m.unit,
                time=timestamp(m.at),
                trend=m.trend,
            )
            for m in section.measures
        ],
        open_tasks=[
            pb.OpenTask(kind=t.kind, text=t.text, reference=t.reference) for t in section.tasks
        ],
    )


def episode_message(episode: Stored) -> pb.EpisodeOfCare:
    state = fhir_map.episode_state(fhir.parse_resource(episode.resource))
    return pb.EpisodeOfCare(
        **stored(episode),
        clinical_level=state.clinical_level or "",
        authorized_level=state.authorized_level or "",
        clinical_asam_level=ASAM_LEVEL.get(state.clinical_level or "", ""),
        authorized_asam_level=ASAM_LEVEL.get(state.authorized_level or "", ""),
        asam_ratings=asam_messages(asam_ratings_of(json.loads(episode.resource))),
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
    message = pb.ResourceVersion(**stored(item))
    if past is not None:
        message.changed_by = past.provenance.changed_by
        message.change = past.provenance.change
        message.reason = past.provenance.reason or ""
    return message


def attendance_message(counts: Attendance) -> pb.Attendance:
    return pb.Attendance(**asdict(counts))


def note_message(note: NoteSummary) -> pb.NoteSummary:
    fields = asdict(note)
    sent_at, labels = fields.pop("sent_at"), fields.pop("labels")
    return pb.NoteSummary(**fields, sent_time=timestamp(sent_at), security_labels=list(labels))


def change_of(request: Any, reason: str = "") -> Change:
    """The change a request asks for: the caller, the request's `id` and `expected_version`, the
    reason and its request id. The request itself is what was asked: changes are fingerprinted
    without their request_id (kit.requests)."""
    return Change(*versioned(request), reason, request.request_id, request)


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


@dataclass(eq=False)  # identity, as for any servicer
class CarePlanServicer(
    FamilyRpcs, MedicationRpcs, UtilizationRpcs, pb_grpc.CarePlanServiceServicer
):
    """The RPCs, each on the use case it calls (picked off these fields)."""

    plans: CarePlans
    teams: CareTeams
    measures: Measures
    episodes: Episodes
    view: PatientView
    registry: Registry
    listings: Listings
    templates: list[Template]
    nutrition: NutritionPlans
    medications: Medications

    CreateCarePlan = creates(
        lambda s: s.plans.create, pb.CreateCarePlanResponse, "care_plan", to_message
    )
    CreateCareTeam = creates(
        lambda s: s.teams.create, pb.CreateCareTeamResponse, "care_team", team_message
    )
    CreateGoal = creates(
        lambda s: s.measures.create_goal, pb.CreateGoalResponse, "goal", goal_message
    )
    CreateEpisode = creates(
        lambda s: s.episodes.create, pb.CreateEpisodeResponse, "episode", episode_message
    )
    GetCarePlan = gets(lambda s: s.plans.get, pb.GetCarePlanResponse, "care_plan", to_message)
    GetCareTeam = gets(lambda s: s.teams.get, pb.GetCareTeamResponse, "care_team", team_message)
    GetGoal = gets(lambda s: s.measures.get_goal, pb.GetGoalResponse, "goal", goal_message)
    GetEpisode = gets(lambda s: s.episodes.get, pb.GetEpisodeResponse, "episode", episode_message)
    ListCarePlans = lists(
        lambda s: s.listings.care_plans, pb.ListCarePlansResponse, "care_plans", to_message
    )
    ListCareTeams = lists(
        lambda s: s.listings.care_teams, pb.ListCareTeamsResponse, "care_teams", team_message
    )
    ListGoals = lists(lambda s: s.listings.goals, pb.ListGoalsResponse, "goals", goal_message)
    ListEpisodes = lists(
        lambda s: s.listings.episodes, pb.ListEpisodesResponse, "episodes", episode_message
    )
    AdmitPatient = rpc(
        lambda s, r: s.episodes.step(change_of(r, r.reason), "AdmitPatient", asam_of(r)),
        one(pb.AdmitPatientResponse, "episode", episode_message),
    )
    ChangeLevelOfCare = rpc(
        lambda s, r: s.episodes.change_level(
            change_of(r, r.reason), r.clinical_level, r.authorized_level, asam_of(r)
        ),
        one(pb.ChangeLevelOfCareResponse, "episode", episode_message),
    )
    DischargePatient = rpc(
        lambda s, r: s.episodes.step(change_of(r, r.reason), "DischargePatient"),
        one(pb.DischargePatientResponse, "episode", episode_message),
    )
    RegisterPatient = creates(
        lambda s: s.registry.register_patient, pb.RegisterPatientResponse, "patient", entry
    )
    GetPatient = gets(lambda s: s.registry.get_patient, pb.GetPatientResponse, "patient", entry)
    FindPatient = rpc(
        lambda s, r: s.registry.find_patient(current_principal(), r.system, r.value),
        one(pb.FindPatientResponse, "patient", entry),
    )
    RegisterPractitioner = rpc(
        lambda s, r: s.registry.register_practitioner(
            current_principal(), r.request_id, r.fhir_json, "Practitioner"
        ),
        one(pb.RegisterPractitionerResponse, "practitioner", entry),
    )
    RegisterPractitionerRole = rpc(
        lambda s, r: s.registry.register_practitioner(
            current_principal(), r.request_id, r.fhir_json, "PractitionerRole"
        ),
        one(pb.RegisterPractitionerRoleResponse, "practitioner_role", entry),
    )

    DraftCarePlan = rpc(
        lambda s, r: s.plans.draft_from_template(
            current_principal(),
            r.request_id,
            require_id(r.patient_id, "patient_id"),
            r.diagnosis_code,
            require_id(r.care_team_id, "care_team_id") if r.care_team_id else "",
            s.templates,
            r.additions_fhir_json,
        ),
        one(pb.DraftCarePlanResponse, "care_plan", to_message),
    )
    UpdateCarePlan = rpc(
        lambda s, r: s.plans.update(change_of(r, r.reason), r.fhir_json, list(r.update_mask.paths)),
        one(pb.UpdateCarePlanResponse, "care_plan", to_message),
    )

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
        plan = self.plans.record_review(change_of(request), review)
        return pb.RecordPlanReviewResponse(care_plan=to_message(plan))

    UpdateCareTeam = rpc(
        lambda s, r: s.teams.update(
            change_of(r, r.reason), r.fhir_json, mask=list(r.update_mask.paths)
        ),
        one(pb.UpdateCareTeamResponse, "care_team", team_message),
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

    ListMeasures = rpc(
        lambda s, r: s.listings.measures(
            current_principal(),
            require_id(r.patient_id, "patient_id"),
            r.code,
            r.page_size,
            r.page_token,
        ),
        page(pb.ListMeasuresResponse, "fhir_json", lambda item: item[1]),  # (id, resource)
    )

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
            attendance=attendance_message(view.attendance),
            latest_notes=[note_message(n) for n in view.notes],
        )
        for activity, counts in view.by_activity.items():
            response.activity_attendance.add(
                activity=activity,
                attendance=attendance_message(counts),
            )
        self.add_medications(response, request.patient_id)
        if view.episode is not None:
            response.episode.CopyFrom(episode_message(view.episode))
        if view.care_plan is not None:
            response.care_plan.CopyFrom(to_message(view.care_plan))
        if view.nutrition_order is not None:
            response.nutrition_order.CopyFrom(nutrition_message(view.nutrition_order))
        response.goals.extend(progress_message(p) for p in view.goals)
        response.disciplines.extend(section_message(s) for s in view.disciplines)
        return response

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

    def GetMeasure(
        self, request: pb.GetMeasureRequest, context: grpc.ServicerContext
    ) -> pb.GetMeasureResponse:
        found = self.measures.get_measure(current_principal(), require_id(request.id, "id"))
        return pb.GetMeasureResponse(
            patient_id=found.patient_id,
            update_time=timestamp(found.updated_at),
            fhir_json=found.resource,
        )

    GetResourceVersion = rpc(
        lambda s, r: s.plans.resource_version(
            current_principal(), r.resource_type, require_id(r.id, "id"), r.version
        ),
        one(pb.GetResourceVersionResponse, "resource", version_message),
    )
    ListResourceVersions = rpc(
        lambda s, r: s.plans.resource_versions(
            current_principal(), r.resource_type, require_id(r.id, "id"), r.page_size, r.page_token
        ),
        page(pb.ListResourceVersionsResponse, "versions", lambda v: version_message(v.item, v)),
    )

    # The dietitian's nutrition plan (issue 13, part 2; docs/nutrition.md).
    CreateNutritionOrder = creates(
        lambda s: s.nutrition.create,
        pb.CreateNutritionOrderResponse,
        "nutrition_order",
        nutrition_message,
    )
    GetNutritionOrder = gets(
        lambda s: s.nutrition.get,
        pb.GetNutritionOrderResponse,
        "nutrition_order",
        nutrition_message,
    )
    ListNutritionOrders = lists(
        lambda s: s.listings.nutrition_orders,
        pb.ListNutritionOrdersResponse,
        "nutrition_orders",
        nutrition_message,
    )
    UpdateNutritionOrder = rpc(
        lambda s, r: s.nutrition.update(
            change_of(r, r.reason), r.fhir_json, list(r.update_mask.paths)
        ),
        one(pb.UpdateNutritionOrderResponse, "nutrition_order", nutrition_message),
    )
