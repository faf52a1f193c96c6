"""The broker fails under a stream of writes (docs/test-matrix.md A3, A5): writes keep succeeding
because they only touch the database, and every acknowledged write is consumed once the broker is
back. The test runs its own broker, since it kills it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from iopcare.careplan.service import CarePlans
from iopcare.devtools import kafka_broker
from iopcare.kit import topics
from iopcare.kit.runtime import ServiceRuntime
from iopcare.notes import store as notes_store
from tests.support import harness
from tests.support.plans import enrol, iop_plan_json, new_patient_id


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[kafka_broker.KafkaBroker]:
    broker = kafka_broker.KafkaBroker(data_dir=tmp_path / "kafka")
    broker.start()
    kafka_broker.create_topics(broker.bootstrap_servers, topics.all_topics(), topics.PARTITIONS)
    yield broker
    broker.stop()


@pytest.fixture
def services(
    own_broker: kafka_broker.KafkaBroker, tmp_path: Path
) -> Iterator[dict[str, ServiceRuntime]]:
    settings = harness.settings_for(tmp_path / "data", own_broker.bootstrap_servers)
    (tmp_path / "data").mkdir()
    runtimes = {
        name: harness.build(name, settings, f"sqlite:///{tmp_path / (name + '.db')}")
        for name in ("careplan", "notes")
    }
    for runtime in runtimes.values():
        runtime.start()
    yield runtimes
    for runtime in runtimes.values():
        runtime.stop(grace=0.2)


def _applied(notes: ServiceRuntime, patients: list[str]) -> int:
    c = notes_store.communication.c
    with notes.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(notes_store.communication)
                .where(c.patient_id.in_(patients) & (c.category == "system"))
            ).scalar()
            or 0
        )


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_writes_go_on_while_the_broker_is_down_and_every_one_arrives_after(
    own_broker: kafka_broker.KafkaBroker, services: dict[str, ServiceRuntime], fault: str
) -> None:
    careplan, notes = services["careplan"], services["notes"]
    plans = CarePlans(careplan.db, notify_outbox=careplan.relay.notify)  # type: ignore[union-attr]
    patients = [new_patient_id() for _ in range(6)]
    bodies = {p: iop_plan_json(p, enrol(careplan.db, p)) for p in patients}
    created: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            patient = patients[n % len(patients)]
            try:
                plans.create(harness.principal(), str(uuid.uuid4()), bodies[patient])
                created.append(patient)
            except Exception as exc:  # any failure of a write is the bug under test
                errors.append(exc)
            n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(1.0)
        (own_broker.kill if fault == "kill" else own_broker.pause)()
        # Writes go on while the broker is away: wait for 50 more commits (by count, not by
        # time, so a loaded machine makes the test slower, not flaky).
        during = len(created)
        harness.eventually(lambda: len(created) >= during + 50 or bool(errors), timeout=120)
        time.sleep(2.0)  # and the relay keeps retrying for a while
        (own_broker.start if fault == "kill" else own_broker.resume)()
        time.sleep(1.0)
    finally:
        stop.set()
        writer.join()
    assert errors == []
    # Every acknowledged write reaches notes, exactly once.
    harness.eventually(lambda: _applied(notes, patients) >= len(created), timeout=90)
    time.sleep(1.0)
    assert _applied(notes, patients) == len(created)
