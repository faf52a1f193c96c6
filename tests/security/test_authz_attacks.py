"""Attacks on who may do what (issue 10, defects 4, 5, 15 and the token hardening items), played
over gRPC against the real careplan and notes services on the session's broker.

Each test is the attack as an outsider would try it, then (where it matters) the legitimate path
that must keep working, so a fix that simply refuses everything does not pass.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select

from iopcare.careplan import store
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import auth
from iopcare.kit.rpc import bearer
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.plans import care_team, iop_plan_json, new_patient_id, phq9_goal

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


def _ehr(settings: Settings, scopes: list[str], patient: str | None = None, **kw: Any) -> Any:
    """An outside EHR's backend token (role `system`), optionally with a launch patient."""
    return bearer(
        auth.mint_token(
            settings,
            subject="system:ehr-a",
            role="system",
            scopes=scopes,
            patient_context=patient,
            lifetime_seconds=300,
            **kw,
        )
    )


def _plan_for(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, patient_id: str
) -> pb.CarePlan:
    team_id = harness.enrol_over_grpc(stub, settings, patient_id)
    return stub.CreateCarePlan(
        pb.CreateCarePlanRequest(
            request_id=str(uuid.uuid4()), fhir_json=iop_plan_json(patient_id, team_id)
        ),
        metadata=harness.metadata(settings),
    ).care_plan


def _audit_rows(careplan: ServiceRuntime, **where: str) -> list[Any]:
    table = store.audit_log
    query = select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with careplan.db.read() as conn:
        return list(conn.execute(query.order_by(table.c.id)).all())


# -- defect 5: scopes and launch context are enforced by the services -------------------------


def test_a_patient_scoped_token_cannot_read_another_patients_plan_over_grpc(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    patient_a, patient_b = new_patient_id(), new_patient_id()
    plan_a, plan_b = _plan_for(stub, settings, patient_a), _plan_for(stub, settings, patient_b)
    token_a = _ehr(settings, ["patient/*.rs"], patient=patient_a)

    assert _refusal(
        lambda: stub.GetCarePlan(pb.GetCarePlanRequest(id=plan_b.id), metadata=token_a)
    ) == ("PERMISSION_DENIED", "OUTSIDE_LAUNCH_CONTEXT")
    assert _refusal(
        lambda: stub.GetPatientPlan(
            pb.GetPatientPlanRequest(patient_id=patient_b), metadata=token_a
        )
    ) == ("PERMISSION_DENIED", "OUTSIDE_LAUNCH_CONTEXT")
    # The launch patient's own plan is still served to the same token.
    own = stub.GetCarePlan(pb.GetCarePlanRequest(id=plan_a.id), metadata=token_a)
    assert own.care_plan.id == plan_a.id
    view = stub.GetPatientPlan(pb.GetPatientPlanRequest(patient_id=patient_a), metadata=token_a)
    assert view.care_plan.id == plan_a.id
    refused = _audit_rows(careplan, resource=f"CarePlan/{plan_b.id}", outcome="denied")
    assert [r.detail for r in refused] == ["OUTSIDE_LAUNCH_CONTEXT"]


def test_a_patient_scope_without_a_launch_patient_opens_no_patient(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    plan = _plan_for(stub, settings, new_patient_id())
    no_context = _ehr(settings, ["patient/*.rs"])
    code, _ = _refusal(
        lambda: stub.GetCarePlan(pb.GetCarePlanRequest(id=plan.id), metadata=no_context)
    )
    assert code == "PERMISSION_DENIED"


def test_a_read_only_system_token_cannot_write_through_grpc(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    patient_id = new_patient_id()
    _plan_for(stub, settings, patient_id)
    for read_only in (["system/*.rs"], ["system/*.read"], ["system/Goal.rs", "system/CarePlan.*"]):
        request = pb.CreateGoalRequest(
            request_id=str(uuid.uuid4()), fhir_json=json.dumps(phq9_goal(patient_id))
        )
        assert _refusal(
            lambda request=request, s=read_only: stub.CreateGoal(  # type: ignore[misc]
                request, metadata=_ehr(settings, s)
            )
        ) == ("PERMISSION_DENIED", "SCOPE_NOT_GRANTED"), read_only
    # v1 and v2 write scopes both allow it.
    for writer in (["system/Goal.write"], ["system/Goal.c"], ["system/*.cruds"]):
        goal = stub.CreateGoal(
            pb.CreateGoalRequest(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(phq9_goal(patient_id))
            ),
            metadata=_ehr(settings, writer),
        ).goal
        assert goal.patient_id == patient_id
    assert _audit_rows(careplan, action="create", resource="Goal", detail="SCOPE_NOT_GRANTED")


def test_an_ehr_token_without_scopes_is_refused_and_system_is_not_a_team_manager(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient_id = new_patient_id()
    plan = _plan_for(stub, settings, patient_id)
    unscoped = bearer(auth.mint_token(settings, subject="system:ehr-a", role="system"))
    assert _refusal(
        lambda: stub.GetCarePlan(pb.GetCarePlanRequest(id=plan.id), metadata=unscoped)
    ) == ("PERMISSION_DENIED", "SCOPE_NOT_GRANTED")
    # Even with every scope, an outside EHR cannot make itself (or anyone) a team member.
    request = pb.CreateCareTeamRequest(
        request_id=str(uuid.uuid4()), fhir_json=json.dumps(care_team(new_patient_id()))
    )
    code, _ = _refusal(
        lambda: stub.CreateCareTeam(request, metadata=_ehr(settings, ["system/*.cruds"]))
    )
    assert code == "PERMISSION_DENIED"


def test_scopes_and_launch_context_hold_in_every_service_not_only_careplan(
    stub: pb_grpc.CarePlanServiceStub,
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
) -> None:
    other = new_patient_id()
    token = _ehr(settings, ["patient/*.cruds"], patient=other)
    assert _refusal(
        lambda: notes.ListThread(nt.ListThreadRequest(patient_id=patient), metadata=token)
    ) == ("PERMISSION_DENIED", "OUTSIDE_LAUNCH_CONTEXT")
    read_only = _ehr(settings, ["system/*.rs"])
    request = nt.PostMessageRequest(
        request_id=str(uuid.uuid4()), patient_id=patient, text="hello from outside"
    )
    assert _refusal(lambda: notes.PostMessage(request, metadata=read_only)) == (
        "PERMISSION_DENIED",
        "SCOPE_NOT_GRANTED",
    )


def test_a_patient_scoped_token_cannot_link_identifiers_to_another_patient(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    admin = harness.metadata(settings, role="admin", practitioner="adm-1")

    def patient_json(*mrns: str) -> str:
        return json.dumps(
            {
                "resourceType": "Patient",
                "identifier": [
                    {"system": "urn:oid:2.16.840.1.113883.19.5", "value": m} for m in mrns
                ],
            }
        )

    mrn_a, mrn_b = uuid.uuid4().hex, uuid.uuid4().hex
    patient_a = stub.RegisterPatient(
        pb.RegisterPatientRequest(request_id=str(uuid.uuid4()), fhir_json=patient_json(mrn_a)),
        metadata=admin,
    ).patient
    stub.RegisterPatient(
        pb.RegisterPatientRequest(request_id=str(uuid.uuid4()), fhir_json=patient_json(mrn_b)),
        metadata=admin,
    )
    token = _ehr(settings, ["patient/*.cruds"], patient=patient_a.id)
    for body in (patient_json(mrn_b, "attacker-mrn"), patient_json(uuid.uuid4().hex)):
        request = pb.RegisterPatientRequest(request_id=str(uuid.uuid4()), fhir_json=body)
        assert _refusal(lambda request=request: stub.RegisterPatient(request, metadata=token)) == (
            "PERMISSION_DENIED",
            "OUTSIDE_LAUNCH_CONTEXT",
        )
    # Its own patient it may still register identifiers for.
    own = pb.RegisterPatientRequest(
        request_id=str(uuid.uuid4()), fhir_json=patient_json(mrn_a, uuid.uuid4().hex)
    )
    assert stub.RegisterPatient(own, metadata=token).patient.id == patient_a.id


# -- defect 4: enrolling a care team needs a program assignment --------------------------------


def _episode(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, patient_id: str, case_manager: str
) -> pb.EpisodeOfCare:
    return harness.assign_case_manager(stub, settings, patient_id, case_manager)


def test_a_case_manager_cannot_enrol_a_team_for_a_patient_they_are_not_assigned(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    stranger = new_patient_id()
    cm9 = harness.metadata(settings, role="case-manager", practitioner="cm-9")
    team = care_team(stranger)
    team["participant"].append({"member": {"reference": "Practitioner/cm-9"}})
    request = pb.CreateCareTeamRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(team))
    assert _refusal(lambda: stub.CreateCareTeam(request, metadata=cm9)) == (
        "PERMISSION_DENIED",
        "NO_PROGRAM_ASSIGNMENT",
    )
    # ... and so cannot read the patient's plan afterwards either.
    code, _ = _refusal(
        lambda: stub.ListCarePlans(pb.ListCarePlansRequest(patient_id=stranger), metadata=cm9)
    )
    assert code == "PERMISSION_DENIED"
    refused = _audit_rows(careplan, action="create", resource="CareTeam", outcome="denied")
    assert [r.detail for r in refused] == ["NO_PROGRAM_ASSIGNMENT"]
    assert [r.patient_id for r in refused] == [stranger]

    # The legitimate path: the program assigns cm-9 (an episode naming them as care manager),
    # then cm-9 enrols the first team, and that enrolment is audited with its basis.
    _episode(stub, settings, stranger, "cm-9")
    created = stub.CreateCareTeam(request, metadata=cm9).care_team
    assert created.patient_id == stranger
    enrolled = _audit_rows(careplan, action="create", resource=f"CareTeam/{created.id}")
    assert [r.detail for r in enrolled] == ["team-enrolment:program-assignment"]


def test_later_teams_only_by_a_member_of_the_active_team_or_an_admin(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient_id = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient_id)  # cm-1's team, through cm-1's episode
    # Another case manager, assigned to the patient later, is not on the active team.
    _episode(stub, settings, patient_id, "cm-2")
    second = pb.CreateCareTeamRequest(
        request_id=str(uuid.uuid4()), fhir_json=json.dumps(care_team(patient_id))
    )
    cm2 = harness.metadata(settings, role="case-manager", practitioner="cm-2")
    assert _refusal(lambda: stub.CreateCareTeam(second, metadata=cm2)) == (
        "PERMISSION_DENIED",
        "NOT_ON_ACTIVE_TEAM",
    )
    # A therapist on the team is a member but does not manage teams.
    th1 = harness.metadata(settings, role="therapist", practitioner="th-1")
    assert _refusal(lambda: stub.CreateCareTeam(second, metadata=th1))[0] == "PERMISSION_DENIED"
    # The team's own case manager, and an administrator, may.
    cm1 = harness.metadata(settings, role="case-manager", practitioner="cm-1")
    assert stub.CreateCareTeam(second, metadata=cm1).care_team.patient_id == patient_id
    admin = harness.metadata(settings, role="admin", practitioner="adm-1")
    third = pb.CreateCareTeamRequest(
        request_id=str(uuid.uuid4()), fhir_json=json.dumps(care_team(patient_id))
    )
    assert stub.CreateCareTeam(third, metadata=admin).care_team.patient_id == patient_id


def test_a_case_manager_cannot_assign_themselves_through_an_episode(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    stranger = new_patient_id()
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "planned",
        "patient": {"reference": f"Patient/{stranger}"},
        "careManager": {"reference": "Practitioner/cm-9"},
    }
    request = pb.CreateEpisodeRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(episode))
    cm9 = harness.metadata(settings, role="case-manager", practitioner="cm-9")
    assert _refusal(lambda: stub.CreateEpisode(request, metadata=cm9))[0] == "PERMISSION_DENIED"


# -- defect 15: no patient existence oracle over gRPC ------------------------------------------


def test_find_patient_answers_a_known_and_an_unknown_mrn_alike_to_an_outsider(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    mrn = uuid.uuid4().hex
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": mrn}],
    }
    registered = stub.RegisterPatient(
        pb.RegisterPatientRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(patient)),
        metadata=harness.metadata(settings, role="admin", practitioner="adm-1"),
    ).patient
    outsider = harness.metadata(settings, role="therapist", practitioner="th-9")
    known = _refusal(
        lambda: stub.FindPatient(
            pb.FindPatientRequest(system="urn:oid:2.16.840.1.113883.19.5", value=mrn),
            metadata=outsider,
        )
    )
    unknown = _refusal(
        lambda: stub.FindPatient(
            pb.FindPatientRequest(system="urn:oid:2.16.840.1.113883.19.5", value="no-such-mrn"),
            metadata=outsider,
        )
    )
    assert known == unknown == ("NOT_FOUND", "NOT_FOUND")
    # The refusal of the known one is still audited as a refusal (for review), not as absence.
    denied = _audit_rows(careplan, resource=f"Patient/{registered.id}", outcome="denied")
    assert [r.principal for r in denied] == ["practitioner:th-9"]


# -- hardening: token lifetime and audited refusals -------------------------------------------


def test_grpc_refuses_a_ten_year_token_and_audits_every_refused_token(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, careplan: ServiceRuntime
) -> None:
    patient_id = new_patient_id()
    plan = _plan_for(stub, settings, patient_id)
    before = _count_refused_tokens(careplan)
    ten_years = auth.mint_token(
        settings,
        subject="practitioner:psy-1",
        role="psychiatrist",
        practitioner_id="psy-1",
        lifetime_seconds=10 * 365 * 24 * 3600,
    )
    request = pb.GetCarePlanRequest(id=plan.id)
    assert _refusal(lambda: stub.GetCarePlan(request, metadata=bearer(ten_years))) == (
        "UNAUTHENTICATED",
        "TOKEN_LIFETIME",
    )
    assert _refusal(lambda: stub.GetCarePlan(request, metadata=bearer("not.a.jwt")))[0] == (
        "UNAUTHENTICATED"
    )
    assert _refusal(lambda: stub.GetCarePlan(request))[0] == "UNAUTHENTICATED"
    rows = _audit_rows(careplan, outcome="denied", action="authenticate")
    assert len(rows) - before == 3
    for row in rows[before:]:
        # Nothing of the token is kept: not its text, and no subject a forger could choose.
        assert row.principal == "unauthenticated"
        assert ten_years not in json.dumps([str(v) for v in row])
        assert row.resource == "/iopcare.careplan.v1.CarePlanService/GetCarePlan"
        assert row.patient_id is None
    # A token within the limit still works.
    assert stub.GetCarePlan(request, metadata=harness.metadata(settings)).care_plan.id == plan.id


def _count_refused_tokens(careplan: ServiceRuntime) -> int:
    table = store.audit_log
    with careplan.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(table)
                .where((table.c.action == "authenticate") & (table.c.outcome == "denied"))
            ).scalar_one()
        )
