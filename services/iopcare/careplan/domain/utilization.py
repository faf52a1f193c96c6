"""Utilization review: coverage, payer authorizations of a stay, units used, the alerts a team
needs before an authorization runs out, and the ASAM criteria of level-of-care decisions.

Pure rules (no I/O): the use cases in `careplan.utilization` load and store; this module decides.
See docs/decisions/0028-utilization-review.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from iopcare.careplan import codes
from iopcare.kit.errors import FieldViolations

# ASAM criteria -----------------------------------------------------------------------------------

#: The six ASAM dimensions (The ASAM Criteria, 3rd ed.), by the code the extension uses.
ASAM_DIMENSIONS: dict[str, str] = {
    "d1": "Acute intoxication and/or withdrawal potential",
    "d2": "Biomedical conditions and complications",
    "d3": "Emotional, behavioral or cognitive conditions and complications",
    "d4": "Readiness to change",
    "d5": "Relapse, continued use or continued problem potential",
    "d6": "Recovery/living environment",
}
#: A dimension's risk rating: 0 (none) to 4 (utmost severity).
ASAM_RATINGS = range(5)
ASAM_DIMENSION_SYSTEM = "https://iopcare.org/fhir/CodeSystem/asam-dimension"
ASAM_LEVEL_SYSTEM = "https://iopcare.org/fhir/CodeSystem/asam-level"
ASAM_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/asam-assessment"

#: The ASAM level of each of the program's levels of care (3.x: clinically managed or medically
#: monitored residential care; the program keeps one residential level, coded 3.5).
ASAM_LEVEL: dict[str, str] = {
    "outpatient": "1",
    "iop": "2.1",
    "php": "2.5",
    "residential": "3.5",
    "inpatient": "4",
}
ASAM_LEVEL_NAMES: dict[str, str] = {
    "1": "Outpatient services",
    "2.1": "Intensive outpatient services",
    "2.5": "Partial hospitalization services",
    "3.1": "Clinically managed low-intensity residential services",
    "3.3": "Clinically managed population-specific high-intensity residential services",
    "3.5": "Clinically managed high-intensity residential services",
    "3.7": "Medically monitored intensive inpatient services",
    "4": "Medically managed intensive inpatient services",
}


def asam_level(level: str) -> str:
    """The ASAM level of a program level of care (KeyError for an unknown one)."""
    return ASAM_LEVEL[level]


def program_level(asam: str) -> str | None:
    """The program's level of care for an ASAM level (any 3.x is residential but 3.7, which a
    medically monitored unit runs as inpatient care); None for an unknown code."""
    if asam == "3.7":
        return "inpatient"
    if asam.startswith("3.") and asam in ASAM_LEVEL_NAMES:
        return "residential"
    return next((mine for mine, theirs in ASAM_LEVEL.items() if theirs == asam), None)


@dataclass(frozen=True)
class AsamRating:
    dimension: str
    rating: int
    note: str = ""


def check_asam_ratings(ratings: Iterable[AsamRating], field: str = "asam_ratings") -> None:
    """A level-of-care decision's ASAM assessment: none, or each of the six dimensions once with
    a rating 0-4 (INVALID_ARGUMENT naming each problem)."""
    given = list(ratings)
    if not given:
        return
    problems = FieldViolations()
    seen: set[str] = set()
    for i, r in enumerate(given):
        if r.dimension not in ASAM_DIMENSIONS:
            problems.add(f"{field}[{i}].dimension", f"one of {', '.join(ASAM_DIMENSIONS)}")
        elif r.dimension in seen:
            problems.add(f"{field}[{i}].dimension", f"{r.dimension} is rated twice")
        seen.add(r.dimension)
        if r.rating not in ASAM_RATINGS:
            problems.add(f"{field}[{i}].rating", "0 (no risk) to 4 (utmost severity)")
        if len(r.note) > 1000:
            problems.add(f"{field}[{i}].note", "at most 1000 characters")
    missing = [d for d in ASAM_DIMENSIONS if d not in seen]
    if missing:
        problems.add(field, f"rate all six dimensions; missing {', '.join(missing)}")
    problems.raise_if_any("the ASAM assessment is incomplete or invalid")


def asam_extension(ratings: Iterable[AsamRating], at: str) -> dict[str, Any]:
    """The assessment as the EpisodeOfCare's extension (one per decision version)."""
    parts: list[dict[str, Any]] = [{"url": "date", "valueDateTime": at}]
    for r in sorted(ratings, key=lambda r: r.dimension):
        inner: list[dict[str, Any]] = [
            {
                "url": "dimension",
                "valueCoding": {
                    "system": ASAM_DIMENSION_SYSTEM,
                    "code": r.dimension,
                    "display": ASAM_DIMENSIONS[r.dimension],
                },
            },
            {"url": "rating", "valueInteger": r.rating},
        ]
        if r.note:
            inner.append({"url": "note", "valueString": r.note})
        parts.append({"url": "rating", "extension": inner})
    return {"url": ASAM_EXTENSION, "extension": parts}


def asam_ratings_of(episode: Mapping[str, Any]) -> list[AsamRating]:
    """The ratings of the episode's latest ASAM assessment (empty: none recorded)."""
    found: list[AsamRating] = []
    for extension in episode.get("extension") or []:
        if extension.get("url") != ASAM_EXTENSION:
            continue
        found = []
        for part in extension.get("extension") or []:
            if part.get("url") != "rating":
                continue
            inner = {p.get("url"): p for p in part.get("extension") or []}
            found.append(
                AsamRating(
                    str(inner.get("dimension", {}).get("valueCoding", {}).get("code", "")),
                    int(inner.get("rating", {}).get("valueInteger", -1)),
                    str(inner.get("note", {}).get("valueString", "")),
                )
            )
    return found


# Coverage and authorizations ---------------------------------------------------------------------

EPISODE_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/episode-of-care"
ADJUDICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication"
#: The units an authorization counts: attended sessions, or days with an attended session
#: (a per diem such as HCPCS S9480).
UNIT_KINDS = ("sessions", "days")
UNIT_EXTENSION = "https://iopcare.org/fhir/StructureDefinition/authorized-unit"


@dataclass(frozen=True)
class CoverageFacts:
    patient_id: str
    payer: str
    member_id: str
    plan: str


def check_coverage(resource: Mapping[str, Any]) -> CoverageFacts:
    """A Coverage the program records: the beneficiary (a Patient), a payer, the member id
    (subscriberId) and the plan (class of type plan)."""
    problems = FieldViolations()
    beneficiary = str((resource.get("beneficiary") or {}).get("reference") or "")
    if not beneficiary.startswith("Patient/") or len(beneficiary) <= len("Patient/"):
        problems.add("fhir_json.Coverage.beneficiary", "must reference a Patient")
    payors = resource.get("payor") or []
    payer = next((str(p.get("display") or p.get("reference") or "") for p in payors), "")
    if not payer:
        problems.add("fhir_json.Coverage.payor", "name the payer (display or reference)")
    member_id = str(resource.get("subscriberId") or "")
    if not member_id:
        problems.add("fhir_json.Coverage.subscriberId", "the member id is required")
    plan = next(
        (
            str(c.get("value") or "")
            for c in resource.get("class") or []
            if any(k.get("code") == "plan" for k in (c.get("type") or {}).get("coding") or [])
        ),
        "",
    )
    if not plan:
        problems.add("fhir_json.Coverage.class", "a class of type plan names the plan")
    problems.raise_if_any("the Coverage cannot be recorded")
    return CoverageFacts(beneficiary.removeprefix("Patient/"), payer, member_id, plan)


@dataclass(frozen=True)
class Authorization:
    """What a payer authorized for a stay (a ClaimResponse of use preauthorization)."""

    patient_id: str
    episode_id: str
    number: str
    level: str
    start: date
    end: date
    units: int
    unit: str = "sessions"
    coverage_id: str | None = None


def _day(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _level_of(product: Mapping[str, Any]) -> str | None:
    for coding in product.get("coding") or []:
        if coding.get("system") == codes.LEVEL_SYSTEM and coding.get("code") in ASAM_LEVEL:
            return str(coding["code"])
    for coding in product.get("coding") or []:
        if coding.get("system") == ASAM_LEVEL_SYSTEM:
            return program_level(str(coding.get("code") or ""))
    return None


def _item_of(
    items: list[Mapping[str, Any]], problems: FieldViolations, at: str
) -> tuple[str | None, int | None]:
    """The level of care and the units of an authorization's one `addItem`."""
    level, units = None, None
    if len(items) != 1:
        problems.add(f"{at}.addItem", "exactly one item: the level of care authorized")
        return level, units
    level = _level_of(items[0].get("productOrService") or {})
    if level is None:
        problems.add(
            f"{at}.addItem[0].productOrService",
            f"a level of care ({codes.LEVEL_SYSTEM} or {ASAM_LEVEL_SYSTEM})",
        )
    for adjudication in items[0].get("adjudication") or []:
        category = (adjudication.get("category") or {}).get("coding") or []
        if any(c.get("code") == "eligible" for c in category):
            value = adjudication.get("value")
            if value is not None and float(value) == int(value) and 0 < int(value) <= MAX_UNITS:
                units = int(value)
    if units is None:
        problems.add(
            f"{at}.addItem[0].adjudication",
            f"an `eligible` adjudication whose value is the units authorized (1 to {MAX_UNITS})",
        )
    return level, units


def check_authorization(resource: Mapping[str, Any]) -> Authorization:
    """An authorization: a ClaimResponse with use `preauthorization`, the patient, the stay (the
    episode-of-care extension), `preAuthRef` (its number), `preAuthPeriod` (start and end), and
    one `addItem` whose productOrService is the level of care (the program's code or the ASAM
    level) and whose `eligible` adjudication's value is the number of units authorized."""
    problems = FieldViolations()
    at = "fhir_json.ClaimResponse"
    if resource.get("use") != "preauthorization":
        problems.add(f"{at}.use", "an authorization is a preauthorization")
    patient = str((resource.get("patient") or {}).get("reference") or "")
    if not patient.startswith("Patient/") or len(patient) <= len("Patient/"):
        problems.add(f"{at}.patient", "must reference a Patient")
    episode = next(
        (
            str((e.get("valueReference") or {}).get("reference") or "")
            for e in resource.get("extension") or []
            if e.get("url") == EPISODE_EXTENSION
        ),
        "",
    )
    if not episode.startswith("EpisodeOfCare/") or len(episode) <= len("EpisodeOfCare/"):
        problems.add(f"{at}.extension", f"{EPISODE_EXTENSION} must reference the stay")
    number = str(resource.get("preAuthRef") or "")
    if not number:
        problems.add(f"{at}.preAuthRef", "the authorization number is required")
    period = resource.get("preAuthPeriod") or {}
    start, end = _day(period.get("start")), _day(period.get("end"))
    if start is None or end is None:
        problems.add(f"{at}.preAuthPeriod", "start and end are required")
    elif end < start:
        problems.add(f"{at}.preAuthPeriod", "ends before it starts")
    level, units = _item_of(resource.get("addItem") or [], problems, at)
    unit = next(
        (
            str(e.get("valueCode"))
            for e in resource.get("extension") or []
            if e.get("url") == UNIT_EXTENSION
        ),
        "sessions",
    )
    if unit not in UNIT_KINDS:
        problems.add(f"{at}.extension", f"{UNIT_EXTENSION}: one of {', '.join(UNIT_KINDS)}")
    coverage = next(
        (
            str((i.get("coverage") or {}).get("reference") or "")
            for i in resource.get("insurance") or []
        ),
        "",
    )
    problems.raise_if_any("the authorization cannot be recorded")
    assert start is not None and end is not None and level is not None and units is not None
    return Authorization(
        patient.removeprefix("Patient/"),
        episode.removeprefix("EpisodeOfCare/"),
        number,
        level,
        start,
        end,
        units,
        unit,
        coverage.removeprefix("Coverage/") if coverage.startswith("Coverage/") else None,
    )


@dataclass(frozen=True)
class Session:
    """A session of the patient as careplan knows it (its start, in the program's days)."""

    day: date
    status: str


#: The attendance statuses that use a unit (scheduling's: the patient came).
ATTENDED = frozenset({"fulfilled", "arrived", "checked-in"})


def units_used(authorization: Authorization, sessions: Iterable[Session]) -> int:
    """The units used: attended sessions (or days with one) within the authorization's period.
    Every session of an IOP stay is at the program's level, so an authorization for another
    level (a PHP authorization of a stepped-up patient) uses none of them."""
    if authorization.level != codes.PROGRAM_LEVEL:
        return 0
    days = [
        s.day
        for s in sessions
        if s.status in ATTENDED and authorization.start <= s.day <= authorization.end
    ]
    return len(set(days)) if authorization.unit == "days" else len(days)


#: The most units one authorization may grant (a year of daily sessions is 366).
MAX_UNITS = 1000
#: Alert thresholds: the period ends within this many days, or this many units remain.
DAYS_BEFORE_END = 7
UNITS_REMAINING = 3
#: The alerts, each raised once per authorization.
ALERTS = ("units-low", "ending-soon", "expired", "exhausted")


@dataclass(frozen=True)
class Alert:
    kind: str
    text: str
    priority: str


def alerts_due(authorization: Authorization, used: int, today: date) -> list[Alert]:
    """The alerts an authorization warrants today with `used` units used (the caller raises each
    kind once): expired once its period has ended; ending-soon within 7 days of its end;
    exhausted once every unit is used, units-low at 3 or fewer left."""
    a, due = authorization, []
    label = f"Authorization {a.number} ({a.level.upper()}, ASAM {ASAM_LEVEL[a.level]})"
    remaining = max(a.units - used, 0)
    if today > a.end:
        due.append(
            Alert(
                "expired",
                f"{label} expired on {a.end.isoformat()} with {used} of {a.units} {a.unit} "
                "used: request a continued-stay review or plan the transition",
                "urgent",
            )
        )
    elif (a.end - today).days <= DAYS_BEFORE_END:
        due.append(
            Alert(
                "ending-soon",
                f"{label} ends on {a.end.isoformat()} ({(a.end - today).days} days): request a "
                "continued-stay review",
                "routine",
            )
        )
    if remaining == 0:
        due.append(
            Alert(
                "exhausted",
                f"{label}: all {a.units} {a.unit} used; further sessions are not authorized",
                "urgent",
            )
        )
    elif remaining <= UNITS_REMAINING:
        due.append(
            Alert(
                "units-low",
                f"{label}: {remaining} of {a.units} {a.unit} remain: request a continued-stay "
                "review",
                "routine",
            )
        )
    return due
