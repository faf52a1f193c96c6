"""Medication list and reconciliation (issue 12, part 1): the rules, pure and unit tested.

`careplan/medications.py` stores and serves the list and the reconciliation items under these
rules (docs/medications.md). What they decide:
- a medication (a MedicationStatement, or a MedicationRequest the program prescribes) names its
  drug by RxNorm, with dose, route, frequency and start (and stop) dates;
- only a prescriber (the psychiatrist, or the physician) changes the list or resolves a
  reconciliation item;
- every inbound medication of a handoff is a reconciliation item a prescriber resolves as
  continue, change (with the new dose) or stop, with a reason for change and stop, recorded with
  who and when; items unresolved past the program's deadline (48 h by default) keep the plan
  from being ready and call for a team task;
- a medication for opioid or alcohol use disorder (buprenorphine, methadone, naltrexone, ...)
  identifies the patient as in SUD treatment: it carries the 42 CFR Part 2 label.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from iopcare.kit.errors import FailedPrecondition, FieldViolations, PermissionDenied

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
#: http://hl7.org/fhir/CodeSystem/medication-statement-status (R4).
STATEMENT_STATUSES = frozenset(
    {
        "active",
        "completed",
        "entered-in-error",
        "intended",
        "stopped",
        "on-hold",
        "unknown",
        "not-taken",
    }
)
#: Who changes the medication list and resolves reconciliation items.
PRESCRIBER_ROLES = frozenset({"psychiatrist", "physician"})
CONTINUE, CHANGE, STOP = "continue", "change", "stop"
DECISIONS = (CONTINUE, CHANGE, STOP)
#: How long inbound medications may stay unreconciled (program setting).
DEFAULT_DEADLINE = timedelta(hours=48)
#: RxNorm ingredients of medications for opioid use disorder (RxCUI), and names of those for
#: opioid or alcohol use disorder: a list naming one is a 42 CFR Part 2 record.
PART2_INGREDIENTS = {"1819": "buprenorphine", "6813": "methadone"}
PART2_NAMES = ("buprenorphine", "methadone", "naltrexone", "disulfiram", "acamprosate")
#: The label a Part 2 medication carries: the one the program puts on every record that identifies
#: the patient as in SUD treatment (v3-ActCode ETH, "substance abuse information sensitivity").
PART2_LABEL = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "code": "ETH",
    "display": "substance abuse information sensitivity",
}


@dataclass(frozen=True)
class Medication:
    """One medication as the rules read it (from a MedicationStatement or MedicationRequest)."""

    rxnorm: str | None
    display: str | None
    dose: str | None
    route: str | None
    frequency: str | None
    start: date | None
    stop: date | None = None
    status: str | None = "active"


def check_medication(medication: Medication, prefix: str = "medication.") -> None:
    """InvalidArgument naming each problem of a medication the list would hold."""
    problems = FieldViolations()
    if not medication.rxnorm or not medication.rxnorm.isdigit() or len(medication.rxnorm) > 12:
        problems.add(f"{prefix}code", f"needs an RxNorm coding ({RXNORM}, a numeric RxCUI)")
    if medication.status not in STATEMENT_STATUSES:
        problems.add(f"{prefix}status", f"one of {', '.join(sorted(STATEMENT_STATUSES))}")
    if medication.status in ("active", "intended") and not medication.dose:
        problems.add(f"{prefix}dosage.doseAndRate", "an active medication needs its dose")
    elif medication.dose and not has_unit(medication.dose):
        problems.add(
            f"{prefix}dosage.doseAndRate.doseQuantity.unit",
            "a dose needs its unit (UCUM, e.g. mg)",
        )
    if medication.status == "active" and medication.start is None:
        problems.add(f"{prefix}effectivePeriod.start", "an active medication needs its start")
    if medication.start and medication.stop and medication.stop < medication.start:
        problems.add(f"{prefix}effectivePeriod.end", "a medication stops after it starts")
    problems.raise_if_any("the medication cannot be recorded")


def has_unit(dose: str) -> bool:
    """Whether a dose (`50 mg`) names its unit after the amount."""
    parts = dose.split()
    return len(parts) >= 2 and all(parts[1:])


def require_prescriber(role: str) -> None:
    if role not in PRESCRIBER_ROLES:
        raise PermissionDenied(
            "only a prescriber (the psychiatrist or the physician) changes the medication list",
            reason="NOT_A_PRESCRIBER",
        )


@dataclass(frozen=True)
class Item:
    """An inbound medication to reconcile, and the prescriber's decision once made."""

    id: str
    medication: Medication
    received_at: datetime
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    #: The medication as continued after a change (new dose, route or frequency).
    changed_to: Medication | None = None

    @property
    def resolved(self) -> bool:
        return self.decision is not None


def resolve(
    item: Item,
    decision: str,
    *,
    role: str,
    by: str,
    at: datetime,
    reason: str = "",
    changed_to: Medication | None = None,
) -> Item:
    """The item resolved by a prescriber. Resolving it again the same way changes nothing (a
    retry); another decision on a resolved item is refused (a new change goes on the list)."""
    require_prescriber(role)
    problems = FieldViolations()
    if decision not in DECISIONS:
        problems.add("decision", "continue, change or stop")
    if decision in (CHANGE, STOP) and not reason.strip():
        problems.add("reason", f"a {decision} needs its reason")
    if decision == CHANGE:
        if changed_to is None:
            problems.add("changed_to", "a change needs the medication as it continues")
        else:
            check_medication(changed_to, "changed_to.")
    elif changed_to is not None:
        problems.add("changed_to", "only a change names a new medication")
    if len(reason) > 1000:
        problems.add("reason", "at most 1,000 characters")
    problems.raise_if_any("the reconciliation decision is invalid")
    if decision == CONTINUE and not item.resolved:
        # Continued as received, it goes on the list as it is: it must be a medication the list
        # may hold (an inbound one without RxNorm or dose is resolved as a change instead).
        check_medication(
            replace(item.medication, status="active", start=item.medication.start or at.date()),
            "medication.",
        )
    if item.resolved:
        if (item.decision, item.changed_to) == (decision, changed_to):
            return item
        raise FailedPrecondition(
            f"the item was already resolved ({item.decision}) by {item.decided_by}",
            reason="ALREADY_RECONCILED",
        )
    return replace(
        item,
        decision=decision,
        decided_by=by,
        decided_at=at,
        reason=reason.strip() or None,
        changed_to=changed_to,
    )


def overdue(items: list[Item], now: datetime, deadline: timedelta = DEFAULT_DEADLINE) -> list[Item]:
    """Items still unresolved past the deadline: the plan is not ready, the team gets a task."""
    return [i for i in items if not i.resolved and now - i.received_at > deadline]


def reconciliation_status(
    items: list[Item], now: datetime, deadline: timedelta = DEFAULT_DEADLINE
) -> str:
    """`reconciled` (nothing pending), `pending` (within the deadline) or `overdue`."""
    if all(i.resolved for i in items):
        return "reconciled"
    return "overdue" if overdue(items, now, deadline) else "pending"


def active_list(items: list[Item]) -> list[Medication]:
    """The medications the patient takes after reconciliation: continued ones as received,
    changed ones as changed, stopped and unresolved ones left out."""
    result = []
    for item in items:
        if item.decision == CONTINUE:
            result.append(item.medication)
        elif item.decision == CHANGE and item.changed_to is not None:
            result.append(item.changed_to)
    return result


def is_part2(medication: Medication) -> bool:
    """A medication for opioid or alcohol use disorder: a 42 CFR Part 2 record."""
    if medication.rxnorm in PART2_INGREDIENTS:
        return True
    name = (medication.display or "").lower()
    return any(n in name for n in PART2_NAMES)
