"""US Core 6.1 on the way out: which profile a released resource follows, what the profile
requires, and the copy that says so (pure functions; ADR 0031).

The services store plain FHIR R4 (the canonical form); the gateway is where a resource leaves
the program, so it is where the US Core claim is made (`release.ReleaseRule` calls `conform` on
every copy it lets out). A profile is claimed in `meta.profile` only when the resource has what
the profile requires (`missing(...)` is empty): a resource without, say, a CarePlan category
`assess-plan` keeps no claim rather than a false one. The one element the gateway adds is
CarePlan's narrative (`text`, which US Core requires): generated from the plan's own status,
title, description and period.

`PROFILES` is also the table tests check every served response against (docs/conformance.md):
`required` are the elements US Core 6.1 makes mandatory (min 1), `must_support` the other
Must Support elements, present wherever the data exists.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
US_CORE_VERSION = "6.1.0"
#: The US Core server CapabilityStatement the gateway's instantiates.
SERVER_CAPABILITY = (
    f"http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server|{US_CORE_VERSION}"
)

LOINC = "http://loinc.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CAREPLAN_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
XHTML = "http://www.w3.org/1999/xhtml"
#: The class of the narrative the gateway generates (never stored: `as_stored`).
GENERATED = "iopcare-generated"
#: Observation categories of screenings and assessments (US Core 6.1's screening-assessment
#: profile: survey, or a US Core category such as sdoh or functional-status).
SCREENING_CATEGORIES = frozenset({"survey"})

#: Observation.effective[x] and value[x] choices.
EFFECTIVE = "effectiveDateTime|effectivePeriod|effectiveInstant|effectiveTiming"
VALUE = (
    "valueQuantity|valueCodeableConcept|valueString|valueBoolean|valueInteger|valueRange|"
    "valueRatio|valueSampledData|valueTime|valueDateTime|valuePeriod"
)


@dataclass(frozen=True)
class Profile:
    """A US Core 6.1 profile: its id, the FHIR type, the element paths it requires (`a.b`,
    `x|y`: either), the codes it requires ((path, system, code): a Coding at `path`), and its
    other Must Support paths."""

    id: str
    type: str
    required: tuple[str, ...]
    must_support: tuple[str, ...] = ()
    codes: tuple[tuple[str, str, str], ...] = ()

    @property
    def url(self) -> str:
        return US_CORE + self.id


def _vital(profile_id: str, loinc: str, *extra: str) -> Profile:
    value = "component.valueQuantity" if extra else "valueQuantity"  # a panel's are its parts'
    return Profile(
        profile_id,
        "Observation",
        ("status", "category", "code", "subject", EFFECTIVE, *extra),
        (f"{value}|dataAbsentReason|component", f"{value}.unit"),
        (
            ("category.coding", OBSERVATION_CATEGORY, "vital-signs"),
            *((("code.coding", LOINC, loinc),) if loinc else ()),
        ),
    )


PATIENT = Profile(
    "us-core-patient",
    "Patient",
    ("identifier.system", "identifier.value", "name.family|name.given", "gender"),
    ("birthDate", "telecom", "address", "communication.language"),
)
CAREPLAN = Profile(
    "us-core-careplan",
    "CarePlan",
    ("text.status", "text.div", "status", "intent", "category", "subject"),
    codes=(("category.coding", CAREPLAN_CATEGORY, "assess-plan"),),
)
CARETEAM = Profile(
    "us-core-careteam",
    "CareTeam",
    ("subject", "participant.role", "participant.member"),
    ("status",),
)
GOAL = Profile(
    "us-core-goal",
    "Goal",
    ("lifecycleStatus", "description", "subject"),
    ("target.dueDate|startDate",),
)
SCREENING = Profile(
    "us-core-observation-screening-assessment",
    "Observation",
    ("status", "category", "code", "subject"),
    (EFFECTIVE, f"{VALUE}|hasMember|component|dataAbsentReason"),
)
LAB = Profile(
    "us-core-observation-lab",
    "Observation",
    ("status", "category", "code", "subject"),
    (EFFECTIVE, f"{VALUE}|dataAbsentReason"),
    (("category.coding", OBSERVATION_CATEGORY, "laboratory"),),
)
BLOOD_PRESSURE = _vital("us-core-blood-pressure", "85354-9", "component.code")
VITALS_BY_LOINC = {
    "85354-9": BLOOD_PRESSURE,
    "8867-4": _vital("us-core-heart-rate", "8867-4"),
    "29463-7": _vital("us-core-body-weight", "29463-7"),
    "8302-2": _vital("us-core-body-height", "8302-2"),
    "39156-5": _vital("us-core-bmi", "39156-5"),
    "8310-5": _vital("us-core-body-temperature", "8310-5"),
    "9279-1": _vital("us-core-respiratory-rate", "9279-1"),
}
VITAL_SIGNS = _vital("us-core-vital-signs", "")
#: Blood pressure's two components (US Core: each 1..1).
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
MEDICATION_REQUEST = Profile(
    "us-core-medicationrequest",
    "MedicationRequest",
    ("status", "intent", "medicationCodeableConcept|medicationReference", "subject"),
    (
        "authoredOn",
        "requester",
        "dosageInstruction",
        "encounter",
        "reportedBoolean|reportedReference",
    ),
)
DOCUMENT_REFERENCE = Profile(
    "us-core-documentreference",
    "DocumentReference",
    ("status", "type", "category", "subject", "content.attachment"),
    ("identifier", "date", "author", "content.attachment.contentType", "context"),
)
RELATED_PERSON = Profile(
    "us-core-relatedperson",
    "RelatedPerson",
    ("active", "patient"),
    ("relationship", "name", "telecom", "address"),
)
QUESTIONNAIRE_RESPONSE = Profile(
    "us-core-questionnaireresponse",
    "QuestionnaireResponse",
    ("questionnaire", "status", "subject", "authored"),
    ("author", "item.linkId"),
)

#: Every profile the gateway may claim, by type (CapabilityStatement supportedProfile).
PROFILES: dict[str, tuple[Profile, ...]] = {
    "Patient": (PATIENT,),
    "RelatedPerson": (RELATED_PERSON,),
    "CarePlan": (CAREPLAN,),
    "CareTeam": (CARETEAM,),
    "Goal": (GOAL,),
    "Observation": (SCREENING, *VITALS_BY_LOINC.values(), VITAL_SIGNS, LAB),
    "MedicationRequest": (MEDICATION_REQUEST,),
    "DocumentReference": (DOCUMENT_REFERENCE,),
    "QuestionnaireResponse": (QUESTIONNAIRE_RESPONSE,),
}
BY_URL: dict[str, Profile] = {p.url: p for ps in PROFILES.values() for p in ps}


def supported_profiles(resource_type: str) -> list[str]:
    return [p.url for p in PROFILES.get(resource_type, ())]


def _values(resource: Any, path: str) -> Iterator[Any]:
    items = [resource]
    for step in path.split("."):
        nxt: list[Any] = []
        for item in items:
            if isinstance(item, dict) and step in item:
                value = item[step]
                nxt.extend(value if isinstance(value, list) else [value])
        items = nxt
    yield from (i for i in items if i not in (None, "", [], {}))


def has(resource: Any, path: str) -> bool:
    """Whether any alternative of `path` (`a.b|c`) has a value in `resource`."""
    return any(next(_values(resource, one), None) is not None for one in path.split("|"))


def has_code(resource: Any, path: str, system: str, code: str) -> bool:
    return any(
        isinstance(c, dict) and c.get("system") == system and c.get("code") == code
        for c in _values(resource, path)
    )


def missing(resource: dict[str, Any], profile: Profile) -> list[str]:
    """What `resource` lacks of what `profile` requires (empty: it conforms to the table)."""
    gaps = [path for path in profile.required if not has(resource, path)]
    gaps += [
        f"{path} {system}|{code}"
        for path, system, code in profile.codes
        if not has_code(resource, path, system, code)
    ]
    if profile is BLOOD_PRESSURE:
        for component in (SYSTOLIC, DIASTOLIC):
            if not any(
                has_code(c, "code.coding", LOINC, component)
                and has(c, "valueQuantity.value|dataAbsentReason")
                for c in _values(resource, "component")
            ):
                gaps.append(f"component {LOINC}|{component}")
    return gaps


def missing_must_support(resource: dict[str, Any], profile: Profile) -> list[str]:
    return [path for path in profile.must_support if not has(resource, path)]


def _category_codes(resource: dict[str, Any]) -> set[str]:
    return {
        str(c.get("code"))
        for c in _values(resource, "category.coding")
        if isinstance(c, dict) and c.get("system") == OBSERVATION_CATEGORY
    }


def candidates(resource: dict[str, Any]) -> tuple[Profile, ...]:
    """The profiles `resource` is meant to follow, most specific first."""
    kind = resource.get("resourceType", "")
    if kind != "Observation":
        return PROFILES.get(kind, ())
    categories = _category_codes(resource)
    if "vital-signs" in categories:
        loincs = [
            str(c.get("code"))
            for c in _values(resource, "code.coding")
            if isinstance(c, dict) and c.get("system") == LOINC
        ]
        specific = tuple(VITALS_BY_LOINC[code] for code in loincs if code in VITALS_BY_LOINC)
        return (*specific, VITAL_SIGNS)
    if "laboratory" in categories:
        return (LAB,)
    if categories & SCREENING_CATEGORIES or any(
        isinstance(c, dict) and c.get("system") == US_CORE_CATEGORY
        for c in _values(resource, "category.coding")
    ):
        return (SCREENING,)
    return ()


def profile_for(resource: dict[str, Any]) -> Profile | None:
    """The US Core profile `resource` conforms to (per the table), or None."""
    for profile in candidates(resource):
        if not missing(resource, profile):
            return profile
    return None


def careplan_text(plan: dict[str, Any]) -> dict[str, str]:
    """A generated narrative of a CarePlan from its own elements (US Core requires `text`)."""
    rows = [
        ("Status", plan.get("status")),
        ("Intent", plan.get("intent")),
        ("Title", plan.get("title")),
        ("Description", plan.get("description")),
        ("Start", (plan.get("period") or {}).get("start")),
        ("End", (plan.get("period") or {}).get("end")),
    ]
    items = "".join(
        f"<li>{name}: {html.escape(str(value))}</li>"
        for name, value in rows
        if isinstance(value, str) and value
    )
    title = html.escape(str(plan.get("title") or "Care plan"))
    return {
        "status": "generated",
        "div": f'<div xmlns="{XHTML}" class="{GENERATED}"><p>{title}</p><ul>{items}</ul></div>',
    }


def as_stored(resource: dict[str, Any]) -> dict[str, Any]:
    """What a client sends back of a resource it read, without what the gateway added on the
    way out (the US Core claim it makes, the narrative it generated), so the services keep the
    plain R4 form and a later release says the truth again (a narrative of the old status
    would not)."""
    meta = resource.get("meta")
    text = resource.get("text")
    ours = isinstance(text, dict) and f'class="{GENERATED}"' in str(text.get("div", ""))
    if not isinstance(meta, dict):
        meta = {}
    claims = meta.get("profile")
    claims = claims if isinstance(claims, list) else []
    ours_claimed = [p for p in claims if isinstance(p, str) and p in BY_URL]
    if not ours and not ours_claimed:
        return resource
    plain = {k: v for k, v in resource.items() if not (ours and k == "text")}
    if ours_claimed:
        kept = [p for p in claims if p not in ours_claimed]
        plain["meta"] = {k: v for k, v in meta.items() if k != "profile"}
        if kept:
            plain["meta"]["profile"] = kept
        if not plain["meta"]:
            del plain["meta"]
    return plain


def conform(resource: dict[str, Any]) -> bool:
    """Adds, in place, what the gateway supplies for US Core (a CarePlan's narrative) and the
    profile `resource` then conforms to in `meta.profile`; True if it changed anything."""
    changed = False
    if resource.get("resourceType") == "CarePlan" and not has(resource, "text.div"):
        resource["text"] = careplan_text(resource)
        changed = True
    profile = profile_for(resource)
    if profile is None:
        return changed
    meta = resource.setdefault("meta", {})
    claimed = meta.setdefault("profile", [])
    if profile.url not in claimed:
        claimed.append(profile.url)
        changed = True
    return changed


def conformed_json(text: str) -> str:
    """`text` (a resource's JSON) with US Core's claim and additions, or `text` as it is."""
    return conformed(text)[0]


def conformed(text: str) -> tuple[str, dict[str, Any] | None]:
    """`conformed_json`, and the resource it parsed (None: not parsed), so that the caller need
    not parse the text again."""
    if not any(f'"{kind}"' in text for kind in PROFILES):
        return text, None
    try:
        resource = json.loads(text)
    except ValueError:
        return text, None
    if not isinstance(resource, dict) or resource.get("resourceType") not in PROFILES:
        return text, None
    if not conform(resource):  # adds the claim (and a plan's narrative) when it holds
        return text, resource
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False), resource
