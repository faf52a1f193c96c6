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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import SecretStr
from sqlalchemy import insert, select

from iopcare.careplan import store as careplan_store
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.devtools import kafka_broker
from iopcare.kit import relay, signing, topics
from iopcare.kit.events import Event
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import as_, wait_for_team
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

        attacker = signing.EventSigner("careplan", Ed25519PrivateKey.generate())
        extra = attacker.headers(forged)
    elif signature == "notes-key":
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
                # The program's administrator enrols a first team (issue 10, defect 4).
                metadata=as_(settings, "admin", "adm-1"),
                timeout=10,
            )
        assert team.care_team.id
        harness.read_topic(
            kafka_bootstrap,
            harness.topic(settings, topics.CAREPLAN),
            lambda r: r.key == other.encode(),
        )
        o = careplan_store.outbox.c

        def outbox_rows() -> dict[str, Any] | None:
            with restarted.db.read() as conn:
                found = {
                    r.event_id: r
                    for r in conn.execute(
                        select(careplan_store.outbox).where(
                            o.event_id.in_([big_id, later_victim_id])
                        )
                    )
                }
            # The relay records the parking after the batch went out: poll for it.
            return found if found[big_id].parked_at is not None else None

        rows = harness.eventually(outbox_rows, timeout=10)
        assert "MessageSizeTooLarge" in (rows[big_id].park_reason or "")
        assert rows[big_id].sent_at is None
        # Held behind the parked one, neither sent nor parked itself.
        assert rows[later_victim_id].sent_at is None
        assert restarted.relay is not None and restarted.relay.parked >= 1
        assert [r.event_id for r in relay.parked_rows(restarted.db, careplan_store.outbox)] == [
            big_id
        ]
    finally:
        restarted.stop(grace=0.2)
    # An operator releases it (`iopcare outbox retry`) while only the producers' limit was
    # raised, not the topic's: the broker refuses it, and it is parked again instead of
    # blocking the relay (the broker-side path of the same rule).
    assert relay.release_parked(restarted.db, careplan_store.outbox) == 1
    lenient = settings.model_copy(update={"max_resource_bytes": 2 * limit})
    again = relay.OutboxRelay(
        restarted.db,
        careplan_store.outbox,
        lambda: relay.make_producer(lenient, "test-relay"),
        topic_prefix=settings.topic_prefix,
        signer=signing.signer_for(settings, "careplan"),
    )
    try:
        harness.eventually(lambda: again.publish_pending() == 0 and again.parked == 1)
    finally:
        again.stop()
    (parked,) = relay.parked_rows(restarted.db, careplan_store.outbox)
    assert parked.event_id == big_id and "MessageSizeTooLarge" in (parked.park_reason or "")
    # The broker's refusal failed the whole batch; isolating the culprit parked only it, and the
    # patient's later event still waits behind it.
    o = careplan_store.outbox.c
    with restarted.db.read() as conn:
        later = conn.execute(
            select(o.sent_at, o.parked_at).where(o.event_id == later_victim_id)
        ).one()
    assert later.sent_at is None and later.parked_at is None


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
        # The program's administrator enrols a first team (issue 10, defect 4).
        metadata=as_(settings, "admin", "adm-1"),
        timeout=20,
    )
    (record,) = harness.read_topic(
        kafka_bootstrap,
        harness.topic(settings, topics.CAREPLAN),
        lambda r: r.key == patient.encode(),
        timeout=30,
    )
    assert json.loads(record.value)["id"] == created.care_team.id


# A broker with SASL and ACLs -------------------------------------------------------------------
@pytest.fixture(scope="module")
def sasl_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[kafka_broker.KafkaBroker, dict[str, str]]]:
    """A broker of its own, as `make run` starts it: SCRAM users (admin, one per service), the
    StandardAuthorizer denying what no ACL allows, and the services' ACLs."""
    folder = tmp_path_factory.mktemp("sasl")
    users = kafka_broker.dev_sasl_users(folder / "credentials")
    broker = kafka_broker.KafkaBroker(data_dir=folder / "kafka", sasl_users=users)
    broker.start()
    try:
        admin = broker.client_options()
        kafka_broker.create_topics(
            broker.bootstrap_servers, topics.all_topics(), topics.PARTITIONS, client_options=admin
        )
        kafka_broker.grant_service_acls(broker.bootstrap_servers, admin)
        yield broker, users
    finally:
        broker.stop()


def _as_user(broker: kafka_broker.KafkaBroker, user: str, password: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


def _readable(options: dict[str, Any], topic: str) -> list[Any]:
    """Reads the topic from the beginning with these client options; raises if refused."""
    consumer = KafkaConsumer(**options, enable_auto_commit=False, bootstrap_timeout_ms=3_000)
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        for partition in partitions:
            consumer.position(partition)  # asks the broker: refused without the right to read
        return [r for records in consumer.poll(timeout_ms=2_000).values() for r in records]
    finally:
        consumer.close()


def test_an_anonymous_client_can_neither_read_nor_write_the_topics_of_a_sasl_broker(
    sasl_broker: tuple[kafka_broker.KafkaBroker, dict[str, str]],
) -> None:
    broker, users = sasl_broker
    careplan = _as_user(broker, "careplan", users["careplan"])
    producer = KafkaProducer(**careplan, acks="all")
    producer.send(topics.CAREPLAN, key=b"pat-x", value=b'{"resourceType": "CarePlan"}').get(10)
    producer.close()
    # careplan's own consumers (notes) see it; an anonymous or a wrong-password client gets in
    # nowhere: the listener speaks only SASL.
    assert _readable(_as_user(broker, "notes", users["notes"]), topics.CAREPLAN)
    for options in (
        {"bootstrap_servers": broker.bootstrap_servers},
        _as_user(broker, "careplan", "not-the-password"),
    ):
        with pytest.raises(KafkaError):
            _readable(options, topics.CAREPLAN)
        with pytest.raises(KafkaError):
            KafkaProducer(**options, bootstrap_timeout_ms=3_000).send(
                topics.CAREPLAN, key=b"pat-x", value=b"{}"
            ).get(10)


def test_a_service_principal_may_write_only_its_own_topic_and_read_only_what_it_consumes(
    sasl_broker: tuple[kafka_broker.KafkaBroker, dict[str, str]],
) -> None:
    broker, users = sasl_broker
    notes = _as_user(broker, "notes", users["notes"])
    # A stolen notes password cannot forge careplan's CareTeam events, only write notes' own.
    # (A refused idempotent producer is dead for good: one producer per attempt.)
    for topic, allowed in ((topics.CAREPLAN, False), (topics.NOTES, True)):
        producer = KafkaProducer(**notes, acks="all", max_block_ms=5_000)
        try:
            if allowed:
                producer.send(topic, key=b"pat-x", value=b"{}").get(10)
            else:
                with pytest.raises(TopicAuthorizationFailedError):
                    producer.send(topic, key=b"pat-x", value=b"{}").get(10)
        finally:
            producer.close()
    # scheduling does not consume notes' topic, so it may not read it.
    with pytest.raises(TopicAuthorizationFailedError):
        _readable(_as_user(broker, "scheduling", users["scheduling"]), topics.NOTES)


def test_the_services_exchange_events_on_a_sasl_broker_each_as_its_own_principal(
    sasl_broker: tuple[kafka_broker.KafkaBroker, dict[str, str]], tmp_path: Path
) -> None:
    broker, users = sasl_broker
    base = harness.settings_for(tmp_path / "data", broker.bootstrap_servers)
    (tmp_path / "data").mkdir()

    def as_service(name: str) -> Settings:
        return base.model_copy(
            update={
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_username": name,
                "kafka_sasl_password": SecretStr(users[name]),
            }
        )

    runtimes = {
        name: harness.build(
            name,
            as_service(name),
            f"sqlite:///{tmp_path / (name + '.db')}",
            # The groups the ACLs grant (iopcare-<service>*), fresh for this test.
            group=f"iopcare-{name}-{uuid.uuid4().hex[:8]}",
        )
        for name in ("careplan", "notes")
    }
    for runtime in runtimes.values():
        runtime.start()
    try:
        patient = new_patient_id()
        with harness.channel(runtimes["careplan"]) as channel:
            harness.enrol_over_grpc(pb_grpc.CarePlanServiceStub(channel), base, patient)
        with harness.channel(runtimes["notes"]) as channel:
            wait_for_team(nt_grpc.NotesServiceStub(channel), base, patient)
    finally:
        for runtime in runtimes.values():
            runtime.stop(grace=0.2)


def test_event_values_are_encrypted_on_the_topic_and_still_applied(
    settings: Settings, tmp_path: Path, kafka_bootstrap: str
) -> None:
    """With IOPCARE_EVENT_ENCRYPTION (make run, deploy), a client that can read the topic (an
    operator, a backup, a broker disk) sees no clinical content; the consumers still apply it."""
    encrypted = settings.model_copy(update={"event_encryption": True})
    runtimes = {
        name: harness.build(name, encrypted, f"sqlite:///{tmp_path / (name + '.db')}")
        for name in ("careplan", "notes")
    }
    for runtime in runtimes.values():
        runtime.start()
    try:
        patient = new_patient_id()
        with harness.channel(runtimes["careplan"]) as channel:
            harness.enrol_over_grpc(pb_grpc.CarePlanServiceStub(channel), encrypted, patient)
        with harness.channel(runtimes["notes"]) as channel:
            wait_for_team(nt_grpc.NotesServiceStub(channel), encrypted, patient)
    finally:
        for runtime in runtimes.values():
            runtime.stop(grace=0.2)
    record = _team_record(settings, kafka_bootstrap, patient)
    assert harness.header(record, "iopcare_enc") == "A256GCM"
    assert b"CareTeam" not in record.value and b"Practitioner/" not in record.value
    assert patient.encode() not in record.value


def test_the_deploy_files_require_sasl_ssl_signed_and_encrypted_events() -> None:
    """Production never talks to Kafka in clear or anonymously (no YAML parser in the test
    dependencies: the settings are checked as the lines operators read)."""
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    compose = (deploy / "compose.yaml").read_text()
    config = (deploy / "k8s" / "config.yaml").read_text()
    for text, quote in ((compose, ""), (config, '"')):
        assert f"IOPCARE_KAFKA_SECURITY_PROTOCOL: {quote}SASL_SSL{quote}" in text
        assert 'IOPCARE_EVENT_ENCRYPTION: "true"' in text
        assert "IOPCARE_EVENT_KEYS_DIR: " in text
        assert "PLAINTEXT" not in text.replace("SASL_SSL", "")
    for name in ("careplan", "scheduling", "notes"):
        assert f"IOPCARE_KAFKA_SASL_USERNAME: {name}" in compose
        manifest = (deploy / "k8s" / f"{name}.yaml").read_text()
        assert f"IOPCARE_KAFKA_SASL_USERNAME, value: {name} }}" in manifest
