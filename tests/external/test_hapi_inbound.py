"""What the gateway takes in, judged against HAPI FHIR's R4 validator: resources that HAPI finds
invalid because of a code outside a required binding (the R4 models the services parse with list
those codes but do not check them) are refused with 422 naming the element, alone, inside a
transaction and inside a `$handoff` Bundle; the same resources with valid codes are taken."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import hapi
from tests.support.gateway import FHIR_JSON, MRN_SYSTEM, discharge_bundle

pytestmark = pytest.mark.integration

JSON_HEADERS = {"Content-Type": FHIR_JSON}


def patient(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"use": "usual", "system": MRN_SYSTEM, "value": uuid.uuid4().hex}],
        "name": [{"use": "official", "family": "Moreau", "given": ["Ines"]}],
        "telecom": [{"system": "phone", "value": "+1 555 0101"}],
        "gender": "female",
    }
    resource.update(changes)
    return resource


#: name: (the invalid resource, the element HAPI and the gateway name)
INVALID = {
    "gender": (patient(gender="femalex"), "Patient.gender"),
    "telecom-system": (
        patient(telecom=[{"system": "pager2", "value": "1"}]),
        "Patient.telecom[0].system",
    ),
    "identifier-use": (
        patient(identifier=[{"use": "primary", "system": MRN_SYSTEM, "value": "x"}]),
        "Patient.identifier[0].use",
    ),
    "name-use": (patient(name=[{"use": "nick", "family": "Moreau"}]), "Patient.name[0].use"),
}


def test_what_hapi_finds_invalid_is_refused_and_the_valid_is_taken(
    ehr: httpx.Client, hapi_jar: Path, tmp_path: Path
) -> None:
    valid = patient()
    (tmp_path / "valid.json").write_text(json.dumps(valid))
    for name, (resource, _) in INVALID.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(resource))
    report = hapi.validate(hapi_jar, [tmp_path])
    assert report.files["valid.json"][0] == 0, hapi.format_issues(report.errors())
    for name, (_, element) in INVALID.items():
        located = {i.location for i in report.errors() if i.file == f"{name}.json"}
        assert element in located, (name, located)

    assert ehr.post("/Patient", json=valid, headers=JSON_HEADERS).status_code == 201
    for name, (resource, element) in INVALID.items():
        response = ehr.post("/Patient", json=resource, headers=JSON_HEADERS)
        assert response.status_code == 422, (name, response.text)
        issues = response.json()["issue"]
        assert [i["expression"] for i in issues] == [[element]], (name, issues)
        assert issues[0]["code"] == "code-invalid"

    # Inside a transaction: nothing written, the entry named.
    resource, _ = INVALID["gender"]
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": resource, "request": {"method": "POST", "url": "Patient"}}],
    }
    response = ehr.post("", json=transaction, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.gender"]

    # Inside a discharge document handed over: refused whole.
    bundle = discharge_bundle(uuid.uuid4().hex)
    bundle = copy.deepcopy(bundle)
    index = next(
        n for n, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Patient"
    )
    bundle["entry"][index]["resource"]["gender"] = "femalex"
    response = ehr.post("/$handoff", json=bundle, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    expressions = [e for i in response.json()["issue"] for e in i.get("expression", [])]
    assert f"Bundle.entry[{index}].resource.gender" in expressions, expressions
