"""The CloudEvents envelope: what goes on the wire, and what a consumer refuses."""

from __future__ import annotations

import json

import pytest

from iopcare.kit.events import Event, PoisonMessage, child_traceparent, from_kafka

PLAN = json.dumps(
    {
        "resourceType": "CarePlan",
        "id": "p1",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/pat-1"},
    }
)


def _event() -> Event:
    return Event(
        type="iopcare.careplan.created.v1",
        source="/iopcare/careplan",
        subject="CarePlan/p1/_history/1",
        key="pat-1",
        data=PLAN,
    )


def test_event_headers_follow_the_cloudevents_kafka_binary_binding() -> None:
    headers = dict(_event().headers())
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"iopcare.careplan.created.v1"
    assert headers["ce_source"] == b"/iopcare/careplan"
    assert headers["ce_subject"] == b"CarePlan/p1/_history/1"
    assert headers["content-type"] == b"application/fhir+json"
    assert headers["ce_time"].endswith(b"Z")
    assert headers["traceparent"].startswith(b"00-")
    assert set(headers) == {
        "ce_specversion",
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_time",
        "ce_subject",
        "content-type",
        "traceparent",
    }


def test_an_event_survives_the_round_trip_through_kafka_records() -> None:
    event = _event()
    received = from_kafka("t", 1, 42, b"pat-1", PLAN.encode(), event.headers())
    assert received.event == event
    assert received.resource.id == "p1"
    assert (received.topic, received.partition, received.offset) == ("t", 1, 42)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, k, v: ([x for x in h if x[0] != "ce_id"], k, v), "missing CloudEvents"),
        (
            lambda h, k, v: ([(n, b"0.3" if n == "ce_specversion" else x) for n, x in h], k, v),
            "specversion",
        ),
        (
            lambda h, k, v: (
                [(n, b"text/plain" if n == "content-type" else x) for n, x in h],
                k,
                v,
            ),
            "content-type",
        ),
        (lambda h, k, v: (h, None, v), "no key"),
        (lambda h, k, v: (h, k, b'{"resourceType": "CarePlan", "status": 7}'), "invalid event"),
        (lambda h, k, v: (h, k, b"{truncated"), "invalid event"),
        (lambda h, k, v: (h, k, b'{"resourceType": "NotAThing"}'), "invalid event"),
        (lambda h, k, v: ([(n, b"\xff" if n == "ce_type" else x) for n, x in h], k, v), "UTF-8"),
    ],
)
def test_records_that_are_not_valid_events_are_poison(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    headers, key, value = mutate(_event().headers(), b"pat-1", PLAN.encode())
    with pytest.raises(PoisonMessage, match=reason):
        from_kafka("t", 0, 0, key, value, headers)


def test_child_traceparent_keeps_the_trace_and_makes_a_new_span() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    child = child_traceparent(parent)
    assert child.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert child.split("-")[2] != "b7ad6b7169203331"
    assert child_traceparent("garbage").startswith("00-")
