"""Family members and minors (careplan.domain.family): what a RelatedPerson must say, and who
may receive information about the patient."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from iopcare.careplan.domain.family import (
    BASIS_CONSENT,
    BASIS_GUARDIAN,
    FAMILY_ROLE_SYSTEM,
    GUARDIAN_CONSENT,
    INFORMATION_SHARING,
    ROLE_CODE_SYSTEM,
    age_on,
    birth_date_of,
    check_family_member,
    check_guardian_of_minor,
    is_minor,
    may_receive_information,
)
from iopcare.kit.errors import FailedPrecondition, InvalidArgument

pytestmark = pytest.mark.unit


def person(*codes: str, basis: str | None = None, consent: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "patient": {"reference": "Patient/p-1"},
        "relationship": [
            {
                "coding": [
                    {"system": FAMILY_ROLE_SYSTEM, "code": c}
                    if c == "school-contact"
                    else {"system": ROLE_CODE_SYSTEM, "code": c}
                ]
            }
            for c in codes
        ],
        "name": [{"family": "Okafor", "given": ["Ada"]}],
    }
    if basis is not None:
        parts: list[dict[str, Any]] = [{"url": "basis", "valueCode": basis}]
        if consent:
            parts.append({"url": "consent", "valueReference": {"reference": consent}})
        resource["extension"] = [{"url": INFORMATION_SHARING, "extension": parts}]
    return resource


def violations(exc: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in exc.value.violations}


def test_age_counts_whole_years_up_to_the_birthday() -> None:
    assert age_on(date(2010, 6, 15), date(2026, 6, 14)) == 15
    assert age_on(date(2010, 6, 15), date(2026, 6, 15)) == 16
    assert is_minor(date(2008, 12, 4), date(2026, 12, 3))
    assert not is_minor(date(2008, 12, 3), date(2026, 12, 3))
    assert not is_minor(None, date(2026, 12, 3))


def test_a_birth_date_is_a_whole_date() -> None:
    assert birth_date_of({"birthDate": "2010-02-03"}) == date(2010, 2, 3)
    assert birth_date_of({"birthDate": "2010"}) is None
    assert birth_date_of({"birthDate": "2010-02-30"}) is None
    assert birth_date_of({}) is None


def test_a_mother_and_guardian_of_a_minor_may_receive_information_until_they_turn_18() -> None:
    member = check_family_member(person("MTH", "GUARD", basis=BASIS_GUARDIAN))
    assert member.is_guardian and member.patient_id == "p-1"
    birth = date(2010, 5, 1)
    check_guardian_of_minor(member, birth, date(2026, 12, 3))
    assert may_receive_information(member, birth, date(2026, 12, 3))
    assert not may_receive_information(member, birth, date(2028, 5, 1))


def test_guardianship_needs_a_registered_minor() -> None:
    member = check_family_member(person("GUARD", basis=BASIS_GUARDIAN))
    with pytest.raises(FailedPrecondition) as unknown:
        check_guardian_of_minor(member, None, date(2026, 12, 3))
    assert unknown.value.reason == "BIRTH_DATE_UNKNOWN"
    with pytest.raises(FailedPrecondition) as adult:
        check_guardian_of_minor(member, date(1990, 1, 1), date(2026, 12, 3))
    assert adult.value.reason == "NOT_A_MINOR"


def test_guardian_of_minor_needs_the_guard_relationship() -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_family_member(person("MTH", basis=BASIS_GUARDIAN))
    assert "fhir_json.RelatedPerson.extension[information-sharing].basis" in violations(exc)


def test_sharing_under_consent_names_the_consent_and_holds_at_any_age() -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_family_member(person("SPS", basis=BASIS_CONSENT))
    assert "fhir_json.RelatedPerson.extension[information-sharing].consent" in violations(exc)
    member = check_family_member(person("SPS", basis=BASIS_CONSENT, consent="Consent/c-1"))
    assert may_receive_information(member, date(1980, 1, 1), date(2026, 12, 3))


def test_without_a_basis_nobody_receives_information() -> None:
    member = check_family_member(person("BRO"))
    assert not may_receive_information(member, date(2012, 1, 1), date(2026, 12, 3))


def test_wrong_relationships_patient_and_name_are_named() -> None:
    resource = person("BOSS")
    resource["patient"] = {"reference": "Group/1"}
    resource.pop("name")
    with pytest.raises(InvalidArgument) as exc:
        check_family_member(resource)
    assert violations(exc) == {
        "fhir_json.RelatedPerson.relationship[0]",
        "fhir_json.RelatedPerson.patient",
        "fhir_json.RelatedPerson.name",
    }


def test_a_school_contact_is_never_a_guardian() -> None:
    assert check_family_member(person("school-contact")).is_school_contact
    with pytest.raises(InvalidArgument):
        check_family_member(person("school-contact", "GUARD"))


def test_a_guardians_consent_to_treatment_has_a_signing_time() -> None:
    resource = person("FTH", "GUARD")
    resource["extension"] = [
        {"url": GUARDIAN_CONSENT, "extension": [{"url": "signed", "valueDateTime": "2026-12-01"}]}
    ]
    with pytest.raises(InvalidArgument):
        check_family_member(resource)
    resource["extension"][0]["extension"][0]["valueDateTime"] = "2026-12-01T10:00:00+01:00"
    member = check_family_member(resource)
    assert member.guardian_consent_signed is not None
    with pytest.raises(FailedPrecondition):
        check_guardian_of_minor(member, date(1999, 1, 1), date(2026, 12, 3))
