"""Events between the services over the real broker: nothing lost, nothing applied twice.

These are the consistency tests of the walking skeleton (issue 2, item 8), each on SQLite and on
PostgreSQL:
(a) a crash between the database commit and the publish loses no event;
(b) a crash after the publish but before marking sent duplicates the event on the topic, and the
    consumer applies it once;
(c) a consumer that dies after its database commit but before its offset commit applies nothing
    twice when the record is delivered again;
(d) a poison message goes to the dead-letter topic and its partition keeps flowing.

Each test has topics of its own (a prefix), assertions look at this test's patient and events, and
"everything has been processed" is checked through committed offsets, never through counters.
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

from iopcare.careplan import codes as careplan_codes
from iopcare.careplan import store as careplan_store
from iopcare.careplan.service import CarePlans
from iopcare.kit import failpoints, signing, topics
from iopcare.kit.events import Event
from iopcare.kit.relay import OutboxRelay, make_producer, make_reader
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes import store as notes_store
from iopcare.scheduling import store as scheduling_store
from tests.support import harness
from tests.support.plans import assign, enrol, iop_plan_json, new_patient_id


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
    c = notes_store.communication.c
    with notes.db.read() as conn:
        return conn.execute(
            select(notes_store.communication).where(c.patient_id == patient).order_by(c.seq)
        ).all()


def _inbox_rows(runtime: ServiceRuntime, event_id: str) -> int:
    inbox = runtime.consumers[0].inbox
    with runtime.db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.event_id == event_id)
            ).scalar()
            or 0
        )


def _relay(runtime: ServiceRuntime, settings: Settings, *, check: bool = True) -> OutboxRelay:
    """A relay as a service builds one: it reads the topic's tail back when it takes over (ADR
    0018), after a short settle; `check=False`: one that may not read its topic."""
    return OutboxRelay(
        runtime.db,
        careplan_store.outbox,
        lambda: make_producer(settings, "test-relay"),
        topic_prefix=settings.topic_prefix,
        signer=signing.signer_for(settings, "careplan"),
        reader_factory=(lambda: make_reader(settings, "test-relay-check")) if check else None,
        settle_seconds=0.1,
    )


def _unsent(runtime: ServiceRuntime) -> list[str]:
    o = careplan_store.outbox.c
    with runtime.db.read() as conn:
        return list(conn.execute(select(o.event_type).where(o.sent_at.is_(None))).scalars())


def _create_plan(careplan: ServiceRuntime, patient: str, assigned: bool = False) -> str:
    """Enrols the patient's team (assigning the case manager first unless `assigned`) and
    creates a plan; returns the plan id."""
    relay = careplan.relay
    plans = CarePlans(careplan.db, notify_outbox=relay.notify if relay else lambda: None)
    plan_json = iop_plan_json(patient, enrol(careplan.db, patient, assigned=assigned))
    return plans.create(harness.principal(), str(uuid.uuid4()), plan_json).id


def _created_event_id(careplan: ServiceRuntime, plan_id: str) -> str:
    o = careplan_store.outbox.c
    with careplan.db.read() as conn:
        return str(
            conn.execute(
                select(o.event_id).where(
                    (o.event_type == careplan_codes.EVENT_CREATED)
                    & (o.subject == f"CarePlan/{plan_id}/_history/1")
                )
            ).scalar_one()
        )


def _event_ids(careplan: ServiceRuntime, patient: str) -> set[str]:
    """The patient's careplan events that notes applies (the episode's it does not consume)."""
    o = careplan_store.outbox.c
    with careplan.db.read() as conn:
        return set(
            conn.execute(
                select(o.event_id).where(
                    (o.key == patient) & ~o.event_type.like("iopcare.careplan.episode.%")
                )
            ).scalars()
        )


def _caught_up(runtime: ServiceRuntime, bootstrap: str) -> None:
    consumer = runtime.consumers[0]
    harness.wait_caught_up(bootstrap, consumer.group_id, consumer.topics)


def test_a_plan_reaches_scheduling_and_the_team_thread(
    running: dict[str, ServiceRuntime],
) -> None:
    for runtime in running.values():
        runtime.start()
    patient = new_patient_id()
    plan_id = _create_plan(running["careplan"], patient)

    def appointments() -> list[Any]:
        a = scheduling_store.appointment.c
        with running["scheduling"].db.read() as conn:
            return conn.execute(
                select(scheduling_store.appointment).where(a.patient_id == patient)
            ).all()

    booked = harness.eventually(appointments)
    # Two weeks of: group therapy Mon/Wed/Fri, individual Tue, psychiatrist Thu, nutrition
    # every other Wed: 6 + 2 + 2 + 1 = 11, give or take the days the window cuts.
    assert 9 <= len(booked) <= 13
    assert {row.care_plan_id for row in booked} == {plan_id}
    texts = harness.eventually(
        lambda: (
            {m.text for m in _messages(running["notes"], patient)}
            if len(_messages(running["notes"], patient)) >= 2
            else None
        )
    )
    # The two come from two topics, so their order is not defined.
    assert any(t.startswith("Care plan created") for t in texts)
    assert f"{len(booked)} sessions proposed from the care plan; please confirm them." in texts


def test_a_crash_between_commit_and_publish_loses_no_event(
    running: dict[str, ServiceRuntime], settings: Settings, kafka_bootstrap: str
) -> None:
    careplan = running["careplan"]
    patient = new_patient_id()
    plan_id = _create_plan(careplan, patient)
    event_id = _created_event_id(careplan, plan_id)
    failpoints.arm("after_db_commit_before_publish", "1*raise")
    with pytest.raises(failpoints.FailpointTriggered):
        _relay(careplan, settings).publish_pending()
    assert careplan_codes.EVENT_CREATED in _unsent(careplan)
    # "Restart": a new relay finds the committed rows and publishes them: its check of the
    # topic's tail finds none of them there. The assignment's episode, the team's event and the
    # plan's.
    restarted = _relay(careplan, settings)
    assert restarted.publish_pending() == 3
    assert restarted.reconciled == 0 and restarted.published == 3
    assert _unsent(careplan) == []
    harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: harness.header(r, "ce_id") == event_id,
    )


def test_a_crash_after_publish_duplicates_the_event_and_the_consumer_applies_it_once(
    running: dict[str, ServiceRuntime], settings: Settings, kafka_bootstrap: str
) -> None:
    careplan, notes = running["careplan"], running["notes"]
    patient = new_patient_id()
    plan_id = _create_plan(careplan, patient)
    event_id = _created_event_id(careplan, plan_id)
    failpoints.arm("after_publish_before_mark_sent", "1*raise")
    with pytest.raises(failpoints.FailpointTriggered):
        _relay(careplan, settings).publish_pending()
    assert careplan_codes.EVENT_CREATED in _unsent(careplan)
    # A relay that cannot read its topic back (ADR 0018) publishes the batch again.
    again = _relay(careplan, settings, check=False)
    assert again.publish_pending() == 3  # episode, team and plan
    copies = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: harness.header(r, "ce_id") == event_id,
        expect=2,
    )
    assert len(copies) == 2

    notes.start()
    _caught_up(notes, kafka_bootstrap)  # both copies have been processed
    assert _inbox_rows(notes, event_id) == 1
    assert len(_messages(notes, patient)) == 1


def test_a_relay_taking_over_after_a_crash_after_publish_publishes_nothing_twice(
    running: dict[str, ServiceRuntime], settings: Settings, kafka_bootstrap: str
) -> None:
    """ADR 0018: the relay that takes the outbox over (a replica, or the service restarted)
    reads the topic's tail first and marks what its predecessor published as sent."""
    careplan = running["careplan"]
    patient = new_patient_id()
    plan_id = _create_plan(careplan, patient)
    event_id = _created_event_id(careplan, plan_id)
    failpoints.arm("after_publish_before_mark_sent", "1*raise")
    with pytest.raises(failpoints.FailpointTriggered):
        _relay(careplan, settings).publish_pending()
    assert careplan_codes.EVENT_CREATED in _unsent(careplan)
    successor = _relay(careplan, settings)
    assert successor.publish_pending() == 3  # found on the topic, marked sent
    assert successor.reconciled == 3 and successor.published == 0
    assert _unsent(careplan) == []
    # A later event goes out as usual, and the earlier one is on the topic once.
    second = _create_plan(careplan, new_patient_id())
    assert successor.publish_pending() == 3 and successor.published == 3
    later = _created_event_id(careplan, second)
    harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: harness.header(r, "ce_id") == later,
    )
    copies = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: harness.header(r, "ce_id") == event_id,
        settle=2.0,
    )
    assert len(copies) == 1
    successor.stop(timeout=1)


def test_a_relay_stopped_while_it_checks_the_topic_sends_nothing(
    running: dict[str, ServiceRuntime], settings: Settings, kafka_bootstrap: str
) -> None:
    """The takeover's wait and read take time: a relay stopped (or losing its lease) meanwhile
    sends nothing, and the rows stay for the next relay, which publishes them."""
    careplan = running["careplan"]
    plan_id = _create_plan(careplan, new_patient_id())
    event_id = _created_event_id(careplan, plan_id)
    stopping = _relay(careplan, settings)

    def reader_stopping_the_relay() -> Any:
        stopping.request_stop()
        return make_reader(settings, "test-relay-check")

    stopping.reader_factory = reader_stopping_the_relay
    assert stopping.publish_pending() == 0
    assert stopping.published == 0
    assert careplan_codes.EVENT_CREATED in _unsent(careplan)
    stopping.stop(timeout=1)  # gives up its lease (PostgreSQL)
    assert _relay(careplan, settings).publish_pending() == 3
    assert _unsent(careplan) == []
    copies = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: harness.header(r, "ce_id") == event_id,
        settle=1.0,
    )
    assert len(copies) == 1


def test_a_consumer_crash_before_its_offset_commit_applies_nothing_twice(
    running: dict[str, ServiceRuntime], kafka_bootstrap: str
) -> None:
    careplan, notes = running["careplan"], running["notes"]
    notes.start()
    _caught_up(notes, kafka_bootstrap)  # the next batch the consumer commits is this test's
    careplan.start()
    # The first time the consumer gets to commit offsets it "crashes": the effects of that poll
    # are committed in the database, the offsets are not, and it reconnects from the old ones.
    patient = new_patient_id()
    # The case manager's assignment (an episode event notes does not apply) goes out before the
    # arming, so the crash hits an event notes applies.
    assign(careplan.db, patient)
    harness.eventually(lambda: _unsent(careplan) == [])
    _caught_up(notes, kafka_bootstrap)
    failpoints.arm("after_effect_before_offset_commit", "1*raise")
    plan_id = _create_plan(careplan, patient, assigned=True)
    event_id = _created_event_id(careplan, plan_id)
    harness.eventually(lambda: _inbox_rows(notes, event_id))
    harness.eventually(lambda: not failpoints._armed)  # the crash happened
    _caught_up(notes, kafka_bootstrap)  # and the redelivered records were processed again
    assert _inbox_rows(notes, event_id) == 1
    assert len(_messages(notes, patient)) == 1
    # The crash hit the first batch after the arming: this patient's team event, or the plan's.
    # Whichever it was came again and was absorbed; every one of them is applied exactly once.
    ours = _event_ids(careplan, patient)
    assert ours & set(notes.consumers[0].stats.recent_duplicates)
    assert all(_inbox_rows(notes, e) == 1 for e in ours)


def test_a_poison_message_is_dead_lettered_and_its_partition_keeps_flowing(
    running: dict[str, ServiceRuntime], settings: Settings, kafka_bootstrap: str
) -> None:
    careplan, notes = running["careplan"], running["notes"]
    patient = new_patient_id()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    # A broken careplan: its own, correctly signed record whose payload is not valid FHIR (an
    # unsigned one would be refused as forged before its payload is looked at).
    poison = Event(
        type="iopcare.careplan.created.v1",
        source="/iopcare/careplan",
        subject="CarePlan/x",
        key=patient,
        data='{"resourceType": "CarePlan", "status": 1',
    )
    poison_id = poison.id
    producer.send(
        harness.topic(settings, topics.CAREPLAN),
        key=patient.encode(),
        value=poison.data.encode(),
        headers=harness.signed_headers(settings, "careplan", poison),
    ).get(timeout=10)
    producer.close()
    # The next event for the same patient lands on the same partition, behind the poison.
    careplan.start()
    _create_plan(careplan, patient)
    notes.start()
    harness.eventually(lambda: _messages(notes, patient))
    (parked,) = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.dead_letter(topics.CAREPLAN)),
        lambda r: harness.header(r, "ce_id") == poison_id and r.key == patient.encode(),
    )
    assert "poison" in (harness.header(parked, "iopcare_dlq_reason") or "")


def test_replaying_a_topic_from_the_beginning_changes_nothing(
    running: dict[str, ServiceRuntime],
    settings: Settings,
    database_urls: dict[str, str],
    kafka_bootstrap: str,
) -> None:
    careplan, notes = running["careplan"], running["notes"]
    patient = new_patient_id()
    careplan.start()
    _create_plan(careplan, patient)
    notes.start()
    harness.eventually(lambda: _messages(notes, patient))
    before = [json.loads(m.resource)["id"] for m in _messages(notes, patient)]
    notes.stop(grace=0.1)
    # A new consumer group on the same database reads every topic from offset 0 again.
    replay = harness.build("notes", settings, database_urls["notes"])
    replay.start()
    try:
        _caught_up(replay, kafka_bootstrap)
        assert [json.loads(m.resource)["id"] for m in _messages(replay, patient)] == before
    finally:
        replay.stop(grace=0.1)
