"""The C-SSRS screener (Columbia-Suicide Severity Rating Scale, screen version): its six yes/no
items, the risk level they give under the screener's triage rules, and the alert each level
raises. Pure rules, no I/O; sources in docs/clinical-thresholds.md.

Items (past month, except item 6):
1. wish to be dead; 2. non-specific active suicidal thoughts; 3. active ideation with any method,
without intent to act; 4. active ideation with some intent to act, without a specific plan;
5. active ideation with a specific plan and intent; 6. suicidal behaviour (ever done, started or
prepared anything to end one's life), with `6-recent`: was it within the past three months.

Triage: high risk on a yes to item 4 or 5, or to item 6 within the past three months; moderate on
a yes to item 3, or to item 6 longer ago; low on a yes to item 1 or 2 only; none otherwise. Items
3 to 5 are asked only after a yes to item 2, so they may be missing after a no; a yes given anyway
still counts (the higher risk wins). High risk is a crisis (the psychiatrist and therapist at once,
and the safety plan due for review); moderate raises an urgent alert to the same clinicians.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from iopcare.careplan import codes
from iopcare.careplan.domain.monitoring import Alert, Part
from iopcare.kit.errors import FieldViolations

#: The risk measure itself (the program's code system; no LOINC code for the screener's result
#: could be verified) and its items, as components of the Observation.
MEASURE = codes.CSSRS_SCREEN_RISK
ITEMS = codes.CSSRS_ITEMS[:6]
RECENT = codes.CSSRS_ITEMS[6]
ITEM_TEXT = {
    "cssrs-1": "wish to be dead",
    "cssrs-2": "non-specific active suicidal thoughts",
    "cssrs-3": "active suicidal ideation with a method, without intent to act",
    "cssrs-4": "active suicidal ideation with some intent to act",
    "cssrs-5": "active suicidal ideation with a specific plan and intent",
    "cssrs-6": "suicidal behaviour",
    RECENT: "suicidal behaviour within the past three months",
}
#: Answer codes read as yes or no: SNOMED CT Yes/No (qualifier values), the LOINC answers LA33-6
#: Yes and LA32-8 No, and a valueBoolean (read as "true"/"false").
YES = frozenset({"373066001", "LA33-6", "true"})
NO = frozenset({"373067005", "LA32-8", "false"})

#: Whom a C-SSRS alert goes to.
ROLES = ("psychiatrist", "therapist")


class Risk(IntEnum):
    """The screener's risk levels; the measure's value (0-3) is the level."""

    NONE = 0
    LOW = 1
    MODERATE = 2
    HIGH = 3


@dataclass(frozen=True)
class Screen:
    """A screener's answers (True yes, False no; an item not asked is missing)."""

    answers: dict[str, bool]

    def yes(self, item: str) -> bool:
        return self.answers.get(item, False)


def read(
    components: tuple[Part, ...], value: float | None, prefix: str = "fhir_json.Observation."
) -> Screen | None:
    """The answers of a C-SSRS screen Observation (None when it gives only a risk level as its
    value), or InvalidArgument naming each problem: an answer that is not yes or no, an item
    named twice, item 1, 2 or 6 missing, item 6 answered yes without whether it was within the
    past three months, an unknown component, or a value that is not the answers' risk level."""
    problems = FieldViolations()
    if not components:
        if value is None or value not in tuple(Risk):
            problems.add(
                f"{prefix}valueInteger",
                "a C-SSRS screen gives its six answers as components (cssrs-1 to cssrs-6), or "
                "only its risk level 0 (none) to 3 (high)",
            )
        problems.raise_if_any("the C-SSRS screen cannot be recorded")
        return None
    answers: dict[str, bool] = {}
    for i, part in enumerate(components):
        where = f"{prefix}component[{i}]"
        if part.code not in ITEM_TEXT:
            problems.add(f"{where}.code", f"{part.code or 'no code'} is not a C-SSRS screener item")
        elif part.code in answers:
            problems.add(f"{where}.code", f"{part.code} is answered twice")
        elif part.result in YES or part.result in NO:
            answers[part.code] = part.result in YES
        else:
            problems.add(
                f"{where}.value[x]",
                "yes or no: valueBoolean, or valueCodeableConcept SNOMED CT 373066001 Yes / "
                "373067005 No (or LOINC LA33-6 / LA32-8)",
            )
    for item in ("cssrs-1", "cssrs-2", "cssrs-6"):
        if item not in answers and not any(p.code == item for p in components):
            problems.add(f"{prefix}component", f"{item} ({ITEM_TEXT[item]}) must be answered")
    if answers.get("cssrs-6") and RECENT not in answers:
        problems.add(
            f"{prefix}component",
            f"{RECENT}: after a yes to item 6, whether it was within the past three months",
        )
    problems.raise_if_any("the C-SSRS screen cannot be recorded")
    screen = Screen(answers)
    if value is not None and value != risk(screen):
        raise_mismatch(value, risk(screen), prefix)
    return screen


def raise_mismatch(value: float, level: Risk, prefix: str) -> None:
    problems = FieldViolations()
    problems.add(
        f"{prefix}value[x]",
        f"the answers give risk level {int(level)} ({level.name.lower()}), not {value:g}; "
        "leave the value out to have it computed",
    )
    problems.raise_if_any("the C-SSRS screen cannot be recorded")


def risk(screen: Screen) -> Risk:
    """The screener's triage level of these answers (the highest that applies)."""
    recent = screen.yes("cssrs-6") and screen.yes(RECENT)
    if screen.yes("cssrs-4") or screen.yes("cssrs-5") or recent:
        return Risk.HIGH
    if screen.yes("cssrs-3") or screen.yes("cssrs-6"):
        return Risk.MODERATE
    if screen.yes("cssrs-1") or screen.yes("cssrs-2"):
        return Risk.LOW
    return Risk.NONE


def level_of(value: float | None) -> Risk | None:
    """A recorded risk level (the measure's value) as a Risk, None when it is not one."""
    return Risk(int(value)) if value is not None and value in tuple(Risk) else None


def alerts(level: Risk | None, screen: Screen | None = None) -> list[Alert]:
    """What the level raises: high risk a crisis (`urgent`), moderate an alert (`moderate`), both
    to the psychiatrist and the therapist; nothing for low or none."""
    if level is None or level < Risk.MODERATE:
        return []
    endorsed = [ITEM_TEXT[i] for i in (*ITEMS, RECENT) if screen is not None and screen.yes(i)]
    why = f": {', '.join(endorsed)}" if endorsed else ""
    if level == Risk.HIGH:
        return [
            Alert(
                "psychiatric",
                "urgent",
                MEASURE,
                float(level),
                "{risk}",
                f"C-SSRS screen high risk{why}",
                ROLES,
            )
        ]
    return [
        Alert(
            "psychiatric",
            "moderate",
            MEASURE,
            float(level),
            "{risk}",
            f"C-SSRS screen moderate risk{why}",
            ROLES,
        )
    ]
