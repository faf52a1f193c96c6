"""scheduling and notes learn each patient's care team from careplan's events, and refuse
everyone else (issue 6, item 7, applied across services)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as cp
from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc
from iopcare.kit import fhir, teams
from iopcare.kit.db import UnitOfWork
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes import store as notes_store
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.plans import care_team, new_patient_id


@pytest.fixture
def running(
    settings: Settings, database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[dict[str, ServiceRuntime]]:
    urls = {}
    for name in ("careplan", "scheduling", "notes"):
        if database_url.startswith("sqlite"):
            urls[name] = f"sqlite:///{tmp_path / (name + '.db')}"
        else:
            server = request.getfixturevalue("postgres_server")
            urls[name] = server.create_database(f"{name}_{uuid.uuid4().hex[:8]}")
    runtimes = {name: harness.build(name, settings, url) for name, url in urls.items()}
    for runtime in runtimes.values():
        runtime.start()
    yield runtimes
    for runtime in runtimes.values():
        runtime.stop(grace=0.2)


def _code(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return str(exc.code().name)
    return "OK"


def test_only_the_patients_team_reads_the_thread_and_timetable(
    running: dict[str, ServiceRuntime], settings: Settings
) -> None:
    patient = new_patient_id()
    with harness.channel(running["careplan"]) as channel:
        careplan = cp_grpc.CarePlanServiceStub(channel)
        harness.assign_case_manager(careplan, settings, patient, "cm-1")
        team = careplan.CreateCareTeam(
            cp.CreateCareTeamRequest(request_id="t", fhir_json=json.dumps(care_team(patient))),
            metadata=harness.metadata(settings, role="case-manager", practitioner="cm-1"),
        ).care_team
    member = harness.metadata(settings, role="dietitian", practitioner="diet-1")
    outsider = harness.metadata(settings, role="dietitian", practitioner="diet-9")
    with harness.channel(running["notes"]) as n, harness.channel(running["scheduling"]) as s:
        notes, scheduling = nt_grpc.NotesServiceStub(n), sc_grpc.SchedulingServiceStub(s)

        def read_thread(metadata: list[tuple[str, str]]) -> str:
            return _code(
                lambda: notes.ListThread(
                    nt.ListThreadRequest(patient_id=patient), metadata=metadata
                )
            )

        harness.eventually(lambda: read_thread(member) == "OK")
        harness.eventually(
            lambda: (
                _code(
                    lambda: scheduling.ListAppointments(
                        sc.ListAppointmentsRequest(patient_id=patient), metadata=member
                    )
                )
                == "OK"
            )
        )
        assert read_thread(outsider) == "PERMISSION_DENIED"
        post = nt.PostMessageRequest(request_id="m1", patient_id=patient, text="Seen today.")
        assert _code(lambda: notes.PostMessage(post, metadata=outsider)) == "PERMISSION_DENIED"
        assert _code(lambda: notes.PostMessage(post, metadata=member)) == "OK"
        assert (
            _code(
                lambda: scheduling.ListAppointments(
                    sc.ListAppointmentsRequest(patient_id=patient), metadata=outsider
                )
            )
            == "PERMISSION_DENIED"
        )

        # The dietitian leaves the team: notes follows the new version.
        revised = json.loads(team.fhir_json)
        revised["participant"] = [
            p for p in revised["participant"] if p["member"]["reference"] != "Practitioner/diet-1"
        ]
        with harness.channel(running["careplan"]) as channel:
            cp_grpc.CarePlanServiceStub(channel).UpdateCareTeam(
                cp.UpdateCareTeamRequest(
                    id=team.id, expected_version=1, fhir_json=json.dumps(revised)
                ),
                metadata=harness.metadata(settings, role="case-manager", practitioner="cm-1"),
            )
        harness.eventually(lambda: read_thread(member) == "PERMISSION_DENIED")

        # A late copy of version 1 (a replay) must not bring the dietitian back.
        old = fhir.parse_resource(team.fhir_json)
        with UnitOfWork(running["notes"].db) as uow:
            applied = teams.apply_team_event(
                uow.conn, notes_store.care_team_member, notes_store.care_team_seen, old
            )
            uow.commit()
        assert applied is False
        assert read_thread(member) == "PERMISSION_DENIED"
