"""The gateway's subscription database on SQLite and PostgreSQL (ADR 0027): numbering once per
event, idempotent creates, the delivery queue's order, states and back-off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from iopcare.gateway.subscriptions.domain import model
from iopcare.gateway.subscriptions.store import Owner, RequestIdReused, Store

OWNER = Owner("system:ehr", "system", None, ("system/*.cruds",), None)
TOPIC = "https://iopcare.org/fhir/SubscriptionTopic/care-plan-change"


def spec(endpoint: str = "https://ehr.example/hook") -> model.Spec:
    return model.parse(
        {
            "resourceType": "Subscription",
            "criteria": TOPIC,
            "channel": {
                "type": "rest-hook",
                "endpoint": endpoint,
                "payload": "application/fhir+json",
            },
        }
    )


def bundle(*_: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "history"}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    yield opened
    opened.close()


def test_the_queue_numbers_delivers_and_retries(store: Store) -> None:
    row, created = store.create(OWNER, spec(), "r-1", bundle)
    assert created and row.status == "requested" and row.events_since_start == 0
    again, created = store.create(OWNER, spec(), "r-1", bundle)
    assert not created and again.id == row.id
    with pytest.raises(RequestIdReused):
        store.create(OWNER, spec("https://other.example/hook"), "r-1", bundle)

    (handshake,) = store.due()
    assert handshake.kind == "handshake" and handshake.subscription_id == row.id
    # Events queue behind the handshake, numbered once each.
    assert store.add_event_notification(row.id, "e-1", "CarePlan/p1", bundle)
    assert store.add_event_notification(row.id, "e-2", "CarePlan/p2", bundle)
    assert not store.add_event_notification(row.id, "e-1", "CarePlan/p1", bundle)  # replay
    current = store.get(row.id)
    assert current is not None and current.events_since_start == 2
    # One at a time per subscription: the handshake first.
    assert [n.id for n in store.due()] == [handshake.id]
    store.failed(handshake.id, row.id, "HTTP 500", timedelta(seconds=60), 5, handshake=True)
    failed = store.get(row.id)
    assert failed is not None and failed.status == "error" and failed.error == "HTTP 500"
    assert store.due() == []  # not due again for a minute
    store.failed(handshake.id, row.id, "HTTP 500", timedelta(seconds=0), 5, handshake=True)
    (retried,) = store.due()
    assert retried.id == handshake.id and retried.attempts == 2
    store.sent(handshake.id, row.id, "handshake")
    sent = store.get(row.id)
    assert sent is not None and sent.status == "active" and sent.failures == 0
    (first,) = store.due()
    assert (first.kind, first.event_number, first.focus) == ("event-notification", 1, "CarePlan/p1")
    assert [n.event_number for n in store.notifications(row.id, 2, None)] == [2]
    # A heartbeat is not queued behind pending notifications.
    store.queue_heartbeat(sent, bundle())
    assert [n.kind for n in store.due()] == ["event-notification"]

    store.delete(row.id)
    assert store.get(row.id) is None
    assert store.due() == []
    assert not store.add_event_notification(row.id, "e-3", "CarePlan/p3", bundle)
    with pytest.raises(RequestIdReused):
        store.create(OWNER, spec(), "r-1", bundle)


def test_an_update_drops_what_waited_for_the_old_channel(store: Store) -> None:
    row, _ = store.create(OWNER, spec(), None, bundle)
    store.add_event_notification(row.id, "e-1", "CarePlan/p1", bundle)
    changed = store.replace(row, spec("https://new.example/hook"), OWNER, bundle)
    assert changed is not None and changed.version == 2 and changed.status == "requested"
    (pending,) = store.due()
    assert pending.kind == "handshake"
    assert store.replace(row, spec(), OWNER, bundle) is None  # based on version 1: stale
    off = store.replace(changed, replace(spec(), status="off"), OWNER, bundle)
    assert off is not None and off.status == "off"
    assert store.due() == []
    assert row.id not in {r.id for r in store.listening([TOPIC])}


def test_a_delivery_follows_no_redirect() -> None:
    """The notification goes to the registered endpoint only: a 3xx is a failed delivery (and
    retried), never a POST or GET to wherever it points."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from iopcare.gateway.subscriptions.engine import post

    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/elsewhere")
            else:
                self.send_response(204)
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert post(f"{base}/moved", b"{}", (), 5) == "HTTP 302"
        assert post(f"{base}/hook", b"{}", ("X-Key: k",), 5) is None
        assert hits == ["/moved", "/hook"]
    finally:
        server.shutdown()
        server.server_close()
