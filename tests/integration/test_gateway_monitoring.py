"""Medical monitoring over FHIR REST (issue 12, part 2): vital-signs, lab and screen Observations
through the gateway, on both databases; bad units and incomplete panels are 422 with an
OperationOutcome naming the element; a drug screen of a patient in an SUD program is a 42 CFR
Part 2 record the gateway withholds from an EHR without the patient's consent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_api import JSON_HEADERS, enrolled_patient, issues
from tests.support.gateway import Stack, practitioner_token, stack_for, system_token
from tests.support.monitoring import blood_pressure, cows, lithium, quantity, urine_screen
from tests.support.nutrition import nutrition_order, weight_target
from tests.support.plans import iop_plan

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(request.param, tmp_path_factory, kafka_bootstrap, "monitoring", server) as s:
        yield s


@pytest.fixture(scope="module")
def ehr(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(system_token(stack.settings)) as client:
        yield client


@pytest.fixture(scope="module")
def program(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as client:
        yield client


@pytest.fixture(scope="module")
def physician(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(practitioner_token(stack.settings, "physician", "doc-1")) as client:
        yield client


def test_vital_signs_labs_and_scales_are_created_read_and_searched(
    ehr: httpx.Client, program: httpx.Client
) -> None:
    patient, _ = enrolled_patient(ehr, program)
    bodies: list[dict[str, Any]] = [
        blood_pressure(patient, 132, 84),
        quantity(patient, "8867-4", 64, "/min"),
        quantity(patient, "8310-5", 36.8, "Cel"),
        lithium(patient, 0.9),
        cows(patient, 6),
    ]
    ids = []
    for body in bodies:
        created = ehr.post("/Observation", json=body, headers=JSON_HEADERS)
        assert created.status_code == 201, created.text
        assert created.json()["code"] == body["code"]
        ids.append(created.json()["id"])
    panel = ehr.get(f"/Observation/{ids[0]}").json()
    assert panel["category"][0]["coding"][0]["code"] == "vital-signs"
    assert [c["code"]["coding"][0]["code"] for c in panel["component"]] == ["8480-6", "8462-4"]
    found = ehr.get(
        "/Observation", params={"patient": patient, "code": "http://loinc.org|85354-9"}
    ).json()
    assert [e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"] == [
        ids[0]
    ]


@pytest.mark.parametrize(
    ("make", "expression", "words"),
    [
        (
            lambda p: lithium(p, 1.0, "mg/dL"),
            "Observation.valueQuantity.code",
            "does not convert to mmol/L",
        ),
        (
            lambda p: blood_pressure(p, 140, None),
            "Observation.component",
            "lacks 8462-4",
        ),
    ],
    ids=["lithium-mg-dl", "panel-missing-diastolic"],
)
def test_bad_monitoring_observations_are_422_and_nothing_is_written(
    ehr: httpx.Client, program: httpx.Client, make: Any, expression: str, words: str
) -> None:
    patient, _ = enrolled_patient(ehr, program)
    response = ehr.post("/Observation", json=make(patient), headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    found = issues(response)
    assert any(
        expression in " ".join(i.get("expression", [])) and words in i.get("diagnostics", "")
        for i in found
    ), found
    assert ehr.get("/Observation", params={"patient": patient}).json()["total"] == 0


def test_a_drug_screen_in_an_sud_program_is_withheld_from_an_ehr_without_consent(
    ehr: httpx.Client, program: httpx.Client, physician: httpx.Client
) -> None:
    patient, team = enrolled_patient(ehr, program)
    plan = iop_plan(patient, team)
    plan["meta"] = {
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUD"}]
    }
    assert program.post("/CarePlan", json=plan, headers=JSON_HEADERS).status_code == 201
    created = physician.post(
        "/Observation", json=urine_screen(patient, "19295-5", positive=True), headers=JSON_HEADERS
    )
    # Stored, but even its writer's app gets an OperationOutcome, not the labelled screen.
    assert created.status_code == 201, created.text
    (issue,) = issues(created)
    assert issue["code"] == "suppressed" and "labelled SUD" in issue["diagnostics"]
    screens = ehr.get("/Observation", params={"patient": patient, "code": "19295-5"}).json()
    assert not [
        e for e in screens.get("entry", []) if e["resource"]["resourceType"] == "Observation"
    ]
    vitals = ehr.post("/Observation", json=blood_pressure(patient, 120, 80), headers=JSON_HEADERS)
    assert vitals.status_code == 201  # a vital sign is not a Part 2 record: released


def test_the_dietitian_writes_the_nutrition_plan_over_rest(
    stack: Stack, ehr: httpx.Client, program: httpx.Client, physician: httpx.Client
) -> None:
    """The dietitian's nutrition plan (issue 13, part 2; on this module's stack to save a start):
    NutritionOrder in the CapabilityStatement, created, read, searched by patient and updated
    (If-Match) by the dietitian; another role's write is 403, a plan without meals 422."""
    with stack.client(practitioner_token(stack.settings, "dietitian", "diet-1")) as dietitian:
        statement = ehr.get("/metadata").json()
        (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "NutritionOrder"]
        assert {i["code"] for i in entry["interaction"]} >= {"read", "search-type", "create"}
        assert {"update", "vread", "history-instance"} <= {i["code"] for i in entry["interaction"]}
        assert "patient" in {p["name"] for p in entry["searchParam"]}

        patient, _ = enrolled_patient(ehr, program)
        created = dietitian.post(
            "/NutritionOrder", json=nutrition_order(patient), headers=JSON_HEADERS
        )
        assert created.status_code == 201, created.text
        order = created.json()
        assert order["meta"]["versionId"] == "1"
        assert created.headers["Location"].endswith(f"/NutritionOrder/{order['id']}/_history/1")
        read = physician.get(f"/NutritionOrder/{order['id']}")
        assert read.status_code == 200 and read.json()["oralDiet"]["schedule"]
        found = physician.get("/NutritionOrder", params={"patient": patient}).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == [order["id"]]

        revised = dict(read.json(), extension=[weight_target(58, 98, 108)])
        updated = dietitian.put(
            f"/NutritionOrder/{order['id']}",
            json=revised,
            headers={**JSON_HEADERS, "If-Match": read.headers["ETag"]},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["meta"]["versionId"] == "2"
        stale = dietitian.put(
            f"/NutritionOrder/{order['id']}",
            json=revised,
            headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
        )
        assert stale.status_code == 412
        history = physician.get(f"/NutritionOrder/{order['id']}/_history").json()
        assert history["total"] == 2

        # The physician reads it but does not write it; a plan without meals is refused.
        refused = physician.post(
            "/NutritionOrder", json=nutrition_order(patient), headers=JSON_HEADERS
        )
        assert refused.status_code == 403, refused.text
        mealless = nutrition_order(patient)
        del mealless["oralDiet"]
        bad = dietitian.post("/NutritionOrder", json=mealless, headers=JSON_HEADERS)
        assert bad.status_code == 422, bad.text
        assert any("oralDiet" in str(i.get("expression")) for i in issues(bad)), bad.text
