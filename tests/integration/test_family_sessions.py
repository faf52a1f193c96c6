"""Families and adolescents (issue 13, part 3), on both databases with the real Kafka:

- a minor's guardian and a consenting family member recorded as RelatedPersons in careplan, read
  only by the care team; scheduling hears of them and books a family session with both, then
  records which of them came;
- an adolescent (by registered birth date) gets the adolescent program's plan, whose sessions
  scheduling proposes after school hours, and their intensity is judged by the adolescent rule.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest

from iopcare.careplan.domain.family import (
    FAMILY_ROLE_SYSTEM,
    INFORMATION_SHARING,
    ROLE_CODE_SYSTEM,
)
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.scheduling import codes as scheduling_codes
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.notes import error_reason
from tests.support.scheduling import future_monday, gdate, local, practitioner_schedule, ts

MRN = "urn:oid:2.16.840.1.113883.19.5"


@pytest.fixture
def scheduling(
    settings: Settings, database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[ServiceRuntime]:
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'scheduling.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(
            f"scheduling_{uuid.uuid4().hex[:8]}"
        )
    runtime = harness.build("scheduling", settings, url)
    runtime.start()
    yield runtime
    runtime.stop(grace=0.2)


def _register(stub: pb_grpc.CarePlanServiceStub, settings: Settings, birth: date) -> str:
    """A patient registered with a birth date, and their care team enrolled."""
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": uuid.uuid4().hex}],
        "name": [{"family": "Mensah", "given": ["Kofi"]}],
        "birthDate": birth.isoformat(),
    }
    patient_id = str(
        stub.RegisterPatient(
            pb.RegisterPatientRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(patient)),
            metadata=harness.metadata(settings, role="case-manager", practitioner="cm-1"),
            timeout=10,
        ).patient.id
    )
    harness.enrol_over_grpc(stub, settings, patient_id)
    return patient_id


def _relative(patient_id: str, family: str, *codes: str, **sharing: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "patient": {"reference": f"Patient/{patient_id}"},
        "relationship": [
            {
                "coding": [
                    {"system": FAMILY_ROLE_SYSTEM, "code": c}
                    if c == "school-contact"
                    else {"system": ROLE_CODE_SYSTEM, "code": c}
                ]
            }
            for c in codes
        ],
        "name": [{"family": family, "given": ["Ama"]}],
        "telecom": [{"system": "phone", "value": "+1 555 0142", "use": "mobile"}],
    }
    if sharing:
        parts: list[dict[str, Any]] = [{"url": "basis", "valueCode": sharing["basis"]}]
        if "consent" in sharing:
            parts.append({"url": "consent", "valueReference": {"reference": sharing["consent"]}})
        resource["extension"] = [{"url": INFORMATION_SHARING, "extension": parts}]
    return resource


def _create(
    stub: pb_grpc.CarePlanServiceStub,
    me: list[tuple[str, str]],
    resource: dict[str, Any],
    request_id: str | None = None,
) -> pb.RelatedPerson:
    return stub.CreateRelatedPerson(
        pb.CreateRelatedPersonRequest(
            request_id=request_id or str(uuid.uuid4()), fhir_json=json.dumps(resource)
        ),
        metadata=me,
        timeout=10,
    ).related_person


def _years_ago(years: int) -> date:
    today = datetime.now(UTC).date()
    return today.replace(year=today.year - years, day=min(today.day, 28))


def test_a_family_session_with_two_relatives_and_their_attendance(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    me = harness.metadata(settings)  # psy-1, on the patient's team
    patient = _register(stub, settings, _years_ago(15))
    mother = _relative(patient, "Mensah", "MTH", "GUARD", basis="guardian-of-minor")
    request_id = str(uuid.uuid4())
    mum = _create(stub, me, mother, request_id)
    assert mum.may_receive_information and mum.information_basis == "guardian-of-minor"
    assert _create(stub, me, mother, request_id).id == mum.id  # a retry, not a second mother
    dad = _create(
        stub, me, _relative(patient, "Osei", "FTH", basis="patient-consent", consent="Consent/c1")
    )
    school = _create(stub, me, _relative(patient, "Boateng", "school-contact"))
    assert not school.may_receive_information
    listed = stub.ListRelatedPersons(
        pb.ListRelatedPersonsRequest(patient_id=patient), metadata=me, timeout=10
    ).related_persons
    assert [r.id for r in listed] == [mum.id, dad.id, school.id]

    # Someone off the team neither reads nor adds the patient's family.
    stranger = harness.metadata(settings, role="therapist", practitioner="th-9")
    with pytest.raises(grpc.RpcError) as denied:
        stub.GetRelatedPerson(pb.GetRelatedPersonRequest(id=mum.id), metadata=stranger, timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as refused:
        _create(stub, stranger, _relative(patient, "Mensah", "SIS"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # An adult patient has no guardian to receive information in their place.
    adult = _register(stub, settings, _years_ago(30))
    with pytest.raises(grpc.RpcError) as not_minor:
        _create(stub, me, _relative(adult, "Mensah", "MTH", "GUARD", basis="guardian-of-minor"))
    assert error_reason(not_minor.value) == "NOT_A_MINOR"

    zone = ZoneInfo(settings.program_timezone)
    tuesday = future_monday(1) + timedelta(days=1)
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)
        practitioner_schedule(sched, settings, "th-1")

        def book(*family: str) -> sc.Appointment:
            return sched.BookAppointment(
                sc.BookAppointmentRequest(
                    request_id=str(uuid.uuid4()),
                    patient_id=patient,
                    practitioner_ids=["th-1"],
                    start_time=ts(local(tuesday, time(17), zone.key)),
                    end_time=ts(local(tuesday, time(18), zone.key)),
                    service_type="family-therapy",
                    description="Family therapy session",
                    related_person_ids=list(family),
                ),
                metadata=me,
                timeout=10,
            ).appointment

        def booked() -> sc.Appointment | None:
            try:  # once scheduling has heard of the team and both relatives (careplan's events)
                return book(mum.id, dad.id)
            except grpc.RpcError as exc:
                assert error_reason(exc) in {"RELATED_PERSON_UNKNOWN", "NOT_ON_CARE_TEAM"}, exc
                return None

        session = harness.eventually(booked)
        actors = [p["actor"]["reference"] for p in json.loads(session.fhir_json)["participant"]]
        assert f"RelatedPerson/{mum.id}" in actors and f"RelatedPerson/{dad.id}" in actors
        # Another patient's relative, or one careplan never recorded, is no family of theirs.
        with pytest.raises(grpc.RpcError) as unknown:
            book("rp-nobody")
        assert error_reason(unknown.value) == "RELATED_PERSON_UNKNOWN"

        # The mother came, the father did not.
        attended = sched.RecordAttendance(
            sc.RecordAttendanceRequest(
                appointment_id=session.id,
                expected_version=session.version,
                status="fulfilled",
                request_id=str(uuid.uuid4()),
                family_attended=[mum.id],
            ),
            metadata=me,
            timeout=10,
        ).appointment
    assert attended.status == "fulfilled"
    family = {
        p["actor"]["reference"]: {e["url"]: e["valueCode"] for e in p.get("extension", [])}
        for p in json.loads(attended.fhir_json)["participant"]
        if p["actor"]["reference"].startswith("RelatedPerson/")
    }
    extension = scheduling_codes.ATTENDANCE_EXTENSION
    assert family == {
        f"RelatedPerson/{mum.id}": {extension: "fulfilled"},
        f"RelatedPerson/{dad.id}": {extension: "noshow"},
    }


def test_an_adolescents_plan_is_scheduled_after_school(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    me = harness.metadata(settings)
    patient = _register(stub, settings, _years_ago(15))
    # An adult-coded diagnosis: the registered age picks the adolescent program.
    plan = stub.DraftCarePlan(
        pb.DraftCarePlanRequest(
            request_id=str(uuid.uuid4()), patient_id=patient, diagnosis_code="F10.20"
        ),
        metadata=me,
        timeout=10,
    ).care_plan
    assert json.loads(plan.fhir_json)["title"] == "Adolescent substance use IOP"
    zone = ZoneInfo(settings.program_timezone)
    school_ends = settings.scheduling_school_day_end
    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)

        def proposed() -> list[sc.Appointment] | None:
            try:  # once scheduling has heard of the team and the plan
                found = sched.ListAppointments(
                    sc.ListAppointmentsRequest(patient_id=patient, page_size=1000),
                    metadata=me,
                    timeout=10,
                ).appointments
            except grpc.RpcError as exc:
                assert error_reason(exc) == "NOT_ON_CARE_TEAM", exc
                return None
            return list(found) or None

        sessions = harness.eventually(proposed)
        starts = [s.start_time.ToDatetime(tzinfo=UTC).astimezone(zone) for s in sessions]
        assert all(s.weekday() >= 5 or s.time() >= school_ends for s in starts), starts
        # Friday's case management (15:00 in the template) was moved to when school ends.
        management = [
            start
            for start, s in zip(starts, sessions, strict=True)
            if "Case management" in s.fhir_json
        ]
        assert management and all(m.time() == school_ends for m in management)
        # The adolescent program's intensity rule (at least 6 hours a week, no maximum).
        monday = future_monday(1)
        weeks = sched.GetIntensity(
            sc.GetIntensityRequest(
                patient_id=patient,
                start_date=gdate(monday),
                end_date=gdate(monday),
            ),
            metadata=me,
            timeout=10,
        ).weeks
    assert weeks[0].minimum_hours == 6 and weeks[0].maximum_hours == 0
