"""The three services as real processes, talking over the real broker.

The end-to-end test of issue 2: a plan created over gRPC appears in scheduling and in the team
thread within a deadline. And fault A1 of docs/test-matrix.md with a real process: careplan killed
(exit 137, no cleanup) between its database commit and the publish; after a restart the event is
published and applied once.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as cp
from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from iopcare.scheduling.v1 import scheduling_service_pb2 as sc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as sc_grpc
from tests.support import harness
from tests.support.plans import new_patient_id


@pytest.fixture
def env(tmp_path: Path, kafka_bootstrap: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "IOPCARE_TOPIC_PREFIX": harness.isolated_topics(kafka_bootstrap),
        "IOPCARE_DATA_DIR": str(tmp_path),
        # Fresh consumer groups as well as fresh topics: nothing of another test is seen.
        **{
            f"IOPCARE_{n.upper()}_CONSUMER_GROUP": f"e2e-{n}-{uuid.uuid4().hex[:8]}"
            for n in ("careplan", "scheduling", "notes")
        },
    }


@pytest.fixture
def services(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    started: dict[str, ServiceProcess] = {}
    try:
        for name in ("careplan", "scheduling", "notes"):
            process = ServiceProcess(name, free_port(), env, tmp_path / f"{name}.log")
            process.start()
            started[name] = process
        yield started
    finally:
        for process in started.values():
            process.stop()


def _token(tmp_path: Path) -> list[tuple[str, str]]:
    return harness.metadata(Settings(data_dir=tmp_path))


def _plan_json(address: str, tmp_path: Path, patient: str) -> str:
    with grpc.insecure_channel(address) as channel:
        return harness.enrolled_plan_json(
            cp_grpc.CarePlanServiceStub(channel), Settings(data_dir=tmp_path), patient
        )


def _until_team_known(call: Any) -> list[Any]:
    """The services learn the care team from careplan's events: until then they refuse."""
    try:
        return list(call())
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
            return []
        raise


def _thread(address: str, metadata: list[tuple[str, str]], patient: str) -> list[nt.Message]:
    with grpc.insecure_channel(address) as channel:
        return _until_team_known(
            lambda: (
                nt_grpc.NotesServiceStub(channel)
                .ListThread(nt.ListThreadRequest(patient_id=patient), metadata=metadata, timeout=5)
                .messages
            )
        )


def test_a_plan_created_over_grpc_appears_in_scheduling_and_notes(
    services: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    metadata = _token(tmp_path)
    patient = new_patient_id()
    with grpc.insecure_channel(services["careplan"].address) as channel:
        plan = (
            cp_grpc.CarePlanServiceStub(channel)
            .CreateCarePlan(
                cp.CreateCarePlanRequest(
                    request_id=str(uuid.uuid4()),
                    fhir_json=_plan_json(services["careplan"].address, tmp_path, patient),
                ),
                metadata=metadata,
                timeout=10,
            )
            .care_plan
        )

    def appointments() -> list[sc.Appointment]:
        with grpc.insecure_channel(services["scheduling"].address) as channel:
            return _until_team_known(
                lambda: (
                    sc_grpc.SchedulingServiceStub(channel)
                    .ListAppointments(
                        sc.ListAppointmentsRequest(patient_id=patient), metadata=metadata, timeout=5
                    )
                    .appointments
                )
            )

    booked = harness.eventually(appointments, timeout=20)
    assert all(a.care_plan_id == plan.id and a.status == "proposed" for a in booked)
    assert all(json.loads(a.fhir_json)["resourceType"] == "Appointment" for a in booked)
    thread = harness.eventually(
        lambda: (m := _thread(services["notes"].address, metadata, patient)) and len(m) >= 2 and m,
        timeout=20,
    )
    assert [m.sender for m in thread] == ["Device/iopcare-notes"] * 2
    # The two messages answer events on two topics: their order is not defined.
    texts = sorted(m.text for m in thread)
    assert texts[0].startswith("Care plan created") or texts[1].startswith("Care plan created")
    assert any("sessions proposed" in t for t in texts)


def _unsent_events(data_dir: Path) -> list[str]:
    from sqlalchemy import create_engine, select

    from iopcare.careplan.store import outbox

    engine = create_engine(f"sqlite:///{data_dir / 'careplan.db'}")
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    select(outbox.c.event_type).where(outbox.c.sent_at.is_(None))
                ).scalars()
            )
    finally:
        engine.dispose()


def test_careplan_killed_between_commit_and_publish_loses_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    metadata = _token(tmp_path)
    patient = new_patient_id()
    # The patient's team is enrolled while careplan runs normally.
    first = ServiceProcess("careplan", port, env, tmp_path / "careplan.log")
    first.start()
    plan_json = _plan_json(first.address, tmp_path, patient)
    harness.eventually(lambda: _unsent_events(tmp_path) == [], timeout=20)
    first.stop()
    # Then careplan runs with a crash armed between its commit and its publish.
    crashing = ServiceProcess(
        "careplan",
        port,
        {**env, "IOPCARE_FAILPOINTS": "after_db_commit_before_publish=exit"},
        tmp_path / "careplan.log",
    )
    crashing.start()
    notes = ServiceProcess("notes", free_port(), env, tmp_path / "notes.log")
    notes.start()
    request = cp.CreateCarePlanRequest(request_id="crash-1", fhir_json=plan_json)
    try:
        with grpc.insecure_channel(crashing.address) as channel:
            stub = cp_grpc.CarePlanServiceStub(channel)
            # The process may die before or after answering; the commit happened either way.
            with contextlib.suppress(grpc.RpcError):
                stub.CreateCarePlan(request, metadata=metadata, timeout=10)
        harness.eventually(lambda: not crashing.running(), timeout=10)
        assert crashing.process is not None and crashing.process.returncode == 137
        assert _unsent_events(tmp_path) == ["iopcare.careplan.created.v1"]

        restarted = ServiceProcess("careplan", port, env, tmp_path / "careplan.log")
        restarted.start()
        try:
            thread = harness.eventually(
                lambda: _thread(notes.address, metadata, patient), timeout=20
            )
            assert len(thread) == 1 and thread[0].text.startswith("Care plan created")
            assert _unsent_events(tmp_path) == []
            # The retry of the same request (the client never saw an answer) returns that plan.
            with grpc.insecure_channel(restarted.address) as channel:
                again = cp_grpc.CarePlanServiceStub(channel).CreateCarePlan(
                    request, metadata=metadata, timeout=10
                )
            assert again.care_plan.patient_id == patient
            assert again.care_plan.version == 1
        finally:
            restarted.stop()
    finally:
        crashing.kill()
        notes.stop()
