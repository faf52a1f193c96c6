"""Topic-based Subscriptions (R5 Backport IG, R4) end to end: the gateway in front of the three
services on the session's Kafka, a real HTTP receiver started here (http.server in a thread).
Short back-off so that retries happen within the test's patience (ADR 0027)."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest

from iopcare.gateway.subscriptions.domain import model, topics
from iopcare.kit import auth
from tests.security.test_consent_attacks import part2_consent, patient_token
from tests.support import harness
from tests.support.gateway import Stack, discharge_bundle, practitioner_token, system_token
from tests.support.plans import phq9
from tests.support.subscriptions import (
    JSON_HEADERS,
    PLAN_TOPIC,
    Receiver,
    active,
    enrolled,
    focus_ids,
    new_plan,
    status_of,
    subscribe,
    subscription,
    subscription_stack,
)

ETH = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "code": "ETH",
    "display": "substance abuse information sensitivity",
}
EHR_A = "system:ehr-no-consent"
EHR_B = "system:ehr-with-consent"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    with subscription_stack(tmp_path_factory, kafka_bootstrap, "subs") as running:
        yield running


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
    # A receiver slower than the subscription's timeout (1 s): the delivery counts as failed and
    # is tried again (the status says `error`), and goes through once it answers in time.
    receiver.delay["/slowest"] = 2.0
    slowest = subscribe(ehr, subscription(receiver.url("/slowest"), patient=patient_id, timeout=1))
    harness.eventually(
        lambda: ehr.get(f"/Subscription/{slowest}").json()["status"] == "error", timeout=20
    )
    receiver.delay["/slowest"] = 0
    active(ehr, slowest)
    assert receiver.attempts["/slowest"] >= 2


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
    harness.eventually(lambda: plain in focus_ids(receiver.events("/b")) or None, timeout=30)
    events = receiver.events("/b")
    # Each plan in order (a plan may be notified again when it changes after its creation).
    assert list(dict.fromkeys(focus_ids(events))) == [labelled, plain]
    first = next(e for e in events if focus_ids([e]) == [labelled])
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
    # The patient revokes the consent while events flow: nothing labelled leaves after it.
    with stack.client(patient_token(stack.settings, patient_id)) as me:
        revoked = {**recorded.json(), "status": "inactive"}
        answer = me.put(
            f"/Consent/{revoked['id']}",
            json=revoked,
            headers={**JSON_HEADERS, "If-Match": recorded.headers["ETag"]},
        )
        assert answer.status_code == 200, answer.text
    after = new_plan(ehr, patient_id, team_id, ETH)
    closing = new_plan(ehr, patient_id, team_id)
    harness.eventually(lambda: closing in focus_ids(receiver.events("/b")), timeout=30)
    assert after not in focus_ids(receiver.events("/b"))
    assert after not in json.dumps(receiver.bundles("/b"))
    assert status_of(receiver.events("/b")[-1])["events-since-subscription-start"] == "3"


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
        assert other.get(f"/Subscription/{mine}/$status").status_code == 404
        assert other.get(f"/Subscription/{mine}/$events").status_code == 404
    # A token launched for one patient (patient/ scopes) subscribes to that patient only.
    other_patient, _ = enrolled(ehr, program)
    launched = auth.mint_token(
        stack.settings,
        subject="system:launched-app",
        role="system",
        patient_context=patient_id,
        scopes=["patient/*.cruds"],
    )
    with stack.client(launched) as app:
        elsewhere = subscription(receiver.url("/app"), patient=other_patient)
        refused = app.post("/Subscription", json=elsewhere, headers=JSON_HEADERS)
        assert refused.status_code == 403, refused.text
        own = app.post(
            "/Subscription", json=subscription(receiver.url("/app")), headers=JSON_HEADERS
        )
        assert own.status_code == 201, own.text
        (criteria,) = own.json()["_criteria"]["extension"]
        assert criteria["valueString"] == f"CarePlan?patient=Patient/{patient_id}"
    # The same X-Request-Id makes one subscription.
    again = {"X-Request-Id": "sub-once-1", **JSON_HEADERS}
    one = ehr.post("/Subscription", json=subscription(receiver.url("/once")), headers=again)
    two = ehr.post("/Subscription", json=subscription(receiver.url("/once")), headers=again)
    assert one.status_code == 201 and two.status_code == 200
    assert one.json()["id"] == two.json()["id"]
    # ...and another Subscription under it is a conflict, not the first one's answer.
    other = ehr.post("/Subscription", json=subscription(receiver.url("/twice")), headers=again)
    assert other.status_code == 409, other.text


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


def test_a_clinician_hears_only_of_patients_whose_team_they_are_on(
    stack: Stack, ehr: httpx.Client, program: httpx.Client, receiver: Receiver
) -> None:
    patient_id, team_id = enrolled(ehr, program)
    stranger = practitioner_token(stack.settings, "therapist", "th-stranger")
    member = practitioner_token(stack.settings, "therapist", "th-1")
    with stack.client(stranger) as outsider, stack.client(member) as therapist:
        # No filter: allowed, but only what they may read reaches them.
        blind = subscribe(outsider, subscription(receiver.url("/stranger")))
        seeing = subscribe(therapist, subscription(receiver.url("/member")))
        active(outsider, blind)
        active(therapist, seeing)
        first = new_plan(ehr, patient_id, team_id)
        second = new_plan(ehr, patient_id, team_id)
        # Events are matched in order: once the second reached the member, the first has been
        # matched for everyone.
        harness.eventually(lambda: second in focus_ids(receiver.events("/member")), timeout=30)
        assert first in focus_ids(receiver.events("/member"))
        status = status_of(outsider.get(f"/Subscription/{blind}/$status").json())
        assert status["events-since-subscription-start"] == "0"
        assert receiver.events("/stranger") == []


def test_crisis_flag_and_accepted_handoff_topics(
    stack: Stack, ehr: httpx.Client, program: httpx.Client, receiver: Receiver
) -> None:
    patient_id, _ = enrolled(ehr, program)
    crisis = subscribe(
        ehr,
        subscription(
            receiver.url("/crisis"),
            "full-resource",
            patient_id,
            topic=f"{topics.BASE}/crisis-flag",
            focus="Flag",
        ),
    )
    handoffs = subscribe(
        ehr, subscription(receiver.url("/handoffs"), topic=f"{topics.BASE}/handoff-accepted")
    )
    active(ehr, crisis)
    active(ehr, handoffs)
    # PHQ-9 item 9 answered: careplan's crisis event, notes' safety Flag, its crisis.raised event.
    measured = ehr.post("/Observation", json=phq9(patient_id, 16, item9=1), headers=JSON_HEADERS)
    assert measured.status_code == 201, measured.text
    (raised,) = harness.eventually(lambda: receiver.events("/crisis"), timeout=30)
    flag = raised["entry"][1]["resource"]
    assert flag["resourceType"] == "Flag"
    assert flag["subject"]["reference"] == f"Patient/{patient_id}"
    # A step-down handoff accepted: the planned stay it opened.
    answer = ehr.post(
        "/$handoff",
        json=discharge_bundle(uuid.uuid4().hex[:10], labelled=False),
        headers=JSON_HEADERS,
    )
    assert answer.status_code == 200, answer.text
    (episode,) = [
        p["valueReference"]["reference"].split("/")[1]
        for p in answer.json()["parameter"]
        if p["name"] == "created" and p["valueReference"]["reference"].startswith("EpisodeOfCare/")
    ]
    harness.eventually(lambda: episode in focus_ids(receiver.events("/handoffs")), timeout=30)
