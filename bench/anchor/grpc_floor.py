"""gRPC against the server's floor (issue 16): the health check, GetCarePlan and CreateCarePlan
on careplan directly, each for SECONDS with 16 concurrent calls (2 client processes x 8 threads,
so the load generator does not share the GIL with itself), and each rate as a share of the health
check's. The client processes share the machine's cores with the server: compare shares within
one run. Each client process calls with its own token (TOKENS: one per process, comma-separated):
a service gives one caller at most half its worker threads (kit.rpc.calls_per_client) and refuses
the rest with RESOURCE_EXHAUSTED, which would measure the refusals instead.

usage: python bench/anchor/grpc_floor.py ADDRESS TOKENS PLAN_ID PLAN_JSON_FILE [SECONDS]
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iopcare.careplan.v1 import careplan_service_pb2 as cp
from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc

PROCESSES, THREADS = 2, 8


def _client(
    kind: str,
    index: int,
    args: list[str],
    seconds: float,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    address, tokens, plan_id, plan_file = args[:4]
    token = tokens.split(",")[index % len(tokens.split(","))]
    plan_json = Path(plan_file).read_text()
    metadata = [("authorization", f"Bearer {token}")]
    counts = [0] * THREADS
    errors = [0] * THREADS
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        plans = cp_grpc.CarePlanServiceStub(channel)

        def call() -> None:
            if kind == "health":
                health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            elif kind == "get":
                plans.GetCarePlan(cp.GetCarePlanRequest(id=plan_id), metadata=metadata, timeout=10)
            else:
                plans.CreateCarePlan(
                    cp.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=plan_json),
                    metadata=metadata,
                    timeout=10,
                )

        end = time.monotonic() + seconds

        def worker(i: int) -> None:
            while time.monotonic() < end:
                try:
                    call()
                    counts[i] += 1
                except grpc.RpcError:
                    errors[i] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    out.put((sum(counts), sum(errors)))


def rate(kind: str, args: list[str], seconds: float) -> tuple[float, int]:
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [
        multiprocessing.Process(target=_client, args=(kind, i, args, seconds, out))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results) / seconds, sum(r[1] for r in results)


def main() -> None:
    args = sys.argv[1:]
    seconds = float(args[4]) if len(args) > 4 else 15.0
    rate("get", args, 3.0)  # warm-up
    floor, _ = rate("health", args, seconds)
    print(f"gRPC health check (floor): {floor:.0f}/s")
    for kind, label in (("get", "GetCarePlan"), ("create", "CreateCarePlan")):
        measured, errors = rate(kind, args, seconds)
        print(
            f"{label}: {measured:.0f}/s = {100 * measured / floor:.0f}% of the floor"
            f"{f', {errors} errors' if errors else ''}"
        )


if __name__ == "__main__":
    main()
