"""Issue 17, item 1: the services and the gateway expose Prometheus metrics, and the numbers move
while the system works.

The three services run in this process on SQLite and the session's real broker, the gateway on a
real uvicorn server; each serves its `/metrics` on a free port (metrics port 0), and the test
scrapes them over HTTP as Prometheus would. It drives calls (good and refused), a held-back relay
(the outbox backlog grows and ages, then drains), a slowed consumer (lag), a verbatim replay of a
record (the inbox skips it), an unsigned record (dead-lettered) and a WatchThread stream.
"""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import uvicorn
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

import iopcare.careplan.contract as careplan_contract
from iopcare.careplan.v1 import careplan_service_pb2 as cp
from iopcare.careplan.v1 import careplan_service_pb2_grpc as cp_grpc
from iopcare.gateway.app import build as build_gateway
from iopcare.gateway.settings import GatewaySettings
from iopcare.kit import failpoints, topics
from iopcare.kit.metrics import MetricsServer
from iopcare.kit.runtime import ServiceRuntime
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.notes.v1 import notes_service_pb2 as nt
from iopcare.notes.v1 import notes_service_pb2_grpc as nt_grpc
from tests.support import harness
from tests.support.gateway import system_token
from tests.support.notes import wait_for_team
from tests.support.plans import new_patient_id

SERVICES = ("careplan", "scheduling", "notes")


@dataclass
class Observed:
    settings: Settings
    runtimes: dict[str, ServiceRuntime]
    gateway_url: str
    gateway_metrics_port: int


def _build(name: str, settings: Settings, url: str) -> ServiceRuntime:
    service = ServiceSettings(
        name=name,
        database_url=url,
        port=0,
        host="127.0.0.1",
        consumer_group=f"metrics-{name}-{uuid.uuid4().hex[:8]}",
        grpc_workers=8,
        metrics_port=0,
    )
    if name == "careplan":
        from iopcare.careplan import app
    elif name == "scheduling":
        from iopcare.scheduling import app  # type: ignore[no-redef]
    else:
        from iopcare.notes import app  # type: ignore[no-redef]
    return app.build(settings, service)


@contextmanager
def _observed_system(settings: Settings, folder: Path) -> Iterator[Observed]:
    runtimes = {n: _build(n, settings, f"sqlite:///{folder / n}.db") for n in SERVICES}
    for runtime in runtimes.values():
        runtime.start()
    app, gateway = build_gateway(
        settings,
        GatewaySettings(
            **{f"{n}_address": f"127.0.0.1:{r.port}" for n, r in runtimes.items()},
        ),
        lambda _record: None,
    )
    metrics_server = MetricsServer(app.state.metrics.registry, "127.0.0.1", 0)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="uvicorn-metrics")
    thread.start()
    try:
        harness.eventually(lambda: server.started, timeout=20)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Observed(settings, runtimes, f"http://127.0.0.1:{port}/fhir", metrics_server.port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        metrics_server.stop()
        gateway.services.close()
        for runtime in runtimes.values():
            runtime.stop(grace=0.5)


@pytest.fixture
def system(data_dir: Path, kafka_bootstrap: str) -> Iterator[Observed]:
    settings = harness.settings_for(
        data_dir, kafka_bootstrap, harness.isolated_topics(kafka_bootstrap)
    )
    with _observed_system(settings, data_dir) as observed:
        yield observed


def scrape(port: int | None) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET /metrics as Prometheus does; samples by name."""
    assert port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(port: int | None, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(
        v
        for found, v in scrape(port).get(name, [])
        if all(found.get(k) == want for k, want in labels.items())
    )


def _plan(system: Observed, stub: cp_grpc.CarePlanServiceStub, patient: str) -> cp.CarePlan:
    body = harness.enrolled_plan_json(stub, system.settings, patient)
    return stub.CreateCarePlan(
        cp.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json=body),
        metadata=harness.metadata(system.settings),
        timeout=10,
    ).care_plan


def test_metrics_move_while_the_system_works(system: Observed, kafka_bootstrap: str) -> None:
    careplan = system.runtimes["careplan"].metrics_port
    scheduling = system.runtimes["scheduling"].metrics_port
    notes = system.runtimes["notes"].metrics_port
    create = "/iopcare.careplan.v1.CarePlanService/CreateCarePlan"
    assert value(careplan, "iopcare_rpc_requests_total", method=create) == 0

    # Calls: rate, errors and duration per RPC.
    patient = new_patient_id()
    with harness.channel(system.runtimes["careplan"]) as channel:
        stub = cp_grpc.CarePlanServiceStub(channel)
        _plan(system, stub, patient)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateCarePlan(
                cp.CreateCarePlanRequest(request_id=str(uuid.uuid4()), fhir_json="{not json"),
                metadata=harness.metadata(system.settings),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert value(careplan, "iopcare_rpc_requests_total", method=create, code="OK") == 1
    assert (
        value(careplan, "iopcare_rpc_requests_total", method=create, code="INVALID_ARGUMENT") == 1
    )
    assert value(careplan, "iopcare_rpc_duration_seconds_count", method=create) == 2
    assert value(careplan, "iopcare_rpc_duration_seconds_sum", method=create) > 0
    # The database pool is reported (connections in use and pooled).
    assert "iopcare_db_pool_size" in scrape(careplan)

    # The relay publishes; the consumers apply, and their lag is back to 0 on every partition.
    harness.eventually(
        lambda: (
            value(careplan, "iopcare_relay_published_total") >= 3
            and value(careplan, "iopcare_outbox_backlog") == 0
        )
    )
    assert value(careplan, "iopcare_relay_publish_seconds_count") >= 1
    assert value(careplan, "iopcare_relay_event_delay_seconds_count") >= 3
    harness.eventually(lambda: value(scheduling, "iopcare_consumer_applied_total") >= 1)
    lags = scrape(scheduling)["iopcare_consumer_lag"]
    assert lags and {labels["topic"] for labels, _ in lags} >= {
        topics.physical(system.settings.topic_prefix, topics.CAREPLAN)
    }

    # A relay held back: the backlog grows and its oldest row ages; released, it drains.
    failpoints.arm("after_db_commit_before_publish", "raise")
    try:
        with harness.channel(system.runtimes["careplan"]) as channel:
            _plan(system, cp_grpc.CarePlanServiceStub(channel), new_patient_id())
        harness.eventually(
            lambda: (
                value(careplan, "iopcare_outbox_backlog") >= 1
                and value(careplan, "iopcare_outbox_oldest_age_seconds") >= 1.0
            ),
            timeout=15,
        )
    finally:
        failpoints.disarm("after_db_commit_before_publish")
    harness.eventually(lambda: value(careplan, "iopcare_outbox_backlog") == 0, timeout=20)
    assert value(careplan, "iopcare_outbox_oldest_age_seconds") == 0

    # A slowed consumer: fetched records wait, and the lag shows them; then it catches up.
    failpoints.arm("after_poll_before_effect", "sleep(300)")
    try:
        with harness.channel(system.runtimes["careplan"]) as channel:
            stub = cp_grpc.CarePlanServiceStub(channel)
            for _ in range(3):
                _plan(system, stub, new_patient_id())
        harness.eventually(lambda: value(scheduling, "iopcare_consumer_lag") >= 2, timeout=20)
    finally:
        failpoints.disarm("after_poll_before_effect")
    harness.eventually(lambda: value(scheduling, "iopcare_consumer_lag") == 0, timeout=30)

    # A record published twice: the inbox skips the copy, and says so.
    topic = topics.physical(system.settings.topic_prefix, topics.CAREPLAN)
    created = careplan_contract.EVENT_CREATED
    (original,) = harness.read_topic(
        kafka_bootstrap,
        topic,
        lambda r: harness.header(r, "ce_type") == created and r.key == patient.encode(),
    )
    before = value(notes, "iopcare_inbox_duplicates_skipped_total")
    dead_before = value(notes, "iopcare_consumer_dead_lettered_total")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(
            topic,
            key=original.key,
            value=original.value,
            headers=list(original.headers),
            partition=original.partition,
        ).get(timeout=10)
        # An unsigned record of a type notes handles: refused and dead-lettered.
        producer.send(
            topic,
            key=patient.encode(),
            value=b"{}",
            headers=[("ce_type", created.encode()), ("ce_id", uuid.uuid4().hex.encode())],
        ).get(timeout=10)
    finally:
        producer.close()
    harness.eventually(
        lambda: value(notes, "iopcare_inbox_duplicates_skipped_total") == before + 1, timeout=20
    )
    harness.eventually(
        lambda: value(notes, "iopcare_consumer_dead_lettered_total") == dead_before + 1,
        timeout=20,
    )
    assert value(notes, "iopcare_consumer_rejected_total") >= 1

    # WatchThread streams open: one while a client watches, none once it hangs up.
    watch = "/iopcare.notes.v1.NotesService/WatchThread"
    with harness.channel(system.runtimes["notes"]) as channel:
        notes_stub = nt_grpc.NotesServiceStub(channel)
        wait_for_team(notes_stub, system.settings, patient)
        call = notes_stub.WatchThread(
            nt.WatchThreadRequest(patient_id=patient), metadata=harness.metadata(system.settings)
        )
        call.initial_metadata()  # sent once the stream is open
        assert value(notes, "iopcare_rpc_streams_open", method=watch) == 1
        call.cancel()
        harness.eventually(
            lambda: value(notes, "iopcare_rpc_streams_open", method=watch) == 0, timeout=10
        )
    assert value(notes, "iopcare_rpc_requests_total", method=watch, code="CANCELLED") == 1

    # Readiness as a gauge: both dependencies answer.
    assert value(careplan, "iopcare_dependency_up", dependency="database") == 1
    assert value(careplan, "iopcare_dependency_up", dependency="kafka") == 1

    # The gateway: per REST interaction, rate, errors and duration.
    gateway = system.gateway_metrics_port
    token = system_token(system.settings)
    with httpx.Client(base_url=system.gateway_url, timeout=30) as client:
        assert client.get("/metadata").status_code == 200
        missing = client.get(
            "/CarePlan/does-not-exist", headers={"Authorization": f"Bearer {token}"}
        )
        assert missing.status_code == 404
        assert client.get("/CarePlan/x").status_code == 401
    assert value(gateway, "iopcare_http_requests_total", interaction="metadata", status="200") == 1
    assert value(gateway, "iopcare_http_requests_total", interaction="read", status="404") == 1
    assert value(gateway, "iopcare_http_requests_total", interaction="read", status="401") == 1
    assert value(gateway, "iopcare_http_request_duration_seconds_count", interaction="read") == 2
    # Labels name interactions, never ids: nothing of "does-not-exist" is in the exposition.
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway}/metrics", timeout=5) as answer:
        assert b"does-not-exist" not in answer.read()
