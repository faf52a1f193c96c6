"""Two replicas of every service on one PostgreSQL and one Kafka, each SIGKILLed in turn under a
steady write load (issue 17, item 3; ADR 0018).

Six real service processes (`iopcare serve`), topics of 6 partitions shared by each service's
consumer group, periodic tasks running every second on every replica. Clients create CarePlans,
care teams, PHQ-9s (which raise crisis alerts nobody acknowledges) and team messages through
gRPC, each with a request id, and retry a call refused with UNAVAILABLE (the replica died under
it) on the other replica with the same request id. Meanwhile the replica of careplan, then of
scheduling, then of notes that holds the outbox lease (it logged taking it) is SIGKILLed, the
other replica must take the lease over, and the killed one is started again. Afterwards:

- every event in each service's outbox is on its topic exactly once (the relay that took the
  lease over read the topic's tail before publishing, kit.relay), and nothing else is;
- every consumer has an inbox row for every event of the topics it consumes (applied once: the
  inbox key) and the projections hold no copy;
- every periodic notice came once: one review-due event per plan, one re-escalation per crisis
  alert, one Flag event per raised scheduling alert, no appointment occurrence twice;
- no client saw an error but UNAVAILABLE, and every such call succeeded when retried;
- a WatchThread stream open on one notes replica receives a message posted on the other.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import create_engine, func, select, text

from iopcare.careplan import codes as careplan_codes
from iopcare.careplan import store as careplan_store
from iopcare.careplan.v1 import careplan_service_pb2 as cp
from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc
from iopcare.devtools import kafka_broker
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess
from iopcare.kit import audit, signing, topics
from iopcare.kit.settings import Settings
from iopcare.notes import store as notes_store
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from iopcare.scheduling import codes as scheduling_codes
from iopcare.scheduling import store as scheduling_store
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id, phq9

SERVICES = ("careplan", "scheduling", "notes")
PARTITIONS = 6
#: How long the load runs around each kill.
BEFORE_KILL, DOWN, AFTER_RESTART = 2.0, 2.0, 1.0
#: What a relay logs when it takes its service's outbox lease (kit.relay).
LEASE_TAKEN = "took the outbox lease"


class Replica(ServiceProcess):
    """A service process started without a `preexec_fn`: this test forks while its gRPC client
    threads run, and Python code between fork and exec (die_with_parent's prctl) can crash the
    child then (seen: SIGSEGV). `setpriv --pdeathsig` asks for the same parent-death signal from
    a separate program, and the start is a plain vfork/exec."""

    def start(self, wait: bool = True, timeout: float = 60.0) -> None:
        env = {**os.environ, **self.env, f"IOPCARE_{self.name.upper()}_PORT": str(self.port)}
        guard = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [*guard, sys.executable, "-m", "iopcare.cli", "serve", self.name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready(timeout)


class Cluster:
    """Two processes per service and what the test needs to reach them."""

    def __init__(self, tmp_path: Path, env: dict[str, str], urls: dict[str, str]) -> None:
        self.env = env
        self.urls = urls
        self.replicas = {
            name: [Replica(name, free_port(), env, tmp_path / f"{name}-{i}.log") for i in range(2)]
            for name in SERVICES
        }

    def start(self) -> None:
        # All six at once: the replicas of a service migrate its database one at a time
        # (kit.db.migrate), and one of them takes the outbox lease.
        for process in self.all():
            process.start(wait=False)
        for process in self.all():
            process.wait_ready(90)

    def all(self) -> list[ServiceProcess]:
        return [p for ps in self.replicas.values() for p in ps]

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_file.name}\n{p.tail(15)}" for p in self.all())


@pytest.fixture
def cluster(
    tmp_path: Path, kafka_bootstrap: str, postgres_server: Any
) -> Iterator[tuple[Cluster, Settings]]:
    if postgres_server is None:
        harness.missing("PostgreSQL is not available on this machine")
    prefix = f"r{uuid.uuid4().hex[:10]}."
    kafka_broker.create_topics(kafka_bootstrap, topics.all_topics(prefix), partitions=PARTITIONS)
    urls = {
        name: str(postgres_server.create_database(f"{name}_{uuid.uuid4().hex[:8]}"))
        for name in SERVICES
    }
    settings = Settings(data_dir=tmp_path, topic_prefix=prefix, dev_mode=True)
    # The development keys, made once here rather than raced for by six processes.
    audit.key_for(settings)
    for name in SERVICES:
        signing.signer_for(settings, name)
    harness.token(settings)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "IOPCARE_TOPIC_PREFIX": prefix,
        "IOPCARE_TOPIC_PARTITIONS": str(PARTITIONS),
        "IOPCARE_DATA_DIR": str(tmp_path),
        "IOPCARE_DEV_MODE": "true",
        "IOPCARE_RPC_MAX_CALLS_PER_CLIENT": "0",
        # Every periodic task runs every second on both replicas of its service.
        "IOPCARE_REVIEW_CHECK_SECONDS": "1",
        "IOPCARE_CRISIS_CHECK_SECONDS": "0.5",
        "IOPCARE_CRISIS_ESCALATION_MINUTES": "0.02",
        "IOPCARE_SCHEDULING_CHECKIN_CHECK_SECONDS": "1",
        "IOPCARE_SCHEDULING_CHECKIN_CUTOFF": "00:00:01",
        "IOPCARE_SCHEDULING_INTENSITY_CHECK_SECONDS": "1",
        "IOPCARE_SCHEDULING_HORIZON_CHECK_SECONDS": "1",
        "IOPCARE_NOTES_WATCH_POLL_SECONDS": "1",
        **{f"IOPCARE_{n.upper()}_DATABASE_URL": urls[n] for n in SERVICES},
        # Both replicas of a service in one group (the services prefix it with the topic prefix).
        **{f"IOPCARE_{n.upper()}_CONSUMER_GROUP": f"iopcare-{n}" for n in SERVICES},
    }
    running = Cluster(tmp_path, env, urls)
    try:
        running.start()
        yield running, settings
    finally:
        # Nothing is checked after the test: end them at once (SIGKILL), no graceful stop.
        for process in running.all():
            process.kill()


class Client:
    """Calls a service on whichever replica answers: UNAVAILABLE (the replica is down or died
    during the call) is retried on the other with the same request, which carries its id."""

    def __init__(self, processes: Sequence[ServiceProcess], stub: Callable[[grpc.Channel], Any]):
        self.processes = processes
        self.channels = [grpc.insecure_channel(p.address) for p in processes]
        self.stubs = [stub(c) for c in self.channels]
        self.turn = 0
        self.unavailable = 0
        self.errors: list[str] = []

    def call(self, method: str, request: Any, metadata: Any) -> Any:
        deadline = time.monotonic() + 60
        while True:
            i = self.turn % len(self.stubs)
            self.turn += 1
            try:
                return getattr(self.stubs[i], method)(request, metadata=metadata, timeout=15)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    self.errors.append(f"{method}: {exc.code().name} {exc.details()}")
                    raise
                self.unavailable += 1
                if time.monotonic() > deadline:
                    self.errors.append(f"{method}: UNAVAILABLE for 60s")
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


def _lease_taken(process: ServiceProcess) -> list[str]:
    """When the process's relay took its outbox lease, oldest first (ISO times of its log)."""
    return [
        json.loads(line)["time"]
        for line in process.log_file.read_text(errors="replace").splitlines()
        if LEASE_TAKEN in line and line.startswith("{")
    ]


def _plan_due_yesterday(patient: str, team: str) -> str:
    """An IOP plan whose next review date has passed: every careplan replica's review task
    finds it due at once."""
    plan = iop_plan(patient, team)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    plan["extension"] = [
        *plan.get("extension", []),
        {"url": careplan_codes.NEXT_REVIEW_EXTENSION, "valueDate": yesterday},
    ]
    return json.dumps(plan)


def _topic_ids(bootstrap: str, topic: str) -> Counter[str]:
    """How many times each ce_id is on the topic (every partition, from the beginning)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        seen: Counter[str] = Counter()
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    seen[harness.header(record, "ce_id") or ""] += 1
        return seen
    finally:
        consumer.close()


def _rows(url: str, query: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).all())
    finally:
        engine.dispose()


def test_two_replicas_per_service_survive_sigkill_without_losing_or_doubling_anything(
    cluster: tuple[Cluster, Settings], kafka_bootstrap: str
) -> None:
    running, settings = cluster
    careplan = Client(running.replicas["careplan"], cp_grpc.CarePlanServiceStub)
    notes = Client(running.replicas["notes"], nt_grpc.NotesServiceStub)
    clients = [careplan, notes]
    admin = harness.metadata(settings, role="admin", practitioner="adm-1")
    case_manager = harness.metadata(settings, role="case-manager", practitioner="cm-1")
    psychiatrist = harness.metadata(settings)
    therapist = harness.metadata(settings, role="therapist", practitioner="th-1")

    acknowledged: dict[str, list[str]] = {"plans": [], "messages": [], "measures": []}
    stop = threading.Event()
    failures: list[BaseException] = []

    def enrol(patient: str) -> str:
        episode = {
            "resourceType": "EpisodeOfCare",
            "status": "planned",
            "patient": {"reference": f"Patient/{patient}"},
            "careManager": {"reference": "Practitioner/cm-1"},
        }
        careplan.call(
            "CreateEpisode",
            cp.CreateEpisodeRequest(request_id=str(uuid.uuid4()), fhir_json=json.dumps(episode)),
            admin,
        )
        from tests.support.plans import care_team

        return str(
            careplan.call(
                "CreateCareTeam",
                cp.CreateCareTeamRequest(
                    request_id=str(uuid.uuid4()), fhir_json=json.dumps(care_team(patient))
                ),
                case_manager,
            ).care_team.id
        )

    def careplan_load() -> None:
        try:
            while not stop.is_set():
                patient = new_patient_id()
                team = enrol(patient)
                created = careplan.call(
                    "CreateCarePlan",
                    cp.CreateCarePlanRequest(
                        request_id=str(uuid.uuid4()), fhir_json=_plan_due_yesterday(patient, team)
                    ),
                    psychiatrist,
                )
                acknowledged["plans"].append(created.care_plan.id)
                if len(acknowledged["plans"]) % 4 == 1:
                    # A PHQ-9 with item 9 answered: a crisis alert in notes, never acknowledged.
                    careplan.call(
                        "RecordMeasure",
                        cp.RecordMeasureRequest(
                            request_id=str(uuid.uuid4()),
                            fhir_json=json.dumps(phq9(patient, 21, item9=1)),
                        ),
                        therapist,
                    )
                    acknowledged["measures"].append(patient)
                patients.append(patient)
                time.sleep(0.2)
        except BaseException as exc:  # the assertions below report it
            failures.append(exc)

    def notes_load() -> None:
        try:
            while not stop.is_set():
                if not team_known:
                    time.sleep(0.1)
                    continue
                patient = team_known[len(acknowledged["messages"]) % len(team_known)]
                posted = notes.call(
                    "PostMessage",
                    nt.PostMessageRequest(
                        request_id=str(uuid.uuid4()), patient_id=patient, text="Seen today; stable."
                    ),
                    psychiatrist,
                )
                acknowledged["messages"].append(posted.message.id)
                time.sleep(0.05)
        except BaseException as exc:
            failures.append(exc)

    patients: list[str] = []
    team_known: list[str] = []

    def watch_teams() -> None:
        # Notes accepts messages once it has applied the patient's team.
        while not stop.is_set():
            for patient in patients[len(team_known) : len(team_known) + 1]:
                try:
                    notes.stubs[1].ListThread(
                        nt.ListThreadRequest(patient_id=patient, page_size=1),
                        metadata=psychiatrist,
                        timeout=5,
                    )
                    team_known.append(patient)
                except grpc.RpcError:
                    pass
            time.sleep(0.2)

    threads = [
        threading.Thread(target=careplan_load, name="careplan-load"),
        threading.Thread(target=notes_load, name="notes-load"),
        threading.Thread(target=watch_teams, name="team-watch"),
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        # WatchThread on replica 1 sees a message posted through replica 0.
        harness.eventually(lambda: team_known, timeout=60)
        patient = team_known[0]
        stream = notes.stubs[1].WatchThread(
            nt.WatchThreadRequest(patient_id=patient), metadata=psychiatrist
        )
        stream.initial_metadata()
        marker = f"posted on replica 0 {uuid.uuid4().hex[:6]}"
        notes.stubs[0].PostMessage(
            nt.PostMessageRequest(request_id=str(uuid.uuid4()), patient_id=patient, text=marker),
            metadata=psychiatrist,
            timeout=15,
        )
        posted_at = time.monotonic()
        for item in stream:
            if item.message.text == marker:
                break
        watch_delay = time.monotonic() - posted_at
        stream.cancel()
        assert watch_delay < 5.0, f"the other replica's message took {watch_delay:.1f}s"

        for name in SERVICES:
            time.sleep(BEFORE_KILL)
            # The replica that publishes (the last to log taking the outbox lease) is killed,
            # and the other must take the lease over.
            victim = max(running.replicas[name], key=lambda p: _lease_taken(p)[-1:])
            assert _lease_taken(victim), f"no {name} replica took the outbox lease"
            (survivor,) = [p for p in running.replicas[name] if p is not victim]
            before = len(_lease_taken(survivor))
            victim.kill()

            def took_over(s: ServiceProcess = survivor, n: int = before) -> bool:
                return len(_lease_taken(s)) > n

            harness.eventually(took_over, timeout=15)
            time.sleep(DOWN)
            victim.start(wait=False)
            try:
                victim.wait_ready(90)
            except TimeoutError as exc:
                rc = victim.process.returncode if victim.process else None
                raise AssertionError(
                    f"{name} did not restart ({exc}, rc {rc}):\n{victim.tail()}"
                ) from None
            time.sleep(AFTER_RESTART)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    load_seconds = time.monotonic() - started
    assert not failures, f"{failures!r}\n{running.logs()}"
    for client in clients:
        assert client.errors == [], client.errors

    plans, messages = acknowledged["plans"], acknowledged["messages"]
    assert len(plans) >= 10 and len(messages) >= 10, (len(plans), len(messages))

    # Everything published and applied: every outbox row sent, every group at its topics' end.
    urls = running.urls

    def all_sent() -> bool:
        return all(
            not _rows(urls[n], text("SELECT 1 FROM outbox WHERE sent_at IS NULL LIMIT 1"))
            for n in SERVICES
        )

    drained = time.monotonic()
    harness.eventually(all_sent, timeout=60, interval=0.5)
    for name in SERVICES:
        harness.wait_caught_up(
            kafka_bootstrap,
            f"{settings.topic_prefix}iopcare-{name}",
            [harness.topic(settings, t) for t in topics.CONSUMES[name]],
            timeout=60,
        )

    drain_seconds = time.monotonic() - drained
    # Each event on its topic exactly once; nothing on a topic that is not in its outbox. The
    # periodic tasks keep running on every replica while this reads (a crisis alert nobody
    # acknowledges is escalated later), so a new event may be committed and published between
    # two reads: what was sent before the topic is read must be on it, and what is on it must be
    # in the outbox read after it.
    sent = "SELECT event_id FROM outbox WHERE sent_at IS NOT NULL"
    for name in SERVICES:
        sent_before = {r.event_id for r in _rows(urls[name], text(sent))}
        on_topic = _topic_ids(kafka_bootstrap, harness.topic(settings, topics.PRODUCES[name]))
        outbox_after = {r.event_id for r in _rows(urls[name], text("SELECT event_id FROM outbox"))}
        twice = {i: n for i, n in on_topic.items() if n != 1}
        assert twice == {}, f"{name}: events on the topic more than once: {twice}"
        lost = sent_before - set(on_topic)
        assert not lost, f"{name}: {len(lost)} events marked sent are not on the topic"
        ghosts = set(on_topic) - outbox_after
        assert not ghosts, f"{name}: {len(ghosts)} events on the topic are in no outbox row"

    # Every consumer applied every event of the topics it consumes, once (the inbox key).
    owner = {topics.PRODUCES[n]: n for n in SERVICES}
    for name in SERVICES:
        # A consumer records (in its inbox) the events it has a handler for, and skips the
        # rest: every event of a type it applied is expected, a CarePlan's creation at least.
        types = {r.event_type for r in _rows(urls[name], text("SELECT event_type FROM inbox"))}
        if name != "careplan":
            assert careplan_codes.EVENT_CREATED in types
        expected = {
            r.event_id
            for t in topics.CONSUMES[name]
            for r in _rows(urls[owner[t]], text("SELECT event_id, event_type FROM outbox"))
            if r.event_type in types
        }
        inbox = text("SELECT event_id FROM inbox")
        # Read after `expected`, and given time: an event a periodic task published just before
        # `expected` was read may still be on its way to the consumer.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not expected <= {
            r.event_id for r in _rows(urls[name], inbox)
        }:
            time.sleep(0.5)
        applied = Counter(r.event_id for r in _rows(urls[name], inbox))
        missing = expected - set(applied)
        assert not missing, f"{name}: {len(missing)} events not applied"
        assert max(applied.values()) == 1

    # The acknowledged writes are there, once.
    plan_rows = _rows(urls["careplan"], select(careplan_store.plans.current.c.id))
    assert set(plans) <= {r.id for r in plan_rows}
    c = notes_store.communication.c
    message_rows = Counter(r.id for r in _rows(urls["notes"], select(c.id)))
    assert set(messages) <= set(message_rows)
    by_source = Counter(
        r.source_event_id
        for r in _rows(
            urls["notes"], select(c.source_event_id).where(c.source_event_id.isnot(None))
        )
    )
    assert not by_source or max(by_source.values()) == 1

    # Periodic notices: once per due item, whichever replica ran the task.
    review_due = Counter(
        r.subject.split("/_history")[0]
        for r in _rows(
            urls["careplan"],
            text("SELECT subject FROM outbox WHERE event_type = :t").bindparams(
                t=careplan_codes.EVENT_REVIEW_DUE_NOW
            ),
        )
    )
    assert {f"CarePlan/{p}" for p in plans} <= set(review_due), "a due plan was not announced"
    assert max(review_due.values()) == 1, f"review-due twice: {review_due.most_common(3)}"
    harness.eventually(
        lambda: (
            len(
                _rows(
                    urls["notes"],
                    select(notes_store.crisis_alert.c.flag_id).where(
                        notes_store.crisis_alert.c.escalated_at.is_(None)
                    ),
                )
            )
            == 0
        ),
        timeout=30,
    )
    alerts = Counter(
        r.patient_id for r in _rows(urls["notes"], select(notes_store.crisis_alert.c.patient_id))
    )
    assert alerts, "no crisis alert was raised"
    escalations = Counter(
        r.patient_id
        for r in _rows(
            urls["notes"],
            select(c.patient_id).where((c.priority == "stat") & (c.category == "crisis")),
        )
    )
    assert escalations == alerts, "a crisis alert was re-escalated other than once"
    alert_types = set(scheduling_codes.EVENT_FOR_ALERT.values())
    flag_events = [
        r
        for r in _rows(urls["scheduling"], text("SELECT event_type FROM outbox"))
        if r.event_type in alert_types
    ]
    raised = _rows(
        urls["scheduling"], select(func.count()).select_from(scheduling_store.alert_raised)
    )
    assert len(flag_events) == raised[0][0]
    a = scheduling_store.appointment.c
    occurrences = Counter(
        (r.care_plan_id, r.occurrence_key)
        for r in _rows(
            urls["scheduling"],
            select(a.care_plan_id, a.occurrence_key).where(a.occurrence_key.isnot(None)),
        )
    )
    assert not occurrences or max(occurrences.values()) == 1

    retried = sum(client.unavailable for client in clients)
    print(
        f"\nreplicas: {len(plans)} plans, {len(messages)} messages, "
        f"{len(acknowledged['measures'])} crises in {load_seconds:.0f}s of load; "
        f"{retried} UNAVAILABLE answers retried; WatchThread across replicas {watch_delay:.2f}s; "
        f"{sum(review_due.values())} review-due notices, {sum(escalations.values())} escalations, "
        f"{len(flag_events)} scheduling alerts; drained in {drain_seconds:.0f}s"
    )
    for client in clients:
        client.close()
