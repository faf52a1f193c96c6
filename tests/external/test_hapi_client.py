"""HAPI FHIR's generic REST client (Java, `FhirContext.forR4().newRestfulGenericClient`) against
the gateway served by uvicorn, with a bearer token as `iopcare token --system` mints it: the way a
Java EHR integration would talk to us. The client parses every response strictly (an unknown
element or a malformed value fails the check)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import hapi
from tests.support.gateway import Stack, practitioner_token
from tests.support.plans import care_team, iop_plan

pytestmark = pytest.mark.integration

CHECKS = [
    "capabilities",
    "create-patient",
    "read-patient",
    "search-patient-by-identifier",
    "create-care-team",
    "care-plan-search-paging",
    "transaction",
    "conditional-create",
    "update-and-stale-if-match",
    "vread-history-include-everything",
    "not-found-outcome",
    "unprocessable-outcome",
    "unauthenticated-outcome",
]


def test_hapi_generic_client_against_the_gateway(
    stack: Stack, token: str, hapi_jar: Path, tmp_path: Path
) -> None:
    # What the Java side creates for its patient (placeholders it fills in).
    (tmp_path / "care_team.json").write_text(json.dumps(care_team("PATIENT_ID")))
    (tmp_path / "care_plan.json").write_text(json.dumps(iop_plan("PATIENT_ID", "TEAM_ID")))
    before = len(stack.audit)

    program = practitioner_token(stack.settings, "admin", "adm-1")
    checks, output = hapi.client(hapi_jar, stack.base_url, token, program, tmp_path)

    assert [c.name for c in checks] == CHECKS, output
    failed = [c for c in checks if not c.ok]
    assert not failed, "\n".join(f"{c.name}: {c.detail}" for c in failed)
    detail = {c.name: c.detail for c in checks}
    assert "fhirVersion=4.0.1" in detail["capabilities"]
    assert detail["care-plan-search-paging"] == "pages=2 plans=3"
    assert detail["transaction"] == "statuses=201 Created,200 OK"
    assert detail["vread-history-include-everything"].startswith("history=2 "), detail
    # Errors came back as OperationOutcomes HAPI parsed: severity/code: diagnostics.
    assert detail["update-and-stale-if-match"].startswith("412 error/conflict"), detail
    assert detail["not-found-outcome"].startswith("404 error/not-found"), detail
    assert detail["unprocessable-outcome"].startswith("422 error/"), detail
    assert detail["unauthenticated-outcome"].startswith("401 error/login"), detail
    # The gateway saw what HAPI sent: one audit record per request, the refusals among them.
    statuses = [record["status"] for record in stack.audit[before:]]
    assert {200, 201, 401, 404, 412, 422} <= set(statuses), statuses
