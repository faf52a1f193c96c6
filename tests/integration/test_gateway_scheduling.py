"""Schedule, Slot and Appointment through the FHIR gateway (httpx against a real uvicorn server)
in front of the real scheduling, careplan and notes services, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gateway import FHIR_JSON, Stack, stack_for, system_token

JSON_HEADERS = {"Content-Type": FHIR_JSON}
SESSION_TYPE = "https://iopcare.org/fhir/CodeSystem/session-type"
HOURS_EXT = "https://iopcare.org/fhir/StructureDefinition/schedule-available-time"
CAPACITY_EXT = "https://iopcare.org/fhir/StructureDefinition/capacity"
ALL_WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(
        request.param, tmp_path_factory, kafka_bootstrap, "gateway-scheduling", server
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings)) as client:
        yield client


def issues(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return list(body["issue"])


def expressions(response: httpx.Response) -> list[str]:
    return [e for issue in issues(response) for e in issue.get("expression", [])]


def register(ehr: httpx.Client) -> str:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": uuid.uuid4().hex}],
        "name": [{"family": "Rivera", "given": ["Sam"]}],
    }
    response = ehr.post("/Patient", json=patient, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def calendar(actor: str, service_types: list[str], **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Schedule",
        "actor": [{"reference": actor}],
        "serviceType": [{"coding": [{"system": SESSION_TYPE, "code": c}]} for c in service_types],
        "extension": [
            {
                "url": HOURS_EXT,
                "extension": [
                    *({"url": "daysOfWeek", "valueCode": d} for d in ALL_WEEK),
                    {"url": "availableStartTime", "valueTime": "08:00:00"},
                    {"url": "availableEndTime", "valueTime": "18:00:00"},
                ],
            }
        ],
        **extra,
    }
    if actor.startswith("Location/"):
        resource["extension"].append({"url": CAPACITY_EXT, "valueInteger": 8})
    return resource


def new_calendar(ehr: httpx.Client, kind: str = "Practitioner", **kwargs: Any) -> dict[str, Any]:
    actor = f"{kind}/{kind[:3].lower()}-{uuid.uuid4().hex[:8]}"
    body = calendar(actor, kwargs.pop("service_types", ["individual-therapy"]), **kwargs)
    response = ehr.post("/Schedule", json=body, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)


def future_day(weeks: int = 2, weekday: int = 1) -> date:
    today = datetime.now(UTC).date()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks, days=weekday)


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def appointment(
    patient_id: str, practitioner: str, start: datetime, minutes: int = 60, **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": instant(start),
        "end": instant(start + timedelta(minutes=minutes)),
        "serviceType": [{"coding": [{"system": SESSION_TYPE, "code": "individual-therapy"}]}],
        "participant": [
            {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
            {"actor": {"reference": practitioner}, "status": "accepted"},
        ],
        **extra,
    }


# -- Schedule ------------------------------------------------------------------------------


def test_calendars_are_created_read_searched_and_updated(ehr: httpx.Client) -> None:
    created = new_calendar(ehr, service_types=["individual-therapy", "intake-eval"])
    schedule_id = created["id"]
    actor = created["actor"][0]["reference"]
    assert created["active"] is True
    read = ehr.get(f"/Schedule/{schedule_id}")
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"'

    for params in (
        {"actor": actor},
        {"_id": schedule_id},
        {"service-type": f"{SESSION_TYPE}|intake-eval"},
    ):
        found = ehr.get("/Schedule", params=params).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [schedule_id], params
    assert ehr.get("/Schedule", params={"_id": "no-such-calendar"}).json()["total"] == 0

    # A versioned update: the service types change, the calendar closes to new bookings.
    changed = {k: v for k, v in read.json().items() if k != "meta"}  # no meta.versionId
    changed["serviceType"] = [{"coding": [{"system": SESSION_TYPE, "code": "family-therapy"}]}]
    changed["active"] = False
    no_version = ehr.put(f"/Schedule/{schedule_id}", json=changed, headers=JSON_HEADERS)
    assert no_version.status_code == 428
    updated = ehr.put(
        f"/Schedule/{schedule_id}",
        json=changed,
        headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == 'W/"2"'
    assert updated.json()["active"] is False
    stale = ehr.put(
        f"/Schedule/{schedule_id}",
        json=changed,
        headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412 and stale.headers["etag"] == 'W/"2"'
    # Schedules belong to no patient: $everything does not list them, nor does a search need one.
    assert ehr.get("/Schedule", params={"actor": actor}).json()["total"] == 1


def test_a_retried_update_with_the_same_x_request_id_gets_the_first_result(
    ehr: httpx.Client,
) -> None:
    """A client that lost the answer to a PUT sends it again with the same X-Request-Id: the
    service's request id for it is the same, so the answer is the first one (200, the version it
    made), not 412; the change is applied once. Another change under the same X-Request-Id is
    a new request (a stale version is still 412), and a repeat without one is 412 as before."""
    created = new_calendar(ehr, service_types=["individual-therapy"])
    url = f"/Schedule/{created['id']}"
    changed = {k: v for k, v in created.items() if k != "meta"}
    changed["serviceType"] = [{"coding": [{"system": SESSION_TYPE, "code": "family-therapy"}]}]
    headers = {**JSON_HEADERS, "If-Match": 'W/"1"', "X-Request-Id": f"put-{uuid.uuid4().hex}"}

    first = ehr.put(url, json=changed, headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == 'W/"2"'
    retried = ehr.put(url, json=changed, headers=headers)
    assert retried.status_code == 200, retried.text
    assert retried.headers["etag"] == 'W/"2"'
    assert retried.json()["meta"]["versionId"] == "2"
    assert retried.json() == first.json()
    assert ehr.get(url).headers["etag"] == 'W/"2"'  # applied once

    # The same X-Request-Id with another change is another request: based on version 1, stale.
    other = {**changed, "active": False}
    assert ehr.put(url, json=other, headers=headers).status_code == 412
    # Without an X-Request-Id the version it is based on alone answers the repeat: 412.
    plain = {**JSON_HEADERS, "If-Match": 'W/"1"'}
    stale = ehr.put(url, json=changed, headers=plain)
    assert stale.status_code == 412 and stale.headers["etag"] == 'W/"2"'
    assert ehr.get(url).json()["active"] is True  # the other change was not applied


def test_calendar_bad_input_is_4xx_with_the_element(stack: Stack, ehr: httpx.Client) -> None:
    no_actor = calendar("Practitioner/x", ["individual-therapy"])
    no_actor["actor"] = [{"display": "someone"}]
    response = ehr.post("/Schedule", json=no_actor, headers=JSON_HEADERS)
    assert response.status_code == 422 and "Schedule.actor" in expressions(response)

    half_hours = calendar(f"Practitioner/p-{uuid.uuid4().hex[:6]}", ["individual-therapy"])
    half_hours["extension"][0]["extension"] = [{"url": "daysOfWeek", "valueCode": "mon"}]
    response = ehr.post("/Schedule", json=half_hours, headers=JSON_HEADERS)
    assert response.status_code == 422 and "Schedule.extension[0]" in expressions(response)

    closed_before_open = calendar(f"Practitioner/p-{uuid.uuid4().hex[:6]}", ["x"])
    closed_before_open["extension"][0]["extension"][-1]["valueTime"] = "07:00:00"
    response = ehr.post("/Schedule", json=closed_before_open, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    assert f"Schedule.extension('{HOURS_EXT}')" in expressions(response), response.text
    no_capacity = calendar(f"Location/room-{uuid.uuid4().hex[:6]}", ["group-therapy"])
    no_capacity["extension"] = no_capacity["extension"][:1]
    response = ehr.post("/Schedule", json=no_capacity, headers=JSON_HEADERS)
    assert response.status_code == 422
    assert f"Schedule.extension('{CAPACITY_EXT}')" in expressions(response), response.text

    twice = new_calendar(ehr)
    again = ehr.post(
        "/Schedule",
        json=calendar(twice["actor"][0]["reference"], ["individual-therapy"]),
        headers=JSON_HEADERS,
    )
    assert again.status_code == 409  # one calendar per actor (ALREADY_EXISTS)
    assert ehr.get("/Schedule", params={"actor": "Patient/p1"}).status_code == 400
    assert ehr.get("/Schedule/no-such-calendar").status_code == 404

    # Calendars are managed by administrators and case managers, not by a therapist's token.
    from tests.support.gateway import practitioner_token

    with stack.client(practitioner_token(stack.settings, "therapist", "th-1")) as therapist:
        refused = therapist.post(
            "/Schedule",
            json=calendar(f"Practitioner/p-{uuid.uuid4().hex[:6]}", ["x"]),
            headers=JSON_HEADERS,
        )
    assert refused.status_code == 403


# -- Slot ----------------------------------------------------------------------------------


def test_free_slots_are_searched_by_schedule_range_and_session_type(ehr: httpx.Client) -> None:
    session_type = f"slot-test-{uuid.uuid4().hex[:6]}"
    created = new_calendar(ehr, service_types=[session_type])
    day = future_day()
    low, high = local(day, time(9, 0)), local(day, time(12, 0))
    params = [
        ("schedule", f"Schedule/{created['id']}"),
        ("start", f"ge{instant(low)}"),
        ("start", f"lt{instant(high)}"),
    ]
    found = ehr.get("/Slot", params=params).json()
    starts = [e["resource"]["start"] for e in found["entry"]]
    assert starts == [instant(low + timedelta(hours=h)) for h in range(3)]
    assert all(e["resource"]["status"] == "free" for e in found["entry"])
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in found["entry"])
    # The same search twice names the same slots the same way (computed, never stored).
    assert [e["fullUrl"] for e in ehr.get("/Slot", params=params).json()["entry"]] == [
        e["fullUrl"] for e in found["entry"]
    ]
    by_type = ehr.get(
        "/Slot", params=[*params[1:], ("service-type", session_type), ("status", "free")]
    ).json()
    assert by_type["total"] == 3
    assert ehr.get("/Slot", params=[*params, ("status", "busy")]).json()["total"] == 0

    # Bad searches are 400, never 5xx; a slot has no id to read it by.
    assert ehr.get("/Slot").status_code == 400
    too_long = [("schedule", created["id"]), ("start", "ge2027-01-01"), ("start", "lt2027-12-01")]
    assert ehr.get("/Slot", params=too_long).status_code == 400
    assert ehr.get("/Slot", params={"schedule": "Patient/x"}).status_code == 400
    assert ehr.get("/Slot", params={"schedule": created["id"], "start": "ge-soon"}).status_code == (
        400
    )
    assert ehr.get("/Slot/anything").status_code == 405


# -- Appointment ---------------------------------------------------------------------------


def test_appointments_are_booked_read_searched_and_paged(ehr: httpx.Client) -> None:
    patient_id = register(ehr)
    practitioner = new_calendar(ehr)["actor"][0]["reference"]
    day = future_day(weeks=3)
    starts = [local(day, time(9 + 2 * n, 0)) for n in range(3)]
    ids = []
    for start in starts:
        response = ehr.post(
            "/Appointment", json=appointment(patient_id, practitioner, start), headers=JSON_HEADERS
        )
        assert response.status_code == 201, response.text
        assert response.headers["location"].endswith("/_history/1")
        ids.append(response.json()["id"])

    read = ehr.get(f"/Appointment/{ids[0]}")
    assert read.status_code == 200 and read.json()["status"] == "booked"
    assert ehr.get(f"/Appointment/{ids[0]}/_history/1").status_code == 200
    assert ehr.get(f"/Appointment/{ids[0]}/_history/7").status_code == 404

    # Paging: two pages of two and one, linked.
    first = ehr.get("/Appointment", params={"patient": patient_id, "_count": "2"}).json()
    assert first["total"] == 3 and len(first["entry"]) == 2
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = ehr.get(next_url).json()
    assert [e["resource"]["id"] for e in first["entry"] + second["entry"]] == ids
    assert not any(link["relation"] == "next" for link in second["link"])

    # Date ge/le together, status, actor (the practitioner's sessions).
    window = [
        ("patient", patient_id),
        ("date", f"ge{instant(starts[1])}"),
        ("date", f"le{instant(starts[1])}"),
    ]
    assert [
        e["resource"]["id"] for e in ehr.get("/Appointment", params=window).json()["entry"]
    ] == [ids[1]]
    assert (
        ehr.get("/Appointment", params={"patient": patient_id, "status": "cancelled"}).json()[
            "total"
        ]
        == 0
    )
    by_actor = ehr.get("/Appointment", params={"actor": practitioner}).json()
    assert sorted(e["resource"]["id"] for e in by_actor["entry"]) == sorted(ids)
    assert ehr.get("/Appointment").status_code == 400  # no patient, no actor


def test_double_booking_is_409_and_conditional_create_books_once(ehr: httpx.Client) -> None:
    patient_id = register(ehr)
    practitioner = new_calendar(ehr)["actor"][0]["reference"]
    start = local(future_day(weeks=4), time(10, 0))
    body = appointment(patient_id, practitioner, start)
    criteria = f"patient={patient_id}&date={instant(start)}"
    first = ehr.post("/Appointment", json=body, headers={**JSON_HEADERS, "If-None-Exist": criteria})
    assert first.status_code == 201, first.text
    again = ehr.post("/Appointment", json=body, headers={**JSON_HEADERS, "If-None-Exist": criteria})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]

    clash = ehr.post("/Appointment", json=body, headers=JSON_HEADERS)
    assert clash.status_code == 409
    assert issues(clash)[0]["code"] == "conflict"
    outside = appointment(patient_id, practitioner, local(future_day(weeks=4), time(20, 0)))
    assert ehr.post("/Appointment", json=outside, headers=JSON_HEADERS).status_code == 409


def test_a_retried_reschedule_or_cancel_with_the_same_x_request_id_gets_the_first_result(
    ehr: httpx.Client,
) -> None:
    """An Appointment PUT is mapped to its RPC by comparing it with the stored version, which a
    retry finds already changed: sent with the same X-Request-Id, the change is asked again of the
    version it was based on under the same request id, and answered with the first result."""
    patient_id = register(ehr)
    practitioner = new_calendar(ehr)["actor"][0]["reference"]
    day = future_day(weeks=6)
    booked = ehr.post(
        "/Appointment",
        json=appointment(patient_id, practitioner, local(day, time(9, 0))),
        headers=JSON_HEADERS,
    ).json()
    url = f"/Appointment/{booked['id']}"
    booked.pop("meta")

    moved = dict(booked, comment="afternoon, please")
    moved["start"] = instant(local(day, time(14, 0)))
    moved["end"] = instant(local(day, time(15, 0)))
    on_v1 = {**JSON_HEADERS, "If-Match": 'W/"1"', "X-Request-Id": f"move-{uuid.uuid4().hex}"}
    first = ehr.put(url, json=moved, headers=on_v1)
    assert first.status_code == 200 and first.headers["etag"] == 'W/"2"', first.text
    retried = ehr.put(url, json=moved, headers=on_v1)
    assert retried.status_code == 200, retried.text
    assert retried.headers["etag"] == 'W/"2"' and retried.json() == first.json()
    # The same id with another time, or the same PUT without an id, is the stale version's 412.
    later = dict(
        moved, start=instant(local(day, time(16, 0))), end=instant(local(day, time(17, 0)))
    )
    refused = ehr.put(url, json=later, headers=on_v1)
    assert refused.status_code == 412 and refused.headers["etag"] == 'W/"2"', refused.text
    plain = ehr.put(url, json=moved, headers={**JSON_HEADERS, "If-Match": 'W/"1"'})
    assert plain.status_code == 412 and plain.headers["etag"] == 'W/"2"'
    # A stale PUT under a new id is not applied: the service sees version 1 is not current.
    fresh = {**on_v1, "X-Request-Id": f"move-{uuid.uuid4().hex}"}
    assert ehr.put(url, json=later, headers=fresh).status_code == 412
    assert ehr.get(url).json()["start"] == moved["start"]

    cancelled = dict(first.json(), status="cancelled", cancelationReason={"text": "unwell"})
    on_v2 = {**JSON_HEADERS, "If-Match": 'W/"2"', "X-Request-Id": f"cancel-{uuid.uuid4().hex}"}
    first = ehr.put(url, json=cancelled, headers=on_v2)
    assert first.status_code == 200 and first.headers["etag"] == 'W/"3"', first.text
    retried = ehr.put(url, json=cancelled, headers=on_v2)
    assert retried.status_code == 200, retried.text
    assert retried.headers["etag"] == 'W/"3"' and retried.json() == first.json()
    assert ehr.get(url).headers["etag"] == 'W/"3"'


def test_appointment_updates_become_reschedule_cancel_and_attendance(ehr: httpx.Client) -> None:
    patient_id = register(ehr)
    practitioner = new_calendar(ehr)["actor"][0]["reference"]
    day = future_day(weeks=5)
    booked = ehr.post(
        "/Appointment",
        json=appointment(patient_id, practitioner, local(day, time(9, 0))),
        headers=JSON_HEADERS,
    ).json()
    url = f"/Appointment/{booked['id']}"

    booked.pop("meta")  # the version comes from If-Match here
    moved = dict(booked)
    moved["start"] = instant(local(day, time(14, 0)))
    moved["end"] = instant(local(day, time(15, 0)))
    moved["comment"] = "patient asked for the afternoon"
    assert ehr.put(url, json=moved, headers=JSON_HEADERS).status_code == 428
    response = ehr.put(url, json=moved, headers={**JSON_HEADERS, "If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    assert response.json()["start"] == moved["start"] and response.headers["etag"] == 'W/"2"'
    stale = ehr.put(url, json=moved, headers={**JSON_HEADERS, "If-Match": 'W/"1"'})
    assert stale.status_code == 412 and stale.headers["etag"] == 'W/"2"'

    current = response.json()
    other = dict(current, description="something else", priority=3)
    refused = ehr.put(url, json=other, headers={**JSON_HEADERS, "If-Match": 'W/"2"'})
    assert refused.status_code == 422
    assert {"Appointment.description", "Appointment.priority"} <= set(expressions(refused))
    both = dict(current, status="cancelled", start=instant(local(day, time(16, 0))))
    assert ehr.put(url, json=both, headers={**JSON_HEADERS, "If-Match": 'W/"2"'}).status_code == (
        422
    )
    odd = dict(current, status="waitlist")
    assert ehr.put(url, json=odd, headers={**JSON_HEADERS, "If-Match": 'W/"2"'}).status_code == 422

    cancelled = dict(current, status="cancelled", cancelationReason={"text": "unwell"})
    response = ehr.put(url, json=cancelled, headers={**JSON_HEADERS, "If-Match": 'W/"2"'})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelationReason"]["text"] == "unwell"

    # Attendance on another session (a past one cannot be booked, so a near-future one).
    second = ehr.post(
        "/Appointment",
        json=appointment(patient_id, practitioner, local(day, time(11, 0))),
        headers=JSON_HEADERS,
    ).json()
    arrived = dict(second, status="arrived")
    response = ehr.put(
        f"/Appointment/{second['id']}", json=arrived, headers={**JSON_HEADERS, "If-Match": 'W/"1"'}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "arrived"


def test_group_sessions_and_bad_appointments(ehr: httpx.Client) -> None:
    room = new_calendar(ehr, kind="Location", service_types=["group-therapy"])
    room_ref = room["actor"][0]["reference"]
    facilitator = new_calendar(ehr, service_types=["group-therapy"])["actor"][0]["reference"]
    start = local(future_day(weeks=6), time(13, 0))
    group = {
        "resourceType": "Appointment",
        "status": "booked",
        "appointmentType": {
            "coding": [
                {"system": "https://iopcare.org/fhir/CodeSystem/appointment-kind", "code": "group"}
            ]
        },
        "start": instant(start),
        "end": instant(start + timedelta(minutes=90)),
        "description": "DBT skills group",
        "extension": [{"url": CAPACITY_EXT, "valueInteger": 0}],
        "participant": [
            {"actor": {"reference": room_ref}, "status": "accepted"},
            {"actor": {"reference": facilitator}, "status": "accepted"},
        ],
    }
    response = ehr.post("/Appointment", json=group, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    assert response.json()["appointmentType"]["coding"][0]["code"] == "group"

    patient_id = register(ehr)
    with_patient = dict(group)
    with_patient["participant"] = [
        *group["participant"],
        {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
    ]
    refused = ehr.post("/Appointment", json=with_patient, headers=JSON_HEADERS)
    assert refused.status_code == 422 and "Appointment.participant" in expressions(refused)
    # A group session needs its room: scheduling's rule (the gateway re-checks none), answered
    # as a 422 naming the participants.
    roomless = dict(
        group, participant=[p for p in group["participant"] if p["actor"]["reference"] != room_ref]
    )
    refused = ehr.post("/Appointment", json=roomless, headers=JSON_HEADERS)
    assert refused.status_code == 422 and "Appointment.participant" in expressions(refused)

    practitioner = new_calendar(ehr)["actor"][0]["reference"]
    good = appointment(patient_id, practitioner, local(future_day(weeks=6), time(9, 0)))
    bad: dict[str, dict[str, Any]] = {
        "Appointment.start": {k: v for k, v in good.items() if k != "start"},
        "Appointment.participant": dict(good, participant=good["participant"][1:]),
        "Appointment.participant[0].actor": dict(
            good, participant=[{"actor": {"reference": "Group/g1"}, "status": "accepted"}]
        ),
        "Appointment.status": dict(good, status="proposed"),
    }
    for path, body in bad.items():
        response = ehr.post("/Appointment", json=body, headers=JSON_HEADERS)
        assert response.status_code in (400, 422), (path, response.text)
        if response.status_code == 422:
            assert path in expressions(response), (path, response.text)
    backwards = dict(good, end=good["start"], start=good["end"])
    response = ehr.post("/Appointment", json=backwards, headers=JSON_HEADERS)
    assert response.status_code == 422
    assert {"Appointment.start", "Appointment.end"} & set(expressions(response)), response.text
    not_json = ehr.post("/Appointment", content=b"{", headers=JSON_HEADERS)
    assert not_json.status_code == 400
    assert ehr.get("/Appointment/no-such-session").status_code == 404
    assert ehr.get("/Appointment", params={"patient": patient_id, "date": "soon"}).status_code == (
        400
    )


def test_everything_lists_the_patients_appointments(ehr: httpx.Client) -> None:
    patient_id = register(ehr)
    practitioner = new_calendar(ehr)["actor"][0]["reference"]
    booked = ehr.post(
        "/Appointment",
        json=appointment(patient_id, practitioner, local(future_day(weeks=7), time(9, 0))),
        headers=JSON_HEADERS,
    ).json()
    everything = ehr.get(f"/Patient/{patient_id}/$everything").json()
    types = [e["resource"]["resourceType"] for e in everything["entry"]]
    assert f"Appointment/{booked['id']}" in [
        f"{e['resource']['resourceType']}/{e['resource'].get('id')}" for e in everything["entry"]
    ]
    assert "Schedule" not in types and "Slot" not in types


def test_capability_statement_lists_the_scheduling_resources(stack: Stack) -> None:
    with stack.client() as anonymous:
        statement = anonymous.get("/metadata").json()
    listed = {
        r["type"]: {i["code"] for i in r["interaction"]} for r in statement["rest"][0]["resource"]
    }
    assert listed["Slot"] == {"search-type"}
    assert listed["Schedule"] == {"read", "create", "update", "search-type"}
    assert listed["Appointment"] == {"read", "vread", "create", "update", "search-type"}
    appointment_entry = next(
        r for r in statement["rest"][0]["resource"] if r["type"] == "Appointment"
    )
    assert appointment_entry["readHistory"] is False  # vread serves the current version only


def test_a_patient_scope_reaches_that_patients_sessions_but_no_calendars(
    stack: Stack, ehr: httpx.Client
) -> None:
    from iopcare.kit import auth

    patient_id = register(ehr)
    practitioner = new_calendar(ehr)["actor"][0]["reference"]
    booked = ehr.post(
        "/Appointment",
        json=appointment(patient_id, practitioner, local(future_day(weeks=8), time(9, 0))),
        headers=JSON_HEADERS,
    ).json()
    token = auth.mint_token(
        stack.settings,
        subject="system:patient-app",
        role="system",
        scopes=["patient/*.rs"],
        lifetime_seconds=300,
        patient_context=patient_id,
    )
    with stack.client(token) as app:
        own = app.get("/Appointment", params={"date": "ge2000-01-01"}).json()
        assert [e["resource"]["id"] for e in own["entry"]] == [booked["id"]]
        assert app.get("/Appointment", params={"actor": practitioner}).status_code == 403
        assert app.get("/Schedule", params={"actor": practitioner}).status_code == 403
        assert app.get("/Slot", params={"service-type": "individual-therapy"}).status_code == 403


# -- never a 5xx (test-matrix D12) for the scheduling and notes types ----------------------


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.dictionaries(st.sampled_from(["reference", "code", "text", "x"]), children, max_size=3)
    ),
    max_leaves=12,
)
PLAUSIBLE = st.sampled_from(
    [
        "2026-13-01T00:00:00Z",
        "2026-12-01T10:00:00Z",
        "2026",
        [{"actor": {"reference": "Patient/p"}}],
        [{"actor": {"reference": "Location/l"}}, {"actor": {"reference": "Practitioner/x"}}],
        [{"reference": "Practitioner/a"}],
        [{"reference": "Communication/"}],
        {"reference": "Patient/p"},
        {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        [{"attachment": {"contentType": "text/plain", "data": "aGk="}}],
        [{"url": HOURS_EXT, "extension": [{"url": "daysOfWeek", "valueCode": "xyz"}]}],
        [{"url": CAPACITY_EXT, "valueInteger": -4}],
        {"type": "permit", "actor": [{"reference": {"display": "e"}}], "period": {"end": "2026"}},
        "cancelled",
        "final",
    ]
)
BASES: dict[str, dict[str, Any]] = {
    "Schedule": calendar("Practitioner/fuzz", ["individual-therapy"]),
    "Appointment": appointment("p", "Practitioner/fuzz", datetime(2026, 12, 1, 15, tzinfo=UTC)),
    "Communication": {
        "resourceType": "Communication",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "payload": [{"contentString": "hello"}],
    },
    "DocumentReference": {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": "Patient/p"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}],
    },
    "Consent": {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"code": "59284-0"}]}],
        "patient": {"reference": "Patient/p"},
    },
}
FIELDS = st.sampled_from(
    [
        "participant",
        "start",
        "end",
        "actor",
        "serviceType",
        "extension",
        "appointmentType",
        "status",
        "subject",
        "payload",
        "category",
        "inResponseTo",
        "type",
        "content",
        "docStatus",
        "patient",
        "provision",
        "recipient",
        "cancelationReason",
    ]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    resource_type=st.sampled_from([*BASES, "Slot", "Flag"]),
    with_id=st.booleans(),
    fields=st.dictionaries(FIELDS, PLAUSIBLE | JSON_VALUES, max_size=4),
    query=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "patient",
                    "actor",
                    "schedule",
                    "start",
                    "date",
                    "service-type",
                    "status",
                    "_content",
                    "type",
                    "author",
                    "_count",
                    "_id",
                ]
            ),
            st.sampled_from(
                [
                    "Patient/p",
                    "Practitioner/x",
                    "Schedule/s",
                    "ge2026-12-01",
                    "lt2026-12-02",
                    "ne2026",
                    "x|y",
                    "",
                    "5",
                    "Location/l",
                ]
            )
            | st.text(max_size=10),
        ),
        max_size=4,
    ),
)
def test_no_scheduling_or_notes_request_gets_a_server_error(
    ehr: httpx.Client,
    method: str,
    resource_type: str,
    with_id: bool,
    fields: dict[str, Any],
    query: list[tuple[str, str]],
) -> None:
    import json

    body = {**BASES.get(resource_type, {"resourceType": resource_type}), **fields}
    if method == "PUT":
        body["id"] = "fuzz-1"
    path = (
        f"/{resource_type}/fuzz-1"
        if method == "PUT" or (with_id and method == "GET")
        else (f"/{resource_type}")
    )
    headers = {**JSON_HEADERS, "If-Match": 'W/"1"'} if method == "PUT" else JSON_HEADERS
    response = ehr.request(
        method,
        path,
        params=query if method == "GET" else None,
        content=json.dumps(body).encode() if method != "GET" else None,
        headers=headers,
    )
    assert response.status_code < 500, (method, path, body, query, response.text)
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"


def test_attended_sessions_are_encounters_searched_and_exported_as_csv(
    stack: Stack, ehr: httpx.Client
) -> None:
    """Issue 14, part 5: an attended session's Encounter over FHIR search (patient, date, type,
    class) and the period's billing CSV as a Binary; billing staff export every patient, an
    outside EHR none."""
    import base64
    import csv
    import io

    from iopcare.kit import auth

    patient_id = register(ehr)
    practitioner = new_calendar(ehr)["actor"][0]["reference"]
    day = future_day(weeks=6)
    session = ehr.post(
        "/Appointment",
        json=appointment(patient_id, practitioner, local(day, time(10, 0)), minutes=55),
        headers=JSON_HEADERS,
    ).json()
    fulfilled = ehr.put(
        f"/Appointment/{session['id']}",
        json=dict(session, status="fulfilled"),
        headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
    )
    assert fulfilled.status_code == 200, fulfilled.text
    cpt = "http://www.ama-assn.org/go/cpt"
    searched = ehr.get(
        "/Encounter",
        params={
            "patient": patient_id,
            "date": [f"ge{day.isoformat()}", f"lt{(day + timedelta(days=1)).isoformat()}"],
            "type": f"{cpt}|90837",
            "class": "AMB",
        },
    ).json()
    assert searched["total"] == 1, searched
    encounter = searched["entry"][0]["resource"]
    assert encounter["status"] == "finished"
    assert encounter["appointment"] == [{"reference": f"Appointment/{session['id']}"}]
    assert (
        ehr.get("/Encounter", params={"patient": patient_id, "type": "90853"}).json()["total"] == 0
    )

    period = {"start": day.isoformat(), "end": day.isoformat()}
    billing = auth.mint_token(
        stack.settings, subject="billing:b1", role="billing", scopes=["user/Encounter.s"]
    )
    with stack.client(billing) as client:
        exported = client.get("/Encounter/$export-csv", params=period)
        assert exported.status_code == 200, exported.text
        binary = exported.json()
        assert binary["resourceType"] == "Binary" and binary["contentType"] == "text/csv"
        rows = list(csv.DictReader(io.StringIO(base64.b64decode(binary["data"]).decode())))
        mine = [r for r in rows if r["patient_id"] == patient_id]
        assert [(r["code"], r["units"], r["date"]) for r in mine] == [
            ("90837", "1", day.isoformat())
        ]
        assert mine[0]["rendering_practitioner"] == practitioner
        assert (
            client.get("/Encounter/$export-csv", params={"start": day.isoformat()}).status_code
            == 400
        )
        # Billing staff read Encounters, not the sessions themselves.
        assert client.get(f"/Appointment/{session['id']}").status_code in (403, 404)
    # An outside EHR gets no program-wide export (scheduling: billing staff only).
    assert ehr.get("/Encounter/$export-csv", params=period).status_code == 403
