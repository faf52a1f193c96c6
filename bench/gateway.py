"""The FHIR gateway over HTTP (issue 5 targets on this machine: CarePlan read >= 500/s with p99
<= 30 ms; handoff ingest of a 100 KB bundle <= 1 s).

The three services and the gateway run as their own processes on SQLite (as `make run` starts
them); the client is httpx in this process. Run alone with `python -m bench.gateway` or as part of
`make bench`. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import broker, machine, summary
from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import GatewayProcess, ServiceProcess
from iopcare.kit.auth import ensure_dev_keys, mint_token
from iopcare.kit.settings import Settings
from tests.support.gateway import discharge_bundle
from tests.support.plans import care_team, iop_plan

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _timed(
    client_count: int, total: int, call: Any, token: str, base_url: str
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        nonlocal errors
        with httpx.Client(
            base_url=base_url, headers={**HEADERS, "Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            for i in counter:
                started = time.perf_counter()
                status = call(client, i)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    errors += status >= 400

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(client_count)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started, latencies, errors


def _direct_reads(
    address: str, token: str, plan_ids: list[str], total: int, threads: int
) -> tuple[float, list[float]]:
    import grpc

    from iopcare.careplan.v1 import careplan_service_pb2 as pb
    from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc

    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))
    metadata = [("authorization", f"Bearer {token}")]

    def worker() -> None:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.CarePlanServiceStub(channel)
            for i in counter:
                started = time.perf_counter()
                stub.GetCarePlan(
                    pb.GetCarePlanRequest(id=plan_ids[i % len(plan_ids)]),
                    metadata=metadata,
                    timeout=30,
                )
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started, latencies


def run(env: dict[str, str], data_dir: Path, reads: int, threads: int, handoffs: int) -> None:
    ports = {name: free_port() for name in ("careplan", "scheduling", "notes")}
    processes: list[ServiceProcess] = []
    gateway_env = {
        **env,
        **{
            f"IOPCARE_GATEWAY_{name.upper()}_ADDRESS": f"127.0.0.1:{p}" for name, p in ports.items()
        },
    }
    try:
        for name, port in ports.items():
            process = ServiceProcess(name, port, env, data_dir / f"{name}.log")
            process.start()
            processes.append(process)
        gateway = GatewayProcess("gateway", free_port(), gateway_env, data_dir / "gateway.log")
        gateway.start()
        processes.append(gateway)
        settings = Settings(data_dir=Path(env["IOPCARE_DATA_DIR"]))
        admin = mint_token(
            settings,
            subject="practitioner:bench-admin",
            role="admin",
            practitioner_id="bench-admin",
            scopes=["user/*.cruds"],
            lifetime_seconds=3600,
        )
        token = mint_token(
            settings,
            subject="system:bench-ehr",
            role="system",
            scopes=["system/*.cruds"],
            lifetime_seconds=3600,
        )
        with httpx.Client(
            base_url=gateway.base_url,
            headers={**HEADERS, "Authorization": f"Bearer {token}"},
            timeout=30,
        ) as client:
            plan_ids: list[str] = []
            patients: list[str] = []
            for _ in range(20):
                patient = client.post(
                    "/Patient",
                    json={
                        "resourceType": "Patient",
                        "identifier": [{"system": "urn:bench", "value": f"{uuid.uuid4()}"}],
                    },
                ).json()["id"]
                # The program enrols the team; an outside EHR may not (issue 10 item 4).
                team = client.post(
                    "/CareTeam",
                    json=care_team(patient),
                    headers={"Authorization": f"Bearer {admin}"},
                ).json()["id"]
                plan = iop_plan(patient, team)
                plan["status"] = "draft"
                response = client.post("/CarePlan", json=plan)
                assert response.status_code == 201, response.text
                plan_ids.append(response.json()["id"])
                patients.append(patient)

        wall, latencies, errors = _timed(
            threads,
            reads,
            lambda c, i: c.get(f"/CarePlan/{plan_ids[i % len(plan_ids)]}").status_code,
            token,
            gateway.base_url,
        )
        print(
            f"  GET CarePlan/{{id}}: {len(latencies)} reads, {threads} client threads: "
            f"{len(latencies) / wall:.0f}/s; {summary(latencies)}; {errors} errors",
            flush=True,
        )
        wall, latencies = _direct_reads(processes[0].address, token, plan_ids, reads, threads)
        print(
            f"  for comparison, careplan's GetCarePlan over gRPC (no gateway): {len(latencies)} "
            f"reads, {threads} client threads: {len(latencies) / wall:.0f}/s; {summary(latencies)}",
            flush=True,
        )
        wall, latencies, errors = _timed(
            threads,
            reads // 2,
            lambda c, i: (
                c.get(
                    "/CarePlan", params={"patient": patients[i % len(patients)], "status": "draft"}
                ).status_code
            ),
            token,
            gateway.base_url,
        )
        print(
            f"  GET CarePlan?patient=&status=: {len(latencies)} searches, {threads} client "
            f"threads: {len(latencies) / wall:.0f}/s; {summary(latencies)}; {errors} errors",
            flush=True,
        )
        bundles = [discharge_bundle(uuid.uuid4().hex[:10], vitals=170) for _ in range(handoffs)]
        size = len(json.dumps(bundles[0]))
        wall, latencies, errors = _timed(
            1,
            handoffs,
            lambda c, i: c.post("/$handoff", json=bundles[i]).status_code,
            token,
            gateway.base_url,
        )
        print(
            f"  POST $handoff, {size / 1024:.0f} KB bundle ({len(bundles[0]['entry'])} entries), "
            f"one at a time: {summary(latencies)}; {errors} errors",
            flush=True,
        )
    finally:
        for process in reversed(processes):
            process.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--handoffs", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="iopcare-gw-bench-") as folder:
        data_dir = Path(folder)
        ensure_dev_keys(Settings(data_dir=data_dir))
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "IOPCARE_DATA_DIR": str(data_dir),
            "IOPCARE_LOG_LEVEL": "WARNING",
        }
        print("FHIR gateway over HTTP (services and gateway as processes, SQLite):")
        run(env, data_dir, args.reads, args.threads, args.handoffs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
