"""The safety plan (QuestionnaireResponse) and its Questionnaire through the FHIR gateway, in
front of the real services (SQLite; notes' storage is tested on both databases elsewhere):
create, read, search by patient, update (a new version, history kept), and bad input refused
with an OperationOutcome naming the element, nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import harness
from tests.support.gateway import FHIR_JSON, Stack, practitioner_token, stack_for, system_token
from tests.support.safety import SAFETY_PLAN_QUESTIONNAIRE, SECTIONS, safety_plan

JSON_HEADERS = {"Content-Type": FHIR_JSON}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    # SQLite only: the gateway adds no storage of its own, and the service behind it is tested
    # on both databases (tests/integration/test_safety_plan.py).
    with stack_for("sqlite", tmp_path_factory, kafka_bootstrap, "gateway-safety") as running:
        yield running


def _expressions(response: httpx.Response) -> list[str]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return [e for issue in body["issue"] for e in issue.get("expression", [])]


def test_a_safety_plan_over_rest(stack: Stack) -> None:
    from tests.integration.test_gateway_notes import enrolled

    with (
        stack.client(system_token(stack.settings, subject="system:test-ehr")) as ehr,
        stack.client(practitioner_token(stack.settings, "therapist", "th-1")) as therapist,
        stack.client(practitioner_token(stack.settings, "dietitian", "diet-1")) as dietitian,
        stack.client(practitioner_token(stack.settings, "admin", "adm-1")) as program,
    ):
        patient = enrolled(ehr, therapist, program)
        questionnaire = therapist.get("/Questionnaire/stanley-brown-safety-plan")
        assert questionnaire.status_code == 200, questionnaire.text
        assert questionnaire.json()["url"] == SAFETY_PLAN_QUESTIONNAIRE
        assert therapist.get("/Questionnaire/phq-9").status_code == 404

        # Bad input: each refused naming the element, nothing written.
        incomplete = {k: v for k, v in SECTIONS.items() if k != "environment-safe"}
        refused = therapist.post(
            "/QuestionnaireResponse", json=safety_plan(patient, incomplete), headers=JSON_HEADERS
        )
        assert refused.status_code == 422, refused.text
        assert _expressions(refused) == ["QuestionnaireResponse.item"]
        forbidden = dietitian.post(
            "/QuestionnaireResponse", json=safety_plan(patient), headers=JSON_HEADERS
        )
        assert forbidden.status_code == 403, forbidden.text
        # A search by patient asks notes (safety plans) and scheduling (check-ins): both learn
        # the new team from careplan's event, scheduling perhaps a moment after notes.
        search = harness.eventually(
            lambda: (
                found
                if (
                    found := therapist.get("/QuestionnaireResponse", params={"patient": patient})
                ).status_code
                == 200
                else None
            )
        )
        assert search.json()["total"] == 0, search.text

        created = therapist.post(
            "/QuestionnaireResponse", json=safety_plan(patient), headers=JSON_HEADERS
        )
        assert created.status_code == 201, created.text
        plan: dict[str, Any] = created.json()
        assert plan["meta"]["versionId"] == "1"
        read = dietitian.get(f"/QuestionnaireResponse/{plan['id']}")
        assert read.status_code == 200 and read.json() == plan

        body = safety_plan(patient, SECTIONS | {"coping-strategies": ["Walk the dog"]})
        updated = therapist.put(
            f"/QuestionnaireResponse/{plan['id']}",
            json={**body, "id": plan["id"]},
            headers={**JSON_HEADERS, "If-Match": created.headers["ETag"]},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["meta"]["versionId"] == "2"
        # A retry of that update (the same change from version 1) gets its answer; another
        # change from version 1 is stale.
        stale = therapist.put(
            f"/QuestionnaireResponse/{plan['id']}",
            json={**body, "id": plan["id"], "status": "amended"},
            headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
        )
        assert stale.status_code in (409, 412), stale.text
        other = therapist.put(
            f"/QuestionnaireResponse/{plan['id']}",
            json={**safety_plan("someone-else"), "id": plan["id"]},
            headers={**JSON_HEADERS, "If-Match": updated.headers["ETag"]},
        )
        assert other.status_code == 422, other.text
        assert _expressions(other) == ["QuestionnaireResponse.subject"]

        history = therapist.get(f"/QuestionnaireResponse/{plan['id']}/_history").json()
        assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
        first = therapist.get(f"/QuestionnaireResponse/{plan['id']}/_history/1")
        assert first.json()["item"] == plan["item"]
        found = therapist.get("/QuestionnaireResponse", params={"patient": patient}).json()
        assert [e["resource"]["meta"]["versionId"] for e in found["entry"]] == ["2"]
        # The outside EHR reads the (unlabelled) plan; it never writes one.
        assert ehr.get(f"/QuestionnaireResponse/{plan['id']}").status_code == 200
        assert (
            ehr.post(
                "/QuestionnaireResponse", json=safety_plan(patient), headers=JSON_HEADERS
            ).status_code
            == 403
        )
        capability = therapist.get("/metadata").json()
        kinds = {r["type"] for r in capability["rest"][0]["resource"]}
        assert {"QuestionnaireResponse", "Questionnaire"} <= kinds
