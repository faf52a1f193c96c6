"""Plan reviews (issue 6, item 5): due every N days, at once after a crisis, recorded as a
revision with each discipline's attestation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import phq9

REVIEW_DUE = "https://iopcare.org/fhir/StructureDefinition/next-review-due"


def _due(plan: pb.CarePlan) -> str:
    resource = json.loads(plan.fhir_json)
    return next(e["valueDate"] for e in resource["extension"] if e["url"] == REVIEW_DUE)


def test_an_active_plan_is_due_for_review_after_the_interval_and_at_once_after_a_crisis(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, kafka_bootstrap: str
) -> None:
    me = harness.metadata(settings)
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id="p", fhir_json=harness.enrolled_plan_json(stub, settings)
        ),
        metadata=me,
    ).care_plan
    today = datetime.now(UTC).date()
    assert _due(plan) == (today + timedelta(days=30)).isoformat()

    stub.RecordMeasure(
        pb.RecordMeasureRequest(
            request_id="m", fhir_json=json.dumps(phq9(plan.patient_id, 9, item9=1))
        ),
        metadata=me,
    )
    current = stub.GetCarePlan(pb.GetCarePlanRequest(id=plan.id), metadata=me).care_plan
    assert _due(current) == today.isoformat()
    versions = stub.ListResourceVersions(
        pb.ListResourceVersionsRequest(resource_type="CarePlan", id=plan.id), metadata=me
    ).versions
    assert versions[0].change == "review-due"
    assert versions[0].reason.startswith("crisis: PHQ-9 item 9")

    reviewed = stub.RecordPlanReview(
        pb.RecordPlanReviewRequest(
            id=plan.id,
            expected_version=current.version,
            outcome="revise",
            summary="Safety plan updated; daily check-ins for two weeks.",
            attestations=[
                pb.ReviewAttestation(practitioner_id="psy-1", role="psychiatrist", agrees=True),
                pb.ReviewAttestation(
                    practitioner_id="th-1", role="therapist", agrees=True, comment="seen today"
                ),
            ],
        ),
        metadata=me,
    ).care_plan
    assert reviewed.version == current.version + 1
    assert _due(reviewed) == (today + timedelta(days=30)).isoformat()
    note = json.loads(reviewed.fhir_json)["note"][-1]["text"]
    assert "(revise)" in note and "therapist th-1 (agrees: seen today)" in note
    types = [
        harness.header(r, "ce_type")
        for r in harness.read_topic(
            kafka_bootstrap,
            harness.topic(settings, topics.CAREPLAN),
            lambda r: harness.header(r, "ce_subject", "").startswith(f"CarePlan/{plan.id}/"),
            expect=3,
        )
    ]
    assert types == [
        "iopcare.careplan.created.v1",
        "iopcare.careplan.review-due.v1",
        "iopcare.careplan.reviewed.v1",
    ]


def test_a_review_needs_an_attestation_and_a_current_version(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    me = harness.metadata(settings)
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id="p", fhir_json=harness.enrolled_plan_json(stub, settings)
        ),
        metadata=me,
    ).care_plan
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordPlanReview(
            pb.RecordPlanReviewRequest(
                id=plan.id, expected_version=1, outcome="continue", summary="ok"
            ),
            metadata=me,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordPlanReview(
            pb.RecordPlanReviewRequest(
                id=plan.id,
                expected_version=7,
                outcome="continue",
                summary="ok",
                attestations=[pb.ReviewAttestation(practitioner_id="psy-1", role="psychiatrist")],
            ),
            metadata=me,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_passing_review_date_is_announced_once(
    stub: pb_grpc.CarePlanServiceStub,
    settings: Settings,
    careplan: ServiceRuntime,
    kafka_bootstrap: str,
) -> None:
    from iopcare.careplan.service import CarePlans

    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id="p", fhir_json=harness.enrolled_plan_json(stub, settings)
        ),
        metadata=harness.metadata(settings),
    ).care_plan
    plans = CarePlans(careplan.db, notify_outbox=careplan.relay.notify)  # type: ignore[union-attr]
    today = datetime.now(UTC).date()
    assert plans.announce_due_reviews(today) == 0  # due in 30 days
    assert plans.announce_due_reviews(today + timedelta(days=31)) == 1
    assert plans.announce_due_reviews(today + timedelta(days=32)) == 0  # once per due date
    (record,) = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: (
            harness.header(r, "ce_type") == "iopcare.careplan.review-due.v1"
            and r.key == plan.patient_id.encode()
        ),
    )
    assert json.loads(record.value)["id"] == plan.id
