"""The gRPC edge of the care plan service: requests to use cases, results to responses."""

from __future__ import annotations

import grpc

from iopcare.careplan.service import CarePlans
from iopcare.careplan.store import StoredPlan
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.auth import current_principal
from iopcare.kit.protoconv import require_id, timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CarePlanService"].full_name


def to_message(plan: StoredPlan) -> pb.CarePlan:
    return pb.CarePlan(
        id=plan.id,
        version=plan.version,
        patient_id=plan.patient_id,
        status=plan.status,
        update_time=timestamp(plan.updated_at),
        fhir_json=plan.resource,
    )


class CarePlanServicer(pb_grpc.CarePlanServiceServicer):
    def __init__(self, plans: CarePlans) -> None:
        self.plans = plans

    def CreateCarePlan(
        self, request: pb.CreateCarePlanRequest, context: grpc.ServicerContext
    ) -> pb.CreateCarePlanResponse:
        plan = self.plans.create(current_principal(), request.request_id, request.fhir_json)
        return pb.CreateCarePlanResponse(care_plan=to_message(plan))

    def GetCarePlan(
        self, request: pb.GetCarePlanRequest, context: grpc.ServicerContext
    ) -> pb.GetCarePlanResponse:
        plan = self.plans.get(current_principal(), require_id(request.id, "id"))
        return pb.GetCarePlanResponse(care_plan=to_message(plan))
