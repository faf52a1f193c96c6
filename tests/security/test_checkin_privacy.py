"""The patient's own daily check-in over REST (issue 12 part 4), through the gateway in front of
the real services, on SQLite and PostgreSQL: a patient-scoped token (role patient, `patient/`
scopes, launch context) records and reads its own check-ins only, never another patient's and
never clinical notes or the team thread; a yes to the safety item raises the crisis alert."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from iopcare.kit import auth
from iopcare.kit.settings import Settings
from iopcare.scheduling.contract import QUESTIONNAIRE_URL
from tests.support import harness
from tests.support.gateway import (
    FHIR_JSON,
    MRN_SYSTEM,
    Stack,
    enrol_team,
    practitioner_token,
    stack_for,
)

pytestmark = pytest.mark.security

JSON_HEADERS = {"Content-Type": FHIR_JSON}
APP_SCOPES = ["patient/Questionnaire.r", "patient/QuestionnaireResponse.cs"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
) -> Iterator[Stack]:
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None
    with stack_for(
        request.param, tmp_path_factory, kafka_bootstrap, "security-checkin", server
    ) as running:
        yield running


@pytest.fixture(scope="module")
def psychiatrist(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(practitioner_token(stack.settings, "psychiatrist", "psy-1")) as client:
        yield client


def patient_token(settings: Settings, patient_id: str, scopes: list[str] | None = None) -> str:
    return auth.mint_token(
        settings,
        subject=f"patient:{patient_id}",
        role="patient",
        patient_context=patient_id,
        scopes=scopes or APP_SCOPES,
        lifetime_seconds=600,
    )


def enrolled(stack: Stack, psychiatrist: httpx.Client) -> str:
    with stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as admin:
        created = admin.post(
            "/Patient",
            json={
                "resourceType": "Patient",
                "identifier": [{"system": MRN_SYSTEM, "value": uuid.uuid4().hex}],
                "name": [{"family": "Okafor", "given": ["Jordan"]}],
            },
            headers=JSON_HEADERS,
        )
    assert created.status_code == 201, created.text
    patient_id = str(created.headers["location"].split("/Patient/")[1].split("/")[0])
    enrol_team(stack, patient_id)
    harness.eventually(
        lambda: psychiatrist.get("/Flag", params={"patient": patient_id}).status_code == 200 or None
    )
    return patient_id


def check_in(patient_id: str, *, mood: Any = 4, self_harm: bool = False) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": QUESTIONNAIRE_URL,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "item": [
            {"linkId": "mood", "answer": [{"valueInteger": mood}]},
            {"linkId": "craving", "answer": [{"valueInteger": 6}]},
            {"linkId": "sleep-hours", "answer": [{"valueDecimal": 5.5}]},
            {"linkId": "medication-taken", "answer": [{"valueBoolean": True}]},
            {"linkId": "self-harm-thoughts", "answer": [{"valueBoolean": self_harm}]},
        ],
    }


def test_a_patient_records_and_reads_only_their_own_check_ins(
    stack: Stack, psychiatrist: httpx.Client
) -> None:
    me, other = enrolled(stack, psychiatrist), enrolled(stack, psychiatrist)
    with (
        stack.client(patient_token(stack.settings, me)) as app,
        stack.client(patient_token(stack.settings, other)) as their_app,
    ):
        form = app.get("/Questionnaire/iop-daily-checkin")
        assert form.status_code == 200, form.text
        assert form.json()["url"] == QUESTIONNAIRE_URL
        assert app.get("/Questionnaire/phq-9").status_code == 404
        recorded = app.post("/QuestionnaireResponse", json=check_in(me), headers=JSON_HEADERS)
        assert recorded.status_code == 201, recorded.text
        assert recorded.json()["author"] == {"reference": f"Patient/{me}"}
        mine = app.get("/QuestionnaireResponse", params={"patient": me}).json()
        assert mine["total"] == 1
        implicit = app.get("/QuestionnaireResponse").json()  # a patient/ scope: their own
        assert implicit["total"] == 1
        # Another patient's: refused, and writing for them writes nothing.
        assert app.get("/QuestionnaireResponse", params={"patient": other}).status_code == 403
        refused = app.post(
            "/QuestionnaireResponse", json=check_in(other, self_harm=True), headers=JSON_HEADERS
        )
        assert refused.status_code == 403, refused.text
        assert their_app.get("/QuestionnaireResponse").json()["total"] == 0
        # Bad input: a clear OperationOutcome, nothing written.
        bad = app.post("/QuestionnaireResponse", json=check_in(me, mood=11), headers=JSON_HEADERS)
        assert bad.status_code in (400, 422), bad.text
        assert bad.json()["resourceType"] == "OperationOutcome"
        assert "mood" in bad.text
        wrong = app.post(
            "/QuestionnaireResponse",
            json={**check_in(me), "questionnaire": "https://example.org/Questionnaire/x"},
            headers=JSON_HEADERS,
        )
        assert wrong.status_code in (400, 422), wrong.text
        assert app.get("/QuestionnaireResponse").json()["total"] == 1
    # The care team reads the patient's check-ins too.
    seen = psychiatrist.get("/QuestionnaireResponse", params={"patient": me})
    assert seen.status_code == 200 and seen.json()["total"] == 1


def test_a_patient_never_reads_notes_or_the_thread_whatever_the_scopes(
    stack: Stack, psychiatrist: httpx.Client
) -> None:
    me = enrolled(stack, psychiatrist)
    with stack.client(patient_token(stack.settings, me, ["patient/*.cruds"])) as app:
        for path in ("/DocumentReference", "/Communication", "/Flag"):
            answer = app.get(path, params={"patient": me})
            assert answer.status_code == 403, (path, answer.text)


def test_a_yes_to_the_safety_item_over_rest_raises_the_crisis_alert(
    stack: Stack, psychiatrist: httpx.Client
) -> None:
    me = enrolled(stack, psychiatrist)
    with stack.client(patient_token(stack.settings, me)) as app:
        recorded = app.post(
            "/QuestionnaireResponse", json=check_in(me, self_harm=True), headers=JSON_HEADERS
        )
        assert recorded.status_code == 201, recorded.text

    def flagged() -> list[Any] | None:
        found = psychiatrist.get("/Flag", params={"patient": me}).json()
        return [e for e in found.get("entry", []) if e["resource"]["resourceType"] == "Flag"]

    flags = harness.eventually(flagged, timeout=20)
    assert len(flags) == 1
