"""Topic-based Subscriptions (R5 Backport IG, R4) end to end: the gateway in front of the three
services on the session's Kafka, a real HTTP receiver started here (http.server in a thread).
Short back-off so that retries happen within the test's patience (ADR 0027)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from iopcare.gateway.subscriptions.domain import model
from iopcare.gateway.subscriptions.settings import SubscriptionSettings
from tests.security.test_consent_attacks import part2_consent, patient_token
from tests.support import harness
from tests.support.gateway import FHIR_JSON, Stack, practitioner_token, stack_for, system_token
from tests.support.plans import care_team, iop_plan

JSON_HEADERS = {"Content-Type": FHIR_JSON}
PLAN_TOPIC = "https://iopcare.org/fhir/SubscriptionTopic/care-plan-change"
ETH = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "code": "ETH",
    "display": "substance abuse information sensitivity",
}
EHR_A = "system:ehr-no-consent"
EHR_B = "system:ehr-with-consent"


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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    folder: Path = tmp_path_factory.mktemp("subscriptions-db")
    config = SubscriptionSettings(
        enabled=True,
        database_url=f"sqlite:///{folder / 'subscriptions.db'}",
        retry_base_seconds=0.2,
        retry_max_seconds=0.8,
        poll_seconds=0.1,
        error_after_failures=2,
    )
    with stack_for("sqlite", tmp_path_factory, kafka_bootstrap, "subs", subscriptions=config) as s:
        yield s


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings, subject=EHR_A)) as client:
        yield client


@pytest.fixture(scope="module")
def program(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as client:
        yield client


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
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": model.EXT_PAYLOAD, "valueCode": payload}]},
    }
    if heartbeat is not None:
        channel["extension"] = [{"url": model.EXT_HEARTBEAT, "valueUnsignedInt": heartbeat}]
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
                {"url": model.EXT_FILTER, "valueString": f"CarePlan?patient=Patient/{patient}"}
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


def test_handshake_event_notifications_payloads_and_patient_filter(
    stack: Stack, ehr: httpx.Client, program: httpx.Client, receiver: Receiver
) -> None:
    patient_id, team_id = enrolled(ehr, program)
    other_id, other_team = enrolled(ehr, program)
    full = subscribe(ehr, subscription(receiver.url("/full"), "full-resource", patient_id))
    ids = subscribe(ehr, subscription(receiver.url("/ids"), "id-only"))
    for subscription_id, path in ((full, "/full"), (ids, "/ids")):
        active(ehr, subscription_id)
        handshake = status_of(receiver.bundles(path)[0])
        assert handshake["type"] == "handshake"
        assert handshake["subscription"]["reference"].endswith(f"/Subscription/{subscription_id}")
        assert handshake["topic"] == PLAN_TOPIC
    plan_id = new_plan(ehr, patient_id, team_id)
    (notified,) = harness.eventually(lambda: receiver.events("/full"), timeout=30)
    status = status_of(notified)
    assert notified["type"] == "history"
    assert status["events-since-subscription-start"] == "1"
    assert status["events"][0]["event-number"] == "1"
    assert status["events"][0]["focus"]["reference"].endswith(f"/CarePlan/{plan_id}")
    focus = notified["entry"][1]
    assert focus["resource"]["id"] == plan_id
    assert focus["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    (by_id,) = harness.eventually(lambda: receiver.events("/ids"), timeout=30)
    assert "resource" not in by_id["entry"][1]
    assert by_id["entry"][1]["fullUrl"].endswith(f"/CarePlan/{plan_id}")
    # Another patient's plan: the unfiltered subscription hears of it; the filtered one does
    # not (the matcher takes events in order, so it has been past it once the other has it).
    other_plan = new_plan(ehr, other_id, other_team)
    harness.eventually(lambda: other_plan in focus_ids(receiver.events("/ids")), timeout=30)
    assert focus_ids(receiver.events("/full")) == [plan_id]
    assert status_of(receiver.events("/ids")[-1])["events-since-subscription-start"] == "2"
    # $status and $events.
    answer = ehr.get(f"/Subscription/{ids}/$status")
    assert answer.status_code == 200, answer.text
    current = status_of(answer.json())
    assert current["type"] == "query-status"
    assert current["status"] == "active"
    assert current["events-since-subscription-start"] == "2"
    events = ehr.get(f"/Subscription/{ids}/$events", params={"eventsSinceNumber": "2"}).json()
    assert events["type"] == "history"
    listed = status_of(events)
    assert listed["type"] == "query-event"
    assert [e["event-number"] for e in listed["events"]] == ["2"]
    assert listed["events"][0]["focus"]["reference"].endswith(f"/CarePlan/{other_plan}")
    # Search lists the caller's own; delete stops it.
    mine = ehr.get("/Subscription", params={"status": "active"}).json()
    assert {full, ids} <= {e["resource"]["id"] for e in mine["entry"]}
    assert ehr.delete(f"/Subscription/{full}").status_code == 204
    assert ehr.get(f"/Subscription/{full}").status_code == 404


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_receiver_down_then_up_and_500_then_200(
    stack: Stack, ehr: httpx.Client, program: httpx.Client, receiver: Receiver
) -> None:
    patient_id, team_id = enrolled(ehr, program)
    port = free_port()
    down = subscribe(ehr, subscription(f"http://127.0.0.1:{port}/late", patient=patient_id))
    receiver.fail["/flaky"] = 2
    flaky = subscribe(ehr, subscription(receiver.url("/flaky"), patient=patient_id))
    # Nobody listens: the handshake fails, the status says so, and it is tried again.
    harness.eventually(
        lambda: ehr.get(f"/Subscription/{down}").json()["status"] == "error", timeout=20
    )
    plan_id = new_plan(ehr, patient_id, team_id)
    # 500 twice, then 200: the handshake gets through on the third try, then the event.
    harness.eventually(lambda: receiver.events("/flaky"), timeout=30)
    assert receiver.attempts["/flaky"] >= 4
    assert focus_ids(receiver.events("/flaky")) == [plan_id]
    active(ehr, flaky)
    late = Receiver(port)
    try:
        harness.eventually(lambda: late.events("/late"), timeout=30)
        assert status_of(late.bundles("/late")[0])["type"] == "handshake"
        assert focus_ids(late.events("/late")) == [plan_id]
        active(ehr, down)
    finally:
        late.close()


def test_a_slow_receiver_holds_up_no_one_else(
    stack: Stack, ehr: httpx.Client, program: httpx.Client, receiver: Receiver
) -> None:
    patient_id, team_id = enrolled(ehr, program)
    receiver.delay["/slow"] = 2.0
    slow = subscribe(ehr, subscription(receiver.url("/slow"), patient=patient_id))
    fast = subscribe(ehr, subscription(receiver.url("/fast"), patient=patient_id))
    active(ehr, slow)
    active(ehr, fast)
    new_plan(ehr, patient_id, team_id)
    harness.eventually(lambda: receiver.events("/slow"), timeout=30)
    with receiver.lock:
        fast_at = next(
            t for t, b in receiver.received["/fast"] if status_of(b)["type"] == model.EVENT
        )
        slow_at = next(
            t for t, b in receiver.received["/slow"] if status_of(b)["type"] == model.EVENT
        )
    assert fast_at < slow_at - 1.0


def test_labelled_content_reaches_only_a_subscriber_the_patient_consented_to(
    stack: Stack, ehr: httpx.Client, program: httpx.Client, receiver: Receiver
) -> None:
    patient_id, team_id = enrolled(ehr, program)
    with stack.client(patient_token(stack.settings, patient_id)) as me:
        recorded = me.post("/Consent", json=part2_consent(patient_id, EHR_B), headers=JSON_HEADERS)
        assert recorded.status_code == 201, recorded.text
    blind = subscribe(ehr, subscription(receiver.url("/a"), "full-resource", patient_id))
    with stack.client(system_token(stack.settings, subject=EHR_B)) as consented:
        seen = subscribe(consented, subscription(receiver.url("/b"), "full-resource", patient_id))
        active(consented, seen)
    active(ehr, blind)
    labelled = new_plan(ehr, patient_id, team_id, ETH)
    plain = new_plan(ehr, patient_id, team_id)
    harness.eventually(lambda: len(receiver.events("/b")) == 2, timeout=30)
    first, second = receiver.events("/b")
    assert focus_ids([first, second]) == [labelled, plain]
    released = first["entry"][1]["resource"]
    codes = {s["code"] for s in released["meta"]["security"]}
    assert {"ETH", "NORDSCLCD"} <= codes
    # The subscriber without the patient's consent hears of the plain plan only, numbered 1:
    # not the labelled one, nor that it exists (no gap in the numbers).
    harness.eventually(lambda: receiver.events("/a"), timeout=30)
    (only,) = receiver.events("/a")
    assert focus_ids([only]) == [plain]
    assert status_of(only)["events-since-subscription-start"] == "1"
    assert labelled not in json.dumps(receiver.bundles("/a"))


def test_who_may_subscribe(
    stack: Stack, ehr: httpx.Client, program: httpx.Client, receiver: Receiver
) -> None:
    patient_id, _ = enrolled(ehr, program)
    # No Subscription scope.
    token = system_token(stack.settings, ["system/CarePlan.rs"], subject="system:reader")
    with stack.client(token) as reader:
        refused = reader.post(
            "/Subscription", json=subscription(receiver.url("/x")), headers=JSON_HEADERS
        )
        assert refused.status_code == 403, refused.text
    # A clinician not on the patient's care team may not filter on that patient.
    stranger = practitioner_token(stack.settings, "therapist", "th-stranger")
    with stack.client(stranger) as clinician:
        answer = clinician.post(
            "/Subscription",
            json=subscription(receiver.url("/x"), patient=patient_id),
            headers=JSON_HEADERS,
        )
        assert answer.status_code == 422, answer.text
    # Unknown topic, plain http to another host: 422 naming the element.
    bad = subscription(receiver.url("/x"), topic="https://example.org/SubscriptionTopic/nope")
    answer = ehr.post("/Subscription", json=bad, headers=JSON_HEADERS)
    assert answer.status_code == 422
    assert answer.json()["issue"][0]["expression"] == ["Subscription.criteria"]
    outside = ehr.post(
        "/Subscription", json=subscription("http://ehr.example/hook"), headers=JSON_HEADERS
    )
    assert outside.status_code == 422
    # Someone else's subscription is not found.
    mine = subscribe(ehr, subscription(receiver.url("/mine"), patient=patient_id))
    with stack.client(system_token(stack.settings, subject="system:other")) as other:
        assert other.get(f"/Subscription/{mine}").status_code == 404
        assert other.delete(f"/Subscription/{mine}").status_code == 404
    # The same X-Request-Id makes one subscription.
    again = {"X-Request-Id": "sub-once-1", **JSON_HEADERS}
    one = ehr.post("/Subscription", json=subscription(receiver.url("/once")), headers=again)
    two = ehr.post("/Subscription", json=subscription(receiver.url("/once")), headers=again)
    assert one.status_code == 201 and two.status_code == 200
    assert one.json()["id"] == two.json()["id"]


def test_heartbeat(stack: Stack, ehr: httpx.Client, receiver: Receiver) -> None:
    beating = subscribe(ehr, subscription(receiver.url("/beat"), heartbeat=1))
    active(ehr, beating)
    harness.eventually(
        lambda: any(status_of(b)["type"] == "heartbeat" for b in receiver.bundles("/beat")),
        timeout=10,
    )
    metadata = ehr.get("/metadata").json()
    (entry,) = [r for r in metadata["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert PLAN_TOPIC in {e["valueCanonical"] for e in entry["extension"]}
