"""Daily check-ins: a patient checks in each program day; a check-in missing at the cutoff
raises an alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from iopcare.kit import audit, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import NotFound
from iopcare.kit.requests import Asked
from iopcare.scheduling import codes, store
from iopcare.scheduling.alerts import Alerts


@dataclass(eq=False)
class CheckIns:
    db: Database
    access: teams.TeamAccess
    alerts: Alerts
    zone: ZoneInfo
    #: Local time by which a patient with a session that day checks in.
    checkin_cutoff: time

    def record_check_in(
        self,
        principal: Principal,
        patient_id: str,
        now: datetime | None = None,
        *,
        request_id: str = "",
    ) -> tuple[date, datetime, bool, bool]:
        """The patient's check-in for today (local): (day, time, late, already recorded).

        Checking in twice the same day answers with the first check-in. With a `request_id`
        (kit.requests), a retry answers with the day its first attempt checked in for, even
        after midnight, and a different request under the same id is refused."""
        now = now or datetime.now(UTC)
        local_now = now.astimezone(self.zone)
        day = local_now.date()
        late = local_now.time() > self.checkin_cutoff
        with store.JOURNAL.refusals(self.db, principal, audit.CREATE, "CheckIn", patient_id):
            if not request_id:
                with UnitOfWork(self.db) as uow:
                    answer = self._check_in(uow, principal, patient_id, day, now, late)
                    uow.commit()
                return answer
            already = True

            def _create(uow: UnitOfWork, _id: str) -> str:
                nonlocal already
                *_, already = self._check_in(uow, principal, patient_id, day, now, late)
                return day.isoformat()

            asked = Asked(
                store.request_log, principal, "RecordCheckIn", request_id, ("check-in", patient_id)
            )
            first_day, created = asked.create(self.db, _create, day.isoformat)
        with self.db.read() as conn:
            found = store.check_in_of(conn, patient_id, date.fromisoformat(first_day))
        if found is None:  # pragma: no cover - written by this request or its first attempt
            raise NotFound("the check-in was not found")
        return date.fromisoformat(first_day), found[0], found[1], not created or already

    def _check_in(
        self,
        uow: UnitOfWork,
        principal: Principal,
        patient_id: str,
        day: date,
        now: datetime,
        late: bool,
    ) -> tuple[date, datetime, bool, bool]:
        basis = self.access.basis(uow.conn, principal, patient_id)
        at, was_late, already = store.check_in(uow.conn, patient_id, day, now, late)
        store.JOURNAL.audit(
            uow,
            principal,
            audit.CREATE,
            resource="CheckIn",
            patient_id=patient_id,
            detail=f"{day.isoformat()}{' (late)' if was_late else ''}; {basis}",
        )
        return day, at, was_late, already

    def check_missed_check_ins(self, now: datetime | None = None) -> int:
        """After today's cutoff: one missed-check-in alert per patient with a session today and
        no check-in (periodic task, so the team hears within minutes). Returns how many."""
        now = now or datetime.now(UTC)
        local_now = now.astimezone(self.zone)
        if local_now.time() <= self.checkin_cutoff:
            return 0
        day = local_now.date()
        start = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(UTC)
        with self.db.read() as conn:
            missing = store.missing_check_ins(conn, day, start, end)
        text = f"no daily check-in by {self.checkin_cutoff:%H:%M} on {day.isoformat()}"
        return self.alerts.for_patients(
            missing, codes.ALERT_MISSED_CHECKIN, lambda _uow, _p: (day.isoformat(), text), now
        )
