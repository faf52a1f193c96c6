"""Measurement-based care: what a recorded measure means for the patient's safety and goals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from iopcare.careplan import codes
from iopcare.careplan.domain import cssrs, monitoring
from iopcare.careplan.domain.model import require_subject
from iopcare.kit.errors import FieldViolations


@dataclass(frozen=True)
class Measure:
    """A recorded outcome measure (an Observation), reduced to what the rules look at."""

    patient_id: str | None
    code: str | None
    status: str | None
    value: float | None
    effective: datetime | None
    #: PHQ-9 item 9 score (0-3) when the questionnaire's items were recorded.
    item9: float | None = None
    #: The value's UCUM unit (valueQuantity.code, else its unit text).
    unit: str | None = None
    #: Observation.category codes (vital-signs, laboratory, survey, ...).
    categories: tuple[str, ...] = ()
    #: A coded result (valueCodeableConcept: its SNOMED CT code, e.g. positive or negative).
    result: str | None = None
    #: A panel's components (a blood pressure's systolic and diastolic; PHQ-9 items).
    components: tuple[monitoring.Part, ...] = ()


@dataclass(frozen=True)
class Target:
    """A goal's target: a LOINC measure, a comparator and a value to reach, by a due date."""

    measure: str | None
    comparator: str | None
    value: float | None
    due: date | None = None


def check_measure(measure: Measure, prefix: str = "fhir_json.Observation.") -> None:
    problems = FieldViolations()
    require_subject(measure.patient_id, prefix, problems)
    if measure.status not in codes.MEASURE_STATUSES:
        problems.add(f"{prefix}status", f"one of {', '.join(sorted(codes.MEASURE_STATUSES))}")
    if not measure.code:
        problems.add(f"{prefix}code", "needs a LOINC coding (http://loinc.org)")
    elif len(measure.code) > 32:
        problems.add(f"{prefix}code", "a LOINC code has at most 32 characters")
    if (
        measure.value is None
        and measure.item9 is None
        and measure.result is None
        and not measure.components
    ):
        problems.add(
            f"{prefix}value[x]",
            "needs valueQuantity, valueInteger or valueCodeableConcept, or components",
        )
    if measure.effective is None:
        problems.add(
            f"{prefix}effective[x]", "needs a full effectiveDateTime (when it was measured)"
        )
    if (
        measure.code == codes.PHQ9_TOTAL
        and measure.value is not None
        and not 0 <= measure.value <= 27
    ):
        problems.add(f"{prefix}valueQuantity", "a PHQ-9 total is between 0 and 27")
    if measure.item9 is not None and measure.item9 not in (0, 1, 2, 3):
        problems.add(f"{prefix}component", "a PHQ-9 item scores 0, 1, 2 or 3")
    problems.raise_if_any("the measure cannot be recorded")


def reading(measure: Measure, prefix: str = "fhir_json.Observation.") -> monitoring.Reading | None:
    """A monitoring measure (vital sign, lab, withdrawal scale, drug screen) in canonical units,
    None for any other measure; InvalidArgument when it cannot be read (unknown code, a unit that
    does not convert, a panel missing a component)."""
    if measure.code == cssrs.MEASURE:
        return None  # a screen's items are read by `screening`
    return monitoring.read(
        measure.code,
        measure.categories,
        monitoring.Part(measure.code, measure.value, measure.unit, measure.result),
        measure.components,
        prefix,
    )


def screening(
    measure: Measure, prefix: str = "fhir_json.Observation."
) -> tuple[float | None, list[monitoring.Alert]]:
    """A C-SSRS screen's risk level (its answers' triage level, or the level recorded as its
    value) and the alerts it raises; (None, []) for any other measure. InvalidArgument when the
    answers cannot be read (domain/cssrs.py)."""
    if measure.code != cssrs.MEASURE:
        return None, []
    screen = cssrs.read(measure.components, measure.value, prefix)
    level = cssrs.risk(screen) if screen is not None else cssrs.level_of(measure.value)
    return (float(level) if level is not None else None), cssrs.alerts(level, screen)


def crisis_reasons(measure: Measure) -> list[str]:
    """Why this measure is a crisis (empty when it is not).

    PHQ-9 item 9 asks about thoughts of self-harm; any answer above "not at all" is a warning sign
    that must reach the psychiatrist at once, as is a total in the severe range (20-27).
    """
    if measure.code != codes.PHQ9_TOTAL:
        return []
    reasons = []
    if measure.item9 is not None and measure.item9 > 0:
        reasons.append(f"PHQ-9 item 9 (thoughts of self-harm) scored {measure.item9:g}")
    if measure.value is not None and measure.value >= codes.PHQ9_SEVERE:
        reasons.append(f"PHQ-9 total {measure.value:g} (severe)")
    return reasons


def _meets(value: float, comparator: str | None, target: float) -> bool:
    return {
        "<": value < target,
        "<=": value <= target,
        ">": value > target,
        ">=": value >= target,
    }.get(comparator or "", value == target)


def achievement(target: Target, history: list[float]) -> str | None:
    """The goal-achievement code after the latest of `history` (oldest first).

    `achieved` once the target is met; otherwise the trend of the last two values, read in the
    target's direction (a comparator `<` means lower is better: a falling PHQ-9 is improving).
    """
    if not history or target.value is None:
        return None
    latest = history[-1]
    if _meets(latest, target.comparator, target.value):
        return "achieved"
    if len(history) < 2:
        return "in-progress"
    if target.comparator in ("<", "<="):
        lower_is_better = True
    elif target.comparator in (">", ">="):
        lower_is_better = False
    else:
        lower_is_better = target.value < history[0]
    delta = latest - history[-2]
    if delta == 0:
        return "no-change"
    return "improving" if (delta < 0) == lower_is_better else "worsening"
