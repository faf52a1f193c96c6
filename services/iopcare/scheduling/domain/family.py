"""Family sessions and adolescents (plain Python, no I/O).

- A family therapy session is an individual session of the patient with family members
  (RelatedPersons careplan recorded for this patient) as participants; each family member's
  attendance is recorded beside the patient's.
- A patient under 18 is at school on school days: the sessions a plan proposes for them start
  after school hours (`SchoolHours`), and their weekly intensity is judged by the adolescent
  program's rule.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from iopcare.kit.errors import FailedPrecondition, FieldViolations, InvalidArgument

from .intensity import ATTENDED

#: At most this many family members in one session.
MAX_FAMILY = 6
AGE_OF_MAJORITY = 18
MISSED = "noshow"


def is_minor(birth: date | None, day: date) -> bool:
    """Under 18 on `day` (an unknown birth date is not a minor)."""
    if birth is None:
        return False
    age = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
    return age < AGE_OF_MAJORITY


def check_family_ids(ids: Sequence[str], problems: FieldViolations, field: str) -> None:
    """The shape of a list of RelatedPerson ids (who they are is checked against the
    projection)."""
    if len(ids) > MAX_FAMILY:
        problems.add(field, f"at most {MAX_FAMILY} family members")
    if len(set(ids)) != len(ids):
        problems.add(field, "the same family member twice")
    for index, ident in enumerate(ids):
        if not (0 < len(ident) <= 64 and all(c.isalnum() or c in "-." for c in ident)):
            problems.add(f"{field}[{index}]", "a RelatedPerson id (1-64 of A-Z a-z 0-9 - .)")


def check_family_known(wanted: Sequence[str], known: Collection[str]) -> None:
    """Every family member named must be a RelatedPerson of the patient (as careplan recorded
    them, and still active)."""
    unknown = [ident for ident in wanted if ident not in known]
    if unknown:
        raise FailedPrecondition(
            f"not a known family member of the patient: {', '.join(unknown)}",
            reason="RELATED_PERSON_UNKNOWN",
            related_persons=",".join(unknown),
        )


def family_attendance(
    present: Sequence[str], attended: Sequence[str], status: str
) -> dict[str, str]:
    """Each family participant's attendance when the session's is `status`: whoever came has
    the session's status, the others missed it. Only a session that took place records it."""
    if not attended and not present:
        return {}
    problems = FieldViolations()
    check_family_ids(attended, problems, "family_attended")
    strangers = [ident for ident in attended if ident not in present]
    if strangers:
        problems.add("family_attended", f"not in this session: {', '.join(strangers)}")
    if attended and status not in ATTENDED:
        problems.add("family_attended", f"only with {', '.join(sorted(ATTENDED))}")
    problems.raise_if_any("the family's attendance cannot be recorded")
    if status not in ATTENDED:
        return {}
    came = set(attended)
    return {ident: status if ident in came else MISSED for ident in present}


@dataclass(frozen=True)
class SchoolHours:
    """When a minor is at school: `days` (0 Monday ... 6 Sunday) until `ends` (local time)."""

    ends: time = time(15, 30)
    days: frozenset[int] = frozenset({0, 1, 2, 3, 4})

    def __post_init__(self) -> None:
        if not self.days <= set(range(7)):
            raise InvalidArgument("school days are 0 (Monday) to 6 (Sunday)")


def after_school(
    start: datetime, end: datetime, zone: ZoneInfo, school: SchoolHours
) -> tuple[datetime, datetime]:
    """A minor's session moved after school: on a school day, a session starting before school
    ends starts when it ends (same length, same day); other sessions stay as they are. Holidays
    are the caller's (the program's closed days are skipped before this)."""
    local = start.astimezone(zone)
    if local.weekday() not in school.days or local.time() >= school.ends:
        return start, end
    moved = datetime.combine(local.date(), school.ends, tzinfo=zone)
    shift: timedelta = moved - local
    return start + shift, end + shift


def program_for(birth: date | None, day: date, asked: str, default: str, minors: str) -> str:
    """The intensity program a patient's week is judged by: the one asked for; else a minor's
    program (adolescent) for a patient under 18 that day; else the default."""
    if asked:
        return asked
    return minors if is_minor(birth, day) else default
