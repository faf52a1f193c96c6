"""PostgreSQL killed (SIGKILL) under a stream of gRPC writes and restarted (test-matrix A12):
calls in flight get UNAVAILABLE, never INTERNAL; what was acknowledged is intact; the pool
reconnects, and a retry of a refused request with its request_id makes exactly one plan."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import ServiceRuntime
from tests.support import harness
from tests.support.plans import iop_plan, new_patient_id


@pytest.fixture
def careplan_on_postgres(
    restartable_postgres: Any, data_dir: Path, kafka_bootstrap: str
) -> Iterator[tuple[ServiceRuntime, Any]]:
    settings = harness.settings_for(
        data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    )
    url = restartable_postgres.create_database(f"a12_{uuid.uuid4().hex[:8]}")
    runtime = harness.build("careplan", settings, url)
    runtime.start()
    yield runtime, settings
    runtime.stop(grace=0.2)


def test_calls_during_a_database_crash_are_unavailable_and_nothing_is_lost(
    careplan_on_postgres: tuple[ServiceRuntime, Any], restartable_postgres: Any
) -> None:
    runtime, settings = careplan_on_postgres
    me = harness.metadata(settings)
    outcomes: list[tuple[str, grpc.StatusCode, str]] = []  # request id, status, plan id
    stop = threading.Event()
    with harness.channel(runtime) as channel:
        stub = pb_grpc.CarePlanServiceStub(channel)
        patients = [new_patient_id() for _ in range(4)]
        bodies = {
            p: json.dumps(iop_plan(p, harness.enrol_over_grpc(stub, settings, p))) for p in patients
        }

        def write(patient: str) -> None:
            while not stop.is_set():
                request_id = str(uuid.uuid4())
                request = pb.CreateCarePlanRequest(request_id=request_id, fhir_json=bodies[patient])
                try:
                    plan = stub.CreateCarePlan(request, metadata=me, timeout=20)
                    outcomes.append((request_id, grpc.StatusCode.OK, plan.care_plan.id))
                except grpc.RpcError as exc:
                    outcomes.append((request_id, exc.code(), patient))
                    time.sleep(0.1)

        writers = [threading.Thread(target=write, args=(p,)) for p in patients]
        for thread in writers:
            thread.start()
        try:
            harness.eventually(lambda: len(outcomes) >= 20, timeout=60)
            restartable_postgres.kill()
            # Wait (by count, not time) until calls have met the dead database.
            harness.eventually(
                lambda: any(code != grpc.StatusCode.OK for _, code, _ in outcomes), timeout=60
            )
            restartable_postgres.start()
            after = len(outcomes)
            harness.eventually(
                lambda: any(code == grpc.StatusCode.OK for _, code, _ in outcomes[after:]),
                timeout=90,
            )
        finally:
            stop.set()
            for thread in writers:
                thread.join()
        codes = {code for _, code, _ in outcomes}
        assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
        assert grpc.StatusCode.UNAVAILABLE in codes
        # Every acknowledged plan survived the crash.
        for _, code, plan_id in outcomes:
            if code == grpc.StatusCode.OK:
                stub.GetCarePlan(pb.GetCarePlanRequest(id=plan_id), metadata=me, timeout=20)
        # A refused request retried with its request_id: one plan, whether or not the first
        # attempt had committed before the crash, and the same answer again.
        for request_id, code, patient in outcomes:
            if code != grpc.StatusCode.UNAVAILABLE:
                continue
            request = pb.CreateCarePlanRequest(request_id=request_id, fhir_json=bodies[patient])
            first = stub.CreateCarePlan(request, metadata=me, timeout=20).care_plan
            again = stub.CreateCarePlan(request, metadata=me, timeout=20).care_plan
            assert (again.id, again.version) == (first.id, 1)
