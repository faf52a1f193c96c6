"""A reference to another server's resource is never read as one of ours (gateway
`resources/base.reference_id`): `schedule=https://other.example/fhir/Schedule/1` once searched
our Schedule/1. A search naming another server's resource by absolute URL is refused with 400
and an OperationOutcome naming the parameter; an absolute URL under this gateway's own base is
this server's resource and searched as such. Real services and gateway (SQLite, real broker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_scheduling import appointment, calendar
from tests.support.gateway import FHIR_JSON, Stack, enrol_team, stack_for, system_token
from tests.support.plans import iop_plan

JSON_HEADERS = {"Content-Type": FHIR_JSON}
OTHER = "https://other.example/fhir"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    with stack_for("sqlite", tmp_path_factory, kafka_bootstrap, "foreign-refs") as running:
        yield running


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings)) as client:
        yield client


@pytest.fixture(scope="module")
def patient_id(stack: Stack, ehr: httpx.Client) -> str:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": uuid.uuid4().hex}],
        "name": [{"family": "Rivera", "given": ["Sam"]}],
    }
    created = ehr.post("/Patient", json=patient, headers=JSON_HEADERS)
    assert created.status_code == 201, created.text
    pid = str(created.json()["id"])
    team = enrol_team(stack, pid)
    plan = ehr.post("/CarePlan", json=iop_plan(pid, team["id"]), headers=JSON_HEADERS)
    assert plan.status_code == 201, plan.text
    return pid


def refused_naming(response: httpx.Response, parameter: str) -> None:
    assert response.status_code == 400, response.text[:300]
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["expression"] == [parameter]
    assert "another server" in issue["diagnostics"]


def test_another_servers_patient_is_refused_naming_the_parameter(
    ehr: httpx.Client, patient_id: str
) -> None:
    for name in ("patient", "subject"):
        refused_naming(ehr.get("/CarePlan", params={name: f"{OTHER}/Patient/{patient_id}"}), name)
    refused_naming(
        ehr.get("/Appointment", params={"patient": f"{OTHER}/Patient/{patient_id}"}), "patient"
    )


def test_another_servers_schedule_is_not_our_schedule(ehr: httpx.Client) -> None:
    actor = f"Practitioner/pra-{uuid.uuid4().hex[:8]}"
    created = ehr.post(
        "/Schedule", json=calendar(actor, ["individual-therapy"]), headers=JSON_HEADERS
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    ours = ehr.get("/Slot", params={"schedule": f"Schedule/{schedule_id}"})
    assert ours.status_code == 200 and ours.json()["total"] > 0
    refused_naming(
        ehr.get("/Slot", params={"schedule": f"{OTHER}/Schedule/{schedule_id}"}), "schedule"
    )
    refused_naming(ehr.get("/Schedule", params={"actor": f"{OTHER}/{actor}"}), "actor")


def test_another_servers_author_is_refused(ehr: httpx.Client, patient_id: str) -> None:
    refused_naming(
        ehr.get(
            "/DocumentReference",
            params={"patient": patient_id, "author": f"{OTHER}/Practitioner/psy-1"},
        ),
        "author",
    )


def test_an_absolute_url_under_our_own_base_is_ours(
    stack: Stack, ehr: httpx.Client, patient_id: str
) -> None:
    relative = ehr.get("/CarePlan", params={"patient": f"Patient/{patient_id}"})
    assert relative.status_code == 200 and relative.json()["total"] == 1
    absolute = ehr.get("/CarePlan", params={"patient": f"{stack.base_url}/Patient/{patient_id}"})
    assert absolute.status_code == 200, absolute.text
    assert [e["fullUrl"] for e in absolute.json()["entry"]] == [
        e["fullUrl"] for e in relative.json()["entry"]
    ]
    # The same host with another base path is another server.
    origin = stack.base_url.removesuffix("/fhir")
    refused_naming(
        ehr.get("/CarePlan", params={"patient": f"{origin}/other/Patient/{patient_id}"}),
        "patient",
    )


def test_a_write_about_another_servers_patient_is_not_filed_under_ours(
    stack: Stack, ehr: httpx.Client, patient_id: str
) -> None:
    """A message or an appointment whose patient is `https://other.example/fhir/Patient/<our
    patient's id>` is refused (422 naming the element), never filed in our patient's record."""
    foreign = f"{OTHER}/Patient/{patient_id}"
    message = {
        "resourceType": "Communication",
        "status": "completed",
        "subject": {"reference": foreign},
        "payload": [{"contentString": "for another server's patient"}],
    }
    refused = ehr.post("/Communication", json=message, headers=JSON_HEADERS)
    assert refused.status_code == 422, refused.text[:300]
    assert refused.json()["issue"][0]["expression"] == ["Communication.subject"]
    thread = ehr.get("/Communication", params={"patient": patient_id}).json()
    texts = [
        e["resource"]["payload"][0]["contentString"]
        for e in thread.get("entry", [])
        if e["resource"]["resourceType"] == "Communication"
    ]
    assert "for another server's patient" not in texts
    # An appointment with another server's patient as participant: refused the same way.
    actor = f"Practitioner/pra-{uuid.uuid4().hex[:8]}"
    calendar_made = ehr.post(
        "/Schedule", json=calendar(actor, ["individual-therapy"]), headers=JSON_HEADERS
    )
    assert calendar_made.status_code == 201, calendar_made.text
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    booking = appointment(patient_id, actor, start)
    booking["participant"][0]["actor"]["reference"] = foreign
    refused = ehr.post("/Appointment", json=booking, headers=JSON_HEADERS)
    assert refused.status_code == 422, refused.text[:300]
    assert refused.json()["issue"][0]["expression"] == ["Appointment.participant[0].actor"]
    # (The plan's series may book the patient's sessions meanwhile: none with this clinician.)
    booked = ehr.get("/Appointment", params={"patient": patient_id, "_count": "1000"}).json()
    assert not [
        e
        for e in booked.get("entry", [])
        if e["resource"]["resourceType"] == "Appointment"
        and any(p["actor"].get("reference") == actor for p in e["resource"]["participant"])
    ]
