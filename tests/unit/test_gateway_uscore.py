"""US Core 6.1 claims (gateway/uscore.py): which profile a resource gets, that none is claimed
when a required element is missing, and the CarePlan narrative the gateway generates."""

from __future__ import annotations

import json
from typing import Any

from iopcare.gateway import uscore
from iopcare.gateway.capability import capability_statement
from tests.support.medications import medication_request
from tests.support.monitoring import blood_pressure, lithium, quantity
from tests.support.plans import care_team, iop_plan, phq9, phq9_goal

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [{"system": "urn:mrn", "value": "1"}],
    "name": [{"family": "Abara", "given": ["Chidi"]}],
    "gender": "male",
}


def claimed(resource: dict[str, Any]) -> list[str]:
    copy = json.loads(json.dumps(resource))
    uscore.conform(copy)
    return [p.removeprefix(uscore.US_CORE) for p in copy.get("meta", {}).get("profile", [])]


def test_each_served_type_claims_its_profile() -> None:
    assert claimed(PATIENT) == ["us-core-patient"]
    assert claimed(care_team("p1")) == ["us-core-careteam"]
    assert claimed(phq9_goal("p1")) == ["us-core-goal"]
    assert claimed(medication_request("p1")) == ["us-core-medicationrequest"]
    assert claimed(phq9("p1", 12)) == ["us-core-observation-screening-assessment"]
    assert claimed(quantity("p1", "8867-4", 64, "/min")) == ["us-core-heart-rate"]
    assert claimed(quantity("p1", "29463-7", 70, "kg")) == ["us-core-body-weight"]
    assert claimed(quantity("p1", "8310-5", 36.8, "Cel")) == ["us-core-body-temperature"]
    assert claimed(blood_pressure("p1", 132, 84)) == ["us-core-blood-pressure"]
    assert claimed(lithium("p1", 0.9)) == ["us-core-observation-lab"]


def test_no_claim_without_what_the_profile_requires() -> None:
    assert claimed({**PATIENT, "gender": None}) == []
    assert claimed({**PATIENT, "name": [{"text": "Chidi Abara"}]}) == []  # us-core-6
    # A panel with only the systolic reading is a vital sign, not US Core's blood pressure.
    assert claimed(blood_pressure("p1", 132, None)) == ["us-core-vital-signs"]
    no_category = {k: v for k, v in quantity("p1", "8867-4", 64, "/min").items()}
    del no_category["category"]
    assert claimed(no_category) == []
    assert uscore.missing(no_category, uscore.VITALS_BY_LOINC["8867-4"]) == [
        "category",
        f"category.coding {uscore.OBSERVATION_CATEGORY}|vital-signs",
    ]
    # Not a type US Core profiles: untouched.
    episode = {"resourceType": "EpisodeOfCare", "status": "planned"}
    assert uscore.conformed_json(json.dumps(episode)) == json.dumps(episode)


def test_careplan_gets_a_narrative_and_keeps_its_own() -> None:
    plan = iop_plan("p1", "t1")
    plan["title"] = "IOP <week 1> & after"
    del plan["text"]  # the demo plan has its own; a plan from an EHR may have none
    copy = json.loads(json.dumps(plan))
    assert uscore.conform(copy)
    assert copy["text"]["status"] == "generated"
    assert copy["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml" class=')
    assert "IOP &lt;week 1&gt; &amp; after" in copy["text"]["div"]
    assert copy["meta"]["profile"] == [uscore.CAREPLAN.url]
    own = {**plan, "text": {"status": "additional", "div": '<div xmlns="x">mine</div>'}}
    uscore.conform(own)
    assert own["text"]["div"] == '<div xmlns="x">mine</div>'
    # A plan without US Core's assess-plan category gets the narrative but no claim.
    plain = {**plan, "category": [{"text": "IOP"}]}
    uscore.conform(plain)
    assert "text" in plain and "profile" not in plain.get("meta", {})


def test_claims_are_not_repeated_and_existing_ones_kept() -> None:
    resource = {**PATIENT, "meta": {"profile": ["http://example.org/p"], "versionId": "3"}}
    once = uscore.conformed_json(json.dumps(resource))
    twice = uscore.conformed_json(once)
    assert once == twice
    assert json.loads(twice)["meta"] == {
        "profile": ["http://example.org/p", uscore.PATIENT.url],
        "versionId": "3",
    }


def test_capability_statement_instantiates_us_core_server() -> None:
    statement = capability_statement("http://gw/fhir", 1000, "test")
    assert statement["instantiates"] == [
        "http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server|6.1.0"
    ]
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for kind, profiles in uscore.PROFILES.items():
        assert by_type[kind]["supportedProfile"] == [p.url for p in profiles], kind
    assert "supportedProfile" not in by_type["EpisodeOfCare"]
    patient_params = {p["name"] for p in by_type["Patient"]["searchParam"]}
    assert {"_id", "identifier", "name", "birthdate", "gender"} <= patient_params


def test_what_the_gateway_added_is_not_stored_back() -> None:
    plan = iop_plan("p1", "t1")
    del plan["text"]
    plan["meta"] = {"versionId": "2", "profile": ["http://example.org/p"]}
    released = json.loads(uscore.conformed_json(json.dumps(plan)))
    assert released["text"]["div"] != "" and uscore.CAREPLAN.url in released["meta"]["profile"]
    assert uscore.as_stored(released) == plan
    # A narrative of the client's own is the client's: kept.
    own = {**plan, "text": {"status": "additional", "div": '<div xmlns="x">mine</div>'}}
    assert uscore.as_stored(own) == own
    bare = {"resourceType": "Goal", "meta": {"profile": [uscore.GOAL.url]}}
    assert uscore.as_stored(bare) == {"resourceType": "Goal"}
