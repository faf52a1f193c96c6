"""The registry (issue 6, item 0): one patient per person whatever the number of identifiers, and
clinicians with their roles."""

from __future__ import annotations

import json
import threading
import uuid

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.settings import Settings
from tests.support import harness

MRN_A = "urn:oid:2.16.840.1.113883.19.5"
MRN_B = "urn:oid:2.16.840.1.113883.19.99"


def _patient(*identifiers: tuple[str, str]) -> str:
    return json.dumps(
        {
            "resourceType": "Patient",
            "identifier": [{"system": s, "value": v} for s, v in identifiers],
            "name": [{"family": "Chalmers", "given": ["Peter"]}],
            "gender": "male",
            "birthDate": "1974-12-25",
        }
    )


def _register(stub: pb_grpc.CarePlanServiceStub, settings: Settings, body: str) -> pb.RegistryEntry:
    return stub.RegisterPatient(
        pb.RegisterPatientRequest(request_id=str(uuid.uuid4()), fhir_json=body),
        metadata=harness.metadata(settings, role="case-manager", practitioner="cm-1"),
    ).patient


def test_a_second_identifier_links_to_the_same_patient(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    mrn = uuid.uuid4().hex[:8]
    first = _register(stub, settings, _patient((MRN_A, mrn)))
    again = _register(stub, settings, _patient((MRN_A, mrn), (MRN_B, "X-" + mrn)))
    assert again.id == first.id and again.version == 2
    # Read back by the program's administrator: a case manager who is on no team of the patient
    # is answered as for an unknown identifier (no existence oracle, issue 10 item 15).
    found = stub.FindPatient(
        pb.FindPatientRequest(system=MRN_B, value="X-" + mrn),
        metadata=harness.metadata(settings, role="admin", practitioner="adm-1"),
    ).patient
    assert found.id == first.id
    assert {i["system"] for i in json.loads(found.fhir_json)["identifier"]} == {MRN_A, MRN_B}
    other = _register(stub, settings, _patient((MRN_B, "Y-" + mrn)))
    with pytest.raises(grpc.RpcError) as caught:
        _register(stub, settings, _patient((MRN_A, mrn), (MRN_B, "Y-" + mrn)))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert other.id != first.id


def test_concurrent_registrations_of_one_person_make_one_patient(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    mrn = uuid.uuid4().hex[:8]
    ids: list[str] = []
    codes: list[str] = []

    def register() -> None:
        try:
            ids.append(_register(stub, settings, _patient((MRN_A, mrn))).id)
        except grpc.RpcError as exc:
            codes.append(exc.code().name)

    threads = [threading.Thread(target=register) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Never a twin, never an error: a registration that loses the race links to the winner.
    assert len(set(ids)) == 1
    assert codes == []  # the losers of the race retry inside and link


def test_only_registry_roles_register_and_clinicians_see_only_their_patients(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterPatient(
            pb.RegisterPatientRequest(request_id="r", fhir_json=_patient((MRN_A, "z"))),
            metadata=harness.metadata(settings, role="therapist", practitioner="th-1"),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    patient = _register(stub, settings, _patient((MRN_A, uuid.uuid4().hex)))
    clinician = harness.metadata(settings, role="therapist", practitioner="th-1")
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=clinician)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    harness.enrol_over_grpc(stub, settings, patient.id)
    assert stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=clinician).patient.id


def test_practitioners_and_their_roles(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    admin = harness.metadata(settings, role="admin", practitioner="adm-1")
    practitioner = stub.RegisterPractitioner(
        pb.RegisterPractitionerRequest(
            request_id="pr",
            fhir_json=json.dumps(
                {
                    "resourceType": "Practitioner",
                    "name": [{"family": "Dietician", "given": ["Dorothy"]}],
                }
            ),
        ),
        metadata=admin,
    ).practitioner
    role = {
        "resourceType": "PractitionerRole",
        "active": True,
        "practitioner": {"reference": f"Practitioner/{practitioner.id}"},
        "code": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "40127002",
                        "display": "Dietitian (general)",
                    }
                ]
            }
        ],
        "period": {"start": "2026-01-01"},
        "telecom": [{"system": "phone", "value": "+1 555 0100", "use": "work"}],
    }
    stub.RegisterPractitionerRole(
        pb.RegisterPractitionerRoleRequest(request_id="role", fhir_json=json.dumps(role)),
        metadata=admin,
    )
    found = stub.GetPractitioner(pb.GetPractitionerRequest(id=practitioner.id), metadata=admin)
    assert len(found.roles) == 1
    role["practitioner"] = {"reference": "Practitioner/nobody"}
    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterPractitionerRole(
            pb.RegisterPractitionerRoleRequest(request_id="role2", fhir_json=json.dumps(role)),
            metadata=admin,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_retried_registration_that_linked_returns_the_same_patient(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    mrn = uuid.uuid4().hex[:8]
    first = _register(stub, settings, _patient((MRN_A, mrn)))
    request = pb.RegisterPatientRequest(
        request_id="link-1", fhir_json=_patient((MRN_A, mrn), (MRN_B, "Z-" + mrn))
    )
    manager = harness.metadata(settings, role="case-manager", practitioner="cm-1")
    linked = stub.RegisterPatient(request, metadata=manager).patient
    retried = stub.RegisterPatient(request, metadata=manager).patient
    assert first.id == linked.id == retried.id
