"""Loads the demo (`iopcare up --demo`, what `make run` does) into running services over gRPC and
prints what each one then holds; the demo's FHIR data is in `iopcare.demo`.

Uses only the services' generated stubs, like any client: it needs no dev tooling, so it runs
against any system (tests load it into their own stack)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import grpc

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.demo import (
    DEMO_PATIENT_ID,
    demo_care_plan,
    demo_care_team,
    demo_episode,
    demo_goal,
    demo_inbound_medications,
    demo_monitoring,
    demo_phq9,
    demo_safety_plan,
    rest_demo,
)
from iopcare.kit.auth import mint_token
from iopcare.kit.rpc import bearer
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as notes_pb
from iopcare.notes.v1 import notes_service_pb2_grpc as notes_grpc
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc


def run_demo(addresses: dict[str, str], gateway_url: str, settings: Settings, token: str) -> None:
    """The whole demo: the team's records over gRPC as its clinicians (`token`: the
    psychiatrist's), then an inpatient unit's hand-over through the FHIR gateway."""
    case_manager = mint_token(
        settings,
        subject="practitioner:demo-case-manager",
        role="case-manager",
        practitioner_id="demo-case-manager",
    )
    admin = mint_token(
        settings,
        subject="practitioner:demo-admin",
        role="admin",
        practitioner_id="demo-admin",
    )
    load_demo(addresses, token, case_manager, admin, settings.program_timezone)
    write_safety_plan(addresses, settings)
    rest_demo(
        gateway_url,
        mint_token(
            settings,
            subject="system:demo-inpatient-unit",
            role="system",
            scopes=["system/*.cruds"],
            lifetime_seconds=300,
        ),
    )


def write_safety_plan(addresses: dict[str, str], settings: Settings) -> None:
    """The therapist writes the demo patient's safety plan (issue 12, part 3) and reads it back
    with any review a crisis made due."""
    therapist = mint_token(
        settings,
        subject="practitioner:demo-therapist",
        role="therapist",
        practitioner_id="demo-therapist",
    )
    with grpc.insecure_channel(addresses["notes"]) as channel:
        notes = notes_grpc.NotesServiceStub(channel)
        view = _call(
            notes.GetPatientSafetyPlan,
            notes_pb.GetPatientSafetyPlanRequest(patient_id=DEMO_PATIENT_ID),
            therapist,
        )
        if not view.HasField("plan"):
            request = notes_pb.SaveSafetyPlanRequest(
                request_id="demo-safety-plan-1",
                patient_id=DEMO_PATIENT_ID,
                fhir_json=json.dumps(demo_safety_plan()),
            )
            _call(notes.SaveSafetyPlan, request, therapist)
            view = _call(
                notes.GetPatientSafetyPlan,
                notes_pb.GetPatientSafetyPlanRequest(patient_id=DEMO_PATIENT_ID),
                therapist,
            )
    steps = [item["linkId"] for item in json.loads(view.plan.fhir_json)["item"]]
    print(
        f"\nnotes holds the safety plan QuestionnaireResponse/{view.plan.id} (version "
        f"{view.plan.version}, {len(steps)} steps: {', '.join(steps)})"
    )
    if view.HasField("review"):
        print(f"  review due since {view.review.due_time.ToJsonString()}: {view.review.reason}")


def _call(rpc: Callable[..., Any], request: Any, token: str) -> Any:
    """One call of the demo, as the bearer of `token`, answered within ten seconds."""
    return rpc(request, metadata=bearer(token), timeout=10)


def _create(
    rpc: Callable[..., Any],
    request_type: Callable[..., Any],
    request_id: str,
    resource: dict[str, Any],
    token: str,
) -> Any:
    """A create call of the demo. Its request id is fixed: running the demo again shows the same
    records, not twins."""
    request = request_type(request_id=request_id, fhir_json=json.dumps(resource))
    return _call(rpc, request, token)


def load_demo(
    addresses: dict[str, str], token: str, case_manager_token: str, admin_token: str, zone: str
) -> None:
    """The demo patient's calendar, episode, team, goal, plan and measures; waits until their
    events have reached every service, then prints what each holds."""
    _open_psychiatrist_calendar(addresses, case_manager_token)
    plan_id = _enrol_demo_patient(addresses, token, case_manager_token, admin_token)
    _wait_for_events(addresses, token, plan_id)
    print_patient(addresses, token, DEMO_PATIENT_ID, zone)


def _open_psychiatrist_calendar(addresses: dict[str, str], case_manager_token: str) -> None:
    with grpc.insecure_channel(addresses["scheduling"]) as channel:
        # The case manager opens the psychiatrist's calendar (weekdays 08:00-17:00, intakes and
        # visits): where the intake of a patient handed over by an inpatient unit is booked.
        _call(
            sc_grpc.SchedulingServiceStub(channel).CreateSchedule,
            sc.CreateScheduleRequest(
                request_id="demo-calendar-psychiatrist",
                schedule=sc.Schedule(
                    actor="Practitioner/demo-psychiatrist",
                    kind="practitioner",
                    role="psychiatrist",
                    service_types=["intake", "psychiatric-visit"],
                    opening_hours=[
                        sc.OpeningHours(day_of_week=day, opens="08:00", closes="17:00")
                        for day in ("mon", "tue", "wed", "thu", "fri")
                    ],
                ),
            ),
            case_manager_token,
        )


def _enrol_demo_patient(
    addresses: dict[str, str], token: str, case_manager_token: str, admin_token: str
) -> str:
    """careplan's records of the demo patient; returns the plan's id."""
    with grpc.insecure_channel(addresses["careplan"]) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        episode, team = _open_episode(stub, token, case_manager_token, admin_token)
        goal = _create(
            stub.CreateGoal, pb.CreateGoalRequest, "demo-goal-1", demo_goal(), token
        ).goal
        resource = demo_care_plan(team_id=team.id, goal_id=goal.id, episode_id=episode.id)
        # The medications the detox unit discharged the patient on arrive with the plan.
        inbound = demo_inbound_medications()
        resource["contained"] = [*resource.get("contained", []), *inbound]
        resource["supportingInfo"] = [{"reference": f"#{m['id']}"} for m in inbound]
        plan = _create(
            stub.CreateCarePlan, pb.CreateCarePlanRequest, "demo-plan-1", resource, token
        ).care_plan
        _record_demo_measures(stub, token)
        _reconcile_medications(stub, token)
    print(
        f"careplan holds CarePlan/{plan.id} version {plan.version} ({plan.status}) "
        f"for Patient/{plan.patient_id}, Goal/{goal.id}, an intake PHQ-9 and the physician's "
        "first vitals and CIWA-Ar"
    )
    return str(plan.id)


def _reconcile_medications(stub: Any, token: str) -> None:
    """The psychiatrist (`token`) reconciles what the patient arrived on: continues the
    antidepressant, stops the detox taper (issue 12, docs/medications.md)."""
    found = _call(
        stub.GetMedicationReconciliation,
        pb.GetMedicationReconciliationRequest(patient_id=DEMO_PATIENT_ID),
        token,
    )
    for n, item in enumerate(found.items):
        if item.decision:
            continue  # decided by an earlier run of the demo
        drug = json.loads(item.fhir_json)["medicationCodeableConcept"]["coding"][0]["display"]
        stop = "chlordiazepoxide" in drug
        _call(
            stub.ResolveReconciliationItem,
            pb.ResolveReconciliationItemRequest(
                request_id=f"demo-reconcile-{n}",
                patient_id=DEMO_PATIENT_ID,
                id=item.id,
                decision="stop" if stop else "continue",
                reason="detox taper completed" if stop else "continue at discharge dose",
            ),
            token,
        )


def _open_episode(
    stub: Any, token: str, case_manager_token: str, admin_token: str
) -> tuple[Any, Any]:
    """The demo patient's episode, admitted, and care team."""
    # The program accepts the referral and assigns the case manager (an administrator opens
    # the episode naming them); that assignment is what lets the case manager enrol the
    # patient's first team, and membership is what lets the psychiatrist write the plan.
    # Fixed request ids: running the demo again shows the same records, not twins.
    episode = _create(
        stub.CreateEpisode, pb.CreateEpisodeRequest, "demo-episode-1", demo_episode(), admin_token
    ).episode
    team = _create(
        stub.CreateCareTeam,
        pb.CreateCareTeamRequest,
        "demo-team-1",
        demo_care_team(),
        case_manager_token,
    ).care_team
    print(f"careplan holds CareTeam/{team.id} ({team.status}) for Patient/{team.patient_id}")
    if episode.status == "planned":
        episode = _call(
            stub.AdmitPatient,
            pb.AdmitPatientRequest(
                id=episode.id, expected_version=episode.version, reason="intake assessment done"
            ),
            token,
        ).episode
    print(
        f"careplan holds EpisodeOfCare/{episode.id} ({episode.status}, level of care "
        f"{episode.clinical_level})"
    )
    return episode, team


def _record_demo_measures(stub: Any, token: str) -> None:
    """The intake PHQ-9, then the physician's first vitals and CIWA-Ar."""
    _create(stub.RecordMeasure, pb.RecordMeasureRequest, "demo-phq9-1", demo_phq9(), token)
    for n, observation in enumerate(demo_monitoring()):
        request_id = f"demo-monitoring-{n}"
        _create(stub.RecordMeasure, pb.RecordMeasureRequest, request_id, observation, token)


def _wait_for_events(addresses: dict[str, str], token: str, plan_id: str) -> None:
    """Waits (30 s at most) until the plan's events have travelled careplan -> Kafka ->
    scheduling -> Kafka -> notes, and scheduling's and notes' events back to careplan."""
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(addresses["notes"]) as channel:
        notes = notes_grpc.NotesServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                thread = _call(
                    notes.ListThread, notes_pb.ListThreadRequest(patient_id=DEMO_PATIENT_ID), token
                ).messages
            except grpc.RpcError as exc:
                # notes learns the team from careplan's events; until then it refuses.
                if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
                    raise
                thread = []
            if any("proposed" in m.text and f"CarePlan/{plan_id}" in m.fhir_json for m in thread):
                break
            time.sleep(0.2)
    # ... and scheduling's and notes' events have reached careplan's own view of the patient.
    with grpc.insecure_channel(addresses["careplan"]) as channel:
        careplan = pb_grpc.CarePlanServiceStub(channel)
        while time.monotonic() < deadline:
            view = _call(
                careplan.GetPatientPlan, pb.GetPatientPlanRequest(patient_id=DEMO_PATIENT_ID), token
            )
            if view.upcoming_sessions and len(view.latest_notes) >= 2:
                break
            time.sleep(0.2)


def print_patient(addresses: dict[str, str], token: str, patient_id: str, zone: str) -> None:
    """What scheduling, notes and careplan each hold of the patient."""
    with grpc.insecure_channel(addresses["scheduling"]) as channel:
        appointments = _call(
            sc_grpc.SchedulingServiceStub(channel).ListAppointments,
            sc.ListAppointmentsRequest(patient_id=patient_id, page_size=100),
            token,
        ).appointments
    with grpc.insecure_channel(addresses["notes"]) as channel:
        messages = _call(
            notes_grpc.NotesServiceStub(channel).ListThread,
            notes_pb.ListThreadRequest(patient_id=patient_id),
            token,
        ).messages
    print(f"\nscheduling holds {len(appointments)} proposed sessions for Patient/{patient_id}")
    print(f"(times in the program's zone, {zone}):")
    for a in appointments:
        resource = json.loads(a.fhir_json)
        start = a.start_time.ToDatetime(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone))
        local = start.strftime("%a %d %b %H:%M")
        print(f"  {local}  {resource.get('description', '')}  [{a.status}]")
    print(f"\nnotes holds {len(messages)} messages in the team thread:")
    for m in messages:
        print(f"  {m.sender}: {m.text}")
    _print_care_plan_view(addresses, token, patient_id)


def _print_care_plan_view(addresses: dict[str, str], token: str, patient_id: str) -> None:
    with grpc.insecure_channel(addresses["careplan"]) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        view = _call(stub.GetPatientPlan, pb.GetPatientPlanRequest(patient_id=patient_id), token)
    print("\ncareplan's holistic view of the patient (GetPatientPlan, one call):")
    print(f"  stay: {view.episode.status}, level of care {view.episode.clinical_level}")
    print(f"  plan: {json.loads(view.care_plan.fhir_json).get('title')} ({view.care_plan.status})")
    for progress in view.goals:
        goal = json.loads(progress.goal.fhir_json)
        print(
            f"  goal: {goal['description']['text']}: latest {progress.latest_value:g} "
            f"({progress.achievement})"
        )
    for medication in view.active_medications:
        resource = json.loads(medication.fhir_json)
        drug = resource["medicationCodeableConcept"]["coding"][0]["display"]
        print(f"  medication: {drug} ({resource['status']})")
    reconciliation = view.medication_reconciliation
    print(
        f"  medication reconciliation: {reconciliation.status}, "
        f"{reconciliation.unresolved_count} unresolved"
    )
    for section in view.disciplines:
        print(
            f"  {section.name}: {len(section.goals)} goals, {len(section.activities)} "
            f"activities, {len(section.latest_measures)} latest measures, "
            f"{len(section.open_tasks)} open tasks"
        )
    print(
        f"  {len(view.upcoming_sessions)} upcoming sessions, {len(view.latest_notes)} latest "
        f"team messages, attendance {view.attendance.attended}/{view.attendance.scheduled}"
    )
