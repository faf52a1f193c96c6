"""Attacks on a patient's utilization review records (issue 14 part 4; ADR 0028), over gRPC
against the real careplan: a `patient/` token for A, or a clinician off B's team, reads, lists or
adds B's coverage and authorizations; an authorization for A names B's stay or B's coverage."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import auth
from iopcare.kit.rpc import bearer
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import new_patient_id
from tests.support.utilization import authorization_example, coverage_example

pytestmark = pytest.mark.security


def _refusal(call: Any) -> tuple[str, str]:
    """(status code name, ErrorInfo reason) of a refused call; ("OK", "") if it succeeded."""
    try:
        call()
    except grpc.RpcError as exc:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
        reason = ""
        for detail in status.details if status is not None else []:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason = info.reason
        return exc.code().name, reason  # type: ignore[attr-defined]
    return "OK", ""


def test_a_patient_token_or_a_stranger_cannot_reach_another_patients_utilization_review(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient_a, patient_b = new_patient_id(), new_patient_id()
    stays = {}
    for patient in (patient_a, patient_b):
        stays[patient] = harness.assign_case_manager(stub, settings, patient).id
        harness.create_team_over_grpc(stub, settings, patient)
    cm = harness.metadata(settings, role="case-manager", practitioner="cm-1")
    today = datetime.now(UTC).date()

    def coverage(patient: str, caller: Any) -> Any:
        return stub.CreateCoverage(
            pb.CreateCoverageRequest(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(coverage_example(patient))
            ),
            metadata=caller,
            timeout=10,
        ).coverage

    def authorization(patient: str, stay: str, coverage_id: str, caller: Any) -> Any:
        body = authorization_example(patient, stay, coverage_id, today, today + timedelta(30))
        return stub.CreateAuthorization(
            pb.CreateAuthorizationRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(body)),
            metadata=caller,
            timeout=10,
        ).authorization

    coverage_b = coverage(patient_b, cm)
    authorization_b = authorization(patient_b, stays[patient_b], coverage_b.id, cm)
    token_a = bearer(
        auth.mint_token(
            settings,
            subject="system:ehr-a",
            role="system",
            scopes=["patient/*.cruds"],
            patient_context=patient_a,
            lifetime_seconds=300,
        )
    )
    stranger = harness.metadata(settings, role="case-manager", practitioner="cm-9")
    for caller, reason in ((token_a, "OUTSIDE_LAUNCH_CONTEXT"), (stranger, "NOT_ON_CARE_TEAM")):
        calls = (
            lambda c=caller: stub.GetCoverage(
                pb.GetCoverageRequest(id=coverage_b.id), metadata=c, timeout=10
            ),
            lambda c=caller: stub.ListCoverages(
                pb.ListCoveragesRequest(patient_id=patient_b), metadata=c, timeout=10
            ),
            lambda c=caller: stub.GetAuthorization(
                pb.GetAuthorizationRequest(id=authorization_b.id), metadata=c, timeout=10
            ),
            lambda c=caller: stub.ListAuthorizations(
                pb.ListAuthorizationsRequest(patient_id=patient_b), metadata=c, timeout=10
            ),
            lambda c=caller: stub.GetUtilizationReviewPacket(
                pb.GetUtilizationReviewPacketRequest(id=authorization_b.id), metadata=c, timeout=10
            ),
            lambda c=caller: coverage(patient_b, c),
            lambda c=caller: authorization(patient_b, stays[patient_b], coverage_b.id, c),
        )
        for call in calls:
            assert _refusal(call) == ("PERMISSION_DENIED", reason)

    # A's own records are A's token's; an authorization for A cannot borrow B's stay or coverage.
    coverage_a = coverage(patient_a, token_a)
    assert _refusal(lambda: authorization(patient_a, stays[patient_b], coverage_a.id, token_a)) == (
        "FAILED_PRECONDITION",
        "EPISODE_NOT_FOUND",
    )
    assert _refusal(lambda: authorization(patient_a, stays[patient_a], coverage_b.id, token_a)) == (
        "FAILED_PRECONDITION",
        "COVERAGE_NOT_FOUND",
    )
    mine = authorization(patient_a, stays[patient_a], coverage_a.id, token_a)
    listed = stub.ListAuthorizations(
        pb.ListAuthorizationsRequest(patient_id=patient_a), metadata=token_a, timeout=10
    ).authorizations
    assert [a.id for a in listed] == [mine.id]
