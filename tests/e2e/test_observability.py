"""Issue 17, items 1 and 2, with the real processes: logs are JSON lines naming the service, the
request and the trace, and hold no patient data; the metrics endpoints configured by environment
answer.

The three services and the gateway run as `iopcare serve` processes on the session's broker. An
inpatient unit hands a patient over (`POST $handoff`) whose name and medical record number are
distinctive, then sends a broken bundle naming the same patient (refused), and searches for the
patient by MRN and name; afterwards no log line of any process contains the name or the MRN.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import GatewayProcess, ServiceProcess, stop_all
from iopcare.kit.settings import Settings
from tests.support import harness
from tests.support.gateway import discharge_bundle, system_token

SERVICES = ("careplan", "scheduling", "notes")


@pytest.fixture
def system(tmp_path: Path, kafka_bootstrap: str) -> Iterator[dict[str, ServiceProcess]]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "IOPCARE_TOPIC_PREFIX": harness.isolated_topics(kafka_bootstrap),
        "IOPCARE_DATA_DIR": str(tmp_path),
        **{
            f"IOPCARE_{n.upper()}_CONSUMER_GROUP": f"e2e-obs-{n}-{uuid.uuid4().hex[:8]}"
            for n in SERVICES
        },
    }
    started: dict[str, ServiceProcess] = {}
    try:
        for name in SERVICES:
            process = ServiceProcess(
                name,
                free_port(),
                {**env, f"IOPCARE_{name.upper()}_METRICS_PORT": str(free_port())},
                tmp_path / f"{name}.log",
            )
            process.start()
            started[name] = process
        gateway = GatewayProcess(
            "gateway",
            free_port(),
            {
                **env,
                "IOPCARE_GATEWAY_METRICS_PORT": str(free_port()),
                **{f"IOPCARE_GATEWAY_{n.upper()}_ADDRESS": started[n].address for n in SERVICES},
            },
            tmp_path / "gateway.log",
        )
        gateway.start()
        started["gateway"] = gateway
        yield started
    finally:
        stop_all(list(started.values()))


def _metrics(process: ServiceProcess) -> str:
    port = process.env[f"IOPCARE_{process.name.upper()}_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_logs_are_json_lines_with_ids_and_hold_no_patient_data(
    system: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    gateway = system["gateway"]
    assert isinstance(gateway, GatewayProcess)
    family = f"Quillfeather{uuid.uuid4().hex[:6].upper()}"
    given = "Ysolde"
    mrn = f"MRN{uuid.uuid4().hex[:10].upper()}"
    bundle = discharge_bundle(mrn)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["name"] = [{"family": family, "given": [given]}]
            entry["resource"]["telecom"] = [{"system": "phone", "value": "555-0199-4242"}]
    token = system_token(Settings(data_dir=tmp_path), subject="system:st-mary-inpatient")
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/fhir+json",
        "X-Request-Id": "handoff-req-1",
    }
    with httpx.Client(base_url=gateway.base_url, timeout=60) as client:
        answer = client.post("/$handoff", json=bundle, headers=headers)
        assert answer.status_code == 200, answer.text
        created = [
            p["valueReference"]["reference"]
            for p in answer.json()["parameter"]
            if p["name"] == "created"
        ]
        assert any(ref.startswith("CarePlan/") for ref in created)
        # A broken bundle naming the same patient: refused whole, and its content not logged.
        broken = json.loads(json.dumps(bundle))
        for entry in broken["entry"]:
            if entry["resource"]["resourceType"] == "Patient":
                entry["resource"]["birthDate"] = f"not-a-date {family} {mrn}"
        refused = client.post("/$handoff", json=broken, headers={**headers, "X-Request-Id": "r2"})
        assert refused.status_code in (400, 422), refused.text
        # A search by the MRN (the query is the caller's, and may name a patient).
        found = client.get("/Patient", params={"identifier": mrn, "name": family}, headers=headers)
        assert found.status_code in (200, 400, 403, 422), found.text

    # The handoff's plan travelled careplan -> topic -> scheduling and notes: their consumers
    # applied it (and logged whatever they log while doing so).
    def applied(name: str) -> float:
        lines = [
            line
            for line in _metrics(system[name]).splitlines()
            if line.startswith("iopcare_consumer_applied_total")
        ]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    harness.eventually(lambda: applied("notes") >= 1 and applied("scheduling") >= 1, timeout=30)
    assert 'iopcare_rpc_requests_total{code="OK"' in _metrics(system["careplan"])
    assert "iopcare_http_requests_total" in _metrics(gateway)

    stop_all(list(system.values()))
    seen_services = set()
    request_ids = set()
    for name, process in system.items():
        text = process.log_file.read_text(errors="replace")
        for secret in (family, given, mrn, "555-0199-4242"):
            assert secret not in text, f"{secret!r} appears in the {name} log"
        for line in text.splitlines():
            if not line.startswith("{"):
                continue  # uvicorn's own start-up lines, before our logging is configured
            entry = json.loads(line)
            assert {"time", "level", "service", "logger", "message"} <= set(entry)
            seen_services.add(entry["service"])
            if "request_id" in entry:
                request_ids.add(entry["request_id"])
                assert entry.get("trace_id") or entry["logger"].endswith("audit")
    assert seen_services >= {"careplan", "scheduling", "notes", "gateway"}
    # The gateway's audit line carries the caller's request id.
    assert "handoff-req-1" in system["gateway"].log_file.read_text()
