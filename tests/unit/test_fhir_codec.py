"""The FHIR codec refuses what is not R4 JSON, and says where the problem is."""

from __future__ import annotations

import json

import pytest

from iopcare.kit import fhir
from iopcare.kit.errors import ResourceExhausted

VALID = {
    "resourceType": "CarePlan",
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/1"},
}


def test_a_valid_care_plan_parses_and_round_trips_unchanged() -> None:
    resource = fhir.parse_resource(json.dumps(VALID), "CarePlan")
    assert json.loads(fhir.to_json(resource)) == VALID
    again = fhir.parse_resource(fhir.to_json(resource))
    assert fhir.to_json(again) == fhir.to_json(resource)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"resourceType": "CarePlan", "status": "active", "status": "draft"}', "duplicate key"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"resourceType": "CarePlan"', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "resourceType is missing"),
        (b'{"resourceType": "SubscriptionTopic"}', "unknown FHIR R4 resource type"),
        (b'{"resourceType": "HumanName"}', "unknown FHIR R4 resource type"),
        (b'{"resourceType": "Patient"}', "expected a CarePlan"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"resourceType": "CarePlan", "title": null}', "null is not allowed"),
        (b'{"resourceType": "CarePlan", "note": []}', "note is empty"),
        (b'{"resourceType": "CarePlan", "title": ""}', "title is empty"),
        (
            b'{"resourceType": "CarePlan", "contained": [{"resourceType": "Citation"}]}',
            "Citation is not an R4 resource type",
        ),
        (b'{"resourceType": "CarePlan", "a": ' + b"[" * 70 + b"]" * 70 + b"}", "nested deeper"),
    ],
)
def test_malformed_documents_are_refused_with_a_reason(raw: bytes, expected: str) -> None:
    with pytest.raises(fhir.FhirError, match=expected):
        fhir.parse_resource(raw, "CarePlan")


def test_validation_errors_name_the_element_and_never_echo_the_value() -> None:
    bad = {**VALID, "activity": [{"detail": {"status": {"secret": "patient data"}}}]}
    with pytest.raises(fhir.FhirError) as caught:
        fhir.parse_resource(json.dumps(bad), "CarePlan", field="fhir_json")
    fields = [v.field for v in caught.value.violations]
    assert "fhir_json.CarePlan.activity[0].detail.status" in fields
    assert "patient data" not in str(caught.value.violations)


def test_missing_required_elements_are_reported() -> None:
    with pytest.raises(fhir.FhirError) as caught:
        fhir.parse_resource({"resourceType": "CarePlan", "status": "active", "intent": "plan"})
    assert [v.field for v in caught.value.violations] == ["CarePlan.subject"]


def test_documents_over_the_limit_are_refused_before_parsing() -> None:
    with pytest.raises(ResourceExhausted):
        fhir.load_json(b"{" + b" " * 2000, max_bytes=1000)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/123", "123"),
        ("Patient/abc/_history/2", "abc"),
        ("https://ehr.example.org/fhir/Patient/abc/_history/2", None),
        ("Patient/has space", None),
        ("Patient/" + "x" * 65, None),
        ("Practitioner/123", None),
        ("Patient/", None),
        (None, None),
    ],
)
def test_reference_id_reads_literal_references(reference: str | None, expected: str | None) -> None:
    assert fhir.reference_id(reference, "Patient") == expected


def test_operation_outcome_is_a_valid_r4_resource() -> None:
    outcome = fhir.operation_outcome([fhir.Issue("error", "value", "bad", "CarePlan.status")])
    parsed = fhir.parse_resource(outcome, "OperationOutcome")
    assert parsed.issue[0].expression == ["CarePlan.status"]


def test_with_identity_stores_the_models_r4_json_and_keeps_labels() -> None:
    from datetime import UTC, datetime

    from tests.support.plans import iop_plan

    plan = iop_plan()
    plan["meta"] = {
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUD"}],
        "versionId": "99",
    }
    plan["title"] = "Plan für Zoë"
    plan["activity"][0]["detail"]["scheduledTiming"]["repeat"]["count"] = "36"  # coerced
    resource = fhir.parse_resource(json.dumps(plan), "CarePlan")
    stored = fhir.with_identity(resource, "cp-1", 3, datetime(2026, 11, 27, 9, 30, tzinfo=UTC))
    # What is stored round-trips byte for byte, and holds the value the model understood.
    assert fhir.to_json(fhir.parse_resource(stored)) == stored
    assert json.loads(stored)["activity"][0]["detail"]["scheduledTiming"]["repeat"]["count"] == 36
    parsed = json.loads(stored)
    assert (parsed["id"], parsed["meta"]["versionId"]) == ("cp-1", "3")
    assert parsed["meta"]["lastUpdated"] == "2026-11-27T09:30:00Z"
    assert parsed["meta"]["security"][0]["code"] == "SUD"


def test_absolute_references_are_read_only_when_asked_for() -> None:
    url = "https://ehr.example.org/fhir/Patient/abc/_history/2"
    assert fhir.reference_id(url, "Patient", allow_absolute=True) == "abc"


def test_nul_characters_are_refused_anywhere() -> None:
    with pytest.raises(fhir.FhirError, match="NUL"):
        fhir.load_json('{"resourceType": "CarePlan", "title": "a\\u0000b"}')
