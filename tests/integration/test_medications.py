"""The psychiatrist's medication list and the reconciliation of inbound medications (issue 12,
part 1), over gRPC on both databases with the real broker: a detox step-down whose inbound
medications are reconciled, the active list in GetPatientPlan, refusals that write nothing, and
the team task once the deadline has passed (the clock injected, no sleeping)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from iopcare.careplan import store
from iopcare.careplan.medications import Medications
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.kit.teams import TeamAccess
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import as_, error_reason, field_violations
from tests.support.plans import new_patient_id

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ETH = ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "ETH")


def statement(
    patient: str,
    rxcui: str,
    display: str,
    dose: float,
    unit: str | None = "mg",
    *,
    system: str = RXNORM,
    local_id: str | None = None,
) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": dose}
    if unit:
        quantity |= {"unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": system, "code": rxcui, "display": display}]
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectivePeriod": {"start": "2026-11-25"},
        "dosage": [
            {
                "text": f"{dose:g} {unit or ''} once daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "route": {"text": "oral"},
                "doseAndRate": [{"doseQuantity": quantity}],
            }
        ],
    }
    if local_id:
        resource["id"] = local_id
    return resource


def buprenorphine(patient: str, **kwargs: Any) -> dict[str, Any]:
    return statement(
        patient, "1010600", "buprenorphine 8 MG / naloxone 2 MG Sublingual Film", 8, **kwargs
    )


def sertraline(patient: str, **kwargs: Any) -> dict[str, Any]:
    return statement(patient, "312940", "sertraline 50 MG Oral Tablet", 50, **kwargs)


def detox_step_down(stub: pb_grpc.CarePlanServiceStub, settings: Settings, patient: str) -> Any:
    """The draft plan of a detox step-down with its inbound medications (the gRPC intake path:
    what `$handoff` sends careplan)."""
    additions = {
        "resourceType": "CarePlan",
        "contained": [
            buprenorphine(patient, local_id="medi0"),
            sertraline(patient, local_id="medi1"),
        ],
        "supportingInfo": [{"reference": "#medi0"}, {"reference": "#medi1"}],
    }
    return stub.DraftCarePlan(
        pb.DraftCarePlanRequest(
            request_id=str(uuid.uuid4()),
            patient_id=patient,
            diagnosis_code="F11.20",
            additions_fhir_json=json.dumps(additions),
        ),
        metadata=harness.metadata(settings),
        timeout=10,
    ).care_plan


def labels_of(fhir_json: str) -> set[tuple[str, str]]:
    return {
        (s["system"], s["code"]) for s in json.loads(fhir_json).get("meta", {}).get("security", [])
    }


def rxcui_of(fhir_json: str) -> str:
    return str(json.loads(fhir_json)["medicationCodeableConcept"]["coding"][0]["code"])


def refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_a_detox_step_down_is_reconciled_by_the_psychiatrist(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, patient: str
) -> None:
    psychiatrist = harness.metadata(settings)
    therapist = harness.metadata(settings, role="therapist", practitioner="th-1")
    plan = detox_step_down(stub, settings, patient)
    found = stub.GetMedicationReconciliation(
        pb.GetMedicationReconciliationRequest(patient_id=patient), metadata=psychiatrist
    )
    assert (found.reconciliation.status, found.reconciliation.unresolved_count) == ("pending", 2)
    assert found.reconciliation.plan_ready
    items = {rxcui_of(i.fhir_json): i for i in found.items}
    assert {i.care_plan_id for i in found.items} == {plan.id}
    # Part 2 follows the medication: the buprenorphine item carries the program's ETH label.
    assert ETH in labels_of(items["1010600"].fhir_json)
    assert ETH not in labels_of(items["312940"].fhir_json)

    def resolve(item: Any, decision: str, who: Any, request_id: str, **extra: Any) -> Any:
        return stub.ResolveReconciliationItem(
            pb.ResolveReconciliationItemRequest(
                request_id=request_id, patient_id=patient, id=item.id, decision=decision, **extra
            ),
            metadata=who,
        )

    # A therapist does not reconcile; nothing is written.
    denied = refused(lambda: resolve(items["312940"], "stop", therapist, "r0", reason="no"))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(denied) == "NOT_A_PRESCRIBER"
    # A stop needs its reason.
    invalid = refused(lambda: resolve(items["312940"], "stop", psychiatrist, "r1"))
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reason" in field_violations(invalid)
    # Another patient's id with this item: not found there.
    other = new_patient_id()
    foreign = refused(
        lambda: stub.ResolveReconciliationItem(
            pb.ResolveReconciliationItemRequest(
                request_id="r2", patient_id=other, id=items["312940"].id, decision="continue"
            ),
            metadata=psychiatrist,
        )
    )
    assert foreign.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
    still = stub.GetMedicationReconciliation(
        pb.GetMedicationReconciliationRequest(patient_id=patient), metadata=psychiatrist
    )
    assert still.reconciliation.unresolved_count == 2
    assert not stub.ListMedicationStatements(
        pb.ListMedicationStatementsRequest(patient_id=patient), metadata=psychiatrist
    ).medications

    # The psychiatrist continues buprenorphine-naloxone and stops sertraline.
    kept = resolve(items["1010600"], "continue", psychiatrist, "r3")
    assert kept.item.decision == "continue" and kept.item.decided_by == "Practitioner/psy-1"
    assert kept.item.HasField("decided_time")
    assert kept.medication.status == "active" and ETH in labels_of(kept.medication.fhir_json)
    again = resolve(items["1010600"], "continue", psychiatrist, "r3")  # a retry: the same
    assert again.medication.id == kept.medication.id
    stopped = resolve(items["312940"], "stop", psychiatrist, "r4", reason="serotonergic, tapered")
    assert stopped.medication.status == "stopped"
    assert stopped.item.reason == "serotonergic, tapered"
    changed_mind = refused(lambda: resolve(items["312940"], "continue", psychiatrist, "r5"))
    assert error_reason(changed_mind) == "ALREADY_RECONCILED"

    listed = stub.ListMedicationStatements(
        pb.ListMedicationStatementsRequest(patient_id=patient), metadata=psychiatrist
    ).medications
    assert sorted(m.status for m in listed) == ["active", "stopped"]

    view = stub.GetPatientPlan(pb.GetPatientPlanRequest(patient_id=patient), metadata=psychiatrist)
    assert [rxcui_of(m.fhir_json) for m in view.active_medications] == ["1010600"]
    assert view.medication_reconciliation.status == "reconciled"
    assert view.medication_reconciliation.plan_ready
    # An administrative identity sees the plan view, not the Part 2 medication.
    admin = harness.metadata(settings, role="admin", practitioner="adm-1")
    assert not stub.GetPatientPlan(
        pb.GetPatientPlanRequest(patient_id=patient), metadata=admin
    ).active_medications
    hidden = refused(
        lambda: stub.GetMedicationStatement(
            pb.GetMedicationStatementRequest(id=kept.medication.id), metadata=admin
        )
    )
    assert error_reason(hidden) == "LABELLED_CONTENT"

    # A change of dose is a new version with its reason; the history keeps both.
    lower = buprenorphine(patient)
    lower["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 4
    updated = stub.UpdateMedicationStatement(
        pb.UpdateMedicationStatementRequest(
            id=kept.medication.id,
            expected_version=1,
            fhir_json=json.dumps(lower),
            reason="taper to 4 mg",
            request_id="u1",
        ),
        metadata=psychiatrist,
    ).medication
    assert updated.version == 2 and ETH in labels_of(updated.fhir_json)
    versions = stub.ListResourceVersions(
        pb.ListResourceVersionsRequest(resource_type="MedicationStatement", id=updated.id),
        metadata=psychiatrist,
    ).versions
    assert [(v.version, v.reason) for v in versions] == [
        (2, "taper to 4 mg"),
        (1, "reconciled: continue"),
    ]


def test_bad_medications_are_refused_and_nothing_is_written(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, patient: str
) -> None:
    psychiatrist = harness.metadata(settings)

    def create(resource: dict[str, Any], who: Any = psychiatrist) -> Any:
        return stub.CreateMedicationStatement(
            pb.CreateMedicationStatementRequest(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(resource)
            ),
            metadata=who,
        )

    unknown = refused(lambda: create(sertraline(patient, system="http://example.org/drugs")))
    assert unknown.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "fhir_json.MedicationStatement.code" in field_violations(unknown)
    unitless = refused(lambda: create(sertraline(patient, unit=None)))
    assert unitless.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(unitless) == [
        "fhir_json.MedicationStatement.dosage.doseAndRate.doseQuantity.unit"
    ]
    therapist = harness.metadata(settings, role="therapist", practitioner="th-1")
    denied = refused(lambda: create(sertraline(patient), therapist))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert not stub.ListMedicationStatements(
        pb.ListMedicationStatementsRequest(patient_id=patient), metadata=psychiatrist
    ).medications
    # The physician prescribes; a request for naltrexone gets the Part 2 label.
    physician = harness.metadata(settings, role="physician", practitioner="doc-1")
    order = sertraline(patient) | {"resourceType": "MedicationRequest", "intent": "order"}
    order["dosageInstruction"] = order.pop("dosage")
    order["authoredOn"] = order.pop("effectivePeriod")["start"]
    order["medicationCodeableConcept"] = {
        "coding": [{"system": RXNORM, "code": "1483744", "display": "naltrexone 50 MG"}]
    }
    created = stub.CreateMedicationRequest(
        pb.CreateMedicationRequestRequest(request_id="mr1", fhir_json=json.dumps(order)),
        metadata=physician,
    ).medication
    assert created.resource_type == "MedicationRequest" and ETH in labels_of(created.fhir_json)


def test_a_reconciliation_past_its_deadline_raises_the_team_task(
    stub: pb_grpc.CarePlanServiceStub,
    notes: nt_grpc.NotesServiceStub,
    careplan: ServiceRuntime,
    settings: Settings,
    patient: str,
) -> None:
    detox_step_down(stub, settings, patient)
    assert careplan.relay is not None
    later = Medications(
        careplan.db,
        notify_outbox=careplan.relay.notify,
        access=TeamAccess(store.care_team_member),
        clock=lambda: datetime.now(UTC) + timedelta(hours=49),
    )
    on_time = Medications(careplan.db, access=TeamAccess(store.care_team_member))
    assert on_time.raise_overdue_tasks() == 0
    assert later.raise_overdue_tasks() == 1
    assert later.raise_overdue_tasks() == 0  # once
    overdue = later.reconciliation(harness.principal(), patient)
    assert (overdue.status, overdue.unresolved, overdue.plan_ready) == ("overdue", 2, False)

    def task_in_thread() -> list[str]:
        messages = notes.ListThread(
            nt.ListThreadRequest(patient_id=patient),
            metadata=as_(settings, "psychiatrist", "psy-1"),
        ).messages
        return [m.text for m in messages if m.text.startswith("Task:")]

    texts = harness.eventually(task_in_thread, timeout=20)
    assert "2 inbound medications" in texts[0] and "48 h" in texts[0]
