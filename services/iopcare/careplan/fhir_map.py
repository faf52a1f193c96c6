"""CarePlan FHIR resources to the domain's terms, and back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from iopcare.careplan import codes
from iopcare.careplan.domain import monitoring
from iopcare.careplan.domain.episode import EpisodeState
from iopcare.careplan.domain.measures import Measure, Target
from iopcare.careplan.domain.model import Activity, CarePlanDraft
from iopcare.careplan.domain.review import Review
from iopcare.careplan.domain.team import CareTeamDraft, Member
from iopcare.careplan.domain.utilization import (
    ASAM_EXTENSION,
    ASAM_LEVEL,
    ASAM_LEVEL_NAMES,
    ASAM_LEVEL_SYSTEM,
    AsamRating,
    asam_extension,
)
from iopcare.kit import fhir
from iopcare.kit.teams import as_date


def draft_from_fhir(plan: fhir.Resource, *, fingerprints: bool = False) -> CarePlanDraft:
    """The plan in the domain's terms; `fingerprints` (costly: a serialisation per activity) when
    activities of two versions are compared."""
    subject = getattr(plan, "subject", None)
    patient_id = fhir.reference_id(getattr(subject, "reference", None), "Patient")
    activities = []
    for index, activity in enumerate(getattr(plan, "activity", None) or []):
        detail = activity.detail
        coding = (detail.code.coding or [None])[0] if detail and detail.code else None
        activities.append(
            Activity(
                index=index,
                code=coding.code if coding else None,
                display=(coding.display if coding else None)
                or (detail.code.text if detail and detail.code else None),
                status=detail.status if detail else None,
                has_timing=bool(detail and detail.scheduledTiming),
                fingerprint=fhir.to_json(activity) if fingerprints else "",
            )
        )
    return CarePlanDraft(
        patient_id=patient_id,
        status=getattr(plan, "status", None),
        intent=getattr(plan, "intent", None),
        title=getattr(plan, "title", None),
        activities=activities,
        care_teams=len(getattr(plan, "careTeam", None) or []),
        goals=len(getattr(plan, "goal", None) or []),
    )


def stamp(plan: fhir.Resource, plan_id: str, version: int, updated: datetime) -> str:
    """The stored form: server id and meta (versionId, lastUpdated) set; canonical JSON."""
    return fhir.with_identity(plan, plan_id, version, updated)


def _reference_type(resource: fhir.Resource, reference: str | None) -> str | None:
    """`Practitioner` for `Practitioner/1`, and for `#pr1` the type of the contained `pr1`."""
    if not reference:
        return None
    if reference.startswith("#"):
        for contained in getattr(resource, "contained", None) or []:
            if contained.id == reference[1:]:
                return str(contained.get_resource_type())
        return None
    return reference.split("/")[0]


def team_from_fhir(team: fhir.Resource) -> CareTeamDraft:
    subject = getattr(team, "subject", None)
    members = []
    for index, participant in enumerate(getattr(team, "participant", None) or []):
        role_codes = tuple(
            coding.code
            for concept in (participant.role or [])
            for coding in (concept.coding or [])
            if coding.system == codes.SNOMED and coding.code
        )
        role = next(
            (codes.TEAM_ROLE_BY_CODE[c] for c in role_codes if c in codes.TEAM_ROLE_BY_CODE), None
        )
        period = participant.period
        members.append(
            Member(
                index=index,
                reference=participant.member.reference if participant.member else None,
                role=role,
                reference_type=_reference_type(
                    team, participant.member.reference if participant.member else None
                ),
                role_codes=role_codes,
                period_start=as_date(period.start) if period else None,
                period_end=as_date(period.end) if period else None,
            )
        )
    return CareTeamDraft(
        patient_id=fhir.reference_id(getattr(subject, "reference", None), "Patient"),
        status=getattr(team, "status", None),
        members=members,
    )


def plan_team_ids(plan: fhir.Resource) -> list[tuple[int, str | None]]:
    """(index, CareTeam id) of each careTeam reference of a plan that names a stored team.

    A reference to a CareTeam contained in the plan (`#team`, as HL7's own examples do) names no
    stored team and is left out; any other reference gives None (and is refused).
    """
    result = []
    for index, ref in enumerate(getattr(plan, "careTeam", None) or []):
        if _reference_type(plan, ref.reference) == "CareTeam" and (ref.reference or "").startswith(
            "#"
        ):
            continue
        result.append((index, fhir.reference_id(ref.reference, "CareTeam")))
    return result


def _loinc_code(concept: Any) -> str | None:
    for coding in (concept.coding if concept is not None else None) or []:
        if coding.system == codes.LOINC and coding.code:
            return str(coding.code)
    return None


def _measure_code(concept: Any) -> str | None:
    """The measure a concept names: its LOINC code, or one of our own measures' codes."""
    for coding in (concept.coding if concept is not None else None) or []:
        if coding.system == codes.MEASURE_SYSTEM and coding.code in codes.PROGRAM_CODES:
            return str(coding.code)
    return _loinc_code(concept)


def attendance_observation(patient_id: str, rate: float, counted: int, at: datetime) -> Any:
    """The attendance measure as an R4 Observation (a percentage of the sessions counted)."""
    return fhir.parse_resource(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "activity",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": codes.MEASURE_SYSTEM,
                        "code": codes.ATTENDANCE_RATE,
                        "display": "IOP session attendance",
                    }
                ],
                "text": f"IOP session attendance ({counted} sessions)",
            },
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": fhir.instant(at),
            "valueQuantity": {
                "value": round(rate, 1),
                "unit": "%",
                "system": "http://unitsofmeasure.org",
                "code": "%",
            },
        },
        "Observation",
    )


def _number(element: Any, prefix: str) -> float | None:
    quantity = getattr(element, f"{prefix}Quantity", None)
    if quantity is not None and quantity.value is not None:
        return float(quantity.value)
    integer = getattr(element, f"{prefix}Integer", None)
    return float(integer) if integer is not None else None


def _item_score(component: Any) -> float | None:
    value = _number(component, "value")
    if value is not None:
        return value
    concept = getattr(component, "valueCodeableConcept", None)
    for coding in (concept.coding if concept is not None else None) or []:
        if coding.code in codes.PHQ_ANSWER_SCORES:
            return codes.PHQ_ANSWER_SCORES[coding.code]
    return None


def _unit(element: Any) -> str | None:
    quantity = getattr(element, "valueQuantity", None)
    if quantity is None:
        return None
    unit = quantity.code or quantity.unit
    return str(unit) if unit else None


def _result(element: Any) -> str | None:
    """The SNOMED CT code of a coded result (valueCodeableConcept)."""
    concept = getattr(element, "valueCodeableConcept", None)
    for coding in (concept.coding if concept is not None else None) or []:
        if coding.system == codes.SNOMED and coding.code:
            return str(coding.code)
    return None


def _part(component: Any) -> monitoring.Part:
    return monitoring.Part(
        _measure_code(component.code),
        _number(component, "value"),
        _unit(component),
        _answer(component),
    )


def _answer(component: Any) -> str | None:
    """A component's coded result (SNOMED CT), else a yes/no answer: a LOINC answer code
    (LA33-6 Yes, LA32-8 No) or a valueBoolean as "true"/"false" (C-SSRS items)."""
    found = _result(component)
    if found is not None:
        return found
    flag = getattr(component, "valueBoolean", None)
    if flag is not None:
        return "true" if flag else "false"
    concept = getattr(component, "valueCodeableConcept", None)
    for coding in (concept.coding if concept is not None else None) or []:
        if coding.system == codes.LOINC and coding.code in codes.YES_NO_ANSWERS:
            return str(coding.code)
    return None


def measure_from_fhir(observation: fhir.Resource) -> Measure:
    subject = getattr(observation, "subject", None)
    effective = (
        getattr(observation, "effectiveDateTime", None)
        or getattr(observation, "effectiveInstant", None)
        or (observation.effectivePeriod.start if observation.effectivePeriod else None)
    )
    if isinstance(effective, date) and not isinstance(effective, datetime):
        effective = datetime(effective.year, effective.month, effective.day, tzinfo=UTC)
    elif isinstance(effective, datetime) and effective.tzinfo is None:
        effective = effective.replace(tzinfo=UTC)
    elif not isinstance(effective, datetime):
        effective = None  # a partial date (`2024-02`): not when the measure was taken
    item9 = next(
        (
            _item_score(c)
            for c in getattr(observation, "component", None) or []
            if _loinc_code(c.code) == codes.PHQ9_ITEM9
        ),
        None,
    )
    return Measure(
        patient_id=fhir.reference_id(getattr(subject, "reference", None), "Patient"),
        code=_measure_code(observation.code),
        status=observation.status,
        value=_number(observation, "value"),
        effective=effective,
        item9=item9,
        unit=_unit(observation),
        categories=tuple(
            str(coding.code)
            for concept in getattr(observation, "category", None) or []
            for coding in concept.coding or []
            if coding.code
        ),
        result=_result(observation),
        components=tuple(_part(c) for c in getattr(observation, "component", None) or []),
    )


def goal_targets(goal: fhir.Resource) -> list[Target]:
    targets = []
    for target in getattr(goal, "target", None) or []:
        quantity = target.detailQuantity
        targets.append(
            Target(
                measure=_measure_code(target.measure),
                comparator=quantity.comparator if quantity is not None else None,
                value=float(quantity.value)
                if quantity is not None and quantity.value is not None
                else None,
                due=target.dueDate,
            )
        )
    return targets


def goal_achievement(goal: fhir.Resource) -> str | None:
    concept = getattr(goal, "achievementStatus", None)
    for coding in (concept.coding if concept is not None else None) or []:
        if coding.system == codes.GOAL_ACHIEVEMENT_SYSTEM:
            return str(coding.code)
    return None


def with_achievement(goal: fhir.Resource, achievement: str) -> fhir.Resource:
    """The goal with its achievementStatus set (FHIR goal-achievement)."""
    data = fhir.to_dict(goal)
    data["achievementStatus"] = {
        "coding": [{"system": codes.GOAL_ACHIEVEMENT_SYSTEM, "code": achievement}]
    }
    return fhir.parse_resource(data, "Goal")


def episode_state(episode: fhir.Resource) -> EpisodeState:
    levels: dict[str, str | None] = {"clinical": None, "authorized": None}
    for extension in getattr(episode, "extension", None) or []:
        if extension.url != codes.LEVEL_EXTENSION:
            continue
        for part in extension.extension or []:
            if part.url in levels and part.valueCoding is not None:
                levels[part.url] = part.valueCoding.code
    return EpisodeState(str(episode.status), levels["clinical"], levels["authorized"])


def _level_extension(state: EpisodeState) -> dict[str, Any]:
    """The program's levels, each with its ASAM level beside it (`clinical-asam`, ...)."""
    parts: list[dict[str, Any]] = []
    for name, level in (("clinical", state.clinical_level), ("authorized", state.authorized_level)):
        if not level:
            continue
        parts.append({"url": name, "valueCoding": {"system": codes.LEVEL_SYSTEM, "code": level}})
        if level in ASAM_LEVEL:
            asam = ASAM_LEVEL[level]
            coding = {"system": ASAM_LEVEL_SYSTEM, "code": asam, "display": ASAM_LEVEL_NAMES[asam]}
            parts.append({"url": f"{name}-asam", "valueCoding": coding})
    return {"url": codes.LEVEL_EXTENSION, "extension": parts}


def with_transition(
    episode: fhir.Resource,
    state: EpisodeState,
    now: datetime,
    asam: Sequence[AsamRating] = (),
) -> fhir.Resource:
    """The episode after a transition: status, statusHistory, period and the level extension;
    with `asam` ratings, the decision's ASAM assessment (replacing the previous one: the
    history of versions keeps every decision's).

    The server keeps statusHistory (FHIR: "the history of statuses that the EpisodeOfCare has
    been through"), closing the previous status's period when a new one starts.
    """
    data = fhir.to_dict(episode)
    instant = fhir.instant(now)
    if not data.get("statusHistory"):
        data["statusHistory"] = [{"status": data["status"], "period": {"start": instant}}]
    if state.status != data.get("status"):
        history = list(data.get("statusHistory") or [])
        if history and "end" not in history[-1].get("period", {}):
            history[-1] = {**history[-1], "period": {**history[-1]["period"], "end": instant}}
        history.append({"status": state.status, "period": {"start": instant}})
        data["statusHistory"] = history
        data["status"] = state.status
    period = dict(data.get("period") or {})
    if state.status == "active" and "start" not in period:
        period["start"] = instant
    if state.status in {"finished", "cancelled"}:
        period["end"] = instant
    if period:
        data["period"] = period
    replaced = {codes.LEVEL_EXTENSION, ASAM_EXTENSION} if asam else {codes.LEVEL_EXTENSION}
    others = [e for e in data.get("extension") or [] if e.get("url") not in replaced]
    level = _level_extension(state)
    data["extension"] = [*others, level] if level["extension"] else others
    if asam:
        data["extension"].append(asam_extension(asam, instant))
    if not data["extension"]:
        del data["extension"]
    return fhir.parse_resource(data, "EpisodeOfCare")


def with_plan_status(plan: fhir.Resource, status: str) -> fhir.Resource:
    data = fhir.to_dict(plan)
    data["status"] = status
    return fhir.parse_resource(data, "CarePlan")


def review_due(plan: fhir.Resource) -> date | None:
    for extension in getattr(plan, "extension", None) or []:
        if extension.url == codes.NEXT_REVIEW_EXTENSION and extension.valueDate is not None:
            return extension.valueDate  # type: ignore[no-any-return]
    return None


def with_review_due(plan: fhir.Resource, due: date) -> fhir.Resource:
    """The plan with its next review date (copying the validated model, not validating again)."""
    extension = fhir.element("Extension", url=codes.NEXT_REVIEW_EXTENSION, valueDate=due)
    others = [e for e in plan.extension or [] if e.url != codes.NEXT_REVIEW_EXTENSION]
    return plan.model_copy(update={"extension": [*others, extension]})


def with_review(
    plan: fhir.Resource, review: Review, author: str, due: date, at: datetime
) -> fhir.Resource:
    """The plan after a review: a note saying what was decided and who attested, and the date of
    the next review."""
    signed = ", ".join(
        f"{a.role} {a.practitioner} ({'agrees' if a.agrees else 'disagrees'}"
        f"{': ' + a.comment if a.comment else ''})"
        for a in review.attestations
    )
    data = fhir.to_dict(with_review_due(plan, due))
    # Annotation.author is a Practitioner, Patient, RelatedPerson or Organization reference, or a
    # string: a system identity is named in words.
    by = (
        {"authorReference": {"reference": author}}
        if author.startswith("Practitioner/")
        else {"authorString": author}
    )
    data["note"] = [
        *(data.get("note") or []),
        {
            **by,
            "time": fhir.instant(at),
            "text": f"Plan review {review.reviewed_on.isoformat()} ({review.outcome}): "
            f"{review.summary} Attested by: {signed}.",
        },
    ]
    return fhir.parse_resource(data, "CarePlan")


def plan_episode_refs(plan: fhir.Resource) -> set[str]:
    """The episodes a plan belongs to: its supportingInfo references to EpisodeOfCare."""
    return {
        ref.reference
        for ref in getattr(plan, "supportingInfo", None) or []
        if ref.reference and ref.reference.startswith("EpisodeOfCare/")
    }


def plan_goal_ids(plan: fhir.Resource) -> list[tuple[int, str | None]]:
    """(index, Goal id) of each goal reference of a plan that names a stored goal (contained
    goals left out); None for a reference that is neither."""
    result = []
    for index, ref in enumerate(getattr(plan, "goal", None) or []):
        if _reference_type(plan, ref.reference) == "Goal" and (ref.reference or "").startswith("#"):
            continue
        result.append((index, fhir.reference_id(ref.reference, "Goal")))
    return result


def without_server_elements(episode: fhir.Resource) -> fhir.Resource:
    """A new episode as the client may send it: the server keeps period and statusHistory."""
    data = fhir.to_dict(episode)
    data.pop("period", None)
    data.pop("statusHistory", None)
    return fhir.parse_resource(data, "EpisodeOfCare")


def with_value_integer(observation: fhir.Resource, value: int) -> fhir.Resource:
    """The Observation with `valueInteger` set (a score computed from its components)."""
    data = fhir.to_dict(observation)
    data["valueInteger"] = value
    return fhir.parse_resource(data, "Observation")


def with_alerts(resource_json: str, alerts: list[monitoring.Alert]) -> str:
    """The crisis event's payload: the Observation as stored, with an ALERT_EXTENSION per alert
    (kind, severity, measure, value, unit, reason, the roles to alert). Only the event carries
    them: the stored Observation is the clinical record, as recorded."""
    data = fhir.to_dict(fhir.parse_resource(resource_json, "Observation"))
    data["extension"] = [
        *(data.get("extension") or []),
        *(
            {
                "url": codes.ALERT_EXTENSION,
                "extension": [
                    {"url": "kind", "valueCode": a.kind},
                    {"url": "severity", "valueCode": a.severity},
                    {"url": "measure", "valueCode": a.measure},
                    {"url": "value", "valueDecimal": a.value},
                    {"url": "unit", "valueCode": a.unit},
                    {"url": "reason", "valueString": a.reason},
                    *({"url": "role", "valueCode": role} for role in a.roles),
                ],
            }
            for a in alerts
        ),
    ]
    return fhir.to_json(fhir.parse_resource(data, "Observation"))


def alerts_from_fhir(observation: fhir.Resource) -> list[monitoring.Alert]:
    """The alerts a crisis event's Observation carries (empty for an event without them)."""
    found = []
    for extension in getattr(observation, "extension", None) or []:
        if extension.url != codes.ALERT_EXTENSION:
            continue
        parts: dict[str, Any] = {}
        roles = []
        for part in extension.extension or []:
            value = (
                part.valueCode
                if part.valueCode is not None
                else part.valueString
                if part.valueString is not None
                else part.valueDecimal
            )
            if part.url == "role" and value:
                roles.append(str(value))
            elif value is not None:
                parts[part.url] = value
        found.append(
            monitoring.Alert(
                kind=str(parts.get("kind", "")),
                severity=str(parts.get("severity", "")),
                measure=str(parts.get("measure", "")),
                value=float(parts.get("value", 0)),
                unit=str(parts.get("unit", "")),
                reason=str(parts.get("reason", "")),
                roles=tuple(roles),
            )
        )
    return found
