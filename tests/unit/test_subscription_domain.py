"""The pure parts of gateway/subscriptions: which events trigger which topics, what a
Subscription may ask for, and the shape of the notifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from iopcare.gateway.handoff import HANDOFF_ID_SYSTEM
from iopcare.gateway.subscriptions.domain import model, topics

PLAN = f"{topics.BASE}/care-plan-change"


def urls(event_type: str, resource: dict[str, Any]) -> list[str]:
    return [t.url for t in topics.topics_for(event_type, resource)]


def test_events_map_to_their_topics() -> None:
    plan = {"resourceType": "CarePlan", "id": "p"}
    assert urls("iopcare.careplan.created.v1", plan) == [PLAN]
    assert urls("iopcare.careplan.revoked.v1", plan) == [PLAN]
    # A review-due notice is no change of the plan's content: not this topic.
    assert urls("iopcare.careplan.review-due.v1", plan) == []
    flag = {"resourceType": "Flag", "id": "f"}
    assert urls("iopcare.notes.crisis.raised.v1", flag) == [f"{topics.BASE}/crisis-flag"]
    assert urls("iopcare.notes.crisis.acknowledged.v1", flag) == []
    booked = {"resourceType": "Appointment", "status": "booked"}
    appointments = f"{topics.BASE}/appointment-booked-cancelled"
    assert urls("iopcare.scheduling.appointment.booked.v1", booked) == [appointments]
    # An update counts only when it cancels.
    assert urls("iopcare.scheduling.appointment.updated.v1", booked) == []
    cancelled = {**booked, "status": "cancelled"}
    assert urls("iopcare.scheduling.appointment.updated.v1", cancelled) == [appointments]
    episode = {"resourceType": "EpisodeOfCare", "status": "planned"}
    assert urls("iopcare.careplan.episode.created.v1", episode) == []
    handed = {**episode, "identifier": [{"system": HANDOFF_ID_SYSTEM, "value": "k"}]}
    assert urls("iopcare.careplan.episode.created.v1", handed) == [
        f"{topics.BASE}/handoff-accepted"
    ]
    for kind in ("discharged", "stepped-down", "stepped-up", "level-changed"):
        assert urls(f"iopcare.careplan.episode.{kind}.v1", episode) == [
            f"{topics.BASE}/discharge-transfer"
        ]
    # The resource must be the topic's type (a forged or odd payload triggers nothing).
    assert urls("iopcare.careplan.created.v1", {"resourceType": "Patient"}) == []


def test_the_handoff_system_is_the_gateways() -> None:
    assert topics.HANDOFF_ID_SYSTEM == HANDOFF_ID_SYSTEM


def test_patient_of_prefers_the_record_key() -> None:
    resource = {"subject": {"reference": "Patient/s"}}
    assert topics.patient_of(resource, "k") == "k"
    assert topics.patient_of(resource, "") == "s"
    assert topics.patient_of({"patient": {"reference": "Patient/p"}}, "") == "p"
    assert topics.patient_of({}, "") == ""


def subscription(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "r",
        "criteria": PLAN,
        "_criteria": {
            "extension": [{"url": model.EXT_FILTER, "valueString": "CarePlan?patient=Patient/p1"}]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://ehr.example/hook",
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": model.EXT_PAYLOAD, "valueCode": "full-resource"}]},
            "extension": [
                {"url": model.EXT_HEARTBEAT, "valueUnsignedInt": 60},
                {"url": model.EXT_TIMEOUT, "valueUnsignedInt": 5},
                {"url": model.EXT_MAX_COUNT, "valuePositiveInt": 10},
            ],
            "header": ["Authorization: Bearer abc"],
        },
    }
    resource.update(changes)
    return resource


def test_parse_reads_the_backport_extensions() -> None:
    spec = model.parse(subscription())
    assert spec.topic == PLAN and spec.patient == "p1" and spec.payload == "full-resource"
    assert (spec.heartbeat_seconds, spec.timeout_seconds, spec.max_count) == (60, 5, 10)
    assert spec.headers == ("Authorization: Bearer abc",)
    # No content extension: id-only; no payload MIME type at all: empty.
    channel = {"type": "rest-hook", "endpoint": "https://e/h", "payload": "application/fhir+json"}
    assert model.parse(subscription(channel=channel)).payload == "id-only"
    assert (
        model.parse(subscription(channel={"type": "rest-hook", "endpoint": "https://e/h"})).payload
        == "empty"
    )


@pytest.mark.parametrize(
    ("changes", "expression"),
    [
        ({"criteria": "https://example.org/SubscriptionTopic/x"}, "Subscription.criteria"),
        ({"criteria": "CarePlan?patient=1"}, "Subscription.criteria"),
        (
            {
                "_criteria": {
                    "extension": [{"url": model.EXT_FILTER, "valueString": "Flag?patient=p"}]
                }
            },
            "Subscription._criteria.extension",
        ),
        (
            {
                "_criteria": {
                    "extension": [
                        {"url": model.EXT_FILTER, "valueString": "CarePlan?status=active"}
                    ]
                }
            },
            "Subscription._criteria.extension",
        ),
        ({"channel": {"type": "websocket", "endpoint": "https://e"}}, "Subscription.channel.type"),
        (
            {"channel": {"type": "rest-hook", "endpoint": "ftp://e"}},
            "Subscription.channel.endpoint",
        ),
        (
            {
                "channel": {
                    "type": "rest-hook",
                    "endpoint": "https://e",
                    "payload": "application/xml",
                }
            },
            "Subscription.channel.payload",
        ),
        (
            {"channel": {"type": "rest-hook", "endpoint": "https://e", "header": ["X: 1\r\nY: 2"]}},
            "Subscription.channel.header",
        ),
        ({"status": "error"}, "Subscription.status"),
    ],
)
def test_parse_refuses_what_is_not_offered(changes: dict[str, Any], expression: str) -> None:
    with pytest.raises(model.Invalid) as refused:
        model.parse(subscription(**changes))
    assert refused.value.expression == expression


def test_the_answer_never_echoes_the_channel_headers() -> None:
    spec = model.parse(subscription())
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    resource = model.resource_of("s1", spec, "active", 2, at, "")
    assert "header" not in resource["channel"]
    assert resource["meta"]["lastUpdated"] == "2026-12-01T09:00:00Z"
    assert resource["_criteria"]["extension"][0]["valueString"] == "CarePlan?patient=Patient/p1"
    assert model.parse({**resource, "status": "active"}).patient == "p1"


def test_notification_shapes() -> None:
    at = datetime(2026, 12, 1, 9, 0)  # naive, as SQLite returns it: UTC
    focus = model.Focus("CarePlan/c1", {"resourceType": "CarePlan", "id": "c1"}, True)
    full = model.notification(
        "https://b/fhir", "s1", PLAN, "active", model.EVENT, 3, at, (3, focus), "full-resource"
    )
    assert full["type"] == "history" and full["timestamp"] == "2026-12-01T09:00:00Z"
    status = {p["name"]: p for p in full["entry"][0]["resource"]["parameter"]}
    assert status["events-since-subscription-start"]["valueString"] == "3"
    parts = {p["name"]: p for p in status["notification-event"]["part"]}
    assert parts["event-number"]["valueString"] == "3"
    assert parts["focus"]["valueReference"]["reference"] == "https://b/fhir/CarePlan/c1"
    assert full["entry"][1]["resource"]["id"] == "c1"
    assert full["entry"][1]["request"] == {"method": "POST", "url": "CarePlan"}
    ids = model.notification(
        "https://b/fhir", "s1", PLAN, "active", model.EVENT, 3, at, (3, focus), "id-only"
    )
    assert "resource" not in ids["entry"][1]
    empty = model.notification(
        "https://b/fhir", "s1", PLAN, "active", model.EVENT, 3, at, (3, focus), "empty"
    )
    assert len(empty["entry"]) == 1
    assert "focus" not in str(empty["entry"][0]["resource"])
    handshake = model.notification(
        "https://b/fhir", "s1", PLAN, "requested", model.HANDSHAKE, 0, at, None, "id-only"
    )
    assert len(handshake["entry"]) == 1


def test_end_stops_notifications_after_it() -> None:
    spec = model.parse(subscription(end="2026-12-01T10:00:00Z"))
    assert not model.ended(spec, datetime(2026, 12, 1, 9, 59, tzinfo=UTC))
    assert model.ended(spec, datetime(2026, 12, 1, 10, 1, tzinfo=UTC))
    assert not model.ended(model.parse(subscription()), datetime(2100, 1, 1, tzinfo=UTC))
    with pytest.raises(model.Invalid) as refused:
        model.parse(subscription(end="tomorrow"))
    assert refused.value.expression == "Subscription.end"
