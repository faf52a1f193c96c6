"""Scale benchmark (issue 17): careplan with 1 and with 2 replicas on PostgreSQL, and event
propagation at a steady offered rate with 2 replicas of careplan and of notes.

Run alone: `.venv/bin/python -m bench.scale [--creates N --threads N --rates 100,300
--seconds S]`. It starts its own Kafka broker (or uses KAFKA_BOOTSTRAP_SERVERS) and a throwaway
PostgreSQL, topics of 6 partitions, and the services as separate processes. Printed, never
asserted: compare figures within one run. On a 2-core machine the replicas share the same two
cores, so a second replica adds no CPU: the figures say what replicas cost and whether they
keep the pipeline whole, not how a cluster of several machines scales.

1. **CreateCarePlan, 1 vs 2 careplan replicas** on one PostgreSQL database: `--threads` client
   threads, each call sent to the replicas in turn.
2. **Propagation**: CarePlans created at a steady offered rate (each `--rates` value, for
   `--seconds`) through both careplan replicas by a pool of client threads; the delay from
   careplan's commit (the plan's `updated_at`) to notes having applied the event (its system
   message's `sent_at`), both read from PostgreSQL. The achieved rate is printed beside the
   offered one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import grpc
from sqlalchemy import create_engine, select

from bench.common import broker, machine, summary
from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.demo import demo_care_plan, demo_care_team
from iopcare.devtools import kafka_broker
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import ServiceProcess, stop_all
from iopcare.kit import audit, signing, topics
from iopcare.kit.auth import ensure_dev_keys, mint_token
from iopcare.kit.rpc import bearer
from iopcare.kit.settings import Settings

PARTITIONS = 6


def _bodies(address: str, manager: list[tuple[str, str]], prefix: str, count: int) -> list[str]:
    """Plans for `count` patients whose teams (with the benchmark's clinician) now exist."""
    bodies = []
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        for i in range(count):
            patient = f"{prefix}-{i}"
            team = demo_care_team(patient, {"bench": "psychiatrist"})
            team_id = stub.CreateCareTeam(
                pb.CreateCareTeamRequest(request_id=f"team-{patient}", fhir_json=json.dumps(team)),
                metadata=manager,
                timeout=30,
            ).care_team.id
            plan = demo_care_plan(datetime.now(UTC), team_id)
            plan["subject"] = {"reference": f"Patient/{patient}"}
            bodies.append(json.dumps(plan))
    return bodies


class Replicas:
    """Processes of services on one PostgreSQL database each, topics under one prefix."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.processes: list[ServiceProcess] = []

    def start(self, name: str, count: int) -> list[str]:
        started = [
            ServiceProcess(name, free_port(), self.env, self.folder / f"{name}-{i}.log")
            for i in range(count)
        ]
        for process in started:
            process.start(wait=False)
        for process in started:
            process.wait_ready(120)
        self.processes += started
        return [p.address for p in started]

    def stop(self) -> None:
        stop_all(self.processes)


def bench_creates(
    addresses: list[str],
    metadata: list[tuple[str, str]],
    bodies: list[str],
    total: int,
    threads: int,
) -> float:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker(k: int) -> None:
        channels = [grpc.insecure_channel(a) for a in addresses]
        stubs = [pb_grpc.CarePlanServiceStub(c) for c in channels]
        for i in counter:
            request = pb.CreateCarePlanRequest(
                request_id=str(uuid.uuid4()), fhir_json=bodies[i % len(bodies)]
            )
            started = time.perf_counter()
            stubs[(i + k) % len(stubs)].CreateCarePlan(request, metadata=metadata, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
        for channel in channels:
            channel.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    rate = len(latencies) / wall
    print(
        f"    {len(latencies)} creates, {threads} client threads, {len(addresses)} replica(s), "
        f"{wall:.1f}s: {rate:.0f}/s; {summary(latencies)}",
        flush=True,
    )
    return rate


def _applied(notes_url: str, ids: set[str], timeout: float) -> dict[str, datetime]:
    """When notes applied each plan's created event (its system message's `sent_at`)."""
    from iopcare.notes.store import communication

    engine = create_engine(notes_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(communication.c.resource, communication.c.sent_at).where(
                        communication.c.category == "system"
                    )
                ).all()
            found = {}
            for resource, sent_at in rows:
                about = json.loads(resource).get("about", [{}])[0].get("reference", "")
                found[about.removeprefix("CarePlan/")] = sent_at
            if ids <= set(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.5)
    finally:
        engine.dispose()


def bench_propagation(
    addresses: list[str],
    metadata: list[tuple[str, str]],
    bodies: list[str],
    urls: dict[str, str],
    rate: float,
    seconds: float,
) -> None:
    """Offers creates at `rate`/s, open loop (a pool of client threads, each call started at its
    time whether or not earlier ones answered); measures commit -> notes applied."""
    channels = [grpc.insecure_channel(a) for a in addresses]
    stubs = [pb_grpc.CarePlanServiceStub(c) for c in channels]
    ids: list[str] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        answer = stubs[i % len(stubs)].CreateCarePlan(
            pb.CreateCarePlanRequest(
                request_id=str(uuid.uuid4()), fhir_json=bodies[i % len(bodies)]
            ),
            metadata=metadata,
            timeout=60,
        )
        with lock:
            ids.append(answer.care_plan.id)

    # Warm-up: every partition has carried an event and notes has applied it.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(12)))
    _applied(urls["notes"], set(ids), 120)
    ids.clear()
    interval = 1 / rate
    started = time.perf_counter()
    with ThreadPoolExecutor(max(8, int(rate // 5))) as pool:
        next_at = started
        count = 0
        while next_at < started + seconds:
            pool.submit(create, count)
            count += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
    sent_for = time.perf_counter() - started
    for channel in channels:
        channel.close()
    applied = _applied(urls["notes"], set(ids), 120)
    from iopcare.careplan.store import care_plan

    careplan = create_engine(urls["careplan"])
    with careplan.connect() as conn:
        committed: dict[str, datetime] = dict(
            conn.execute(select(care_plan.c.id, care_plan.c.updated_at)).all()
        )
    careplan.dispose()
    delays = [(applied[i] - committed[i]).total_seconds() * 1000 for i in ids if i in applied]
    print(
        f"    offered {rate:.0f}/s for {seconds:.0f}s: {len(ids)} created in {sent_for:.1f}s "
        f"(achieved {len(ids) / sent_for:.0f}/s); commit -> notes applied: {summary(delays)}; "
        f"not applied within 120 s: {len(ids) - len(delays)}; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rates", default="100,300")
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support import postgres

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
    reason = postgres.postgres_available()
    if reason is not None:
        print(f"PostgreSQL is required: {reason}")
        return 1
    pg = postgres.start_session_server()
    try:
        with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="iopcare-scale-") as folder:
            data_dir = Path(folder)
            settings = Settings(data_dir=data_dir)
            metadata = bearer(
                mint_token(
                    settings,
                    subject="practitioner:bench",
                    role="psychiatrist",
                    practitioner_id="bench",
                )
            )
            manager = bearer(
                mint_token(
                    settings, subject="practitioner:adm", role="admin", practitioner_id="adm"
                )
            )
            public_key = ensure_dev_keys(settings)[1]
            # The development keys, made once here rather than raced for by the replicas.
            audit.key_for(Settings(data_dir=data_dir, dev_mode=True))
            for name in ("careplan", "scheduling", "notes"):
                signing.signer_for(Settings(data_dir=data_dir, dev_mode=True), name)

            def environment(
                tag: str, services: tuple[str, ...]
            ) -> tuple[dict[str, str], dict[str, str]]:
                prefix = f"scale{tag}."
                kafka_broker.create_topics(
                    bootstrap, topics.all_topics(prefix), partitions=PARTITIONS
                )
                urls = {n: pg.create_database(f"scale{tag}_{n}") for n in services}
                env = {
                    "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "IOPCARE_DATA_DIR": str(data_dir),
                    "IOPCARE_LOG_LEVEL": "WARNING",
                    "IOPCARE_TOKEN_PUBLIC_KEY_FILE": str(public_key),
                    "IOPCARE_TOPIC_PREFIX": prefix,
                    "IOPCARE_TOPIC_PARTITIONS": str(PARTITIONS),
                    **{f"IOPCARE_{n.upper()}_DATABASE_URL": u for n, u in urls.items()},
                }
                return env, urls

            print("CreateCarePlan over gRPC on PostgreSQL, 1 and 2 careplan replicas:")
            for count in (1, 2):
                env, _urls = environment(f"c{count}", ("careplan",))
                replicas = Replicas(env, data_dir)
                try:
                    addresses = replicas.start("careplan", count)
                    bodies = _bodies(addresses[0], manager, f"c{count}", 100)
                    bench_creates(addresses, metadata, bodies, args.creates, args.threads)
                finally:
                    replicas.stop()
            print(
                "Propagation on PostgreSQL, 2 replicas of careplan and of notes "
                "(careplan commit -> Kafka -> notes applied):"
            )
            for rate in (float(r) for r in args.rates.split(",")):
                tag = f"p{int(rate)}"
                env, urls = environment(tag, ("careplan", "notes"))
                replicas = Replicas(env, data_dir)
                try:
                    addresses = replicas.start("careplan", 2)
                    replicas.start("notes", 2)
                    bodies = _bodies(addresses[0], manager, tag, 60)
                    bench_propagation(addresses, metadata, bodies, urls, rate, args.seconds)
                finally:
                    replicas.stop()
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
