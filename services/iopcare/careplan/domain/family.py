"""Family members (FHIR RelatedPerson) and minors (plain Python, no I/O).

A family member is a RelatedPerson of one patient: how they are related (HL7 v3 RoleCode, e.g.
MTH, FTH, GUARD), their name and contact, and whether the team may give them information about
the patient. Who may receive information is recorded on the RelatedPerson itself
(docs/decisions/0024-family-members-and-minors.md), in the complex extension
`INFORMATION_SHARING`:

- `basis` `patient-consent`: the patient consented to sharing with this person; `consent` names
  the Consent (notes keeps it, `Consent/{id}`).
- `basis` `guardian-of-minor`: the person is the minor patient's legal guardian (the relationship
  includes GUARD). It holds only while the patient is under the age of majority: from their 18th
  birthday the adult patient's own consent is needed.
- `basis` `none` (or no extension): the team shares nothing with them.

A guardian's consent to the minor's treatment is the `GUARDIAN_CONSENT` extension of the guardian
(when signed, and the signed form). A school contact (counsellor, teacher) is a RelatedPerson too,
related by the program's code `school-contact`; it is never a guardian.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from iopcare.kit.errors import FailedPrecondition, FieldViolations

ROLE_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
#: The program's own relationship codes (a school contact has no HL7 code).
FAMILY_ROLE_SYSTEM = "https://iopcare.org/fhir/CodeSystem/related-person-role"
SCHOOL_CONTACT = "school-contact"
INFORMATION_SHARING = "https://iopcare.org/fhir/StructureDefinition/information-sharing"
GUARDIAN_CONSENT = "https://iopcare.org/fhir/StructureDefinition/guardian-consent"
GUARDIAN = "GUARD"

#: v3 RoleCode relationships a family member may have (PersonalRelationshipRoleType and GUARD).
FAMILY_ROLES = frozenset(
    {
        "MTH", "FTH", "PRN", "STPPRN", "STPMTH", "STPFTH", "FTHFOST", "MTHFOST", "PRNFOST",
        "ADOPTP", "ADOPTF", "ADOPTM", "GRPRN", "GRMTH", "GRFTH", "SIB", "BRO", "SIS", "HSIB",
        "CHILD", "SON", "DAU", "SPS", "HUSB", "WIFE", "DOMPART", "SIGOTHR", "AUNT", "UNCLE",
        "COUSN", "EXT", "FAMMEMB", "FRND", "ROOM", "NBOR", GUARDIAN,
    }
)  # fmt: skip

BASIS_NONE = "none"
BASIS_CONSENT = "patient-consent"
BASIS_GUARDIAN = "guardian-of-minor"
BASES = (BASIS_NONE, BASIS_CONSENT, BASIS_GUARDIAN)
#: The age from which a patient decides alone (the program may treat minors: adolescents).
AGE_OF_MAJORITY = 18


@dataclass(frozen=True)
class FamilyMember:
    """What the rules need of a RelatedPerson."""

    patient_id: str
    roles: frozenset[str]
    basis: str
    consent: str | None
    guardian_consent_signed: datetime | None = None

    @property
    def is_guardian(self) -> bool:
        return GUARDIAN in self.roles

    @property
    def is_school_contact(self) -> bool:
        return SCHOOL_CONTACT in self.roles


def age_on(birth: date, day: date) -> int:
    """Whole years of age on `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def is_minor(birth: date | None, day: date) -> bool:
    """Under the age of majority on `day` (an unknown birth date is not a minor)."""
    return birth is not None and age_on(birth, day) < AGE_OF_MAJORITY


def birth_date_of(patient: dict[str, Any]) -> date | None:
    """A Patient's birthDate when it is a whole date (a year or a month alone says too little)."""
    value = patient.get("birthDate")
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _patient_id(reference: object) -> str | None:
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or not ref.startswith("Patient/"):
        return None
    ident = ref.removeprefix("Patient/")
    valid = 0 < len(ident) <= 64 and all(c.isalnum() or c in "-." for c in ident)
    return ident if valid else None


def _roles(resource: dict[str, Any], problems: FieldViolations) -> set[str]:
    roles: set[str] = set()
    at = "fhir_json.RelatedPerson.relationship"
    relationships = resource.get("relationship")
    if not isinstance(relationships, list) or not relationships:
        problems.add(at, "at least one: how the person is related (v3 RoleCode, e.g. MTH, GUARD)")
        return roles
    for index, concept in enumerate(relationships):
        codings = concept.get("coding") if isinstance(concept, dict) else None
        known = False
        for coding in codings if isinstance(codings, list) else []:
            system, code = coding.get("system"), coding.get("code")
            if system == ROLE_CODE_SYSTEM and code in FAMILY_ROLES:
                roles.add(str(code))
                known = True
            elif system == FAMILY_ROLE_SYSTEM and code == SCHOOL_CONTACT:
                roles.add(SCHOOL_CONTACT)
                known = True
        if not known:
            problems.add(
                f"{at}[{index}]",
                f"a coding of {ROLE_CODE_SYSTEM} (a family relationship or GUARD) or "
                f"{FAMILY_ROLE_SYSTEM}#{SCHOOL_CONTACT}",
            )
    return roles


def _extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension
    return None


def _part(extension: dict[str, Any], name: str) -> dict[str, Any]:
    for part in extension.get("extension") or []:
        if isinstance(part, dict) and part.get("url") == name:
            return part
    return {}


def sharing_of(resource: dict[str, Any]) -> tuple[str, str | None]:
    """The recorded basis for sharing information (BASES) and the Consent it rests on."""
    extension = _extension(resource, INFORMATION_SHARING)
    if extension is None:
        return BASIS_NONE, None
    basis = _part(extension, "basis").get("valueCode")
    consent = (_part(extension, "consent").get("valueReference") or {}).get("reference")
    return (
        str(basis) if isinstance(basis, str) else "",
        consent if isinstance(consent, str) else None,
    )


def _signed(resource: dict[str, Any], problems: FieldViolations) -> datetime | None:
    extension = _extension(resource, GUARDIAN_CONSENT)
    if extension is None:
        return None
    value = _part(extension, "signed").get("valueDateTime")
    try:
        signed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        signed = None
    if signed is None or signed.tzinfo is None:
        problems.add(
            "fhir_json.RelatedPerson.extension[guardian-consent].signed",
            "when the guardian signed, a dateTime with its time zone",
        )
        return None
    return signed


def check_family_member(resource: dict[str, Any]) -> FamilyMember:
    """A new RelatedPerson's facts, or INVALID_ARGUMENT naming every wrong field."""
    problems = FieldViolations()
    patient_id = _patient_id(resource.get("patient"))
    if patient_id is None:
        problems.add("fhir_json.RelatedPerson.patient", "must reference a Patient (Patient/{id})")
    roles = _roles(resource, problems)
    if not resource.get("name"):
        problems.add("fhir_json.RelatedPerson.name", "the person's name is required")
    basis, consent = sharing_of(resource)
    at = "fhir_json.RelatedPerson.extension[information-sharing]"
    if basis not in BASES:
        problems.add(f"{at}.basis", f"one of {', '.join(BASES)}")
    if basis == BASIS_CONSENT and not (
        consent and consent.startswith("Consent/") and len(consent) > len("Consent/")
    ):
        problems.add(f"{at}.consent", "the patient's Consent (Consent/{id}) sharing rests on")
    if basis == BASIS_GUARDIAN and GUARDIAN not in roles:
        problems.add(f"{at}.basis", "guardian-of-minor needs the relationship GUARD")
    if SCHOOL_CONTACT in roles and GUARDIAN in roles:
        problems.add("fhir_json.RelatedPerson.relationship", "a school contact is not a guardian")
    signed = _signed(resource, problems)
    if signed is not None and GUARDIAN not in roles:
        problems.add(
            "fhir_json.RelatedPerson.extension[guardian-consent]",
            "only a guardian (GUARD) consents to a minor's treatment",
        )
    problems.raise_if_any("the RelatedPerson is invalid")
    assert patient_id is not None
    return FamilyMember(patient_id, frozenset(roles), basis, consent, signed)


def check_guardian_of_minor(member: FamilyMember, birth: date | None, today: date) -> None:
    """A guardian's authority (to receive information, to consent) is over a minor: the patient's
    registered birth date must say they are one today."""
    if member.basis != BASIS_GUARDIAN and member.guardian_consent_signed is None:
        return
    if birth is None:
        raise FailedPrecondition(
            "the patient's birth date is not registered: a guardian's authority needs a minor",
            reason="BIRTH_DATE_UNKNOWN",
        )
    if not is_minor(birth, today):
        raise FailedPrecondition(
            f"the patient is {age_on(birth, today)}: an adult patient consents alone",
            reason="NOT_A_MINOR",
        )


def may_receive_information(member: FamilyMember, birth: date | None, today: date) -> bool:
    """Whether the team may give this person information about the patient today: under the
    patient's recorded consent, or as the guardian of a patient who is still a minor."""
    if member.basis == BASIS_CONSENT:
        return member.consent is not None
    if member.basis == BASIS_GUARDIAN:
        return member.is_guardian and is_minor(birth, today)
    return False
