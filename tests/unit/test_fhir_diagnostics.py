"""A complex element given as a string is answered with what it must be (issue 15, item 5)."""

from __future__ import annotations

from typing import Any

import pytest

from iopcare.kit import fhir


def issues_of(document: dict[str, Any]) -> list[fhir.Issue]:
    with pytest.raises(fhir.FhirError) as caught:
        fhir.parse_resource(document)
    return caught.value.issues


@pytest.mark.parametrize(
    ("document", "expression", "wanted"),
    [
        (
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": "Patient/1",
            },
            "CarePlan.subject",
            "a Reference object",
        ),
        (
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": "Patient/1"},
                "careTeam": ["CareTeam/1"],
            },
            "CarePlan.careTeam[0]",
            "a Reference object",
        ),
        (
            {
                "resourceType": "Appointment",
                "status": "booked",
                "participant": [{"actor": "Patient/1", "status": "accepted"}],
            },
            "Appointment.participant[0].actor",
            "a Reference object",
        ),
        (
            {"resourceType": "Patient", "contact": [{"organization": "Organization/1"}]},
            "Patient.contact[0].organization",
            "a Reference object",
        ),
        (
            {"resourceType": "Patient", "managingOrganization": 5},
            "Patient.managingOrganization",
            "a Reference object",
        ),
        (
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": "sober",
                "subject": {"reference": "Patient/1"},
            },
            "Goal.description",
            "a CodeableConcept object",
        ),
        (
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": "Patient/1"},
                "period": "2026",
            },
            "CarePlan.period",
            "a Period object",
        ),
        (
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": "Patient/1"},
                "activity": ["group therapy"],
            },
            "CarePlan.activity[0]",
            "a JSON object",
        ),
    ],
)
def test_a_string_for_a_complex_element_names_the_element_and_its_type(
    document: dict[str, Any], expression: str, wanted: str
) -> None:
    issues = issues_of(document)
    assert len(issues) == 1
    (issue,) = issues
    assert issue.diagnostics == f"{expression} must be {wanted}"
    assert issue.expression == expression
    assert "Invalid JSON" not in issue.diagnostics
    # Structure errors are answered 400 by the gateway, with the expression (gateway.errors).
    assert issue.code == "structure"


def test_the_raw_string_given_is_never_echoed() -> None:
    (issue,) = issues_of(
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": "Patient/secret-name",
        }
    )
    assert "secret-name" not in issue.diagnostics


def test_other_value_errors_keep_the_models_message() -> None:
    (issue,) = issues_of(
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/1"},
            "category": "x",
        }
    )
    assert issue.expression == "CarePlan.category"
    assert issue.code == "value"


def test_the_gateway_answers_400_with_the_expression() -> None:
    from iopcare.gateway.errors import from_kit

    with pytest.raises(fhir.FhirError) as caught:
        fhir.parse_resource(
            b'{"resourceType": "CarePlan", "status": "active", "intent": "plan", '
            b'"subject": "Patient/1"}',
            "CarePlan",
        )
    error = from_kit(caught.value)
    assert error.status == 400
    assert [(p.diagnostics, p.expression) for p in error.problems] == [
        ("CarePlan.subject must be a Reference object", "CarePlan.subject")
    ]
