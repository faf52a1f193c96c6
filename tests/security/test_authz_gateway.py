"""Attacks on the registry through the FHIR gateway (issue 10, defects 15 and 16c): whether a
patient exists must not leak to a caller who may not see them, and a patient/ scope must not turn
any identifier search into its launch patient."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from iopcare.kit import auth
from tests.support.gateway import (
    FHIR_JSON,
    Stack,
    practitioner_token,
    stack_for,
    system_token,
)

pytestmark = pytest.mark.security

SYSTEM = "urn:oid:2.16.840.1.113883.19.5"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    with stack_for("sqlite", tmp_path_factory, kafka_bootstrap, "authz-gateway") as running:
        yield running


def _register(stack: Stack) -> tuple[str, str]:
    """(patient id, MRN) of a patient an EHR registered."""
    mrn = uuid.uuid4().hex
    with stack.client(system_token(stack.settings)) as ehr:
        response = ehr.post(
            "/Patient",
            json={"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": mrn}]},
            headers={"Content-Type": FHIR_JSON},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"]), mrn


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [
        e["resource"]["id"]
        for e in response.json().get("entry", [])
        if e["resource"]["resourceType"] == "Patient"
    ]


def test_a_clinician_on_no_team_gets_the_same_answer_for_a_known_and_an_unknown_mrn(
    stack: Stack,
) -> None:
    _, mrn = _register(stack)
    outsider = practitioner_token(stack.settings, "therapist", "th-9")
    with stack.client(outsider) as client:
        known = client.get("/Patient", params={"identifier": f"{SYSTEM}|{mrn}"})
        unknown = client.get("/Patient", params={"identifier": f"{SYSTEM}|no-such-mrn"})
    assert known.status_code == unknown.status_code == 200
    assert _ids(known) == _ids(unknown) == []
    assert known.json().get("total") == unknown.json().get("total")


def test_a_patient_scope_finds_only_its_launch_patient_by_identifier(stack: Stack) -> None:
    patient_a, mrn_a = _register(stack)
    _, mrn_b = _register(stack)
    token = auth.mint_token(
        stack.settings,
        subject="system:ehr-a",
        role="system",
        scopes=["patient/*.rs"],
        patient_context=patient_a,
        lifetime_seconds=300,
    )
    with stack.client(token) as client:
        other = client.get("/Patient", params={"identifier": f"{SYSTEM}|{mrn_b}"})
        unknown = client.get("/Patient", params={"identifier": f"{SYSTEM}|no-such-mrn"})
        own = client.get("/Patient", params={"identifier": f"{SYSTEM}|{mrn_a}"})
    assert _ids(other) == [] and _ids(unknown) == []
    assert _ids(own) == [patient_a]


def test_the_demo_and_handoff_enrol_through_the_legitimate_path(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make run`'s demo: an administrator assigns the case manager, who enrols the team; the
    psychiatrist writes the plan; an inpatient unit's EHR hands a patient over through $handoff
    with its own (system) token. None of it needs a privilege the attacks above were refused."""
    from iopcare.demo import rest_demo
    from iopcare.demo_load import load_demo

    settings = stack.settings

    def clinician(role: str, practitioner: str) -> str:
        return auth.mint_token(
            settings,
            subject=f"practitioner:{practitioner}",
            role=role,
            practitioner_id=practitioner,
        )

    addresses = {name: f"127.0.0.1:{runtime.port}" for name, runtime in stack.runtimes.items()}
    load_demo(
        addresses,
        clinician("psychiatrist", "demo-psychiatrist"),
        clinician("case-manager", "demo-case-manager"),
        clinician("admin", "demo-admin"),
        settings.program_timezone,
    )
    rest_demo(stack.base_url, system_token(settings, ["system/*.cruds"]))
    printed = capsys.readouterr().out
    assert "careplan holds CareTeam/" in printed
    assert "created: Patient/" in printed or "matched: Patient/" in printed
