"""Attacks on idempotency (issue 10, defects 12, 13, 14 and 16b): a request id, a conditional
create's criteria or a handoff Bundle's identifier reused to obtain what another request created
(another patient's resource), or to make the system silently drop a request; and a batch whose one
bad entry takes the good ones down with it.

The rule they prove (kit.requests): a repeat of the same request returns the first result; the
same key carrying a different request is refused (gRPC INVALID_ARGUMENT, reason
REQUEST_ID_REUSED; REST 409 or a fresh create, never the first request's resource)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import auth
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.gateway import (
    FHIR_JSON,
    MRN_SYSTEM,
    Stack,
    discharge_bundle,
    enrol_team,
    stack_for,
    system_token,
)
from tests.support.plans import new_patient_id, phq9, phq9_goal

pytestmark = pytest.mark.security

JSON_HEADERS = {"Content-Type": FHIR_JSON}


def error_reason(exc: grpc.RpcError) -> str:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


# -- 14: a gRPC request id reused for another patient -------------------------------------------


def test_a_request_id_reused_for_another_patients_goal_is_refused_not_answered_with_the_first(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    """Defect 14: CreateGoal for patient B under the request id of A's goal returned A's goal."""
    a, b = new_patient_id(), new_patient_id()
    for patient_id in (a, b):
        harness.enrol_over_grpc(stub, settings, patient_id)
    metadata = harness.metadata(settings)
    request_id = str(uuid.uuid4())
    first = stub.CreateGoal(
        pb.CreateGoalRequest(request_id=request_id, fhir_json=json.dumps(phq9_goal(a))),
        metadata=metadata,
    ).goal
    # A retry of the same request is answered with the first result.
    again = stub.CreateGoal(
        pb.CreateGoalRequest(request_id=request_id, fhir_json=json.dumps(phq9_goal(a))),
        metadata=metadata,
    ).goal
    assert again.id == first.id
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateGoal(
            pb.CreateGoalRequest(request_id=request_id, fhir_json=json.dumps(phq9_goal(b))),
            metadata=metadata,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(refused.value) == "REQUEST_ID_REUSED"
    assert a not in (refused.value.details() or "")  # nothing of A's goal in the refusal
    goals_of_b = stub.ListGoals(pb.ListGoalsRequest(patient_id=b), metadata=metadata).goals
    assert list(goals_of_b) == []


# -- the gateway ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(request.param, tmp_path_factory, kafka_bootstrap, "idem", server) as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings, subject="system:st-mary")) as client:
        yield client


def enrolled_patient(stack: Stack, ehr: httpx.Client) -> str:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": uuid.uuid4().hex}],
    }
    response = ehr.post("/Patient", json=patient, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    patient_id = str(response.json()["id"])
    enrol_team(stack, patient_id)
    return patient_id


def outcome_diagnostics(body: dict[str, Any]) -> str:
    assert body["resourceType"] == "OperationOutcome", body
    return " ".join(str(i.get("diagnostics", "")) for i in body["issue"])


def test_the_same_if_none_exist_under_another_launch_patient_never_returns_the_first_patients(
    stack: Stack, ehr: httpx.Client
) -> None:
    """Defect 12: one app (one token subject) launched for patient A, then for patient B, sends
    the same conditional create; B's token got A's Observation back."""
    a, b = enrolled_patient(stack, ehr), enrolled_patient(stack, ehr)

    def app_for(patient_id: str) -> httpx.Client:
        token = auth.mint_token(
            stack.settings,
            subject="system:phq-app",
            role="system",
            scopes=["patient/*.cruds"],
            lifetime_seconds=300,
            patient_context=patient_id,
        )
        return stack.client(token)

    condition = "code=http://loinc.org|44261-6&date=2026-11-27"
    headers = {**JSON_HEADERS, "If-None-Exist": condition}
    with app_for(a) as app_a, app_for(b) as app_b:
        first = app_a.post("/Observation", json=phq9(a, 12), headers=headers)
        assert first.status_code == 201, first.text
        assert first.json()["subject"]["reference"] == f"Patient/{a}"
        second = app_b.post("/Observation", json=phq9(b, 4), headers=headers)
        assert second.status_code == 201, second.text
        assert second.json()["id"] != first.json()["id"]
        assert second.json()["subject"]["reference"] == f"Patient/{b}"
        # B's app naming A in its criteria does not reach A's Observation either.
        probe = app_b.post(
            "/Observation",
            json=phq9(b, 4),
            headers={**JSON_HEADERS, "If-None-Exist": f"patient={a}&{condition}"},
        )
        assert first.json()["id"] not in probe.text
        assert probe.status_code < 500
        # The first patient's app still gets its own Observation back (a true repeat).
        repeat = app_a.post("/Observation", json=phq9(a, 12), headers=headers)
        assert repeat.status_code == 200 and repeat.json()["id"] == first.json()["id"]


def test_a_conditional_create_match_the_caller_may_not_see_is_not_returned(
    stack: Stack, ehr: httpx.Client
) -> None:
    """Defect 12, by another caller: a clinician on no care team of the patient sends the EHR's
    conditional create; the match is not theirs to see, so it is never their answer."""
    from tests.support.gateway import practitioner_token

    patient_id = enrolled_patient(stack, ehr)
    condition = f"patient={patient_id}&code=http://loinc.org|44261-6&date=2026-11-27"
    headers = {**JSON_HEADERS, "If-None-Exist": condition}
    first = ehr.post("/Observation", json=phq9(patient_id, 9), headers=headers)
    assert first.status_code == 201, first.text
    stranger = practitioner_token(stack.settings, "psychiatrist", "psy-stranger")
    with stack.client(stranger) as outsider:
        response = outsider.post("/Observation", json=phq9(patient_id, 9), headers=headers)
    assert response.status_code in (403, 404, 422), response.text
    assert first.json()["id"] not in response.text


def test_a_handoff_replayed_under_its_identifier_with_another_patient_is_a_conflict(
    ehr: httpx.Client,
) -> None:
    """Defect 13: a second Bundle under the first one's identifier, for another patient, was
    answered as the first and the new patient silently dropped."""
    mrn = uuid.uuid4().hex[:10]
    bundle = discharge_bundle(mrn, labelled=False)
    first = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
    assert first.status_code == 200, first.text
    # The same Bundle again is a retry: the first result.
    again = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
    assert again.status_code == 200 and again.json() == first.json()

    other_mrn = uuid.uuid4().hex[:10]
    replay = copy.deepcopy(bundle)
    for entry in replay["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"][0]["value"] = other_mrn
            entry["resource"]["name"] = [{"family": "Okafor", "given": ["Ada"]}]
    response = ehr.post("/$handoff", json=replay, headers=JSON_HEADERS)
    assert response.status_code == 409, response.text
    assert f"dc-{mrn}" in outcome_diagnostics(response.json())
    found = ehr.get("/Patient", params={"identifier": f"{MRN_SYSTEM}|{other_mrn}"}).json()
    assert found["total"] == 0  # nothing of the refused bundle was written


def test_a_handoff_replayed_under_its_identifier_with_other_content_is_a_conflict(
    ehr: httpx.Client,
) -> None:
    """Defect 13, same patient: another diagnosis under the first Bundle's identifier."""
    mrn = uuid.uuid4().hex[:10]
    bundle = discharge_bundle(mrn, labelled=False)
    assert ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS).status_code == 200
    changed = copy.deepcopy(bundle)
    for entry in changed["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            entry["resource"]["code"]["text"] = "a different diagnosis"
            break
    response = ehr.post("/$handoff", json=changed, headers=JSON_HEADERS)
    assert response.status_code == 409, response.text
    assert f"dc-{mrn}" in outcome_diagnostics(response.json())
    patient = ehr.get("/Patient", params={"identifier": f"{MRN_SYSTEM}|{mrn}"}).json()
    patient_id = patient["entry"][0]["resource"]["id"]
    assert ehr.get("/CarePlan", params={"patient": patient_id}).json()["total"] == 1


def test_a_batch_with_one_invalid_entry_applies_the_others(stack: Stack, ehr: httpx.Client) -> None:
    """Defect 16b: in a batch each entry is its own; the bad ones get their own 4xx response with
    an OperationOutcome, the good ones succeed (test-matrix B7)."""
    patient_id = enrolled_patient(stack, ehr)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": phq9(patient_id, 7),
            },
            {"request": {"method": "DELETE", "url": f"Patient/{patient_id}"}},
            {"resource": {"resourceType": "Goal"}},  # no request at all
            {"request": {"method": "POST", "url": "Goal"}},  # a write without a resource
            {
                "request": {"method": "POST", "url": "Goal"},
                "resource": {"resourceType": "Goal", "lifecycleStatus": 7},
            },
            {"request": {"method": "GET", "url": f"Observation?patient={patient_id}"}},
        ],
    }
    response = ehr.post("", json=bundle, headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "batch-response" and len(body["entry"]) == 6
    statuses = [int(e["response"]["status"][:3]) for e in body["entry"]]
    assert statuses[0] == 201
    for index in (1, 2, 3, 4):
        assert 400 <= statuses[index] < 500, body["entry"][index]
        assert body["entry"][index]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert statuses[5] == 200
    assert ehr.get("/Observation", params={"patient": patient_id}).json()["total"] == 1


def test_a_transaction_with_one_invalid_entry_stays_all_or_nothing(
    stack: Stack, ehr: httpx.Client
) -> None:
    """Test-matrix B6 beside 16b: the same bad entry in a transaction refuses the whole of it."""
    patient_id = enrolled_patient(stack, ehr)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": phq9(patient_id, 7),
            },
            {"request": {"method": "DELETE", "url": f"Patient/{patient_id}"}},
        ],
    }
    response = ehr.post("", json=bundle, headers=JSON_HEADERS)
    assert 400 <= response.status_code < 500
    assert "Bundle.entry[1]" in json.dumps(response.json())
    assert ehr.get("/Observation", params={"patient": patient_id}).json()["total"] == 0
