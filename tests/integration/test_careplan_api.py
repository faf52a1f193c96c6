"""The care plan service over real gRPC, on SQLite and PostgreSQL, with a real Kafka broker."""

from __future__ import annotations

import json
import threading
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
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


def test_create_stores_version_one_and_publishes_the_created_event(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, kafka_bootstrap: str
) -> None:
    patient = new_patient_id()
    created = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=str(uuid.uuid4()),
            fhir_json=harness.enrolled_plan_json(stub, settings, patient),
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    assert (created.version, created.patient_id, created.status) == (1, patient, "active")
    stored = json.loads(created.fhir_json)
    assert stored["id"] == created.id and stored["meta"]["versionId"] == "1"

    fetched = stub.GetCarePlan(
        pb.GetCarePlanRequest(id=created.id), metadata=harness.metadata(settings)
    ).care_plan
    assert fetched.fhir_json == created.fhir_json

    (record,) = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: (
            r.key == patient.encode()
            and harness.header(r, "ce_type") == "iopcare.careplan.created.v1"
        ),
    )
    assert harness.header(record, "ce_type") == "iopcare.careplan.created.v1"
    assert harness.header(record, "ce_subject") == f"CarePlan/{created.id}/_history/1"
    assert harness.header(record, "content-type") == "application/fhir+json"
    assert record.value.decode() == created.fhir_json


def test_a_retried_create_returns_the_first_plan_even_when_retries_race(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    request = pb.CreateCarePlanRequest(
        request_id=str(uuid.uuid4()), fhir_json=harness.enrolled_plan_json(stub, settings)
    )
    metadata = harness.metadata(settings)
    ids: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            ids.append(stub.CreateCarePlan(request, metadata=metadata).care_plan.id)
        except grpc.RpcError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(ids)) == 1
    with careplan.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(store.care_plan)).scalar() == 1
        created_events = (
            select(func.count())
            .select_from(store.outbox)
            .where(store.outbox.c.event_type == "iopcare.careplan.created.v1")
        )
        assert conn.execute(created_events).scalar() == 1


def _details(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, list[str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return info, fields


def test_invalid_plans_get_invalid_argument_naming_each_field_and_nothing_is_written(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    plan = iop_plan()
    plan["status"] = "completed"
    plan["subject"] = {"reference": "Group/1"}
    cases = {
        json.dumps(plan): ["fhir_json.CarePlan.status", "fhir_json.CarePlan.subject"],
        '{"resourceType": "CarePlan", "status": "active"': ["fhir_json"],
        json.dumps({"resourceType": "Patient"}): ["fhir_json.resourceType"],
    }
    for body, expected in cases.items():
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateCarePlan(
                pb.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=body),
                metadata=harness.metadata(settings),
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info, fields = _details(caught.value)
        assert info.domain == "iopcare" and info.reason
        assert sorted(fields) == expected
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateCarePlan(
            pb.CreateCarePlanRequest(fhir_json=harness.enrolled_plan_json(stub, settings)),
            metadata=harness.metadata(settings),
        )
    assert _details(caught.value)[1] == ["request_id"]
    with careplan.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(store.care_plan)).scalar() == 0


def test_unknown_plans_are_not_found_and_bad_ids_invalid(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetCarePlan(pb.GetCarePlanRequest(id="nope"), metadata=harness.metadata(settings))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetCarePlan(pb.GetCarePlanRequest(id="../etc"), metadata=harness.metadata(settings))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_calls_without_a_valid_token_are_refused_but_health_and_reflection_stay_open(
    careplan: ServiceRuntime, stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    for metadata in ([], [("authorization", "Bearer nonsense")], [("authorization", "Basic eA==")]):
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetCarePlan(pb.GetCarePlanRequest(id="x"), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with harness.channel(careplan) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="iopcare.careplan.v1.CarePlanService")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for answer in answers for s in answer.list_services_response.service}
        assert "iopcare.careplan.v1.CarePlanService" in names
        assert "grpc.health.v1.Health" in names


def test_every_access_is_audited_including_refusals(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    created = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=str(uuid.uuid4()), fhir_json=harness.enrolled_plan_json(stub, settings)
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    stub.GetCarePlan(pb.GetCarePlanRequest(id=created.id), metadata=harness.metadata(settings))
    with pytest.raises(grpc.RpcError):
        stub.GetCarePlan(pb.GetCarePlanRequest(id="missing"), metadata=harness.metadata(settings))
    with careplan.db.read() as conn:
        rows = conn.execute(
            select(store.audit_log.c.action, store.audit_log.c.outcome)
            .where(store.audit_log.c.resource.like("CarePlan/%"))
            .order_by(store.audit_log.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("create", "success"),
        ("read", "success"),
        ("read", "not-found"),
    ]


def test_concurrent_creates_all_succeed_without_database_is_locked(
    careplan: ServiceRuntime, stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    metadata = harness.metadata(settings)
    failures: list[BaseException] = []
    plan_json = harness.enrolled_plan_json(stub, settings)  # 120 plans for one patient

    def create() -> None:
        try:
            for _ in range(5):
                stub.CreateCarePlan(
                    pb.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=plan_json),
                    metadata=metadata,
                    timeout=60,
                )
        except grpc.RpcError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=create) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with careplan.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(store.care_plan)).scalar() == 120
        assert (
            conn.execute(select(func.count()).select_from(store.care_plan_history)).scalar() == 120
        )
