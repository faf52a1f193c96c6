"""Goals and measures over gRPC (issue 6, item 4), and a PHQ-9 crisis reaching the team thread
as an urgent alert to the psychiatrist and the therapist (issue 4, item 3)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes import store as notes_store
from iopcare.notes.crisis import Crisis
from tests.support import harness
from tests.support.plans import new_patient_id, phq9, phq9_goal


def _record(stub: pb_grpc.CarePlanServiceStub, settings: Settings, body: dict[str, Any]) -> Any:
    return stub.RecordMeasure(
        pb.RecordMeasureRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(body)),
        metadata=harness.metadata(settings, role="therapist", practitioner="th-1"),
    )


def test_measures_move_the_goal_from_improving_to_achieved(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, kafka_bootstrap: str
) -> None:
    patient = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient)
    goal = stub.CreateGoal(
        pb.CreateGoalRequest(request_id="g", fhir_json=json.dumps(phq9_goal(patient))),
        metadata=harness.metadata(settings),
    ).goal
    statuses = []
    for week, total in enumerate([17, 13, 13, 8], start=1):
        recorded = _record(
            stub, settings, phq9(patient, total, when=f"2026-11-{week * 7:02d}T10:00:00Z")
        )
        assert list(recorded.crisis_reasons) == []
        statuses += [
            json.loads(g.fhir_json)["achievementStatus"]["coding"][0]["code"]
            for g in recorded.updated_goals
        ]
    assert statuses == ["in-progress", "improving", "no-change", "achieved"]
    current = stub.GetGoal(pb.GetGoalRequest(id=goal.id), metadata=harness.metadata(settings))
    assert current.goal.version == 5
    measures = stub.ListMeasures(
        pb.ListMeasuresRequest(patient_id=patient, code="44261-6"),
        metadata=harness.metadata(settings),
    ).fhir_json
    assert [json.loads(m)["valueQuantity"]["value"] for m in measures] == [17, 13, 13, 8]
    types = {
        harness.header(r, "ce_type")
        for r in harness.read_topic(
            kafka_bootstrap,
            harness.topic(settings, topics.CAREPLAN),
            lambda r: r.key == patient.encode(),
            expect=10,
        )
    }
    assert "iopcare.careplan.goal.updated.v1" in types
    assert "iopcare.careplan.crisis.v1" not in types


@pytest.fixture
def with_notes(
    settings: Settings, database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[ServiceRuntime]:
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'notes.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(
            f"notes_{uuid.uuid4().hex[:8]}"
        )
    notes = harness.build("notes", settings, url)
    notes.start()
    yield notes
    notes.stop(grace=0.2)


def test_a_phq9_with_item_9_above_0_alerts_the_psychiatrist_and_therapist(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, with_notes: ServiceRuntime
) -> None:
    patient = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient)
    recorded = _record(stub, settings, phq9(patient, 12, item9=2))
    assert list(recorded.crisis_reasons) == ["PHQ-9 item 9 (thoughts of self-harm) scored 2"]

    def alerts() -> list[Any]:
        c = notes_store.communication.c
        with with_notes.db.read() as conn:
            return conn.execute(
                select(notes_store.communication).where(
                    (c.patient_id == patient) & (c.category == "crisis")
                )
            ).all()

    (alert,) = harness.eventually(alerts, timeout=20)
    resource = json.loads(alert.resource)
    assert resource["priority"] == "urgent"
    assert sorted(r["reference"] for r in resource["recipient"]) == [
        "Practitioner/psy-1",
        "Practitioner/th-1",
    ]
    assert resource["about"] == [{"reference": f"Observation/{recorded.observation_id}"}]
    assert "item 9 (thoughts of self-harm) 2" in resource["payload"][0]["contentString"]


def test_only_the_team_records_measures_and_bad_ones_are_refused(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings
) -> None:
    import grpc

    patient = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient)
    outsider = harness.metadata(settings, role="therapist", practitioner="th-9")
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordMeasure(
            pb.RecordMeasureRequest(request_id="r", fhir_json=json.dumps(phq9(patient, 5))),
            metadata=outsider,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = phq9(patient, 40)
    bad["subject"] = {"reference": "Group/1"}
    with pytest.raises(grpc.RpcError) as caught:
        _record(stub, settings, bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_crisis_flag_is_acknowledged_once_and_an_ignored_one_is_escalated(
    stub: pb_grpc.CarePlanServiceStub, settings: Settings, with_notes: ServiceRuntime
) -> None:
    from datetime import UTC, datetime, timedelta

    import grpc

    from iopcare.notes.v1 import notes_service_pb2 as nt
    from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc

    acknowledged, ignored = new_patient_id(), new_patient_id()
    for patient in (acknowledged, ignored):
        harness.enrol_over_grpc(stub, settings, patient)
        _record(stub, settings, phq9(patient, 22))
    psychiatrist = harness.metadata(settings)
    with harness.channel(with_notes) as channel:
        notes = nt_grpc.NotesServiceStub(channel)

        def flags(patient: str) -> list[nt.Flag] | None:
            try:
                return (
                    list(
                        notes.ListFlags(
                            nt.ListFlagsRequest(patient_id=patient), metadata=psychiatrist
                        ).flags
                    )
                    or None
                )
            except grpc.RpcError:
                return None

        (flag,) = harness.eventually(lambda: flags(acknowledged), timeout=20)
        harness.eventually(lambda: flags(ignored), timeout=20)
        assert json.loads(flag.fhir_json)["category"][0]["coding"][0]["code"] == "safety"
        first = notes.AcknowledgeCrisis(
            nt.AcknowledgeCrisisRequest(flag_id=flag.id, note="Called the patient; safe."),
            metadata=psychiatrist,
        ).flag
        again = notes.AcknowledgeCrisis(
            nt.AcknowledgeCrisisRequest(flag_id=flag.id),
            metadata=harness.metadata(settings, role="therapist", practitioner="th-1"),
        ).flag
        assert first.version == again.version == 2
        outsider = harness.metadata(settings, role="therapist", practitioner="th-9")
        with pytest.raises(grpc.RpcError) as caught:
            notes.AcknowledgeCrisis(nt.AcknowledgeCrisisRequest(flag_id=flag.id), metadata=outsider)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    service = Crisis(with_notes.db)  # the escalation task's use case, on notes' database
    later = datetime.now(UTC) + timedelta(minutes=20)
    assert service.escalate_overdue(later, timedelta(minutes=15)) == 1  # only the ignored one
    assert service.escalate_overdue(later, timedelta(minutes=15)) == 0  # and only once
    c = notes_store.communication.c
    with with_notes.db.read() as conn:
        (stat,) = conn.execute(
            select(notes_store.communication).where(
                (c.patient_id == ignored) & (c.priority == "stat")
            )
        ).all()
    assert "NOT ACKNOWLEDGED" in stat.text
