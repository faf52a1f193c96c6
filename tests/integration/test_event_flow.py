"""Events between the services over the real broker: nothing lost, nothing applied twice.

These are the consistency tests of the walking skeleton (issue 2, item 8), each on SQLite and on
PostgreSQL:
(a) a crash between the database commit and the publish loses no event;
(b) a crash after the publish but before marking sent duplicates the event on the topic, and the
    consumer applies it once;
(c) a consumer that dies after its database commit but before its offset commit applies nothing
    twice when the record is delivered again;
(d) a poison message goes to the dead-letter topic and its partition keeps flowing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from sqlalchemy import func, select

from iopcare.careplan import store as careplan_store
from iopcare.careplan.service import CarePlans
from iopcare.kit import failpoints, topics
from iopcare.kit.relay import OutboxRelay, make_producer
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes import store as notes_store
from iopcare.scheduling import store as scheduling_store
from tests.support import harness
from tests.support.plans import iop_plan_json, new_patient_id


@pytest.fixture
def settings(data_dir: Path, kafka_bootstrap: str) -> Settings:
    return harness.settings_for(data_dir, kafka_bootstrap)


@pytest.fixture
def database_urls(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> dict[str, str]:
    """One database per service, of the kind under test."""
    if database_url.startswith("sqlite"):
        return {
            name: f"sqlite:///{tmp_path / (name + '.db')}"
            for name in ("careplan", "scheduling", "notes")
        }
    server = request.getfixturevalue("postgres_server")
    return {
        name: server.create_database(f"{name}_{uuid.uuid4().hex[:8]}")
        for name in ("careplan", "scheduling", "notes")
    }


@pytest.fixture
def running(
    settings: Settings, database_urls: dict[str, str]
) -> Iterator[dict[str, ServiceRuntime]]:
    runtimes: dict[str, ServiceRuntime] = {}
    try:
        for name in ("careplan", "scheduling", "notes"):
            runtimes[name] = harness.build(name, settings, database_urls[name])
        yield runtimes
    finally:
        for runtime in runtimes.values():
            runtime.stop(grace=0.5)


def _messages(notes: ServiceRuntime, patient: str) -> list[Any]:
    with notes.db.read() as conn:
        return conn.execute(
            select(notes_store.communication)
            .where(notes_store.communication.c.patient_id == patient)
            .order_by(notes_store.communication.c.seq)
        ).all()


def _relay(runtime: ServiceRuntime, settings: Settings) -> OutboxRelay:
    return OutboxRelay(
        runtime.db,
        careplan_store.outbox,
        lambda: make_producer(settings.kafka_bootstrap_servers, "test-relay"),
    )


def _unsent(runtime: ServiceRuntime) -> int:
    with runtime.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(careplan_store.outbox)
                .where(careplan_store.outbox.c.sent_at.is_(None))
            ).scalar()
            or 0
        )


def test_a_plan_reaches_scheduling_and_the_team_thread(running: dict[str, ServiceRuntime]) -> None:
    for runtime in running.values():
        runtime.start()
    patient = new_patient_id()
    plans = CarePlans(running["careplan"].db, notify_outbox=running["careplan"].relay.notify)  # type: ignore[union-attr]
    plan = plans.create(harness.principal(), str(uuid.uuid4()), iop_plan_json(patient))

    def appointments() -> list[Any]:
        with running["scheduling"].db.read() as conn:
            return conn.execute(
                select(scheduling_store.appointment).where(
                    scheduling_store.appointment.c.patient_id == patient
                )
            ).all()

    booked = harness.eventually(appointments)
    # Two weeks of: group therapy Mon/Wed/Fri, individual Tue, psychiatrist Thu, nutrition
    # every other Wed: 6 + 2 + 2 + 1 = 11, give or take the days the window cuts.
    assert 9 <= len(booked) <= 13
    assert {row.care_plan_id for row in booked} == {plan.id}
    texts = harness.eventually(
        lambda: (
            [m.text for m in _messages(running["notes"], patient)]
            if len(_messages(running["notes"], patient)) >= 2
            else None
        )
    )
    assert texts[0].startswith("Care plan created")
    assert texts[1] == f"{len(booked)} sessions proposed from the care plan; please confirm them."


def test_a_crash_between_commit_and_publish_loses_no_event(
    running: dict[str, ServiceRuntime], settings: Settings, kafka_bootstrap: str
) -> None:
    careplan = running["careplan"]
    patient = new_patient_id()
    CarePlans(careplan.db).create(harness.principal(), str(uuid.uuid4()), iop_plan_json(patient))
    failpoints.arm("after_db_commit_before_publish", "1*raise")
    with pytest.raises(failpoints.FailpointTriggered):
        _relay(careplan, settings).publish_pending()
    assert _unsent(careplan) == 1
    # "Restart": a new relay finds the committed row and publishes it.
    assert _relay(careplan, settings).publish_pending() == 1
    assert _unsent(careplan) == 0
    harness.read_topic(kafka_bootstrap, topics.CAREPLAN, lambda r: r.key == patient.encode())


def test_a_crash_after_publish_duplicates_the_event_and_the_consumer_applies_it_once(
    running: dict[str, ServiceRuntime], settings: Settings, kafka_bootstrap: str
) -> None:
    careplan, notes = running["careplan"], running["notes"]
    patient = new_patient_id()
    CarePlans(careplan.db).create(harness.principal(), str(uuid.uuid4()), iop_plan_json(patient))
    failpoints.arm("after_publish_before_mark_sent", "1*raise")
    with pytest.raises(failpoints.FailpointTriggered):
        _relay(careplan, settings).publish_pending()
    assert _unsent(careplan) == 1
    assert _relay(careplan, settings).publish_pending() == 1
    copies = harness.read_topic(
        kafka_bootstrap, topics.CAREPLAN, lambda r: r.key == patient.encode(), expect=2
    )
    assert len({harness.header(r, "ce_id") for r in copies}) == 1

    notes.start()
    consumer = notes.consumers[0]
    harness.eventually(lambda: _messages(notes, patient))
    harness.eventually(lambda: consumer.stats.duplicates >= 1)
    assert len(_messages(notes, patient)) == 1


def test_a_consumer_crash_before_its_offset_commit_applies_nothing_twice(
    running: dict[str, ServiceRuntime], settings: Settings
) -> None:
    careplan, notes = running["careplan"], running["notes"]
    patient = new_patient_id()
    careplan.start()
    CarePlans(careplan.db, notify_outbox=careplan.relay.notify).create(  # type: ignore[union-attr]
        harness.principal(), str(uuid.uuid4()), iop_plan_json(patient)
    )
    # The first time the consumer gets to commit offsets it "crashes": the effects of that poll
    # are committed in the database, the offsets are not, and it reconnects from the old ones.
    failpoints.arm("after_effect_before_offset_commit", "1*raise")
    notes.start()
    consumer = notes.consumers[0]
    harness.eventually(lambda: _messages(notes, patient))
    harness.eventually(lambda: consumer.stats.duplicates >= 1)
    assert len(_messages(notes, patient)) == 1
    consumer.stop()  # the shared topics hold other tests' events too: count once it is still
    with notes.db.read() as conn:
        applied = conn.execute(select(func.count()).select_from(notes_store.inbox)).scalar()
    assert applied == consumer.stats.applied


def test_a_poison_message_is_dead_lettered_and_its_partition_keeps_flowing(
    running: dict[str, ServiceRuntime], kafka_bootstrap: str
) -> None:
    careplan, notes = running["careplan"], running["notes"]
    patient = new_patient_id()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    poison_id = str(uuid.uuid4())
    producer.send(
        topics.CAREPLAN,
        key=patient.encode(),
        value=b'{"resourceType": "CarePlan", "status": 1',
        headers=[
            ("ce_id", poison_id.encode()),
            ("ce_type", b"iopcare.careplan.created.v1"),
            ("ce_source", b"/test"),
            ("ce_specversion", b"1.0"),
            ("ce_time", b"2026-11-27T10:00:00Z"),
            ("ce_subject", b"CarePlan/x"),
            ("content-type", b"application/fhir+json"),
        ],
    ).get(timeout=10)
    producer.close()
    # The next event for the same patient lands on the same partition, behind the poison.
    careplan.start()
    CarePlans(careplan.db, notify_outbox=careplan.relay.notify).create(  # type: ignore[union-attr]
        harness.principal(), str(uuid.uuid4()), iop_plan_json(patient)
    )
    notes.start()
    harness.eventually(lambda: _messages(notes, patient))
    (parked,) = harness.read_topic(
        kafka_bootstrap,
        topics.dead_letter(topics.CAREPLAN),
        lambda r: harness.header(r, "ce_id") == poison_id and r.key == patient.encode(),
    )
    assert "poison" in (harness.header(parked, "iopcare_dlq_reason") or "")
    assert notes.consumers[0].stats.dead_lettered >= 1


def test_replaying_a_topic_from_the_beginning_changes_nothing(
    running: dict[str, ServiceRuntime], settings: Settings, database_urls: dict[str, str]
) -> None:
    careplan, notes = running["careplan"], running["notes"]
    patient = new_patient_id()
    careplan.start()
    CarePlans(careplan.db, notify_outbox=careplan.relay.notify).create(  # type: ignore[union-attr]
        harness.principal(), str(uuid.uuid4()), iop_plan_json(patient)
    )
    notes.start()
    harness.eventually(lambda: _messages(notes, patient))
    before = [json.loads(m.resource)["id"] for m in _messages(notes, patient)]
    notes.stop(grace=0.1)
    # A new consumer group on the same database reads every topic from offset 0 again.
    replay = harness.build("notes", settings, database_urls["notes"])
    replay.start()
    try:
        harness.eventually(lambda: replay.consumers[0].stats.duplicates >= 1)
        assert [json.loads(m.resource)["id"] for m in _messages(replay, patient)] == before
    finally:
        replay.stop(grace=0.1)
