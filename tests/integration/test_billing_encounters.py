"""Encounters for billing (issue 14, part 5), on both databases with the real Kafka: attended
family, individual, medication and group sessions become Encounters with their HCPCS/CPT codes in
the attendance's own transaction; a repeated attendance record makes one Encounter and a
correction updates it; a no-show makes none; the period's CSV export for the billing system; who
may read them."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from sqlalchemy import func, select

from iopcare.careplan.domain.family import ROLE_CODE_SYSTEM
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import auth
from iopcare.kit.rpc import bearer
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.scheduling import store
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.notes import error_reason
from tests.support.scheduling import (
    admin,
    future_monday,
    local,
    new_id,
    practitioner_schedule,
    room_schedule,
    ts,
)

MRN = "urn:oid:2.16.840.1.113883.19.5"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CPT = "http://www.ama-assn.org/go/cpt"


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


def _billing(settings: Settings) -> list[tuple[str, str]]:
    return bearer(auth.mint_token(settings, subject="billing:b1", role="billing"))


def _register(stub: pb_grpc.CarePlanServiceStub, settings: Settings) -> str:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": uuid.uuid4().hex}],
        "name": [{"family": "Mensah", "given": ["Kofi"]}],
        "birthDate": "1990-04-02",
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


def _codes(appointment_encounter: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (t["coding"][0]["system"], t["coding"][0]["code"])
        for t in appointment_encounter.get("type", [])
    ]


def test_attended_sessions_become_encounters_with_billing_codes_and_a_csv_export(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, scheduling: ServiceRuntime
) -> None:
    me = harness.metadata(settings)  # psy-1, on the patient's team
    patient = _register(stub, settings)
    mother = stub.CreateRelatedPerson(
        pb.CreateRelatedPersonRequest(
            request_id=str(uuid.uuid4()),
            fhir_json=json.dumps(
                {
                    "resourceType": "RelatedPerson",
                    "patient": {"reference": f"Patient/{patient}"},
                    "relationship": [{"coding": [{"system": ROLE_CODE_SYSTEM, "code": "MTH"}]}],
                    "name": [{"family": "Mensah", "given": ["Ama"]}],
                }
            ),
        ),
        metadata=me,
        timeout=10,
    ).related_person
    zone = ZoneInfo(settings.program_timezone)
    tuesday: date = future_monday(1) + timedelta(days=1)

    def at(day: date, hour: int, minute: int = 0) -> datetime:
        return local(day, time(hour, minute), zone.key)

    with harness.channel(scheduling) as channel:
        sched = sc_grpc.SchedulingServiceStub(channel)
        practitioner_schedule(
            sched, settings, "th-1", service_types=["individual-therapy", "family-therapy"]
        )
        practitioner_schedule(
            sched, settings, "psy-1", role="psychiatrist", service_types=["medication-management"]
        )
        room, facilitator = new_id("room"), new_id("fac")
        room_schedule(sched, settings, room, capacity=8)
        practitioner_schedule(
            sched,
            settings,
            facilitator,
            role="group-facilitator",
            service_types=["group-therapy"],
        )

        def book(practitioner: str, kind: str, start: datetime, minutes: int, *family: str) -> Any:
            return sched.BookAppointment(
                sc.BookAppointmentRequest(
                    request_id=str(uuid.uuid4()),
                    patient_id=patient,
                    practitioner_ids=[practitioner],
                    start_time=ts(start),
                    end_time=ts(start + timedelta(minutes=minutes)),
                    service_type=kind,
                    related_person_ids=list(family),
                ),
                metadata=admin(settings),
                timeout=10,
            ).appointment

        def family_booked() -> Any:
            try:  # once scheduling has heard of the mother (careplan's event over Kafka)
                return book("th-1", "family-therapy", at(tuesday, 17), 60, mother.id)
            except grpc.RpcError as exc:
                assert error_reason(exc) == "RELATED_PERSON_UNKNOWN", exc
                return None

        family = harness.eventually(family_booked)
        individual = book("th-1", "individual-therapy", at(tuesday, 10), 45)
        medication = book("psy-1", "medication-management", at(tuesday, 11), 30)
        group = sched.CreateGroupSession(
            sc.CreateGroupSessionRequest(
                request_id=str(uuid.uuid4()),
                location_id=room,
                facilitator_ids=[facilitator],
                start_time=ts(at(tuesday, 13)),
                end_time=ts(at(tuesday, 16)),
                capacity=4,
                service_type="group-therapy",
                description="Relapse prevention group",
            ),
            metadata=admin(settings),
            timeout=10,
        ).appointment
        absent = new_id("pat")
        for who in (patient, absent):
            group = sched.JoinGroupSession(
                sc.JoinGroupSessionRequest(
                    request_id=str(uuid.uuid4()), appointment_id=group.id, patient_id=who
                ),
                metadata=admin(settings),
                timeout=10,
            ).appointment

        def attend(session: Any, status: str, request_id: str = "", **kwargs: Any) -> Any:
            return sched.RecordAttendance(
                sc.RecordAttendanceRequest(
                    appointment_id=session.id,
                    expected_version=session.version,
                    status=status,
                    request_id=request_id or str(uuid.uuid4()),
                    **kwargs,
                ),
                metadata=admin(settings),
                timeout=10,
            ).appointment

        attend(family, "fulfilled", family_attended=[mother.id])
        arrived = attend(individual, "arrived")
        repeat = str(uuid.uuid4())
        fulfilled = attend(arrived, "fulfilled", repeat)  # a correction: arrived, then fulfilled
        assert attend(arrived, "fulfilled", repeat).version == fulfilled.version  # a retry
        attend(medication, "fulfilled")
        group = attend(group, "fulfilled", patient_id=patient)
        attend(group, "noshow", patient_id=absent)

        start, end = at(tuesday, 0), at(tuesday + timedelta(days=1), 0)
        listed = sched.ListEncounters(
            sc.ListEncountersRequest(
                patient_id=patient, start_time=ts(start), end_time=ts(end), page_size=3
            ),
            metadata=_billing(settings),
            timeout=10,
        )
        assert len(listed.encounters) == 3 and listed.next_page_token
        rest = sched.ListEncounters(
            sc.ListEncountersRequest(
                patient_id=patient,
                start_time=ts(start),
                end_time=ts(end),
                page_size=3,
                page_token=listed.next_page_token,
            ),
            metadata=_billing(settings),
            timeout=10,
        )
        assert not rest.next_page_token
        encounters = {e.appointment_id: e for e in [*listed.encounters, *rest.encounters]}
        assert set(encounters) == {family.id, individual.id, medication.id, group.id}
        resources = {k: json.loads(e.fhir_json) for k, e in encounters.items()}
        for resource in resources.values():
            assert resource["status"] == "finished"
            assert resource["class"]["code"] == "AMB"
            assert resource["subject"] == {"reference": f"Patient/{patient}"}
        assert _codes(resources[family.id]) == [(CPT, "90847")]
        assert _codes(resources[individual.id]) == [(CPT, "90834")]
        assert _codes(resources[medication.id]) == [(CPT, "99214")]
        assert _codes(resources[group.id]) == [(HCPCS, "S9480"), (CPT, "90853")]
        people = [p["individual"]["reference"] for p in resources[family.id]["participant"]]
        assert people == ["Practitioner/th-1", f"RelatedPerson/{mother.id}"]
        assert resources[group.id]["serviceType"]["coding"][0]["code"] == "group-therapy"
        # The correction updated the one Encounter of the individual session (arrived, then
        # finished); the retry changed nothing.
        assert encounters[individual.id].version == 2
        with scheduling.db.read() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(store.encounters.encounter)
                .where(store.encounters.encounter.c.appointment_id == individual.id)
            ).scalar()
        assert count == 1

        # The no-show made none.
        nothing = sched.ListEncounters(
            sc.ListEncountersRequest(patient_id=absent), metadata=_billing(settings), timeout=10
        )
        assert list(nothing.encounters) == []

        # The period's CSV for the billing system: one row per Encounter.
        exported = sched.ExportEncountersCsv(
            sc.ExportEncountersCsvRequest(start_time=ts(start), end_time=ts(end)),
            metadata=_billing(settings),
            timeout=10,
        )
        rows = list(csv.DictReader(io.StringIO(exported.csv.decode("utf-8"))))
        assert exported.encounter_count == len(rows) == 4
        by_code = {r["code"]: r for r in rows}
        assert set(by_code) == {"90847", "90834", "99214", "S9480"}
        assert {r["patient_id"] for r in rows} == {patient}
        assert {r["date"] for r in rows} == {tuesday.isoformat()}
        assert by_code["S9480"]["other_codes"] == "90853"
        assert by_code["S9480"]["rendering_practitioner"] == f"Practitioner/{facilitator}"
        assert by_code["99214"]["rendering_practitioner"] == "Practitioner/psy-1"
        assert all(r["units"] == "1" for r in rows)

        # Who may: the care team for their patient; not someone off the team, not for every
        # patient; never the CSV to an outside EHR.
        team = sched.ListEncounters(
            sc.ListEncountersRequest(patient_id=patient), metadata=me, timeout=10
        )
        assert len(team.encounters) == 4
        stranger = harness.metadata(settings, role="therapist", practitioner="th-9")
        for request, metadata in (
            (sc.ListEncountersRequest(patient_id=patient), stranger),
            (sc.ListEncountersRequest(), me),
        ):
            with pytest.raises(grpc.RpcError) as denied:
                sched.ListEncounters(request, metadata=metadata, timeout=10)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Billing staff read Encounters, nothing else of the record.
        with pytest.raises(grpc.RpcError) as not_sessions:
            sched.ListAppointments(
                sc.ListAppointmentsRequest(patient_id=patient),
                metadata=_billing(settings),
                timeout=10,
            )
        assert not_sessions.value.code() == grpc.StatusCode.PERMISSION_DENIED
        ehr = bearer(
            auth.mint_token(settings, subject="ehr:x", role="system", scopes=["system/Encounter.s"])
        )
        with pytest.raises(grpc.RpcError) as refused:
            sched.ExportEncountersCsv(
                sc.ExportEncountersCsvRequest(start_time=ts(start), end_time=ts(end)),
                metadata=ehr,
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as invalid:
            sched.ExportEncountersCsv(
                sc.ExportEncountersCsvRequest(start_time=ts(end), end_time=ts(start)),
                metadata=_billing(settings),
                timeout=10,
            )
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
