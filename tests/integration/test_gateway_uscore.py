"""US Core 6.1 through the gateway (issue 15, part 2; ADR 0031): what an EHR reads of each type
US Core profiles carries the profile in `meta.profile` and what the profile requires, while the
services keep the plain R4 resource; and the searches US Core requires, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from iopcare.gateway import uscore
from tests.integration.test_gateway_notes import note, signed_note
from tests.support import harness, uscore_check
from tests.support.gateway import (
    FHIR_JSON,
    Stack,
    in_program,
    practitioner_token,
    stack_for,
    system_token,
)
from tests.support.medications import medication_request
from tests.support.monitoring import blood_pressure, lithium, quantity
from tests.support.plans import care_team, iop_plan, phq9, phq9_goal

pytestmark = pytest.mark.integration

JSON_HEADERS = {"Content-Type": FHIR_JSON}
MRN = "urn:oid:2.16.840.1.113883.19.5"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(request.param, tmp_path_factory, kafka_bootstrap, "uscore", server) as s:
        yield s


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings)) as client:
        yield client


def created(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body, headers=JSON_HEADERS)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="module")
def course(stack: Stack, ehr: httpx.Client) -> dict[str, Any]:
    """A patient with a team, a goal, a plan, measures and a prescription; ids by name."""
    mrn = uuid.uuid4().hex
    patient = created(
        ehr,
        "/Patient",
        {
            "resourceType": "Patient",
            "identifier": [{"system": MRN, "value": mrn}],
            "name": [{"family": "Okafor", "given": ["Ada"]}],
            "gender": "female",
            "birthDate": "1990-05-06",
        },
    )
    pid = patient["id"]
    ids: dict[str, Any] = {"patient": pid, "mrn": mrn}
    with stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as admin:
        ids["careteam"] = created(admin, "/CareTeam", care_team(pid))["id"]
    ids["goal"] = created(ehr, "/Goal", phq9_goal(pid))["id"]
    for name, body in (
        ("phq9", phq9(pid, 12, when="2026-11-02T10:00:00Z")),
        ("blood-pressure", blood_pressure(pid, 128, 82)),
        ("heart-rate", quantity(pid, "8867-4", 64, "/min")),
        ("lithium", lithium(pid, 0.8)),
    ):
        ids[name] = created(ehr, "/Observation", body)["id"]
    with stack.client(practitioner_token(stack.settings, "psychiatrist", "psy-1")) as psy:
        ids["medicationrequest"] = created(psy, "/MedicationRequest", medication_request(pid))["id"]
    plan = iop_plan(pid, ids["careteam"])
    del plan["text"]  # an EHR's plan without a narrative: the gateway generates one
    ids["careplan"] = created(ehr, "/CarePlan", plan)["id"]
    return ids


def test_every_served_type_carries_its_us_core_profile(
    stack: Stack, ehr: httpx.Client, course: dict[str, Any]
) -> None:
    pid = course["patient"]
    reads = {
        "Patient": course["patient"],
        "CareTeam": course["careteam"],
        "Goal": course["goal"],
        "CarePlan": course["careplan"],
        "MedicationRequest": course["medicationrequest"],
        "Observation": course["phq9"],
    }
    bodies: dict[str, Any] = {}
    for kind, rid in reads.items():
        response = ehr.get(f"/{kind}/{rid}")
        assert response.status_code == 200, response.text
        bodies[f"read {kind}"] = response.json()
        bodies[f"search {kind}"] = ehr.get(
            f"/{kind}", params={"_id" if kind == "Patient" else "patient": pid}
        ).json()
    bodies["everything"] = ehr.get(f"/Patient/{pid}/$everything").json()
    report = uscore_check.check(bodies)
    assert not report.problems, "\n".join(report.problems)
    assert not report.unclaimed, "\n".join(report.unclaimed)
    assert {
        "us-core-patient",
        "us-core-careteam",
        "us-core-goal",
        "us-core-careplan",
        "us-core-medicationrequest",
        "us-core-observation-screening-assessment",
        "us-core-blood-pressure",
        "us-core-heart-rate",
        "us-core-observation-lab",
    } <= set(report.claims), report.claims
    plan = bodies["read CarePlan"]
    assert plan["meta"]["profile"] == [uscore.CAREPLAN.url]
    assert plan["text"]["status"] == "generated" and plan["text"]["div"].startswith("<div")
    assert bodies["read Patient"]["meta"]["profile"] == [uscore.PATIENT.url]
    # The version is the stored one: the claim is not a change of the resource.
    assert plan["meta"]["versionId"] == "1"
    # The stored canonical form stays plain R4: the claim and narrative are made on release.
    stored = in_program(stack, "CarePlan", course["careplan"])
    assert "profile" not in stored.get("meta", {}) and "text" not in stored
    assert "profile" not in in_program(stack, "Patient", pid).get("meta", {})
    # Not a type US Core profiles: no claim.
    assert not any(
        e["resource"].get("meta", {}).get("profile")
        for e in bodies["everything"]["entry"]
        if e["resource"]["resourceType"] in ("EpisodeOfCare", "OperationOutcome")
    )


def ids_of(bundle: dict[str, Any]) -> list[str]:
    return sorted(
        e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
    )


def search(ehr: httpx.Client, path: str, **params: str) -> dict[str, Any]:
    response = ehr.get(path, params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_us_core_patient_searches(ehr: httpx.Client, course: dict[str, Any]) -> None:
    pid, mrn = course["patient"], course["mrn"]
    identifier = f"{MRN}|{mrn}"
    assert ids_of(search(ehr, "/Patient", identifier=identifier)) == [pid]
    assert ids_of(search(ehr, "/Patient", _id=pid)) == [pid]
    assert ids_of(search(ehr, "/Patient", identifier=identifier, name="oka")) == [pid]
    assert ids_of(search(ehr, "/Patient", identifier=identifier, name="Ada")) == [pid]
    assert ids_of(search(ehr, "/Patient", identifier=identifier, name="Rivera")) == []
    assert ids_of(search(ehr, "/Patient", _id=pid, family="Okafor", given="Ad")) == [pid]
    assert ids_of(search(ehr, "/Patient", _id=pid, birthdate="1990-05-06", name="Okafor")) == [pid]
    assert ids_of(search(ehr, "/Patient", _id=pid, birthdate="1990-05-07", name="Okafor")) == []
    assert ids_of(search(ehr, "/Patient", _id=pid, gender="female", name="Okafor")) == [pid]
    assert ids_of(search(ehr, "/Patient", _id=pid, gender="male", name="Okafor")) == []
    # By name alone: the registry is not searched by name (no RPC; a name is no key).
    refused = ehr.get("/Patient", params={"name": "Okafor"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["issue"][0]["code"] == "too-costly"
    bad = ehr.get("/Patient", params={"_id": pid, "birthdate": "May 1990"})
    assert bad.status_code == 400 and "birthdate" in bad.text


def test_us_core_clinical_searches(ehr: httpx.Client, course: dict[str, Any]) -> None:
    pid = course["patient"]
    vitals = sorted([course["blood-pressure"], course["heart-rate"]])
    assert ids_of(search(ehr, "/Observation", patient=pid, category="vital-signs")) == vitals
    category = f"{uscore.OBSERVATION_CATEGORY}|survey"
    assert ids_of(search(ehr, "/Observation", patient=pid, category=category)) == [course["phq9"]]
    assert ids_of(search(ehr, "/Observation", patient=pid, category="laboratory")) == [
        course["lithium"]
    ]
    assert ids_of(search(ehr, "/Observation", patient=pid, code="http://loinc.org|8867-4")) == [
        course["heart-rate"]
    ]
    # patient + category + date: the PHQ-9 of 2 November, not after.
    assert ids_of(
        search(ehr, "/Observation", patient=pid, category="survey", date="2026-11-02")
    ) == [course["phq9"]]
    assert (
        ids_of(search(ehr, "/Observation", patient=pid, category="survey", date="gt2026-11-03"))
        == []
    )
    assert ids_of(search(ehr, "/CarePlan", patient=pid, category="assess-plan")) == [
        course["careplan"]
    ]
    assert ids_of(search(ehr, "/CarePlan", patient=pid, category="other")) == []
    assert ids_of(search(ehr, "/Goal", patient=pid, **{"lifecycle-status": "active"})) == [
        course["goal"]
    ]
    assert ids_of(search(ehr, "/Goal", patient=pid, **{"lifecycle-status": "cancelled"})) == []
    assert ids_of(search(ehr, "/CareTeam", patient=pid, status="active")) == [course["careteam"]]
    assert ids_of(search(ehr, "/CareTeam", patient=pid, status="inactive")) == []
    assert ids_of(search(ehr, "/MedicationRequest", patient=pid, intent="order")) == [
        course["medicationrequest"]
    ]


def test_a_plan_read_and_sent_back_is_stored_without_the_claim(
    stack: Stack, ehr: httpx.Client, course: dict[str, Any]
) -> None:
    plan_id = course["careplan"]
    read = ehr.get(f"/CarePlan/{plan_id}").json()
    assert read["meta"]["profile"] == [uscore.CAREPLAN.url] and "text" in read
    read["description"] = "Revised by the EHR"
    updated = ehr.put(
        f"/CarePlan/{plan_id}",
        json=read,
        headers={**JSON_HEADERS, "If-Match": f'W/"{read["meta"]["versionId"]}"'},
    )
    assert updated.status_code == 200, updated.text
    stored = in_program(stack, "CarePlan", plan_id)
    assert stored["description"] == "Revised by the EHR"
    assert "profile" not in stored.get("meta", {}) and "text" not in stored
    # Released again: claimed, and the narrative says what the plan says now.
    again = updated.json()
    assert again["meta"]["profile"] == [uscore.CAREPLAN.url]
    assert "Revised by the EHR" in again["text"]["div"]


def test_signed_notes_are_us_core_document_references_searched_by_type_and_category(
    stack: Stack, ehr: httpx.Client, course: dict[str, Any]
) -> None:
    pid = course["patient"]
    with stack.client(practitioner_token(stack.settings, "therapist", "th-1")) as therapist:
        # notes learns the team from careplan's events: the therapist can write once it has.
        harness.eventually(
            lambda: (
                therapist.get("/Communication", params={"patient": pid}).status_code == 200 or None
            )
        )
        signed = signed_note(therapist, note(pid, "Practised urge surfing."))
    read = ehr.get(f"/DocumentReference/{signed['id']}")
    assert read.status_code == 200, read.text
    report = uscore_check.check({"read": read.json()})
    assert not report.problems and not report.unclaimed, report
    assert read.json()["meta"]["profile"] == [uscore.DOCUMENT_REFERENCE.url]
    by_type = search(ehr, "/DocumentReference", patient=pid, type="http://loinc.org|11506-3")
    assert ids_of(by_type) == [signed["id"]]
    assert ids_of(search(ehr, "/DocumentReference", patient=pid, type="28627-8")) == []
    by_category = search(ehr, "/DocumentReference", patient=pid, category="clinical-note")
    assert ids_of(by_category) == [signed["id"]]
    assert not uscore_check.check({"search": by_category}).unclaimed
