"""Goals of their own and the view by discipline (issue 13 parts 1 and 5, ADR 0022), through the
gateway and the services on the real Kafka, on SQLite and PostgreSQL: a `$handoff`'s template
goals are Goals (`Goal?patient=`), activated with the plan, moved by later PHQ-9s, and shown in
GetPatientPlan with their latest value and trend, in their discipline's section, within what the
caller may read."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.rpc import bearer
from tests.support import harness
from tests.support.gateway import (
    FHIR_JSON,
    Stack,
    discharge_bundle,
    enrol_team,
    practitioner_token,
    stack_for,
    system_token,
)
from tests.support.plans import phq9

JSON_HEADERS = {"Content-Type": FHIR_JSON}
PHQ9 = "44261-6"
SNOMED = "http://snomed.info/sct"
THERAPIST = "224588003"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(request.param, tmp_path_factory, kafka_bootstrap, "goals", server) as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings, subject="system:st-mary-inpatient")) as client:
        yield client


def _handoff(
    stack: Stack, ehr: httpx.Client, labelled: bool, bundle: dict[str, Any] | None = None
) -> tuple[str, str]:
    """(patient id, plan id) of a new step-down handoff (F10.20 and F32.1: the co-occurring
    disorders template), the patient's team enrolled."""
    bundle = bundle or discharge_bundle(uuid.uuid4().hex[:10], labelled=labelled)
    response = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    created = [
        p["valueReference"]["reference"]
        for p in response.json()["parameter"]
        if p["name"] in ("created", "matched")
    ]
    patient = next(r for r in created if r.startswith("Patient/")).split("/")[1]
    plan = next(r for r in created if r.startswith("CarePlan/")).split("/")[1]
    enrol_team(stack, patient)
    return patient, plan


def _stub(stack: Stack, channel: Any) -> pb_grpc.CarePlanServiceStub:
    return pb_grpc.CarePlanServiceStub(channel)


def _as(stack: Stack, role: str, practitioner: str) -> list[tuple[str, str]]:
    return bearer(practitioner_token(stack.settings, role, practitioner))


def _view(stack: Stack, patient: str, role: str, practitioner: str) -> pb.GetPatientPlanResponse:
    with harness.channel(stack.runtimes["careplan"]) as channel:
        view: pb.GetPatientPlanResponse = _stub(stack, channel).GetPatientPlan(
            pb.GetPatientPlanRequest(patient_id=patient), metadata=_as(stack, role, practitioner)
        )
    return view


def _activate(stack: Stack, plan_id: str, patient: str) -> dict[str, Any]:
    """The psychiatrist names the team and activates the draft."""
    psychiatrist = _as(stack, "psychiatrist", "psy-1")
    with harness.channel(stack.runtimes["careplan"]) as channel:
        stub = _stub(stack, channel)
        teams = stub.ListCareTeams(
            pb.ListCareTeamsRequest(patient_id=patient), metadata=psychiatrist
        ).care_teams
        plan = stub.GetCarePlan(pb.GetCarePlanRequest(id=plan_id), metadata=psychiatrist).care_plan
        revised = json.loads(plan.fhir_json)
        revised["status"] = "active"
        revised["careTeam"] = [{"reference": f"CareTeam/{teams[0].id}"}]
        updated = stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(
                id=plan_id,
                expected_version=plan.version,
                fhir_json=json.dumps(revised),
                reason="team reviewed the draft",
                request_id=f"activate-{plan_id}",
            ),
            metadata=psychiatrist,
        ).care_plan
    result: dict[str, Any] = json.loads(updated.fhir_json)
    return result


def _goals_over_rest(ehr: httpx.Client, patient: str) -> dict[str, dict[str, Any]]:
    search = ehr.get("/Goal", params={"patient": patient})
    assert search.status_code == 200, search.text
    return {
        e["resource"]["id"]: e["resource"]
        for e in search.json().get("entry", [])
        if e["resource"]["resourceType"] == "Goal"
    }


def test_handoff_goals_are_goals_moved_by_later_phq9s(stack: Stack, ehr: httpx.Client) -> None:
    patient, plan_id = _handoff(stack, ehr, labelled=False)
    goals = _goals_over_rest(ehr, patient)
    measures = {g["target"][0]["measure"]["coding"][0]["code"]: g for g in goals.values()}
    assert sorted(measures) == ["44261-6", "70274-6", "75626-2"]  # the template's three
    assert {g["lifecycleStatus"] for g in goals.values()} == {"proposed"}
    phq9_goal = measures[PHQ9]
    assert phq9_goal["category"] == [
        {"coding": [{"system": SNOMED, "code": THERAPIST, "display": "Psychotherapist"}]}
    ]
    # Searchable by discipline: the therapist's goals.
    by_discipline = ehr.get(
        "/Goal", params={"patient": patient, "category": f"{SNOMED}|{THERAPIST}"}
    ).json()
    assert by_discipline["total"] == 3  # PHQ-9, GAD-7 and AUDIT-C follow the therapist

    plan = _activate(stack, plan_id, patient)
    assert sorted(g["reference"] for g in plan["goal"]) == sorted(f"Goal/{i}" for i in goals)
    assert not any(c["resourceType"] == "Goal" for c in plan.get("contained", []))
    active = _goals_over_rest(ehr, patient)
    assert {g["lifecycleStatus"] for g in active.values()} == {"active"}  # with the plan

    for total, day in ((18, "2026-11-20"), (13, "2026-11-27")):
        recorded = ehr.post(
            "/Observation",
            json=phq9(patient, total, when=f"{day}T10:00:00Z"),
            headers=JSON_HEADERS,
        )
        assert recorded.status_code == 201, recorded.text
    moved = _goals_over_rest(ehr, patient)[phq9_goal["id"]]
    assert moved["achievementStatus"]["coding"][0]["code"] == "improving"
    assert moved["meta"]["versionId"] == "4"  # created, activated, in progress, improving
    history = ehr.get(f"/Goal/{phq9_goal['id']}/_history").json()
    assert history["total"] == 4

    view = _view(stack, patient, "psychiatrist", "psy-1")
    progress = next(g for g in view.goals if g.measure_code == PHQ9)
    # The discharge's own PHQ-9 (14, recorded by `$handoff`) comes between the two.
    assert (progress.latest_value, progress.previous_value, progress.value_count) == (13, 14, 3)
    assert (progress.trend, progress.achievement, progress.discipline) == (
        "improving",
        "improving",
        "therapist",
    )
    sections = {s.role: s for s in view.disciplines}
    assert list(sections)[:4] == ["psychiatrist", "therapist", "dietitian", "physician"]
    assert [s.name for s in view.disciplines][:4] == [
        "psychiatry",
        "therapy",
        "nutrition",
        "medicine",
    ]
    therapy = sections["therapist"]
    assert {g.measure_code for g in therapy.goals} == {"44261-6", "70274-6", "75626-2"}
    latest = {m.code: m for m in therapy.latest_measures}
    assert (latest[PHQ9].value, latest[PHQ9].trend) == (13, "improving")
    assert {a.code for a in therapy.activities} >= {"76168009", "75516001"}
    tasks = {(t.kind, t.reference) for t in therapy.open_tasks}
    gad7 = next(g for g in therapy.goals if g.measure_code == "70274-6")
    assert ("record-measure", f"Goal/{gad7.goal.id}") in tasks  # no GAD-7 yet
    assert any(t.kind == "schedule-activity" for t in therapy.open_tasks)
    assert {a.code for a in sections["psychiatrist"].activities} >= {"182836005"}
    assert not sections["psychiatrist"].goals and not sections["dietitian"].goals
    # The case manager's coordination has a section of its own.
    assert "case-manager" in sections


def test_sections_hold_only_what_the_caller_may_read(stack: Stack, ehr: httpx.Client) -> None:
    """A Part 2 handoff: its goals carry the plan's labels; the treating therapist sees them, the
    dietitian (minimum necessary: their own discipline's labelled content) and an administrator
    (no labelled content) do not."""
    patient, _ = _handoff(stack, ehr, labelled=True)
    therapist = _view(stack, patient, "therapist", "th-1")
    assert len(therapist.goals) == 3
    assert all(
        {"ETH", "R"} <= {s["code"] for s in json.loads(g.goal.fhir_json)["meta"]["security"]}
        for g in therapist.goals
    )
    assert len({s.role: s for s in therapist.disciplines}["therapist"].goals) == 3
    dietitian = _view(stack, patient, "dietitian", "diet-1")
    assert list(dietitian.goals) == []
    assert all(not s.goals for s in dietitian.disciplines)
    # Labelled measures only of the dietitian's own discipline (the discharge's weight).
    assert all(not s.latest_measures for s in dietitian.disciplines if s.role != "dietitian")
    # The labelled plan's activities: the dietitian's own, nobody else's.
    assert {s.role for s in dietitian.disciplines if s.activities} <= {"dietitian"}
    admin = _view(stack, patient, "admin", "adm-1")
    assert list(admin.goals) == [] and all(not s.activities for s in admin.disciplines)
    # Over REST the labelled goals stay in the program for an EHR without consent.
    assert _goals_over_rest(ehr, patient) == {}


def test_goals_from_every_source_are_goals_once(stack: Stack, ehr: httpx.Client) -> None:
    """A repeated handoff makes no second set of goals; a clinician's contained goal (in an
    update of the plan) and a goal created on its own are Goals owned by the clinician's
    discipline."""
    bundle = discharge_bundle(uuid.uuid4().hex[:10], labelled=False)
    patient, plan_id = _handoff(stack, ehr, labelled=False, bundle=bundle)
    again = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
    assert again.status_code == 200, again.text
    assert len(_goals_over_rest(ehr, patient)) == 3

    dietitian = _as(stack, "dietitian", "diet-1")
    weight_goal = {
        "resourceType": "Goal",
        "id": "weight",
        "lifecycleStatus": "proposed",
        "description": {"text": "Weight at least 50 kg"},
        "subject": {"reference": f"Patient/{patient}"},
        "target": [
            {
                "measure": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "detailQuantity": {
                    "value": 50,
                    "comparator": ">=",
                    "unit": "kg",
                    "system": "http://unitsofmeasure.org",
                    "code": "kg",
                },
            }
        ],
    }
    with harness.channel(stack.runtimes["careplan"]) as channel:
        stub = _stub(stack, channel)
        plan = stub.GetCarePlan(pb.GetCarePlanRequest(id=plan_id), metadata=dietitian).care_plan
        revised = json.loads(plan.fhir_json)
        revised["contained"] = [*revised.get("contained", []), weight_goal]
        revised["goal"] = [*revised["goal"], {"reference": "#weight"}]
        updated = stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(
                id=plan_id,
                expected_version=plan.version,
                fhir_json=json.dumps(revised),
                reason="nutrition goal",
                request_id=f"weight-{plan_id}",
            ),
            metadata=dietitian,
        ).care_plan
        stored = json.loads(updated.fhir_json)
        assert not any(c["resourceType"] == "Goal" for c in stored.get("contained", []))
        new_ref = stored["goal"][-1]["reference"]
        physician_goal = {**weight_goal, "description": {"text": "Weight checked weekly"}}
        del physician_goal["id"]
        created = stub.CreateGoal(
            pb.CreateGoalRequest(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(physician_goal)
            ),
            metadata=_as(stack, "physician", "doc-1"),
        ).goal
    goals = _goals_over_rest(ehr, patient)
    assert len(goals) == 5
    hoisted = goals[new_ref.split("/")[1]]
    assert hoisted["category"][0]["coding"][0]["code"] == "40127002"  # the dietitian's
    assert hoisted["identifier"][0]["value"] == "weight"
    assert goals[created.id]["category"][0]["coding"][0]["code"] == "59058001"  # the physician's
    view = _view(stack, patient, "dietitian", "diet-1")
    nutrition = next(s for s in view.disciplines if s.role == "dietitian")
    assert [g.goal.id for g in nutrition.goals] == [hoisted["id"]]
    assert [t.kind for t in nutrition.open_tasks] == ["record-measure"]
