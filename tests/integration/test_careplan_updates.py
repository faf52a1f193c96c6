"""Shared editing of one plan without lost updates (issue 6, item 5; test-matrix B1, B2)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select

from iopcare.careplan import store
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id


def _create(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, **changes: object
) -> pb.CarePlan:
    patient = new_patient_id()
    plan = iop_plan(patient, harness.enrol_over_grpc(stub, settings, patient))
    for key, value in changes.items():
        if value is None:
            plan.pop(key, None)
        else:
            plan[key] = value
    return stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(plan)),
        metadata=harness.metadata(settings),
    ).care_plan


def _team_of(stub: pb_grpc.CarePlanServiceStub, settings: Settings, plan: pb.CarePlan) -> str:
    teams = stub.ListCareTeams(
        pb.ListCareTeamsRequest(patient_id=plan.patient_id), metadata=harness.metadata(settings)
    ).care_teams
    return json.dumps(teams[0].id)


def _error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
    return info


def _history_count(careplan: ServiceRuntime, plan_id: str) -> int:
    with careplan.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(store.care_plan_history)
                .where(store.care_plan_history.c.id == plan_id)
            ).scalar()
            or 0
        )


def test_an_update_from_the_current_version_makes_the_next_one_with_its_event(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, kafka_bootstrap: str
) -> None:
    created = _create(stub, settings)
    revised = json.loads(created.fhir_json)
    revised["title"] = "Adult IOP: revised after week 2"
    updated = stub.UpdateCarePlan(
        pb.UpdateCarePlanRequest(
            id=created.id,
            expected_version=1,
            fhir_json=json.dumps(revised),
            reason="team meeting",
        ),
        metadata=harness.metadata(settings, role="therapist", practitioner="th-1"),
    ).care_plan
    assert updated.version == 2
    assert json.loads(updated.fhir_json)["meta"]["versionId"] == "2"
    assert json.loads(updated.fhir_json)["title"] == "Adult IOP: revised after week 2"
    records = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: (
            r.key == created.patient_id.encode()
            and harness.header(r, "ce_subject", "").startswith("CarePlan/")
        ),
        expect=2,
    )
    assert [harness.header(r, "ce_type") for r in records] == [
        "iopcare.careplan.created.v1",
        "iopcare.careplan.updated.v1",
    ]
    assert harness.header(records[1], "ce_subject") == f"CarePlan/{created.id}/_history/2"

    versions = stub.ListResourceVersions(
        pb.ListResourceVersionsRequest(resource_type="CarePlan", id=created.id),
        metadata=harness.metadata(settings),
    ).versions
    assert [(v.version, v.change, v.changed_by, v.reason) for v in versions] == [
        (2, "update", "Practitioner/th-1", "team meeting"),
        (1, "create", "Practitioner/psy-1", ""),
    ]
    first = stub.GetResourceVersion(
        pb.GetResourceVersionRequest(resource_type="CarePlan", id=created.id, version=1),
        metadata=harness.metadata(settings),
    ).resource
    assert first.fhir_json == created.fhir_json


def test_a_stale_update_fails_with_the_current_version_and_writes_nothing(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    created = _create(stub, settings)
    body = json.loads(created.fhir_json)
    stub.UpdateCarePlan(
        pb.UpdateCarePlanRequest(id=created.id, expected_version=1, fhir_json=json.dumps(body)),
        metadata=harness.metadata(settings),
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(id=created.id, expected_version=1, fhir_json=json.dumps(body)),
            metadata=harness.metadata(settings),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = _error_info(caught.value)
    assert info.reason == "STALE_VERSION"
    assert info.metadata["current_version"] == "2"
    assert _history_count(careplan, created.id) == 2


def test_of_many_concurrent_updates_from_one_version_exactly_one_wins(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    created = _create(stub, settings)
    metadata = harness.metadata(settings)
    outcomes: list[str] = []
    lock = threading.Lock()

    def update(n: int) -> None:
        body = json.loads(created.fhir_json)
        body["title"] = f"edit {n}"
        try:
            stub.UpdateCarePlan(
                pb.UpdateCarePlanRequest(
                    id=created.id, expected_version=1, fhir_json=json.dumps(body)
                ),
                metadata=metadata,
                timeout=60,
            )
            result = "ok"
        except grpc.RpcError as exc:
            result = exc.code().name
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=update, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 1
    assert outcomes.count("FAILED_PRECONDITION") == 49
    assert _history_count(careplan, created.id) == 2


def test_the_lifecycle_is_enforced_over_grpc(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, kafka_bootstrap: str
) -> None:
    draft = _create(stub, settings, status="draft", careTeam=None, goal=None)
    body = json.loads(draft.fhir_json)
    body["status"] = "active"
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(id=draft.id, expected_version=1, fhir_json=json.dumps(body)),
            metadata=harness.metadata(settings),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_info(caught.value).reason == "PLAN_NOT_READY"

    # Only the elements named in the mask change: add the team and goal, then activate.
    ready = iop_plan(draft.patient_id, json.loads(_team_of(stub, settings, draft)))
    version = stub.UpdateCarePlan(
        pb.UpdateCarePlanRequest(
            id=draft.id,
            expected_version=1,
            fhir_json=json.dumps(ready),
            update_mask=FieldMask(paths=["careTeam", "goal"]),
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    assert (version.version, version.status) == (2, "draft")
    activated = stub.UpdateCarePlan(
        pb.UpdateCarePlanRequest(
            id=draft.id,
            expected_version=2,
            fhir_json=json.dumps({"resourceType": "CarePlan", "status": "active"}),
            update_mask=FieldMask(paths=["status"]),
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    assert (activated.version, activated.status) == (3, "active")
    completed = stub.UpdateCarePlan(
        pb.UpdateCarePlanRequest(
            id=draft.id,
            expected_version=3,
            fhir_json=json.dumps({"resourceType": "CarePlan", "status": "completed"}),
            update_mask=FieldMask(paths=["status"]),
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(
                id=draft.id,
                expected_version=completed.version,
                fhir_json=json.dumps({"resourceType": "CarePlan", "title": "too late"}),
                update_mask=FieldMask(paths=["title"]),
            ),
            metadata=harness.metadata(settings),
        )
    assert _error_info(caught.value).reason == "PLAN_CLOSED"
    types = [
        harness.header(r, "ce_type")
        for r in harness.read_topic(
            kafka_bootstrap,
            harness.topic(settings, topics.CAREPLAN),
            lambda r: (
                r.key == draft.patient_id.encode()
                and harness.header(r, "ce_subject", "").startswith("CarePlan/")
            ),
            expect=4,
        )
    ]
    assert types == [
        "iopcare.careplan.created.v1",
        "iopcare.careplan.updated.v1",
        "iopcare.careplan.activated.v1",
        "iopcare.careplan.completed.v1",
    ]


def test_bad_update_requests_are_invalid_arguments(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    created = _create(stub, settings)
    cases = [
        pb.UpdateCarePlanRequest(id=created.id, expected_version=0, fhir_json=created.fhir_json),
        pb.UpdateCarePlanRequest(
            id=created.id,
            expected_version=1,
            fhir_json=created.fhir_json.replace(created.id, "another-id"),
        ),
        pb.UpdateCarePlanRequest(
            id=created.id,
            expected_version=1,
            fhir_json=created.fhir_json,
            update_mask=FieldMask(paths=["subject"]),
        ),
    ]
    for request in cases:
        with pytest.raises(grpc.RpcError) as caught:
            stub.UpdateCarePlan(request, metadata=harness.metadata(settings))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(
                id="missing",
                expected_version=1,
                fhir_json=created.fhir_json.replace(created.id, "missing"),
            ),
            metadata=harness.metadata(settings),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_each_discipline_changes_only_its_own_activities(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    created = _create(stub, settings)
    plan = json.loads(created.fhir_json)
    nutrition = next(
        a for a in plan["activity"] if a["detail"]["code"]["coding"][0]["code"] == "61310001"
    )
    nutrition["detail"]["description"] = "Nutrition counselling, with the family"
    dietitian = harness.metadata(settings, role="dietitian", practitioner="diet-1")
    therapist = harness.metadata(settings, role="therapist", practitioner="th-1")
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateCarePlan(
            pb.UpdateCarePlanRequest(
                id=created.id,
                expected_version=1,
                fhir_json=json.dumps(plan),
                update_mask=FieldMask(paths=["activity"]),
            ),
            metadata=therapist,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _error_info(caught.value).reason == "NOT_ACTIVITY_OWNER"
    updated = stub.UpdateCarePlan(
        pb.UpdateCarePlanRequest(
            id=created.id,
            expected_version=1,
            fhir_json=json.dumps(plan),
            update_mask=FieldMask(paths=["activity"]),
        ),
        metadata=dietitian,
    ).care_plan
    assert updated.version == 2


def test_a_plan_drafted_from_the_programs_template_can_be_activated(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient = new_patient_id()
    team_id = harness.enrol_over_grpc(stub, settings, patient)
    draft = stub.DraftCarePlan(
        pb.DraftCarePlanRequest(
            request_id="d", patient_id=patient, diagnosis_code="F10.20", care_team_id=team_id
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    assert (draft.status, json.loads(draft.fhir_json)["title"]) == (
        "draft",
        "Adult substance use disorder IOP",
    )
    active = stub.UpdateCarePlan(
        pb.UpdateCarePlanRequest(
            id=draft.id,
            expected_version=1,
            fhir_json=json.dumps({"resourceType": "CarePlan", "status": "active"}),
            update_mask=FieldMask(paths=["status"]),
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    assert active.status == "active"
    # A diagnosis no program covers gets the general IOP plan, saying so; never nothing.
    general = stub.DraftCarePlan(
        pb.DraftCarePlanRequest(
            request_id="x", patient_id=patient, diagnosis_code="J45.909", care_team_id=team_id
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    drafted = json.loads(general.fhir_json)
    assert (general.status, drafted["title"]) == ("draft", "General IOP")
    assert "No program template matched the diagnoses (J45.909)" in drafted["note"][0]["text"]
    # Its first review is due when the template says (30 days from the start).
    (review,) = [e for e in drafted["extension"] if e["url"].endswith("/next-review-due")]
    start = date.fromisoformat(drafted["period"]["start"])
    assert date.fromisoformat(review["valueDate"]) == start + timedelta(days=30)
    # No diagnosis named (a handoff's Conditions coded only in SNOMED CT): the general plan too.
    unnamed = stub.DraftCarePlan(
        pb.DraftCarePlanRequest(request_id="y", patient_id=patient, diagnosis_code=" "),
        metadata=harness.metadata(settings),
    ).care_plan
    drafted = json.loads(unnamed.fhir_json)
    assert (unnamed.status, drafted["title"]) == ("draft", "General IOP")
    assert drafted["activity"]
    assert drafted["note"][0]["text"].startswith("No ICD-10-CM diagnosis was given")
    assert "no ICD-10-CM diagnosis given" in drafted["description"]
    # ...still checked like any draft: a malformed request is refused.
    with pytest.raises(grpc.RpcError) as caught:
        stub.DraftCarePlan(
            pb.DraftCarePlanRequest(request_id="z", patient_id="", diagnosis_code=""),
            metadata=harness.metadata(settings),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
