"""Fixtures of the integration tests: settings on the session's broker, a careplan service
running in the test process on the database under test, and notes beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import notes_database, running_notes, wait_for_team
from tests.support.plans import new_patient_id


@pytest.fixture
def settings(data_dir: Path, kafka_bootstrap: str) -> Settings:
    return harness.settings_for(data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap))


@pytest.fixture
def careplan(settings: Settings, database_url: str) -> Iterator[ServiceRuntime]:
    runtime = harness.build("careplan", settings, database_url)
    runtime.start()
    yield runtime
    runtime.stop(grace=0.5)


@pytest.fixture
def stub(careplan: ServiceRuntime) -> Iterator[pb_grpc.CarePlanServiceStub]:
    with harness.channel(careplan) as channel:
        yield pb_grpc.CarePlanServiceStub(channel)


@pytest.fixture
def notes_runtime(
    settings: Settings, database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[ServiceRuntime]:
    """notes beside careplan, on a database of its own of the kind under test."""
    with running_notes(settings, notes_database(database_url, request, tmp_path)) as runtime:
        yield runtime


@pytest.fixture
def notes(notes_runtime: ServiceRuntime) -> Iterator[nt_grpc.NotesServiceStub]:
    with harness.channel(notes_runtime) as channel:
        yield nt_grpc.NotesServiceStub(channel)


@pytest.fixture
def patient(
    stub: pb_grpc.CarePlanServiceStub, notes: nt_grpc.NotesServiceStub, settings: Settings
) -> str:
    """A patient whose care team (psy-1, th-1, diet-1, doc-1, cm-1) notes has projected."""
    patient_id = new_patient_id()
    harness.enrol_over_grpc(stub, settings, patient_id)
    wait_for_team(notes, settings, patient_id)
    return patient_id
