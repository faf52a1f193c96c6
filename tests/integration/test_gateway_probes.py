"""Issue 17: the gateway's liveness (`/healthz`) and readiness (`/readyz`) over HTTP, in front of
the three real services (SQLite, the session's broker). Readiness follows the services' gRPC
health: not ready while one is stopped, ready again once it is back on its port."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import harness
from tests.support.gateway import Stack, stack_for, system_token

PROBE_HEADERS = {"Accept": "*/*", "User-Agent": "kube-probe/1.37"}


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    # Function-scoped: the test stops and restarts a service.
    with stack_for("sqlite", tmp_path_factory, kafka_bootstrap, "probes") as running:
        yield running


def origin(stack: Stack) -> str:
    return stack.base_url.removesuffix("/fhir")


def wait_for(client: httpx.Client, path: str, status: int, seconds: float = 20) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        answer = client.get(path, headers=PROBE_HEADERS)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_probes_follow_the_services_health(stack: Stack) -> None:
    with httpx.Client(base_url=origin(stack), timeout=10) as client:
        ready = wait_for(client, "/readyz", 200)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "services": {"careplan": "SERVING", "notes": "SERVING", "scheduling": "SERVING"},
        }
        assert ready.headers["cache-control"] == "no-store"
        live = client.get("/healthz", headers=PROBE_HEADERS)
        assert live.status_code == 200 and live.json() == {"status": "alive"}

        # notes stops: the gateway is not ready (but alive), within the cache's second or so.
        notes = stack.runtimes["notes"]
        port, url = notes.port, notes.db.url
        notes.stop(grace=0.2)
        down = wait_for(client, "/readyz", 503)
        assert down.status_code == 503, down.text
        assert down.json()["status"] == "not ready"
        assert down.json()["services"]["notes"] in ("UNREACHABLE", "NOT_SERVING")
        assert down.json()["services"]["careplan"] == "SERVING"
        assert client.get("/healthz", headers=PROBE_HEADERS).status_code == 200

        # notes again, on its port and database: ready again.
        again = harness.build("notes", stack.settings, url, port=port)
        stack.runtimes["notes"] = again
        again.start()
        back = wait_for(client, "/readyz", 200, seconds=30)
        assert back.status_code == 200, back.text
    # Nothing was audited: probes are no disclosure and would flood the audit log.
    assert not [r for r in stack.audit if r["path"] in ("/healthz", "/readyz")]


def test_probes_need_no_token_and_are_not_fhir(stack: Stack) -> None:
    with httpx.Client(base_url=origin(stack), timeout=10) as client:
        for path in ("/healthz", "/readyz"):
            # A bad token changes nothing: the probes do not read it.
            answer = wait_for(client, path, 200)
            assert answer.status_code == 200
            assert "resourceType" not in answer.json()
            bad = client.get(path, headers={**PROBE_HEADERS, "Authorization": "Bearer nope"})
            assert bad.status_code == 200
            assert client.post(path).status_code == 405
    with stack.client(system_token(stack.settings)) as ehr:
        capability = ehr.get("/metadata").json()
        assert "healthz" not in str(capability) and "readyz" not in str(capability)
        # Not under the FHIR base either.
        assert ehr.get("/readyz").status_code in (400, 404)
