"""Issue 4, end to end with real processes: a PHQ-9 recorded in careplan raises a crisis alert
that the psychiatrist, watching the patient's thread in notes, receives within seconds; their
acknowledgement reaches the same stream."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as cp
from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import wait_for_team
from tests.support.plans import new_patient_id, phq9


@pytest.fixture
def processes(tmp_path: Path, kafka_bootstrap: str) -> Iterator[dict[str, ServiceProcess]]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "IOPCARE_TOPIC_PREFIX": harness.isolated_topics(kafka_bootstrap),
        "IOPCARE_DATA_DIR": str(tmp_path),
        **{
            f"IOPCARE_{n.upper()}_CONSUMER_GROUP": f"e2e-{n}-{uuid.uuid4().hex[:8]}"
            for n in ("careplan", "notes")
        },
    }
    started: dict[str, ServiceProcess] = {}
    try:
        for name in ("careplan", "notes"):
            process = ServiceProcess(name, free_port(), env, tmp_path / f"{name}.log")
            process.start()
            started[name] = process
        yield started
    finally:
        for process in started.values():
            process.stop()


def test_a_phq9_crisis_reaches_the_watching_psychiatrist_across_processes(
    processes: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path)
    patient = new_patient_id()
    psychiatrist = harness.metadata(settings)
    with (
        grpc.insecure_channel(processes["careplan"].address) as cp_channel,
        grpc.insecure_channel(processes["notes"].address) as nt_channel,
    ):
        careplan = cp_grpc.CarePlanServiceStub(cp_channel)
        notes = nt_grpc.NotesServiceStub(nt_channel)
        harness.enrol_over_grpc(careplan, settings, patient)
        wait_for_team(notes, settings, patient)
        stream = notes.WatchThread(nt.WatchThreadRequest(patient_id=patient), metadata=psychiatrist)
        stream.initial_metadata()  # open: from here on nothing committed is missed
        recorded = time.monotonic()
        careplan.RecordMeasure(
            cp.RecordMeasureRequest(
                request_id=str(uuid.uuid4()), fhir_json=json.dumps(phq9(patient, 21, item9=1))
            ),
            metadata=harness.metadata(settings, role="therapist", practitioner="th-1"),
        )
        crisis = None
        for item in stream:
            if item.message.category == "crisis":
                crisis = item.message
                break
        took = time.monotonic() - recorded
        assert crisis is not None and crisis.priority == "urgent"
        assert took < 5.0, f"the alert took {took:.2f}s"
        (flag,) = notes.ListFlags(
            nt.ListFlagsRequest(patient_id=patient), metadata=psychiatrist
        ).flags
        notes.AcknowledgeCrisis(
            nt.AcknowledgeCrisisRequest(flag_id=flag.id, note="Called; safe at home."),
            metadata=psychiatrist,
        )
        acknowledged = next(iter(stream)).message
        stream.cancel()
        assert acknowledged.text.startswith("Crisis alert acknowledged by Practitioner/psy-1.")
