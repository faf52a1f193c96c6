"""The scheduling service's use cases, composed: one object the API, the consumer and the
periodic tasks share. Each part lives in its own module:

- `calendars` (Schedule, Slot), `bookings` (booking, group sessions and seats), `changes`
  (cancelling, moving), `appointment_reads` (get, listings), `attendance`, `checkins`,
  `intensity`, `alerts`;
- `series` (a plan's sessions up to the rolling horizon) and `handlers` (the CarePlan events that
  drive it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

from iopcare.kit import teams
from iopcare.kit.db import Database
from iopcare.scheduling import store
from iopcare.scheduling.alerts import Alerts
from iopcare.scheduling.appointment_reads import Appointments
from iopcare.scheduling.attendance import Attendance
from iopcare.scheduling.bookings import Bookings
from iopcare.scheduling.calendars import Calendars
from iopcare.scheduling.changes import Changes
from iopcare.scheduling.checkins import CheckIns
from iopcare.scheduling.domain.family import SchoolHours
from iopcare.scheduling.domain.intensity import Rule
from iopcare.scheduling.encounter_reads import EncounterReads
from iopcare.scheduling.handlers import PlanEvents
from iopcare.scheduling.intensity import Intensity
from iopcare.scheduling.series import Series


class Scheduling:
    def __init__(
        self,
        db: Database,
        *,
        zone: ZoneInfo,
        horizon: timedelta = timedelta(days=14),
        notify_outbox: Callable[[], None] = lambda: None,
        rules: dict[str, Rule] | None = None,
        default_program: str = "adult",
        holidays: frozenset[date] = frozenset(),
        checkin_cutoff: time = time(10, 0),
        school: SchoolHours | None = None,
    ) -> None:
        self.db = db
        access = teams.TeamAccess(store.care_team_member)
        self.access = access
        self.calendars = Calendars(db, zone=zone, horizon=horizon)
        self.bookings = Bookings(db, self.calendars, access, zone=zone, notify_outbox=notify_outbox)
        self.changes = Changes(self.bookings)
        self.appointments = Appointments(db, access)
        self.encounters = EncounterReads(db, access, zone)
        alerts = Alerts(db, notify_outbox)
        self.attendance = Attendance(db, access, alerts, notify_outbox)
        self.checkins = CheckIns(db, access, alerts, zone, checkin_cutoff)
        self.intensity_rules = Intensity(
            db,
            access,
            alerts,
            zone,
            rules or {"adult": Rule(9, 19), "adolescent": Rule(6)},
            default_program,
        )
        self.series = Series(
            db,
            self.bookings,
            self.attendance,
            zone,
            horizon,
            holidays,
            notify_outbox,
            school or SchoolHours(),
        )
        self.handlers = PlanEvents(self.series, horizon)
        # The entry points, by the names the API, the consumer and the periodic tasks use.
        self.on_care_plan_created = self.handlers.on_care_plan_created
        self.on_care_plan_changed = self.handlers.on_care_plan_changed
        self.on_care_plan_closed = self.handlers.on_care_plan_closed
        self.extend_horizons = self.series.extend_horizons
        self.list_appointments = self.appointments.list_appointments
        self.record_attendance = self.attendance.record_attendance
        self.record_check_in = self.checkins.record_check_in
        self.record_check_in_answers = self.checkins.record_answers
        self.check_in_responses = self.checkins.responses
        self.check_missed_check_ins = self.checkins.check_missed_check_ins
        self.search_encounters = self.encounters.search
        self.export_encounters_csv = self.encounters.export_csv
        self.intensity = self.intensity_rules.intensity
        self.check_intensity = self.intensity_rules.check_intensity
        self.rule = self.intensity_rules.rule
