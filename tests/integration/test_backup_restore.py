"""The PostgreSQL backup and restore runbook of docs/operations.md, played against the real
PostgreSQL (pg_dump/pg_restore of the server's installation) and the real broker.

notes (a consumer of careplan's events) is backed up while it runs, keeps working after the dump,
loses its database, gets it back from the dump, has its consumer group moved back to before the
dump, and starts again: what it had is there once, what came after the dump is applied from the
topics, and nothing the restored inbox already holds is applied a second time.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from sqlalchemy import create_engine, text

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.settings import Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.notes import as_, wait_for_team
from tests.support.plans import new_patient_id


def reset_group_to_time(bootstrap: str, group: str, names: list[str], at_ms: int) -> None:
    """What `kafka-consumer-groups.sh --reset-offsets --to-datetime` does: the group's committed
    offset on every partition becomes the first record at or after `at_ms` (the end if none)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or []
        ]
        found = consumer.offsets_for_times(dict.fromkeys(partitions, at_ms))
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.commit(
            {
                tp: OffsetAndMetadata(found[tp].offset if found[tp] else ends[tp], "", -1)
                for tp in partitions
            }
        )
    finally:
        consumer.close(autocommit=False)


def count_rows(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def thread(notes: nt_grpc.NotesServiceStub, settings: Settings, patient: str) -> list[Any]:
    psy = as_(settings, "psychiatrist", "psy-1")
    return list(notes.ListThread(nt.ListThreadRequest(patient_id=patient), metadata=psy).messages)


def plan_created(
    stub: pb_grpc.CarePlanServiceStub,
    notes: nt_grpc.NotesServiceStub,
    settings: Settings,
    patient: str,
) -> None:
    """Enrols the patient, creates a plan, and waits for notes to post its system message."""
    plan = json.loads(harness.enrolled_plan_json(stub, settings, patient))
    stub.CreateCarePlan(
        pb.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(plan)),
        metadata=harness.metadata(settings),
        timeout=10,
    )
    wait_for_team(notes, settings, patient)
    harness.eventually(
        lambda: [m for m in thread(notes, settings, patient) if m.category == "system"]
    )


def test_notes_restored_from_a_dump_resumes_without_reapplying(
    postgres_server: Any, settings: Settings, kafka_bootstrap: str, tmp_path: Path
) -> None:
    if postgres_server is None:
        harness.missing("PostgreSQL is not available on this machine")
    server = postgres_server
    suffix = uuid.uuid4().hex[:8]
    careplan_url = server.create_database(f"careplan_{suffix}")
    notes_db = f"notes_{suffix}"
    notes_url = server.create_database(notes_db)
    group = f"test-notes-{suffix}"
    # The group's name on the broker carries the deployment's topic prefix (kit.runtime).
    broker_group = f"{settings.topic_prefix}{group}"
    consumed = [topics.physical(settings.topic_prefix, t) for t in topics.CONSUMES["notes"]]
    dump = tmp_path / "notes.dump"
    before, after = new_patient_id(), new_patient_id()

    careplan = harness.build("careplan", settings, careplan_url)
    careplan.start()
    try:
        with harness.channel(careplan) as channel:
            stub = pb_grpc.CarePlanServiceStub(channel)
            notes_runtime = harness.build("notes", settings, notes_url, group=group)
            notes_runtime.start()
            try:
                with harness.channel(notes_runtime) as notes_channel:
                    notes = nt_grpc.NotesServiceStub(notes_channel)
                    plan_created(stub, notes, settings, before)
                    # Data written through notes itself, not derived from an event.
                    notes.PostMessage(
                        nt.PostMessageRequest(
                            request_id=str(uuid.uuid4()),
                            patient_id=before,
                            text="Check in about sleep on Tuesday",
                        ),
                        metadata=as_(settings, "therapist", "th-1"),
                    )
                    harness.wait_caught_up(kafka_bootstrap, broker_group, consumed)
                    thread_at_dump = [
                        (m.id, m.category, m.text) for m in thread(notes, settings, before)
                    ]
                    inbox_at_dump = count_rows(notes_url, "inbox")
                    # Step 1 of the runbook: the dump, taken while the service runs.
                    dump_started_ms = int(time.time() * 1000)
                    server.dump(notes_db, dump)
                    # Work goes on after the dump; it is in the topics, not in the dump.
                    plan_created(stub, notes, settings, after)
                    harness.wait_caught_up(kafka_bootstrap, broker_group, consumed)
                    inbox_at_loss = count_rows(notes_url, "inbox")
            finally:
                notes_runtime.stop(grace=0.2)

            assert inbox_at_dump > 0
            assert inbox_at_loss > inbox_at_dump
            assert len(thread_at_dump) == 2

            # The database is lost; restore it from the dump into an empty database.
            server.drop_database(notes_db)
            server.create_database(notes_db)
            server.restore(notes_db, dump)
            assert count_rows(notes_url, "inbox") == inbox_at_dump
            # The group's offsets are past the dump: move them back to before it (a minute of
            # margin, as the runbook says), so the events after the dump are read again.
            reset_group_to_time(kafka_bootstrap, broker_group, consumed, dump_started_ms - 60_000)

            restarted = harness.build("notes", settings, notes_url, group=group)
            restarted.start()
            try:
                with harness.channel(restarted) as notes_channel:
                    notes = nt_grpc.NotesServiceStub(notes_channel)
                    harness.wait_caught_up(kafka_bootstrap, broker_group, consumed)
                    # What the dump held is there, once.
                    assert [
                        (m.id, m.category, m.text) for m in thread(notes, settings, before)
                    ] == thread_at_dump
                    # What came after the dump was applied again from the topics, once.
                    system = [m for m in thread(notes, settings, after) if m.category == "system"]
                    assert len(system) == 1
                    assert count_rows(notes_url, "inbox") == inbox_at_loss
                    stats = [c.stats for c in restarted.consumers]
                    # The inbox restored from the dump turned every event applied before the
                    # dump into a skipped duplicate; only the events after it were applied.
                    assert sum(s.duplicates for s in stats) == inbox_at_dump
                    assert sum(s.applied for s in stats) == inbox_at_loss - inbox_at_dump
                    assert sum(s.dead_lettered for s in stats) == 0
            finally:
                restarted.stop(grace=0.2)
    finally:
        careplan.stop(grace=0.5)
        server.drop_database(notes_db)
        server.drop_database(f"careplan_{suffix}")


def records_on(bootstrap: str, topic: str) -> int:
    """Records ever written to `topic` (an isolated, never-expired test topic)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def test_careplan_restored_from_a_dump_serves_its_data_and_republishes_nothing(
    postgres_server: Any, settings: Settings, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A producer's restore: its resources, request log and audit seals come back; its relay
    does not publish again what the dump records as sent."""
    from iopcare.careplan import store
    from iopcare.kit import audit
    from iopcare.kit.db import Database

    if postgres_server is None:
        harness.missing("PostgreSQL is not available on this machine")
    server = postgres_server
    suffix = uuid.uuid4().hex[:8]
    careplan_db = f"careplan_{suffix}"
    careplan_url = server.create_database(careplan_db)
    own_topic = topics.physical(settings.topic_prefix, topics.CAREPLAN)
    dump = tmp_path / "careplan.dump"
    patient = new_patient_id()
    me = harness.metadata(settings)
    request_id = str(uuid.uuid4())

    def started() -> Any:
        runtime = harness.build("careplan", settings, careplan_url, group=f"test-cp-{suffix}")
        runtime.start()
        return runtime

    try:
        runtime = started()
        try:
            with harness.channel(runtime) as channel:
                stub = pb_grpc.CarePlanServiceStub(channel)
                plan = harness.enrolled_plan_json(stub, settings, patient)
                request = pb.CreateCarePlanRequest(request_id=request_id, fhir_json=plan)
                created = stub.CreateCarePlan(request, metadata=me, timeout=10).care_plan
                got = stub.GetCarePlan(pb.GetCarePlanRequest(id=created.id), metadata=me)
                # Everything written is published before the dump.
                harness.eventually(lambda: unsent_outbox_rows(careplan_url) == 0, timeout=20)
                published = records_on(kafka_bootstrap, own_topic)
                server.dump(careplan_db, dump)
        finally:
            runtime.stop(grace=0.5)
        assert published >= 3  # episode, care team, plan

        server.drop_database(careplan_db)
        server.create_database(careplan_db)
        server.restore(careplan_db, dump)

        runtime = started()
        try:
            with harness.channel(runtime) as channel:
                stub = pb_grpc.CarePlanServiceStub(channel)
                again = stub.GetCarePlan(pb.GetCarePlanRequest(id=created.id), metadata=me)
                assert again.care_plan.fhir_json == got.care_plan.fhir_json
                assert again.care_plan.version == got.care_plan.version
                # The request log came back: a retry of the create is answered, not re-done.
                retried = stub.CreateCarePlan(request, metadata=me, timeout=10).care_plan
                assert (retried.id, retried.version) == (created.id, created.version)
                time.sleep(2)  # relay scans: nothing sent before the dump goes out again
                assert records_on(kafka_bootstrap, own_topic) == published
                # And a new write is published as before.
                harness.enrolled_plan_json(stub, settings, new_patient_id())
                harness.eventually(
                    lambda: records_on(kafka_bootstrap, own_topic) > published, timeout=20
                )
        finally:
            runtime.stop(grace=0.5)

        db = Database(careplan_url)
        try:
            with db.read() as conn:
                altered, unsealed = audit.verify(conn, store.audit_log, audit.key_for(settings))
                audited = count_rows(careplan_url, "audit_log")
        finally:
            db.dispose()
        # The seals survive pg_dump/pg_restore: no row reads as altered.
        assert (altered, unsealed) == ([], 0)
        assert audited > 0
    finally:
        server.drop_database(careplan_db)


def unsent_outbox_rows(url: str) -> int:
    """Outbox rows not yet published."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()
