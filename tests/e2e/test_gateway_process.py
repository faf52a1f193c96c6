"""`iopcare serve gateway` as a real process in front of the three services as processes: a
token printed by `iopcare token --system` works, a handoff goes through, SIGTERM stops it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.processes import GatewayProcess, ServiceProcess
from tests.support import harness
from tests.support.gateway import FHIR_JSON, discharge_bundle


@pytest.fixture
def gateway(
    tmp_path: Path, kafka_bootstrap: str
) -> Iterator[tuple[GatewayProcess, dict[str, str]]]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "IOPCARE_TOPIC_PREFIX": harness.isolated_topics(kafka_bootstrap),
        "IOPCARE_DATA_DIR": str(tmp_path),
    }
    started: list[ServiceProcess] = []
    try:
        addresses = {}
        for name in ("careplan", "scheduling", "notes"):
            process = ServiceProcess(name, free_port(), env, tmp_path / f"{name}.log")
            process.start()
            started.append(process)
            addresses[f"IOPCARE_GATEWAY_{name.upper()}_ADDRESS"] = process.address
        gateway = GatewayProcess("gateway", free_port(), {**env, **addresses}, tmp_path / "gw.log")
        gateway.start()
        started.append(gateway)
        yield gateway, env
    finally:
        for process in reversed(started):
            process.stop()


def test_the_gateway_process_serves_a_handoff_with_a_cli_token(
    gateway: tuple[GatewayProcess, dict[str, str]],
) -> None:
    process, env = gateway
    token = subprocess.run(
        [sys.executable, "-m", "iopcare.cli", "token", "--system", "--scope", "system/*.cruds"],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}
    with httpx.Client(base_url=process.base_url, headers=headers, timeout=30) as client:
        assert client.get("/metadata").json()["fhirVersion"] == "4.0.1"
        bundle = discharge_bundle(uuid.uuid4().hex[:10], labelled=False)
        response = client.post("/$handoff", json=bundle)
        assert response.status_code == 200, response.text
        created = [
            p["valueReference"]["reference"]
            for p in response.json()["parameter"]
            if p["name"] == "created"
        ]
        plan = next(r for r in created if r.startswith("CarePlan/"))
        assert client.get(f"/{plan}").json()["status"] == "draft"
    assert process.stop() == 0
