"""Attacks on a patient's family records (issue 13, part 3; ADR 0024), over gRPC against the real
careplan on the session's broker: a `patient/` token for A reads, lists or adds B's family; a
clinician off B's team does; someone names themselves B's guardian while B is an adult."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from iopcare.careplan.domain.family import INFORMATION_SHARING, ROLE_CODE_SYSTEM
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import auth
from iopcare.kit.rpc import bearer
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.plans import new_patient_id

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


def _relative(patient_id: str, *codes: str, basis: str = "none") -> str:
    return json.dumps(
        {
            "resourceType": "RelatedPerson",
            "patient": {"reference": f"Patient/{patient_id}"},
            "relationship": [{"coding": [{"system": ROLE_CODE_SYSTEM, "code": c}]} for c in codes],
            "name": [{"family": "Doe", "given": ["Sam"]}],
            "extension": [
                {"url": INFORMATION_SHARING, "extension": [{"url": "basis", "valueCode": basis}]}
            ],
        }
    )


def _create(stub: pb_grpc.CarePlanServiceStub, metadata: Any, fhir_json: str) -> Any:
    return stub.CreateRelatedPerson(
        pb.CreateRelatedPersonRequest(request_id=str(uuid.uuid4()), fhir_json=fhir_json),
        metadata=metadata,
        timeout=10,
    )


def test_a_patient_token_or_a_stranger_cannot_read_list_or_add_another_patients_family(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    patient_a, patient_b = new_patient_id(), new_patient_id()
    for patient in (patient_a, patient_b):
        harness.enrol_over_grpc(stub, settings, patient)
    team = harness.metadata(settings)
    sister_b = _create(stub, team, _relative(patient_b, "SIS")).related_person
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
    stranger = harness.metadata(settings, role="psychiatrist", practitioner="psy-9")
    for caller, reason in ((token_a, "OUTSIDE_LAUNCH_CONTEXT"), (stranger, "NOT_ON_CARE_TEAM")):
        assert _refusal(
            lambda c=caller: stub.GetRelatedPerson(
                pb.GetRelatedPersonRequest(id=sister_b.id), metadata=c, timeout=10
            )
        ) == ("PERMISSION_DENIED", reason)
        assert _refusal(
            lambda c=caller: stub.ListRelatedPersons(
                pb.ListRelatedPersonsRequest(patient_id=patient_b), metadata=c, timeout=10
            )
        ) == ("PERMISSION_DENIED", reason)
        assert _refusal(lambda c=caller: _create(stub, c, _relative(patient_b, "FTH"))) == (
            "PERMISSION_DENIED",
            reason,
        )
    # The legitimate path: A's token adds and reads A's own family.
    brother_a = _create(stub, token_a, _relative(patient_a, "BRO")).related_person
    listed = stub.ListRelatedPersons(
        pb.ListRelatedPersonsRequest(patient_id=patient_a), metadata=token_a, timeout=10
    ).related_persons
    assert [r.id for r in listed] == [brother_a.id]
    # Nobody becomes the guardian of a patient whose age careplan does not know.
    assert _refusal(
        lambda: _create(stub, team, _relative(patient_a, "GUARD", basis="guardian-of-minor"))
    ) == ("FAILED_PRECONDITION", "BIRTH_DATE_UNKNOWN")
