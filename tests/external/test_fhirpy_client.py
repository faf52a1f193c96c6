"""fhirpy (beda.software's Python FHIR client, on PyPI) against the gateway over HTTP: create,
read, search with paging, update with the version in meta, and its error mapping."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import (
    AuthorizationError,
    MultipleResourcesFound,
    OperationOutcome,
    ResourceNotFound,
)

from tests.support.gateway import MRN_SYSTEM, Stack, practitioner_token
from tests.support.plans import care_team, iop_plan, phq9

pytestmark = pytest.mark.integration


def body(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "resourceType"}


def test_fhirpy_reads_searches_creates_and_updates(stack: Stack, token: str) -> None:
    client = SyncFHIRClient(stack.base_url, authorization=f"Bearer {token}")
    mrn = uuid.uuid4().hex
    patient = client.resource(
        "Patient",
        identifier=[{"system": MRN_SYSTEM, "value": mrn}],
        name=[{"family": "Haddad", "given": ["Lina"]}],
        gender="female",
        birthDate="1979-09-30",
    )
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"

    read = client.reference("Patient", patient.id).to_resource()
    assert read["identifier"] == [{"system": MRN_SYSTEM, "value": mrn}]
    assert read["birthDate"] == "1979-09-30"
    found = client.resources("Patient").search(identifier=f"{MRN_SYSTEM}|{mrn}").fetch_all()
    assert [p.id for p in found] == [patient.id]

    # The program's administrator enrols the care team (never an outside EHR: issue 10, 4).
    admin = SyncFHIRClient(
        stack.base_url,
        authorization=f"Bearer {practitioner_token(stack.settings, 'admin', 'adm-1')}",
    )
    team = admin.resource("CareTeam", **body(care_team(patient.id)))
    team.save()
    plan_ids = []
    for title in ("first", "second", "third"):
        plan = client.resource("CarePlan", **body(iop_plan(patient.id, team.id)))
        plan["status"] = "draft"
        plan["title"] = title
        plan.save()
        plan_ids.append(plan.id)
    # fetch_all follows the Bundle's next links (absolute URLs under the base).
    paged = client.resources("CarePlan").search(patient=patient.id).limit(2).fetch_all()
    assert sorted(p.id for p in paged) == sorted(plan_ids)
    by_reference = client.resources("CarePlan").search(subject=patient).fetch()
    assert len(by_reference) == 3
    counted = client.resources("CarePlan").search(patient=patient.id, _summary="count").fetch_raw()
    assert counted["total"] == 3

    measure = client.resource("Observation", **body(phq9(patient.id, 11)))
    measure.save()
    assert (
        client.resources("Observation")
        .search(patient=patient.id, code="http://loinc.org|44261-6")
        .first()
        .id
        == measure.id
    )

    # An update carries the version it is based on in meta.versionId.
    plan = client.reference("CarePlan", plan_ids[0]).to_resource()
    stale = copy.deepcopy(plan)
    plan["title"] = "first, revised"
    plan.save()
    assert plan["meta"]["versionId"] == "2" and plan["title"] == "first, revised"
    stale["title"] = "lost update"
    with pytest.raises(MultipleResourcesFound) as conflict:  # fhirpy's name for any 412
        stale.save()
    assert "conflict" in str(conflict.value)
    assert client.reference("CarePlan", plan_ids[0]).to_resource()["title"] == "first, revised"

    with pytest.raises(ResourceNotFound):
        client.reference("Patient", "no-such-patient").to_resource()
    with pytest.raises(OperationOutcome) as invalid:
        client.resource("CarePlan", status="draft", intent="plan").save()
    assert invalid.value.resource["resourceType"] == "OperationOutcome"
    assert invalid.value.resource["issue"][0]["severity"] == "error"
    anonymous = SyncFHIRClient(stack.base_url)
    with pytest.raises(AuthorizationError):
        anonymous.reference("Patient", patient.id).to_resource()
