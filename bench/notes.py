"""Notes benchmarks (issue 4): message post to WatchThread delivery, and full-text search.

1. **Post -> WatchThread**: notes in its own process; one client watches a patient's thread while
   another posts messages at a steady rate; the latency is from just before PostMessage is called
   to the message arriving on the stream (target p99 <= 200 ms).
2. **SearchNotes over 100,000 notes**: notes loaded straight into notes' tables (rows and the
   full-text index, as the service stores them) for 1,000 patients; random patients searched for
   one or two random words over gRPC from one client thread (target p99 <= 50 ms). Each search
   also writes its audit rows (one per hit), as in production.

The care team memberships are written into notes' projection table directly (the rows the
careteam events would produce), so these figures measure notes alone, not careplan or Kafka.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from bench.common import summary
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess
from iopcare.kit.db import Database, migrate
from iopcare.notes import app, fhir_map, store
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc

_VOCABULARY = """
anxiety craving relapse sleep appetite mood trigger coping family work school group
medication sertraline naltrexone buprenorphine dose side effects nausea weight meal plan
binge purge restriction exercise motivation ambivalence shame guilt grief trauma flashback
nightmare panic avoidance exposure homework journal mindfulness breathing relaxation
boundaries conflict partner parent sibling employer court probation housing transport
insurance attendance late absent engaged withdrawn tearful irritable calm hopeful suicidal
ideation plan safety contract crisis hotline lethality means restriction alcohol cannabis
opioid stimulant nicotine abstinence lapse urine screen negative positive blood pressure
pulse labs liver enzymes thyroid vitamin deficiency hydration electrolytes dietitian
psychiatrist therapist nurse physician case manager discharge intake referral progress
goals objectives interventions response barriers strengths supports resources
"""
WORDS = _VOCABULARY.split()


def _team_rows(patient: str, members: dict[str, str], now: datetime) -> list[dict[str, object]]:
    return [
        {
            "team_id": f"team-{patient}",
            "patient_id": patient,
            "member": f"Practitioner/{p}",
            "role": role,
            "period_start": None,
            "period_end": None,
            "updated_at": now,
        }
        for p, role in members.items()
    ]


def _prepare(database_url: str) -> Database:
    db = Database(database_url)
    migrate(db, app.MIGRATIONS)
    return db


def load_notes(database_url: str, patients: int, per_patient: int, author: str) -> list[str]:
    """Loads patients x per_patient signed progress notes (and the author's memberships)."""
    db = _prepare(database_url)
    now = datetime.now(UTC)
    template = json.loads(
        fhir_map.document_reference(
            fhir_map.NoteState(
                id="TEMPLATE",
                version=2,
                patient_id="PATIENT",
                kind="progress",
                author=f"Practitioner/{author}",
                status="signed",
                title="",
                text="x",
                shared_text="",
                confidentiality="N",
                sensitivity=frozenset(),
                created_at=now,
                updated_at=now,
            )
        )
    )
    rng = random.Random(4)
    ids = [f"bench-notes-{i}" for i in range(patients)]
    started = time.perf_counter()
    with db.write() as conn:
        conn.execute(
            store.care_team_member.insert(),
            [row for p in ids for row in _team_rows(p, {author: "psychiatrist"}, now)],
        )
    batch: list[dict[str, object]] = []
    seq = 0

    def flush() -> None:
        with db.write() as conn:
            conn.execute(store.note.insert(), batch)
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql(
                    f"INSERT INTO {store.SQLITE_FTS}(rowid, patient, body) "
                    "SELECT seq, patient_id, search_text FROM note WHERE seq > ?",
                    (seq - len(batch),),
                )
        batch.clear()

    for n in range(per_patient):
        for patient in ids:
            seq += 1
            text = " ".join(rng.choice(WORDS) for _ in range(60)) + "."
            at = now - timedelta(minutes=seq)
            resource = dict(template, id=f"n{seq}", subject={"reference": f"Patient/{patient}"})
            batch.append(
                {
                    "seq": seq,
                    "id": f"n{seq}",
                    "patient_id": patient,
                    "kind": "progress",
                    "type_code": "11506-3",
                    "author": f"Practitioner/{author}",
                    "author_role": "psychiatrist",
                    "status": "signed",
                    "version": 2,
                    "title": f"Session {n}",
                    "text": text,
                    "shared_text": "",
                    "search_text": store.search_text(f"Session {n}", text, ""),
                    "confidentiality": "N",
                    "sensitivity": "",
                    "shared_with": "[]",
                    "created_at": at,
                    "updated_at": at,
                    "signed_at": at,
                    "signed_by": f"Practitioner/{author}",
                    "resource": json.dumps(resource),
                }
            )
            if len(batch) >= 5000:
                flush()
    if batch:
        flush()
    if not db.is_sqlite:
        with db.write() as conn:
            conn.exec_driver_sql("ANALYZE note")
    db.dispose()
    print(
        f"    loaded {patients * per_patient} notes for {patients} patients in "
        f"{time.perf_counter() - started:.0f} s"
    )
    return ids


def bench_search(
    env: dict[str, str],
    data_dir: Path,
    database_url: str,
    metadata: list[tuple[str, str]],
    author: str,
    total_notes: int,
    calls: int,
) -> None:
    patients = 1000
    ids = load_notes(database_url, patients, max(1, total_notes // patients), author)
    extra = {"IOPCARE_NOTES_DATABASE_URL": database_url} if database_url else {}
    process = ServiceProcess(
        "notes",
        free_port(),
        {**env, **extra},
        data_dir / f"notes-search-{uuid.uuid4().hex[:4]}.log",
    )
    process.start()
    rng = random.Random(7)
    latencies: list[float] = []
    hits = 0
    try:
        with grpc.insecure_channel(process.address) as channel:
            stub = nt_grpc.NotesServiceStub(channel)
            for i in range(calls + 50):
                words = " ".join(rng.choice(WORDS) for _ in range(rng.choice((1, 2))))
                request = nt.SearchNotesRequest(
                    patient_id=rng.choice(ids), text=words, page_size=20
                )
                started = time.perf_counter()
                found = stub.SearchNotes(request, metadata=metadata, timeout=30)
                elapsed = (time.perf_counter() - started) * 1000
                if i >= 50:  # warm-up calls are not counted
                    latencies.append(elapsed)
                    hits += len(found.notes)
    finally:
        process.stop()
    print(f"    SearchNotes: {summary(latencies)}; {hits / max(1, len(latencies)):.1f} hits/search")


def bench_watch(
    env: dict[str, str],
    data_dir: Path,
    watcher_md: list[tuple[str, str]],
    poster_md: list[tuple[str, str]],
    members: dict[str, str],
    rate: float,
    seconds: float,
) -> None:
    db = _prepare(f"sqlite:///{data_dir / 'notes.db'}")
    patient = "bench-watch"
    with db.write() as conn:
        conn.execute(
            store.care_team_member.insert(), _team_rows(patient, members, datetime.now(UTC))
        )
    db.dispose()
    process = ServiceProcess("notes", free_port(), env, data_dir / "notes-watch.log")
    process.start()
    sent: dict[str, float] = {}
    latencies: list[float] = []
    total = int(rate * seconds)
    done = threading.Event()
    try:
        with grpc.insecure_channel(process.address) as channel:
            stub = nt_grpc.NotesServiceStub(channel)
            call = stub.WatchThread(nt.WatchThreadRequest(patient_id=patient), metadata=watcher_md)
            call.initial_metadata()  # the stream is open

            def watch() -> None:
                for item in call:
                    arrived = time.perf_counter()
                    latencies.append((arrived - sent[item.message.text]) * 1000)
                    if len(latencies) >= total:
                        done.set()
                        return

            reader = threading.Thread(target=watch, daemon=True)
            reader.start()
            interval = 1.0 / rate
            next_at = time.perf_counter()
            for i in range(total):
                next_at += interval
                text = f"bench message {i}"
                sent[text] = time.perf_counter()
                stub.PostMessage(
                    nt.PostMessageRequest(
                        request_id=str(uuid.uuid4()), patient_id=patient, text=text
                    ),
                    metadata=poster_md,
                    timeout=30,
                )
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            done.wait(30)
            call.cancel()
    finally:
        process.stop()
    lost = total - len(latencies)
    print(f"    post -> WatchThread at {rate:g}/s: {summary(latencies)}; {lost} not delivered")
