"""The gRPC edge of the medication list and its reconciliation (issue 12, part 1): a mixin of
`api.CarePlanServicer`, whose `medications` use cases it calls."""

from __future__ import annotations

import json
from typing import Any

from iopcare.careplan.base import Change
from iopcare.careplan.medications import Decision, ItemRow, Medications, Reconciliation
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.kit.auth import current_principal
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.kit.servicer import Handler, one, page, rpc, versioned
from iopcare.kit.versioned import Stored

STATEMENT, REQUEST = "MedicationStatement", "MedicationRequest"


def medication_message(item: Stored, resource_type: str = "") -> pb.Medication:
    return pb.Medication(
        id=item.id,
        version=item.version,
        patient_id=item.patient_id,
        status=item.status,
        update_time=timestamp(item.updated_at),
        fhir_json=item.resource,
        resource_type=resource_type or str(_type_of(item)),
    )


def _type_of(item: Stored) -> str:
    return str(json.loads(item.resource).get("resourceType", STATEMENT))


def item_message(item: ItemRow) -> pb.ReconciliationItem:
    message = pb.ReconciliationItem(
        id=item.id,
        patient_id=item.patient_id,
        care_plan_id=item.care_plan_id,
        fhir_json=item.resource,
        received_time=timestamp(item.received_at),
        decision=item.decision or "",
        decided_by=item.decided_by or "",
        reason=item.reason or "",
        medication_id=item.medication_id or "",
    )
    if item.decided_at is not None:
        message.decided_time.CopyFrom(timestamp(item.decided_at))
    return message


def reconciliation_message(found: Reconciliation) -> pb.MedicationReconciliation:
    message = pb.MedicationReconciliation(
        status=found.status,
        unresolved_count=found.unresolved,
        plan_ready=found.plan_ready,
    )
    if found.deadline is not None:
        message.deadline_time.CopyFrom(timestamp(found.deadline))
    return message


def _change(request: Any) -> Change:
    """The change an Update asks for (as api.change_of: the request is what was asked)."""
    return Change(*versioned(request), request.reason, request.request_id, request)


def _family(resource_type: str, messages: dict[str, Any]) -> dict[str, Handler]:
    """Create, Get, List and Update of one medication type."""
    render = lambda item: medication_message(item, resource_type)  # noqa: E731
    return {
        f"Create{resource_type}": rpc(
            lambda s, r: s.medications.create(
                current_principal(), r.request_id, r.fhir_json, resource_type
            ),
            one(messages["create"], "medication", render),
        ),
        f"Get{resource_type}": rpc(
            lambda s, r: s.medications.get(
                current_principal(), resource_type, require_id(r.id, "id")
            ),
            one(messages["get"], "medication", render),
        ),
        f"List{resource_type}s": rpc(
            lambda s, r: s.medications.listed(
                current_principal(),
                resource_type,
                require_id(r.patient_id, "patient_id"),
                r.page_size,
                r.page_token,
            ),
            page(messages["list"], "medications", render),
        ),
        f"Update{resource_type}": rpc(
            lambda s, r: s.medications.update(
                _change(r), r.fhir_json, list(r.update_mask.paths), resource_type
            ),
            one(messages["update"], "medication", render),
        ),
    }


class MedicationRpcs:
    """The medication RPCs of CarePlanService."""

    medications: Medications

    _statements = _family(
        STATEMENT,
        {
            "create": pb.CreateMedicationStatementResponse,
            "get": pb.GetMedicationStatementResponse,
            "list": pb.ListMedicationStatementsResponse,
            "update": pb.UpdateMedicationStatementResponse,
        },
    )
    _requests = _family(
        REQUEST,
        {
            "create": pb.CreateMedicationRequestResponse,
            "get": pb.GetMedicationRequestResponse,
            "list": pb.ListMedicationRequestsResponse,
            "update": pb.UpdateMedicationRequestResponse,
        },
    )
    CreateMedicationStatement = _statements["CreateMedicationStatement"]
    GetMedicationStatement = _statements["GetMedicationStatement"]
    ListMedicationStatements = _statements["ListMedicationStatements"]
    UpdateMedicationStatement = _statements["UpdateMedicationStatement"]
    CreateMedicationRequest = _requests["CreateMedicationRequest"]
    GetMedicationRequest = _requests["GetMedicationRequest"]
    ListMedicationRequests = _requests["ListMedicationRequests"]
    UpdateMedicationRequest = _requests["UpdateMedicationRequest"]

    def GetMedicationReconciliation(
        self, request: pb.GetMedicationReconciliationRequest, context: Any
    ) -> pb.GetMedicationReconciliationResponse:
        found = self.medications.reconciliation(
            current_principal(), require_id(request.patient_id, "patient_id")
        )
        return pb.GetMedicationReconciliationResponse(
            reconciliation=reconciliation_message(found),
            items=[item_message(i) for i in found.items],
        )

    def ResolveReconciliationItem(
        self, request: pb.ResolveReconciliationItemRequest, context: Any
    ) -> pb.ResolveReconciliationItemResponse:
        asked = Decision(
            require_id(request.patient_id, "patient_id"),
            require_id(request.id, "id"),
            request.decision,
            request.reason,
            request.changed_to_fhir_json,
        )
        item, statement = self.medications.resolve(current_principal(), request.request_id, asked)
        response = pb.ResolveReconciliationItemResponse(item=item_message(item))
        if statement is not None:
            response.medication.CopyFrom(medication_message(statement, STATEMENT))
        return response

    def add_medications(self, response: pb.GetPatientPlanResponse, patient_id: str) -> None:
        """The active list and the reconciliation in the holistic view (GetPatientPlan), once
        the view has checked and audited the caller's access."""
        summary = self.medications.summary(current_principal(), patient_id)
        response.active_medications.extend(medication_message(m) for m in summary.active)
        if summary.reconciliation is not None:
            response.medication_reconciliation.CopyFrom(
                reconciliation_message(summary.reconciliation)
            )
