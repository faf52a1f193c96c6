"""Every mutating careplan RPC takes a `request_id` (kit.requests, issue 11): a repeat of the same
request returns the first result and writes nothing more; the same id with a different request is
INVALID_ARGUMENT, reason REQUEST_ID_REUSED. One case per RPC, on SQLite and PostgreSQL; the
concurrent forms are in test_idempotency.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import grpc
import pytest
from google.type import date_pb2

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.settings import Settings
from tests.integration.test_idempotency import reason_of
from tests.support import harness
from tests.support.medications import medication_request, medication_statement
from tests.support.nutrition import nutrition_order
from tests.support.plans import iop_plan, new_patient_id, phq9, phq9_goal
from tests.support.utilization import authorization_example, coverage_example

#: What a case sends: variant "a" (the first request, then its repeat) or "b" (another request
#: under the same id); returns what identifies the result (id and version).
Send = Callable[[str], tuple[str, int]]


@dataclass
class World:
    stub: pb_grpc.CarePlanServiceStub
    settings: Settings
    patient_id: str
    team_id: str

    def md(self, role: str = "psychiatrist", practitioner: str = "psy-1") -> Any:
        return harness.metadata(self.settings, role=role, practitioner=practitioner)

    def plan(self) -> pb.CarePlan:
        return self.stub.CreateCarePlan(
            pb.CreateCarePlanRequest(
                request_id=str(uuid.uuid4()),
                fhir_json=json.dumps(iop_plan(self.patient_id, self.team_id)),
            ),
            metadata=self.md(),
        ).care_plan

    def episode(self) -> pb.EpisodeOfCare:
        return self.stub.CreateEpisode(
            pb.CreateEpisodeRequest(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(_episode(self.patient_id))
            ),
            metadata=self.md(),
        ).episode

    def admitted(self) -> pb.EpisodeOfCare:
        stay = self.episode()
        return self.stub.AdmitPatient(
            pb.AdmitPatientRequest(id=stay.id, expected_version=stay.version, reason="intake"),
            metadata=self.md(),
        ).episode


def _episode(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "status": "planned",
        "patient": {"reference": f"Patient/{patient_id}"},
    }


def _key(message: Any) -> tuple[str, int]:
    return str(message.id), int(message.version)


def create_care_plan(w: World, rid: str) -> Send:
    def send(v: str) -> tuple[str, int]:
        body = iop_plan(w.patient_id, w.team_id) | {"title": f"plan {v}"}
        return _key(
            w.stub.CreateCarePlan(
                pb.CreateCarePlanRequest(request_id=rid, fhir_json=json.dumps(body)),
                metadata=w.md(),
            ).care_plan
        )

    return send


def draft_care_plan(w: World, rid: str) -> Send:
    def send(v: str) -> tuple[str, int]:
        request = pb.DraftCarePlanRequest(
            request_id=rid,
            patient_id=w.patient_id,
            diagnosis_code="F10.20",
            care_team_id=w.team_id if v == "a" else "",
        )
        return _key(w.stub.DraftCarePlan(request, metadata=w.md()).care_plan)

    return send


def update_care_plan(w: World, rid: str) -> Send:
    plan = w.plan()

    def send(v: str) -> tuple[str, int]:
        body = json.loads(plan.fhir_json) | {"title": f"plan {v}"}
        return _key(
            w.stub.UpdateCarePlan(
                pb.UpdateCarePlanRequest(
                    request_id=rid,
                    id=plan.id,
                    expected_version=plan.version,
                    fhir_json=json.dumps(body),
                ),
                metadata=w.md(),
            ).care_plan
        )

    return send


def record_plan_review(w: World, rid: str) -> Send:
    plan = w.plan()

    def send(v: str) -> tuple[str, int]:
        return _key(
            w.stub.RecordPlanReview(
                pb.RecordPlanReviewRequest(
                    request_id=rid,
                    id=plan.id,
                    expected_version=plan.version,
                    outcome="continue" if v == "a" else "revise",
                    summary="Stable.",
                    attestations=[
                        pb.ReviewAttestation(
                            practitioner_id="psy-1", role="psychiatrist", agrees=True
                        )
                    ],
                    reviewed_on=date_pb2.Date(year=2026, month=11, day=20),
                ),
                metadata=w.md(),
            ).care_plan
        )

    return send


def create_care_team(w: World, rid: str) -> Send:
    def send(v: str) -> tuple[str, int]:
        from tests.support.plans import care_team

        body = care_team(w.patient_id) | {"name": f"team {v}"}
        return _key(
            w.stub.CreateCareTeam(
                pb.CreateCareTeamRequest(request_id=rid, fhir_json=json.dumps(body)),
                metadata=w.md("case-manager", "cm-1"),
            ).care_team
        )

    return send


def update_care_team(w: World, rid: str) -> Send:
    def send(v: str) -> tuple[str, int]:
        request = pb.UpdateCareTeamRequest(
            request_id=rid,
            id=w.team_id,
            expected_version=1,
            fhir_json=json.dumps({"resourceType": "CareTeam", "name": f"team {v}"}),
        )
        request.update_mask.paths.append("name")
        return _key(w.stub.UpdateCareTeam(request, metadata=w.md("case-manager", "cm-1")).care_team)

    return send


def create_goal(w: World, rid: str) -> Send:
    def send(v: str) -> tuple[str, int]:
        body = phq9_goal(w.patient_id) | {"description": {"text": f"goal {v}"}}
        return _key(
            w.stub.CreateGoal(
                pb.CreateGoalRequest(request_id=rid, fhir_json=json.dumps(body)), metadata=w.md()
            ).goal
        )

    return send


def record_measure(w: World, rid: str) -> Send:
    def send(v: str) -> tuple[str, int]:
        body = phq9(w.patient_id, 8 if v == "a" else 9)
        recorded = w.stub.RecordMeasure(
            pb.RecordMeasureRequest(request_id=rid, fhir_json=json.dumps(body)), metadata=w.md()
        )
        return recorded.observation_id, 1

    return send


def create_episode(w: World, rid: str) -> Send:
    def send(v: str) -> tuple[str, int]:
        body = _episode(w.patient_id) | {"status": "planned" if v == "a" else "waitlist"}
        return _key(
            w.stub.CreateEpisode(
                pb.CreateEpisodeRequest(request_id=rid, fhir_json=json.dumps(body)),
                metadata=w.md(),
            ).episode
        )

    return send


def admit_patient(w: World, rid: str) -> Send:
    stay = w.episode()

    def send(v: str) -> tuple[str, int]:
        return _key(
            w.stub.AdmitPatient(
                pb.AdmitPatientRequest(
                    request_id=rid, id=stay.id, expected_version=stay.version, reason=v
                ),
                metadata=w.md(),
            ).episode
        )

    return send


def change_level_of_care(w: World, rid: str) -> Send:
    stay = w.admitted()

    def send(v: str) -> tuple[str, int]:
        return _key(
            w.stub.ChangeLevelOfCare(
                pb.ChangeLevelOfCareRequest(
                    request_id=rid,
                    id=stay.id,
                    expected_version=stay.version,
                    clinical_level="php" if v == "a" else "residential",
                ),
                metadata=w.md(),
            ).episode
        )

    return send


def discharge_patient(w: World, rid: str) -> Send:
    stay = w.admitted()

    def send(v: str) -> tuple[str, int]:
        return _key(
            w.stub.DischargePatient(
                pb.DischargePatientRequest(
                    request_id=rid, id=stay.id, expected_version=stay.version, reason=v
                ),
                metadata=w.md(),
            ).episode
        )

    return send


def register_patient(w: World, rid: str) -> Send:
    mrn = uuid.uuid4().hex

    def send(v: str) -> tuple[str, int]:
        body = {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": mrn}],
            "name": [{"family": "Chalmers" if v == "a" else "Other"}],
        }
        return _key(
            w.stub.RegisterPatient(
                pb.RegisterPatientRequest(request_id=rid, fhir_json=json.dumps(body)),
                metadata=w.md("admin", "adm-1"),
            ).patient
        )

    return send


def register_practitioner(w: World, rid: str) -> Send:
    def send(v: str) -> tuple[str, int]:
        body = {"resourceType": "Practitioner", "name": [{"family": f"Doctor {v}"}]}
        return _key(
            w.stub.RegisterPractitioner(
                pb.RegisterPractitionerRequest(request_id=rid, fhir_json=json.dumps(body)),
                metadata=w.md("admin", "adm-1"),
            ).practitioner
        )

    return send


def register_practitioner_role(w: World, rid: str) -> Send:
    practitioner = register_practitioner(w, str(uuid.uuid4()))("a")[0]

    def send(v: str) -> tuple[str, int]:
        body = {
            "resourceType": "PractitionerRole",
            "active": v == "a",
            "practitioner": {"reference": f"Practitioner/{practitioner}"},
        }
        return _key(
            w.stub.RegisterPractitionerRole(
                pb.RegisterPractitionerRoleRequest(request_id=rid, fhir_json=json.dumps(body)),
                metadata=w.md("admin", "adm-1"),
            ).practitioner_role
        )

    return send


def _create(
    rpc: str, field: str, body: Callable[[World, str], dict[str, Any]], who: tuple[str, str]
) -> Callable[[World, str], Send]:
    """A case for a create RPC taking `request_id` and `fhir_json` (`body(world, variant)`)."""

    def case(w: World, rid: str) -> Send:
        def send(v: str) -> tuple[str, int]:
            request = getattr(pb, f"{rpc}Request")(request_id=rid, fhir_json=json.dumps(body(w, v)))
            return _key(getattr(getattr(w.stub, rpc)(request, metadata=w.md(*who)), field))

        return send

    return case


def _noted(resource: dict[str, Any], v: str) -> dict[str, Any]:
    return resource | {"note": [{"text": f"variant {v}"}]}


def _relative(w: World, v: str) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "patient": {"reference": f"Patient/{w.patient_id}"},
        "relationship": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}
                ]
            }
        ],
        "name": [{"family": f"Variant{v.upper()}", "given": ["Dana"]}],
    }


def create_authorization(w: World, rid: str) -> Send:
    stay = w.episode()
    coverage = w.stub.CreateCoverage(
        pb.CreateCoverageRequest(
            request_id=str(uuid.uuid4()), fhir_json=json.dumps(coverage_example(w.patient_id))
        ),
        metadata=w.md(),
    ).coverage

    bodies: dict[str, str] = {}

    def send(v: str) -> tuple[str, int]:
        # Built once per variant: the example carries identifiers of its own.
        if v not in bodies:
            example = authorization_example(
                w.patient_id,
                stay.id,
                coverage.id,
                date(2026, 12, 1),
                date(2027, 1, 31),
                sessions=12 if v == "a" else 20,
            )
            bodies[v] = json.dumps(example)
        return _key(
            w.stub.CreateAuthorization(
                pb.CreateAuthorizationRequest(request_id=rid, fhir_json=bodies[v]),
                metadata=w.md(),
            ).authorization
        )

    return send


def _update_medication(kind: str) -> Callable[[World, str], Send]:
    build = medication_statement if kind == "Statement" else medication_request

    def case(w: World, rid: str) -> Send:
        created = getattr(w.stub, f"CreateMedication{kind}")(
            getattr(pb, f"CreateMedication{kind}Request")(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(build(w.patient_id))
            ),
            metadata=w.md(),
        ).medication

        def send(v: str) -> tuple[str, int]:
            body = _noted(json.loads(created.fhir_json), v)
            request = getattr(pb, f"UpdateMedication{kind}Request")(
                request_id=rid,
                id=created.id,
                expected_version=created.version,
                fhir_json=json.dumps(body),
                reason=f"dose reviewed {v}",
            )
            return _key(
                getattr(w.stub, f"UpdateMedication{kind}")(request, metadata=w.md()).medication
            )

        return send

    return case


def update_nutrition_order(w: World, rid: str) -> Send:
    dietitian = ("dietitian", "diet-1")
    created = w.stub.CreateNutritionOrder(
        pb.CreateNutritionOrderRequest(
            request_id=str(uuid.uuid4()), fhir_json=json.dumps(nutrition_order(w.patient_id))
        ),
        metadata=w.md(*dietitian),
    ).nutrition_order

    def send(v: str) -> tuple[str, int]:
        body = _noted(json.loads(created.fhir_json), v)
        request = pb.UpdateNutritionOrderRequest(
            request_id=rid,
            id=created.id,
            expected_version=created.version,
            fhir_json=json.dumps(body),
            reason=f"meal plan {v}",
        )
        return _key(w.stub.UpdateNutritionOrder(request, metadata=w.md(*dietitian)).nutrition_order)

    return send


def resolve_reconciliation_item(w: World, rid: str) -> Send:
    inbound = medication_statement(w.patient_id) | {"id": "inbound0"}
    body = iop_plan(w.patient_id, w.team_id) | {
        "contained": [inbound],
        "supportingInfo": [{"reference": "#inbound0"}],
    }
    w.stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(body)),
        metadata=w.md(),
    )
    (item,) = w.stub.GetMedicationReconciliation(
        pb.GetMedicationReconciliationRequest(patient_id=w.patient_id), metadata=w.md()
    ).items

    def send(v: str) -> tuple[str, int]:
        request = pb.ResolveReconciliationItemRequest(
            request_id=rid,
            patient_id=w.patient_id,
            id=item.id,
            decision="continue" if v == "a" else "stop",
            reason=f"reconciled {v}",
        )
        resolved = w.stub.ResolveReconciliationItem(request, metadata=w.md())
        return resolved.item.id, int(resolved.medication.version)

    return send


CASES: dict[str, Callable[[World, str], Send]] = {
    "CreateCarePlan": create_care_plan,
    "DraftCarePlan": draft_care_plan,
    "UpdateCarePlan": update_care_plan,
    "RecordPlanReview": record_plan_review,
    "CreateCareTeam": create_care_team,
    "UpdateCareTeam": update_care_team,
    "CreateGoal": create_goal,
    "RecordMeasure": record_measure,
    "CreateEpisode": create_episode,
    "AdmitPatient": admit_patient,
    "ChangeLevelOfCare": change_level_of_care,
    "DischargePatient": discharge_patient,
    "RegisterPatient": register_patient,
    "RegisterPractitioner": register_practitioner,
    "RegisterPractitionerRole": register_practitioner_role,
    "CreateMedicationStatement": _create(
        "CreateMedicationStatement",
        "medication",
        lambda w, v: _noted(medication_statement(w.patient_id), v),
        ("psychiatrist", "psy-1"),
    ),
    "CreateMedicationRequest": _create(
        "CreateMedicationRequest",
        "medication",
        lambda w, v: _noted(medication_request(w.patient_id), v),
        ("psychiatrist", "psy-1"),
    ),
    "UpdateMedicationStatement": _update_medication("Statement"),
    "UpdateMedicationRequest": _update_medication("Request"),
    "ResolveReconciliationItem": resolve_reconciliation_item,
    "CreateNutritionOrder": _create(
        "CreateNutritionOrder",
        "nutrition_order",
        lambda w, v: _noted(nutrition_order(w.patient_id), v),
        ("dietitian", "diet-1"),
    ),
    "UpdateNutritionOrder": update_nutrition_order,
    "CreateRelatedPerson": _create(
        "CreateRelatedPerson", "related_person", _relative, ("therapist", "th-1")
    ),
    "CreateCoverage": _create(
        "CreateCoverage",
        "coverage",
        lambda w, v: coverage_example(w.patient_id) | {"subscriberId": f"M-{v}"},
        ("case-manager", "cm-1"),
    ),
    "CreateAuthorization": create_authorization,
}


def test_the_cases_cover_every_rpc_that_takes_a_request_id() -> None:
    service = pb.DESCRIPTOR.services_by_name["CarePlanService"]
    takes_one = {m.name for m in service.methods if "request_id" in m.input_type.fields_by_name}
    assert takes_one == set(CASES)


@pytest.mark.parametrize("rpc", sorted(CASES))
def test_a_repeat_gets_the_first_result_and_another_request_under_the_id_is_refused(
    rpc: str, stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient_id = new_patient_id()
    world = World(stub, settings, patient_id, harness.enrol_over_grpc(stub, settings, patient_id))
    send = CASES[rpc](world, str(uuid.uuid4()))
    first = send("a")
    assert send("a") == first  # a retry: the first result, nothing written again
    with pytest.raises(grpc.RpcError) as refused:
        send("b")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "REQUEST_ID_REUSED"
    assert send("a") == first  # the refusal changed nothing
