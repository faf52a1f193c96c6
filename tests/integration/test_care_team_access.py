"""The care team decides who sees a patient (issue 6, items 3 and 7), on both databases."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from sqlalchemy import select

from iopcare.careplan import store
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import auth
from iopcare.kit.rpc import bearer
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import care_team, iop_plan_json, new_patient_id


def _as(settings: Settings, role: str, practitioner: str) -> list[tuple[str, str]]:
    return harness.metadata(settings, role=role, practitioner=practitioner)


def _plan(stub: pb_grpc.CarePlanServiceStub, settings: Settings) -> pb.CarePlan:
    return stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=str(uuid.uuid4()), fhir_json=harness.enrolled_plan_json(stub, settings)
        ),
        metadata=_as(settings, "psychiatrist", "psy-1"),
    ).care_plan


def _code(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return str(exc.code().name)
    return "OK"


def test_team_members_see_the_plan_and_outsiders_are_refused_and_audited(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    plan = _plan(stub, settings)
    request = pb.GetCarePlanRequest(id=plan.id)
    assert (
        _code(lambda: stub.GetCarePlan(request, metadata=_as(settings, "dietitian", "diet-1")))
        == "OK"
    )
    assert (
        _code(lambda: stub.GetCarePlan(request, metadata=_as(settings, "dietitian", "diet-9")))
        == "PERMISSION_DENIED"
    )
    assert (
        _code(lambda: stub.GetCarePlan(request, metadata=_as(settings, "admin", "adm-1"))) == "OK"
    )
    emergency = bearer(
        auth.mint_token(
            settings,
            subject="practitioner:er-1",
            role="physician",
            practitioner_id="er-1",
            break_glass=True,
        )
    )
    assert _code(lambda: stub.GetCarePlan(request, metadata=emergency)) == "OK"
    with careplan.db.read() as conn:
        rows = conn.execute(
            select(store.audit_log.c.principal, store.audit_log.c.outcome, store.audit_log.c.detail)
            .where(store.audit_log.c.resource == f"CarePlan/{plan.id}")
            .where(store.audit_log.c.action == "read")
            .order_by(store.audit_log.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("practitioner:diet-1", "success", "care-team"),
        ("practitioner:diet-9", "denied", "NOT_ON_CARE_TEAM"),
        ("practitioner:adm-1", "success", "role:admin"),
        ("practitioner:er-1", "success", "break-glass"),
    ]


def test_only_team_managers_change_teams_and_a_removed_member_loses_access(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient = new_patient_id()
    body = json.dumps(care_team(patient))
    # cm-1 is the case manager the program assigned: the therapist is not, and may not enrol.
    harness.assign_case_manager(stub, settings, patient, "cm-1")
    denied = _code(
        lambda: stub.CreateCareTeam(
            pb.CreateCareTeamRequest(request_id="t1", fhir_json=body),
            metadata=_as(settings, "therapist", "th-1"),
        )
    )
    assert denied == "PERMISSION_DENIED"
    team = stub.CreateCareTeam(
        pb.CreateCareTeamRequest(request_id="t1", fhir_json=body),
        metadata=_as(settings, "case-manager", "cm-1"),
    ).care_team
    plan = stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id="p1", fhir_json=iop_plan_json(patient, team.id)),
        metadata=_as(settings, "therapist", "th-1"),
    ).care_plan
    # The psychiatrist, as team lead, takes the dietitian off the team.
    revised = json.loads(team.fhir_json)
    revised["participant"] = [
        p for p in revised["participant"] if p["member"]["reference"] != "Practitioner/diet-1"
    ]
    updated = stub.UpdateCareTeam(
        pb.UpdateCareTeamRequest(
            id=team.id, expected_version=1, fhir_json=json.dumps(revised), reason="handed over"
        ),
        metadata=_as(settings, "psychiatrist", "psy-1"),
    ).care_team
    assert updated.version == 2
    get = pb.GetCarePlanRequest(id=plan.id)
    assert (
        _code(lambda: stub.GetCarePlan(get, metadata=_as(settings, "dietitian", "diet-1")))
        == "PERMISSION_DENIED"
    )
    # A therapist on the team may not change who is on it.
    assert (
        _code(
            lambda: stub.UpdateCareTeam(
                pb.UpdateCareTeamRequest(id=team.id, expected_version=2, fhir_json=body),
                metadata=_as(settings, "therapist", "th-1"),
            )
        )
        == "PERMISSION_DENIED"
    )
    # Suspending the team suspends everyone's access.
    revised["status"] = "suspended"
    stub.UpdateCareTeam(
        pb.UpdateCareTeamRequest(id=team.id, expected_version=2, fhir_json=json.dumps(revised)),
        metadata=_as(settings, "case-manager", "cm-1"),
    )
    assert (
        _code(lambda: stub.GetCarePlan(get, metadata=_as(settings, "psychiatrist", "psy-1")))
        == "PERMISSION_DENIED"
    )


def test_membership_follows_the_period_of_each_participant(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient = new_patient_id()
    team_body = care_team(patient)
    for participant in team_body["participant"]:
        if participant["member"]["reference"] == "Practitioner/th-1":
            participant["period"] = {"start": "2020-01-01", "end": "2020-12-31"}
    harness.assign_case_manager(stub, settings, patient, "cm-1")
    team = stub.CreateCareTeam(
        pb.CreateCareTeamRequest(request_id="t", fhir_json=json.dumps(team_body)),
        metadata=_as(settings, "case-manager", "cm-1"),
    ).care_team
    plan_json = iop_plan_json(patient, team.id)
    assert (
        _code(
            lambda: stub.CreateCarePlan(
                pb.CreateCarePlanRequest(request_id="p", fhir_json=plan_json),
                metadata=_as(settings, "therapist", "th-1"),
            )
        )
        == "PERMISSION_DENIED"
    )


def test_a_plan_may_only_name_a_team_of_its_own_patient(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient, other = new_patient_id(), new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient)
    other_team = harness.enrol_over_grpc(stub, settings, other)
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateCarePlan(
            pb.CreateCarePlanRequest(request_id="x", fhir_json=iop_plan_json(patient, other_team)),
            metadata=_as(settings, "psychiatrist", "psy-1"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
