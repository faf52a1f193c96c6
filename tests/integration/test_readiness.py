"""Issue 17, item 4 (readiness): a service answers NOT_SERVING on the standard gRPC health service
while its database or its broker cannot be reached, and SERVING again once they can (kit.health).

careplan runs on the session's real PostgreSQL server, which the test kills (SIGKILL) and starts
again, and on the session's real broker, which the test freezes (SIGSTOP: connections stay open,
nothing answers) and thaws.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iopcare.kit.runtime import ServiceRuntime
from tests.support import harness

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NAMES = ("", "iopcare.careplan.v1.CarePlanService")


@pytest.fixture
def careplan_on_postgres(
    restartable_postgres: Any, data_dir: Path, kafka_bootstrap: str
) -> Iterator[ServiceRuntime]:
    settings = harness.settings_for(
        data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    ).model_copy(update={"readiness_check_seconds": 0.3})
    url = restartable_postgres.create_database(f"ready_{uuid.uuid4().hex[:8]}")
    runtime = harness.build("careplan", settings, url)
    runtime.start()
    yield runtime
    runtime.stop(grace=0.2)


def _statuses(runtime: ServiceRuntime) -> set[int]:
    with harness.channel(runtime) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            return {
                stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2).status
                for name in NAMES
            }
        except grpc.RpcError as exc:  # the health service itself must keep answering
            raise AssertionError(f"health check failed: {exc.code()}") from exc


def _liveness(runtime: ServiceRuntime) -> int:
    with harness.channel(runtime) as channel:
        request = health_pb2.HealthCheckRequest(service="liveness")
        return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=2).status)


def _metric(runtime: ServiceRuntime, dependency: str) -> float:
    assert runtime.metrics is not None
    found = runtime.metrics.registry.get_sample_value(
        "iopcare_dependency_up", {"service": "careplan", "dependency": dependency}
    )
    return -1.0 if found is None else found


def test_not_serving_while_the_database_is_down_serving_after(
    careplan_on_postgres: ServiceRuntime, restartable_postgres: Any
) -> None:
    runtime = careplan_on_postgres
    harness.eventually(lambda: _statuses(runtime) == {SERVING}, timeout=20)
    restartable_postgres.kill()
    try:
        harness.eventually(lambda: _statuses(runtime) == {NOT_SERVING}, timeout=30)
        assert _metric(runtime, "database") == 0
        assert _metric(runtime, "kafka") == 1
        # Liveness is not readiness: the pod must not be restarted for its database's outage.
        assert _liveness(runtime) == SERVING
    finally:
        restartable_postgres.start()
    harness.eventually(lambda: _statuses(runtime) == {SERVING}, timeout=60)
    assert _metric(runtime, "database") == 1


def test_not_serving_while_the_broker_is_frozen_serving_after(
    careplan_on_postgres: ServiceRuntime, kafka_broker_instance: Any
) -> None:
    if kafka_broker_instance is None:
        harness.missing("the broker is external and may not be paused by tests")
    runtime = careplan_on_postgres
    harness.eventually(lambda: _statuses(runtime) == {SERVING}, timeout=20)
    kafka_broker_instance.pause()
    try:
        harness.eventually(lambda: _statuses(runtime) == {NOT_SERVING}, timeout=30)
        assert _metric(runtime, "kafka") == 0
        assert _metric(runtime, "database") == 1
    finally:
        kafka_broker_instance.resume()
    harness.eventually(lambda: _statuses(runtime) == {SERVING}, timeout=60)
    assert _metric(runtime, "kafka") == 1
