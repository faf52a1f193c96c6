"""Program intensity: scheduled and attended hours per ISO week against the program's rule,
and the weekly below-minimum alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from iopcare.kit import fhir, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    FieldViolation,
    FieldViolations,
    InvalidArgument,
)
from iopcare.scheduling import codes, store
from iopcare.scheduling.alerts import Alerts
from iopcare.scheduling.checks import search_refusals
from iopcare.scheduling.domain.calendar import EARLIEST, LATEST
from iopcare.scheduling.domain.family import program_for
from iopcare.scheduling.domain.intensity import (
    Rule,
    Session,
    Week,
    missed_in_a_row,
    week_start,
    weekly,
)

#: Missed sessions in a row that make a dropout risk.
MISSED_IN_A_ROW = 2
MAX_INTENSITY_RANGE = timedelta(days=371)


def sessions_of(rows: list[tuple[str, datetime, datetime, str | None, bool, str]]) -> list[Session]:
    """The patient's sessions as the intensity rules see them (store.patient_sessions rows)."""
    return [
        Session(start, end, attendance, cancelled)
        for _, start, end, attendance, cancelled, _ in rows
    ]


@dataclass(eq=False)
class Intensity:
    db: Database
    access: teams.TeamAccess
    alerts: Alerts
    zone: ZoneInfo
    rules: dict[str, Rule]
    default_program: str
    #: The program a patient under 18 is judged by when none is asked for (if it has a rule).
    minors_program: str = "adolescent"

    def rule(self, program: str) -> Rule:
        found = self.rules.get(program or self.default_program)
        if found is None:
            raise InvalidArgument(
                f"no intensity rule for program {program!r}",
                [FieldViolation("program", f"one of {', '.join(sorted(self.rules))}")],
            )
        return found

    def intensity(
        self, principal: Principal, patient_id: str, first: str, last: str, program: str
    ) -> tuple[list[Week], bool]:
        with search_refusals(self.db, principal, patient_id):
            problems = FieldViolations()
            if not fhir.is_valid_id(patient_id):
                problems.add("patient_id", "1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")
            days: list[date] = []
            for field_name, text in (("start_date", first), ("end_date", last)):
                try:
                    day = date.fromisoformat(text)
                except ValueError:
                    problems.add(field_name, "a date YYYY-MM-DD")
                    continue
                if not EARLIEST.date() <= day < LATEST.date():
                    # Weeks are computed around the range: year 9999 would overflow into INTERNAL.
                    problems.add(field_name, f"between {EARLIEST.year} and {LATEST.year - 1}")
                    continue
                days.append(day)
            if len(days) == 2 and not days[0] <= days[1] <= days[0] + MAX_INTENSITY_RANGE:
                problems.add(
                    "end_date", f"on or after start_date, at most {MAX_INTENSITY_RANGE.days} days"
                )
            problems.raise_if_any("the intensity request is invalid")
            if program:
                self.rule(program)  # an unknown program is refused before anything is read
        start = datetime.combine(week_start(days[0]), time(0), tzinfo=self.zone)
        end = datetime.combine(week_start(days[1]) + timedelta(days=7), time(0), tzinfo=self.zone)
        rows = teams.audited_search(
            self.db,
            store.audit_log,
            self.access,
            principal,
            "Appointment",
            patient_id,
            lambda conn: store.patient_sessions(
                conn, patient_id, start.astimezone(UTC), end.astimezone(UTC)
            ),
        )
        sessions = sessions_of(rows)
        now = datetime.now(UTC)
        with self.db.read() as conn:  # the same patient, access checked and audited above
            admitted = self._admitted(conn, patient_id)
            rule = self._rule_of(conn, patient_id, program, days[1])
        weeks = weekly(sessions, days[0], days[1], rule, self.zone, now, admitted=admitted)
        return weeks, missed_in_a_row(sessions, MISSED_IN_A_ROW)

    def _rule_of(self, conn: Connection, patient_id: str, program: str, day: date) -> Rule:
        """The rule asked for; else the adolescent rule for a patient under 18 on `day` (when the
        program has one); else the default program's."""
        minors = self.minors_program if self.minors_program in self.rules else ""
        birth = store.family.birth_date(conn, patient_id) if minors else None
        return self.rule(program_for(birth, day, program, self.default_program, minors))

    def _admitted(self, conn: Connection, patient_id: str) -> date | None:
        first = store.first_session_start(conn, patient_id)
        return first.astimezone(self.zone).date() if first is not None else None

    def check_intensity(self, now: datetime | None = None) -> int:
        """Raises the below-minimum alert for every patient whose last ended ISO week fell short
        of the default program's minimum (once per patient and week); returns how many."""
        now = now or datetime.now(UTC)
        self.rule(self.default_program)  # a misconfigured default fails loudly
        this_monday = week_start(now.astimezone(self.zone).date())
        monday = this_monday - timedelta(days=7)
        start = datetime.combine(monday, time(0), tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(this_monday, time(0), tzinfo=self.zone).astimezone(UTC)
        with self.db.read() as conn:
            patients = store.patients_with_sessions(conn, start, end)

        def below_minimum(uow: UnitOfWork, patient_id: str) -> tuple[str, str] | None:
            rule = self._rule_of(uow.conn, patient_id, "", monday)
            sessions = sessions_of(store.patient_sessions(uow.conn, patient_id, start, end))
            admitted = self._admitted(uow.conn, patient_id)
            week = weekly(sessions, monday, monday, rule, self.zone, now, admitted=admitted)[0]
            if not week.below_minimum:
                return None
            return week.label, (
                f"{week.label}: attended {week.attended_hours:g} h, below the program's "
                f"minimum of {rule.minimum:g} h a week"
            )

        return self.alerts.for_patients(patients, codes.ALERT_BELOW_MINIMUM, below_minimum, now)
