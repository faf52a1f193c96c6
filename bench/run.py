"""iopcare benchmarks: run with `make bench` (never part of `make test`).

Prints figures and the machine they were measured on. Targets for a 2-core machine (issue 2):
CreateCarePlan >= 300/s on SQLite; careplan commit to notes applied p99 <= 250 ms at 100 events/s.
The figures are printed, never asserted: shared machines are noisy, compare ratios within a run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
from sqlalchemy import create_engine, select

from bench.common import broker, machine, summary
from bench.patient_plan import bench_patient_plan
from bench.scheduling import bench_scheduling
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.demo import demo_care_plan, demo_care_team
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess
from iopcare.kit.auth import ensure_dev_keys, mint_token
from iopcare.kit.rpc import bearer
from iopcare.kit.settings import Settings


def _enrol(stub: pb_grpc.CarePlanServiceStub, manager: list[tuple[str, str]], patient: str) -> str:
    """The patient's care team, with the benchmark's clinician on it; returns its id."""
    team = demo_care_team(patient, {"bench": "psychiatrist"})
    return str(
        stub.CreateCareTeam(
            pb.CreateCareTeamRequest(request_id=f"team-{patient}", fhir_json=json.dumps(team)),
            metadata=manager,
            timeout=30,
        ).care_team.id
    )


def _plan_bodies(
    address: str, manager: list[tuple[str, str]], prefix: str, count: int
) -> list[str]:
    bodies = []
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        for i in range(count):
            patient = f"{prefix}-{i}"
            plan = demo_care_plan(datetime.now(UTC), _enrol(stub, manager, patient))
            plan["subject"] = {"reference": f"Patient/{patient}"}
            bodies.append(json.dumps(plan))
    return bodies


def bench_creates(
    address: str,
    metadata: list[tuple[str, str]],
    manager: list[tuple[str, str]],
    total: int,
    threads: int,
) -> None:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))
    bodies = _plan_bodies(address, manager, "bench", 100)

    def worker() -> None:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.CarePlanServiceStub(channel)
            for i in counter:
                request = pb.CreateCarePlanRequest(
                    request_id=str(uuid.uuid4()), fhir_json=bodies[i % len(bodies)]
                )
                started = time.perf_counter()
                stub.CreateCarePlan(request, metadata=metadata, timeout=30)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    print(
        f"    {len(latencies)} creates with {threads} client threads in {wall:.1f}s: "
        f"{len(latencies) / wall:.0f}/s; {summary(latencies)}",
        flush=True,
    )


def bench_updates(
    address: str,
    metadata: list[tuple[str, str]],
    manager: list[tuple[str, str]],
    total: int,
    threads: int,
) -> None:
    """UpdateCarePlan: each client thread revises its own plans, carrying the expected version."""
    from google.protobuf.field_mask_pb2 import FieldMask

    bodies = _plan_bodies(address, manager, "bench-upd", threads * 4)
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(mine: list[str]) -> None:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.CarePlanServiceStub(channel)
            plans = [
                stub.CreateCarePlan(
                    pb.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=body),
                    metadata=metadata,
                    timeout=30,
                ).care_plan
                for body in mine
            ]
            versions = {p.id: p.version for p in plans}
            for n in range(total // threads):
                plan_id = plans[n % len(plans)].id
                request = pb.UpdateCarePlanRequest(
                    id=plan_id,
                    expected_version=versions[plan_id],
                    fhir_json=json.dumps({"resourceType": "CarePlan", "title": f"rev {n}"}),
                    update_mask=FieldMask(paths=["title"]),
                    reason="bench",
                )
                started = time.perf_counter()
                versions[plan_id] = stub.UpdateCarePlan(
                    request, metadata=metadata, timeout=30
                ).care_plan.version
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

    pool = [
        threading.Thread(target=worker, args=(bodies[i * 4 : (i + 1) * 4],)) for i in range(threads)
    ]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    print(
        f"    {len(latencies)} updates with {threads} client threads: "
        f"{len(latencies) / wall:.0f}/s; {summary(latencies)}",
        flush=True,
    )


def _wait_applied(data_dir: Path, ids: list[str], timeout: float) -> dict[str, datetime]:
    """When notes applied each plan's created event (its system message's `sent_at`)."""
    from iopcare.notes.store import communication

    notes = create_engine(f"sqlite:///{data_dir / 'notes.db'}")
    deadline = time.monotonic() + timeout
    while True:
        with notes.connect() as conn:
            rows = conn.execute(select(communication.c.resource, communication.c.sent_at)).all()
        applied = {}
        for resource, sent_at in rows:
            about = json.loads(resource).get("about", [{}])[0].get("reference", "")
            applied[about.removeprefix("CarePlan/")] = sent_at
        if all(i in applied for i in ids) or time.monotonic() > deadline:
            notes.dispose()
            return applied
        time.sleep(0.5)


def bench_propagation(
    addresses: dict[str, str],
    metadata: list[tuple[str, str]],
    manager: list[tuple[str, str]],
    data_dir: Path,
    rate: float,
    seconds: float,
) -> None:
    """Creates plans at a steady rate; measures careplan's commit to notes having applied it."""
    ids: list[str] = []
    interval = 1 / rate
    bodies = _plan_bodies(addresses["careplan"], manager, "bench-prop", 50)
    with grpc.insecure_channel(addresses["careplan"]) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        # Warm-up: wait until notes has applied plans of many patients (every partition), so a
        # backlog already on the topics is not counted as propagation delay.
        warmup = [
            stub.CreateCarePlan(
                pb.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=body),
                metadata=metadata,
                timeout=10,
            ).care_plan.id
            for body in bodies[:12]
        ]
        _wait_applied(data_dir, warmup, timeout=120)
        next_at = time.perf_counter()
        end = next_at + seconds
        count = 0
        while next_at < end:
            ids.append(
                stub.CreateCarePlan(
                    pb.CreateCarePlanRequest(
                        request_id=str(uuid.uuid4()), fhir_json=bodies[count % len(bodies)]
                    ),
                    metadata=metadata,
                    timeout=10,
                ).care_plan.id
            )
            count += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
    applied = _wait_applied(data_dir, ids, timeout=60)
    careplan = create_engine(f"sqlite:///{data_dir / 'careplan.db'}")
    from iopcare.careplan.store import care_plan

    with careplan.connect() as conn:
        committed = dict(conn.execute(select(care_plan.c.id, care_plan.c.updated_at)).all())
    delays = [(applied[i] - committed[i]).total_seconds() * 1000 for i in ids if i in applied]
    lost = len(ids) - len(delays)
    print(
        f"    {len(ids)} plans at {rate:.0f}/s for {seconds:.0f}s; commit -> notes applied: "
        f"{summary(delays)}; not applied within 60 s: {lost}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--view-calls", type=int, default=2000)
    parser.add_argument("--notes", type=int, default=100_000, help="notes loaded for search")
    parser.add_argument("--search-calls", type=int, default=1000)
    parser.add_argument("--watch-rate", type=float, default=20, help="messages/s posted")
    parser.add_argument("--only-notes", action="store_true", help="run the notes benchmarks only")
    parser.add_argument("--slot-calls", type=int, default=1500)
    parser.add_argument("--seat-callers", type=int, default=1000)
    parser.add_argument("--skip-scheduling", action="store_true")
    parser.add_argument(
        "--only-scheduling", action="store_true", help="run the scheduling benchmark alone"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(f"machine: {machine()}")
    with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="iopcare-bench-") as folder:
        data_dir = Path(folder)
        settings = Settings(data_dir=data_dir)
        metadata = bearer(
            mint_token(
                settings, subject="practitioner:bench", role="psychiatrist", practitioner_id="bench"
            )
        )
        # The program's administrator enrols the teams (a case manager would first need the
        # program's assignment to each patient, issue 10 item 4).
        manager = bearer(
            mint_token(
                settings,
                subject="practitioner:bench-admin",
                role="admin",
                practitioner_id="bench-admin",
            )
        )
        public_key = ensure_dev_keys(settings)[1]
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "IOPCARE_DATA_DIR": str(data_dir),
            "IOPCARE_LOG_LEVEL": "WARNING",
            "IOPCARE_TOKEN_PUBLIC_KEY_FILE": str(public_key),
        }
        if args.only_notes:
            run_notes_benchmarks(args, env, data_dir, settings)
            return 0
        databases = {"SQLite": ""}
        pg = None
        if not args.skip_postgres:
            from tests.support import postgres

            if postgres.postgres_available() is None:
                pg = postgres.start_session_server()
                databases["PostgreSQL"] = pg.create_database("bench_careplan")
        try:
            if not args.only_scheduling:
                print("CreateCarePlan over gRPC (careplan in its own process):")
                for label, url in databases.items():
                    extra = {"IOPCARE_CAREPLAN_DATABASE_URL": url} if url else {}
                    extra["IOPCARE_CAREPLAN_CONSUMER_GROUP"] = f"bench-{uuid.uuid4().hex[:6]}"
                    process = ServiceProcess(
                        "careplan",
                        free_port(),
                        {**env, **extra},
                        data_dir / f"careplan-{label}.log",
                    )
                    process.start()
                    try:
                        print(f"  {label}:")
                        bench_creates(
                            process.address, metadata, manager, args.creates, args.threads
                        )
                        bench_updates(
                            process.address, metadata, manager, args.creates // 2, args.threads
                        )
                    finally:
                        process.stop()
            if not args.skip_scheduling:
                print(
                    "Scheduling (issue 3; scheduling in its own process): FindSlots over 12 weeks, "
                    "bookings under contention, simultaneous joins for the last seat:"
                )
                administrator = bearer(mint_token(settings, subject="admin:bench", role="admin"))
                for label, url in databases.items():
                    bench_scheduling(
                        env,
                        data_dir,
                        administrator,
                        label,
                        pg.create_database("bench_scheduling") if url and pg else "",
                        slot_calls=args.slot_calls,
                        seat_callers=args.seat_callers,
                    )
        finally:
            if pg is not None:
                pg.stop()
        if args.only_scheduling:
            return 0
        print(f"GetPatientPlan with {args.patients} patients loaded (SQLite, 1 client thread):")
        view_dir = data_dir / "view"
        view_dir.mkdir()
        bench_patient_plan(
            {**env, "IOPCARE_DATA_DIR": str(view_dir)},
            view_dir,
            metadata,
            args.patients,
            args.view_calls,
            1,
        )
        print("Event propagation, careplan commit -> Kafka -> notes applied (SQLite):")
        prop_dir = data_dir / "propagation"
        prop_env = {**env, "IOPCARE_DATA_DIR": str(prop_dir)}
        processes = {
            name: ServiceProcess(
                name,
                free_port(),
                {
                    **prop_env,
                    f"IOPCARE_{name.upper()}_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:6]}",
                },
                prop_dir / f"{name}.log",
            )
            for name in ("careplan", "notes")
        }
        for process in processes.values():
            process.start()
        try:
            time.sleep(3)  # let the notes consumer join its group and catch up
            bench_propagation(
                {n: p.address for n, p in processes.items()},
                metadata,
                manager,
                prop_dir,
                args.rate,
                args.seconds,
            )
        finally:
            for process in processes.values():
                process.stop()
        run_notes_benchmarks(args, env, data_dir, settings)
    return 0


def run_notes_benchmarks(
    args: argparse.Namespace, env: dict[str, str], data_dir: Path, settings: Settings
) -> None:
    """Issue 4: post -> WatchThread delivery, and full-text search over many notes."""
    from bench.notes import bench_search, bench_watch

    def practitioner(name: str, role: str) -> list[tuple[str, str]]:
        return bearer(
            mint_token(settings, subject=f"practitioner:{name}", role=role, practitioner_id=name)
        )

    print("Notes: message post -> WatchThread delivery (SQLite, notes in its own process):")
    watch_dir = data_dir / "notes-watch"
    watch_dir.mkdir()
    bench_watch(
        {**env, "IOPCARE_DATA_DIR": str(watch_dir)},
        watch_dir,
        practitioner("bench-psy", "psychiatrist"),
        practitioner("bench-th", "therapist"),
        {"bench-psy": "psychiatrist", "bench-th": "therapist"},
        args.watch_rate,
        args.seconds,
    )
    print(f"Notes: SearchNotes full text over {args.notes} notes (1 client thread):")
    search_md = practitioner("bench-psy", "psychiatrist")
    search_dir = data_dir / "notes-search"
    search_dir.mkdir()
    search_env = {**env, "IOPCARE_DATA_DIR": str(search_dir)}
    print("  SQLite (FTS5):")
    bench_search(
        search_env,
        search_dir,
        f"sqlite:///{search_dir / 'notes.db'}",
        search_md,
        "bench-psy",
        args.notes,
        args.search_calls,
    )
    if args.skip_postgres:
        return
    from tests.support import postgres

    if postgres.postgres_available() is not None:
        print("  PostgreSQL: not available, skipped")
        return
    pg = postgres.start_session_server()
    try:
        print("  PostgreSQL (tsvector, GIN):")
        bench_search(
            search_env,
            search_dir,
            pg.create_database("bench_notes"),
            search_md,
            "bench-psy",
            args.notes,
            args.search_calls,
        )
    finally:
        pg.stop()


if __name__ == "__main__":
    sys.exit(main())
