"""Subscriptions under test: an EHR's rest-hook receiver (http.server in a thread) and the
helpers that subscribe, enrol patients and read notifications (tests of gateway/subscriptions)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from iopcare.gateway.subscriptions.domain import model
from iopcare.gateway.subscriptions.settings import SubscriptionSettings
from tests.support import harness
from tests.support.gateway import FHIR_JSON, Stack, stack_for
from tests.support.plans import care_team, iop_plan

JSON_HEADERS = {"Content-Type": FHIR_JSON}
PLAN_TOPIC = "https://iopcare.org/fhir/SubscriptionTopic/care-plan-change"


class Receiver:
    """An EHR's rest-hook endpoint: records what it took (answering 200), can fail a path's
    first requests with 500 or answer slowly."""

    def __init__(self, port: int = 0) -> None:
        self.received: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.attempts: dict[str, int] = {}
        self.fail: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                path = self.path
                with receiver.lock:
                    receiver.attempts[path] = receiver.attempts.get(path, 0) + 1
                    failing = receiver.fail.get(path, 0) > 0
                    if failing:
                        receiver.fail[path] -= 1
                if failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                time.sleep(receiver.delay.get(path, 0))
                with receiver.lock:
                    receiver.received.setdefault(path, []).append(
                        (time.monotonic(), json.loads(body))
                    )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bundles(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for _, b in self.received.get(path, [])]

    def events(self, path: str) -> list[dict[str, Any]]:
        return [b for b in self.bundles(path) if status_of(b)["type"] == model.EVENT]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def status_of(bundle: dict[str, Any]) -> dict[str, Any]:
    """The SubscriptionStatus parameters of a notification as a dict (notification-events as a
    list of dicts)."""
    first = bundle["entry"][0]["resource"]
    assert first["resourceType"] == "Parameters"
    found: dict[str, Any] = {"events": []}
    for parameter in first["parameter"]:
        if parameter["name"] == "notification-event":
            found["events"].append(
                {
                    p["name"]: next(v for k, v in p.items() if k.startswith("value"))
                    for p in parameter["part"]
                }
            )
        else:
            found[parameter["name"]] = next(
                v for k, v in parameter.items() if k.startswith("value")
            )
    return found


@contextmanager
def subscription_stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, label: str
) -> Iterator[Stack]:
    """The services and the gateway on SQLite with subscriptions on, retrying within a second."""
    folder: Path = tmp_path_factory.mktemp(f"{label}-db")
    config = SubscriptionSettings(
        enabled=True,
        database_url=f"sqlite:///{folder / 'subscriptions.db'}",
        retry_base_seconds=0.2,
        retry_max_seconds=0.8,
        poll_seconds=0.1,
        error_after_failures=2,
    )
    with stack_for("sqlite", tmp_path_factory, kafka_bootstrap, label, subscriptions=config) as s:
        yield s


def enrolled(ehr: httpx.Client, program: httpx.Client) -> tuple[str, str]:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": uuid.uuid4().hex}],
        "name": [{"family": "Rivera", "given": ["Sam"]}],
    }
    registered = ehr.post("/Patient", json=patient, headers=JSON_HEADERS)
    assert registered.status_code == 201, registered.text
    patient_id = str(registered.json()["id"])
    team = program.post("/CareTeam", json=care_team(patient_id), headers=JSON_HEADERS)
    assert team.status_code == 201, team.text
    return patient_id, str(team.json()["id"])


def new_plan(ehr: httpx.Client, patient_id: str, team_id: str, *labels: dict[str, str]) -> str:
    plan = iop_plan(patient_id, team_id)
    if labels:
        plan["meta"] = {"security": list(labels)}
    created = ehr.post("/CarePlan", json=plan, headers=JSON_HEADERS)
    assert created.status_code == 201, created.text
    return str(created.headers["location"].split("/CarePlan/")[1].split("/")[0])


def subscription(
    endpoint: str,
    payload: str = "id-only",
    patient: str | None = None,
    topic: str = PLAN_TOPIC,
    heartbeat: int | None = None,
    focus: str = "CarePlan",
    timeout: int | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": model.EXT_PAYLOAD, "valueCode": payload}]},
    }
    extensions = []
    if heartbeat is not None:
        extensions.append({"url": model.EXT_HEARTBEAT, "valueUnsignedInt": heartbeat})
    if timeout is not None:
        extensions.append({"url": model.EXT_TIMEOUT, "valueUnsignedInt": timeout})
    if extensions:
        channel["extension"] = extensions
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": topic,
        "channel": channel,
    }
    if patient is not None:
        resource["_criteria"] = {
            "extension": [
                {"url": model.EXT_FILTER, "valueString": f"{focus}?patient=Patient/{patient}"}
            ]
        }
    return resource


def subscribe(client: httpx.Client, resource: dict[str, Any]) -> str:
    created = client.post("/Subscription", json=resource, headers=JSON_HEADERS)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "requested"
    return str(created.json()["id"])


def active(client: httpx.Client, subscription_id: str) -> None:
    harness.eventually(
        lambda: client.get(f"/Subscription/{subscription_id}").json()["status"] == "active",
        timeout=20,
    )


def focus_ids(bundles: list[dict[str, Any]]) -> list[str]:
    return [
        e["focus"]["reference"].rsplit("/", 1)[1] for b in bundles for e in status_of(b)["events"]
    ]
