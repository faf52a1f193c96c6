"""Attacks on Kafka (issue 10, defects 6 and 7), against the session's real broker.

- A client that is not careplan produces a CareTeam event (version 9999) naming a stranger onto
  careplan's topic: notes must not apply it (no signature, or a signature by another key), and
  the stranger gets no access to the thread; the record is dead-lettered with an alert.
- An anonymous client on a SASL broker can neither read the topics nor produce to them, and a
  service principal may only write its own topic.
- One event too large for the broker must not stop the relay: it is parked (and reported), and
  the events behind it, of other patients, still reach the consumers.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pytest
from kafka import KafkaProducer
from sqlalchemy import insert, select

from iopcare.careplan import store as careplan_store
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.events import Event
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import as_
from tests.support.plans import care_team, new_patient_id

STRANGER = "stranger-1"


def _team_record(settings: Settings, bootstrap: str, patient: str) -> Any:
    (record,) = harness.read_topic(
        bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: (
            r.key == patient.encode()
            and harness.header(r, "ce_type") == "iopcare.careplan.careteam.created.v1"
        ),
    )
    return record


def _forged_team_event(record: Any, patient: str) -> Event:
    """careplan's team event for the patient, rewritten by the attacker: the stranger joins as a
    psychiatrist and the version jumps to 9999 so that no real update can ever supersede it."""
    team = json.loads(record.value)
    stranger = json.loads(json.dumps(team["participant"][0]))
    stranger["member"] = {"reference": f"Practitioner/{STRANGER}"}
    team["participant"].append(stranger)
    team["meta"]["versionId"] = "9999"
    return Event(
        type="iopcare.careplan.careteam.updated.v1",
        source="/iopcare/careplan",
        subject=f"CareTeam/{team['id']}/_history/9999",
        key=patient,
        data=json.dumps(team),
    )


def _stranger_reads_thread(
    notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str
) -> bool:
    try:
        notes.ListThread(
            nt.ListThreadRequest(patient_id=patient),
            metadata=as_(settings, "psychiatrist", STRANGER),
        )
        return True
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
        return False


def _produce(bootstrap: str, topic: str, event: Event, extra: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(
            topic,
            key=event.key.encode(),
            value=event.data.encode(),
            headers=[*event.headers(), *extra],
        ).get(timeout=10)
    finally:
        producer.close()


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param([], id="unsigned"),
        # A well-formed signature by a key that is not careplan's (the attacker's own).
        pytest.param("attacker-key", id="signed-by-another-key"),
        # careplan's header names, notes' own key: a service may only speak for its own topic.
        pytest.param("notes-key", id="signed-by-another-service"),
    ],
)
def test_a_forged_care_team_event_gives_a_stranger_no_access_to_the_thread(
    notes: nt_grpc.NotesServiceStub,
    notes_runtime: ServiceRuntime,
    settings: Settings,
    patient: str,
    kafka_bootstrap: str,
    signature: Any,
) -> None:
    assert not _stranger_reads_thread(notes, settings, patient)
    forged = _forged_team_event(_team_record(settings, kafka_bootstrap, patient), patient)
    extra: list[tuple[str, bytes]] = []
    if signature == "attacker-key":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from iopcare.kit import signing

        attacker = signing.EventSigner("careplan", Ed25519PrivateKey.generate())
        extra = attacker.headers(forged)
    elif signature == "notes-key":
        from iopcare.kit import signing

        extra = signing.signer_for(settings, "notes").headers(forged)
    _produce(kafka_bootstrap, harness.topic(settings, topics.CAREPLAN), forged, extra)

    consumer = notes_runtime.consumers[0]
    harness.wait_caught_up(kafka_bootstrap, consumer.group_id, consumer.topics)
    assert not _stranger_reads_thread(notes, settings, patient)
    # Not applied: dead-lettered with the reason, which is the operators' alert.
    (parked,) = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.dead_letter(topics.CAREPLAN)),
        lambda r: harness.header(r, "ce_id") == forged.id,
    )
    assert "signature" in (harness.header(parked, "iopcare_dlq_reason") or "")
    assert consumer.stats.rejected >= 1


def test_events_signed_by_their_producer_are_applied(
    notes: nt_grpc.NotesServiceStub,
    notes_runtime: ServiceRuntime,
    settings: Settings,
    patient: str,
    kafka_bootstrap: str,
) -> None:
    """The control: the real careplan's team event carries a valid signature (the patient
    fixture only returns once notes applied it), and no record so far was rejected."""
    record = _team_record(settings, kafka_bootstrap, patient)
    assert harness.header(record, "iopcare_sig")
    assert notes_runtime.consumers[0].stats.rejected == 0


def _park_row(careplan: ServiceRuntime, patient: str, payload: str) -> str:
    """An outbox row as careplan's own code would write it, too large for the broker."""
    event = Event(
        type="iopcare.careplan.updated.v1",
        source="/iopcare/careplan",
        subject="CarePlan/huge/_history/2",
        key=patient,
        data=payload,
    )
    with careplan.db.write() as conn:
        conn.execute(
            insert(careplan_store.outbox).values(
                event_id=event.id,
                topic=topics.CAREPLAN,
                key=event.key,
                event_type=event.type,
                source=event.source,
                subject=event.subject,
                time=event.time,
                traceparent=event.traceparent,
                content_type=event.content_type,
                payload=event.data,
            )
        )
    return event.id


def _oversized_plan(patient: str, size: int) -> str:
    plan = {
        "resourceType": "CarePlan",
        "id": "huge",
        "meta": {"versionId": "2"},
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient}"},
        "description": "x" * size,
    }
    return json.dumps(plan)


def test_an_event_too_large_for_the_broker_is_parked_and_the_events_behind_it_flow(
    careplan: ServiceRuntime,
    settings: Settings,
    kafka_bootstrap: str,
) -> None:
    careplan.stop(grace=0.2)  # its relay must see the big row first, with the others behind it
    victim = new_patient_id()
    limit = settings.kafka_max_message_bytes
    big_id = _park_row(careplan, victim, _oversized_plan(victim, limit + 1024))
    # The victim's later event waits behind the parked one (per-patient order); another
    # patient's events flow.
    later_victim_id = _park_row(careplan, victim, _oversized_plan(victim, 10))

    restarted = harness.build("careplan", settings, str(careplan.db.url))
    restarted.start()
    try:
        with harness.channel(restarted) as channel:
            other = new_patient_id()
            team = pb_grpc.CarePlanServiceStub(channel).CreateCareTeam(
                pb.CreateCareTeamRequest(
                    request_id=str(uuid.uuid4()), fhir_json=json.dumps(care_team(other))
                ),
                metadata=as_(settings, "case-manager", "cm-1"),
                timeout=10,
            )
        assert team.care_team.id
        harness.read_topic(
            kafka_bootstrap,
            harness.topic(settings, topics.CAREPLAN),
            lambda r: r.key == other.encode(),
        )
        o = careplan_store.outbox.c
        with restarted.db.read() as conn:
            rows = {
                r.event_id: r
                for r in conn.execute(
                    select(careplan_store.outbox).where(o.event_id.in_([big_id, later_victim_id]))
                )
            }
        assert rows[big_id].parked_at is not None
        assert "MessageSizeTooLarge" in (rows[big_id].park_reason or "")
        assert rows[big_id].sent_at is None
        # Held behind the parked one, neither sent nor parked itself.
        assert rows[later_victim_id].sent_at is None
        assert restarted.relay is not None and restarted.relay.parked >= 1
    finally:
        restarted.stop(grace=0.2)


def test_a_resource_over_one_mebibyte_within_the_api_limit_reaches_the_consumers(
    stub: pb_grpc.CarePlanServiceStub,
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    kafka_bootstrap: str,
) -> None:
    """The API limit and the producer's and broker's limits agree: what the API accepts can be
    published (the original failure: a 1.5 MiB CareTeam accepted, then never published)."""
    patient = new_patient_id()
    team = care_team(patient)
    team["note"] = [{"text": "y" * (1536 * 1024)}]
    created = stub.CreateCareTeam(
        pb.CreateCareTeamRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(team)),
        metadata=as_(settings, "case-manager", "cm-1"),
        timeout=20,
    )
    (record,) = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: r.key == patient.encode(),
        timeout=30,
    )
    assert json.loads(record.value)["id"] == created.care_team.id
