"""After-hours coverage: the program's on-call roster (set and read over gRPC), routing an urgent
alert raised outside program hours to the clinician on call, and escalating one nobody
acknowledged to the next clinician on the roster (a periodic task).

The crisis path (`crisis.raise_crisis`) calls `Coverage.route` and `Coverage.record`; the rules
(hours, who is on call at an instant, who is next) are `domain.oncall`'s. The clock is
`Coverage.clock`, so tests put the program out of hours without waiting for the night.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from iopcare.kit import audit
from iopcare.kit.access import PRIVILEGED_ROLES, within_launch_context
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import PermissionDenied
from iopcare.notes import codes, once
from iopcare.notes.domain import oncall as rules
from iopcare.notes.domain.messages import NewMessage
from iopcare.notes.posting import append_message, derived_labels
from iopcare.notes.store import flags as flag_store
from iopcare.notes.store import oncall as oncall_store
from iopcare.notes.usecase import UseCase, audited

log = logging.getLogger(__name__)

#: What the roster is called in the audit log (it is the program's, about no patient).
ROSTER = "OnCallRoster"


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(at: datetime) -> datetime:
    """Instants are stored in UTC (SQLite keeps no offset)."""
    return at.astimezone(UTC)


@dataclass
class Coverage:
    """The program's after-hours settings and the clock they are applied with."""

    hours: rules.ProgramHours
    #: Minutes an alert waits for an acknowledgement before the next clinician is sent it.
    escalation_minutes: float = 10.0
    #: How a missed check-in reaches the clinician on call (`rules.MISSED_CHECKIN_RULES`).
    missed_checkin_rule: str = "out-of-hours"
    clock: Callable[[], datetime] = field(default=_now)

    def route(self, uow: UnitOfWork) -> str | None:
        """Who an urgent alert raised now goes to besides the team (None in program hours)."""
        _, shifts, _, _ = oncall_store.current_roster(uow.conn)
        return rules.urgent_route(self.hours, shifts, self.clock())

    def record(self, uow: UnitOfWork, flag_id: str, patient_id: str, clinician: str) -> None:
        """The first step of the alert's route (what escalation continues from)."""
        oncall_store.add_route(uow.conn, flag_id, 0, patient_id, clinician, _utc(self.clock()))

    def for_missed_checkin(self, uow: UnitOfWork) -> str | None:
        """The clinician on call a missed check-in also goes to, per the program's rule."""
        now = self.clock()
        if not rules.missed_checkin_goes_on_call(
            self.missed_checkin_rule, rules.in_program_hours(self.hours, now)
        ):
            return None
        _, shifts, _, _ = oncall_store.current_roster(uow.conn)
        order = rules.on_call_at(shifts, now)
        return order[0] if order else None


@dataclass(frozen=True)
class Roster:
    version: int
    shifts: list[rules.Shift]
    updated_at: datetime | None
    updated_by: str


def escalation_text(minutes: float, previous: str) -> str:
    return (
        f"CRISIS NOT ACKNOWLEDGED within {minutes:g} minutes by {previous} (on call): you are "
        "next on the on-call roster. Contact the patient now and acknowledge the alert."
    )


class OnCall(UseCase):
    """The roster's use cases and the escalation along it."""

    def __init__(
        self,
        db: Database,
        coverage: Coverage,
        *,
        notify_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(db, notify_outbox=notify_outbox)
        self.coverage = coverage

    def _staff_only(self, principal: Principal, action: str, admin: bool) -> None:
        """The roster is the program's: set by an administrator, read by its staff."""
        allowed = principal.role in PRIVILEGED_ROLES or (
            not admin and principal.practitioner_id is not None and principal.role != "patient"
        )
        if principal.role == "service" and admin:
            allowed = False
        if not allowed:
            with self.refusals(principal, action, ROSTER):
                raise PermissionDenied(
                    "the on-call roster is set by a program administrator"
                    if admin
                    else "the on-call roster is for the program's staff",
                    reason="NOT_PROGRAM_STAFF",
                )

    def roster(self) -> Roster:
        with self.db.read() as conn:
            return Roster(*oncall_store.current_roster(conn))

    def get(
        self, principal: Principal, at: datetime | None
    ) -> tuple[Roster, tuple[str, ...], bool]:
        """The roster, who is on call at `at` (now by default) and whether the program is open."""
        self._staff_only(principal, audit.READ, admin=False)
        instant = at or self.coverage.clock()
        roster = self.roster()
        self.audit_access(principal, audit.READ, ROSTER, None, f"version {roster.version}")
        return (
            roster,
            rules.on_call_at(roster.shifts, instant),
            rules.in_program_hours(self.coverage.hours, instant),
        )

    def set(self, principal: Principal, request_id: str, shifts: list[rules.Shift]) -> Roster:
        """Replaces the roster (admin). A repeat of a request (same `request_id`) changes
        nothing again."""
        self._staff_only(principal, audit.UPDATE, admin=True)
        with self.refusals(principal, audit.UPDATE, ROSTER):
            rules.check_roster(shifts)
        ordered = sorted(shifts, key=lambda s: (s.starts, s.ends))

        def _set(uow: UnitOfWork, _placeholder: str) -> str:
            version, _, _, _ = oncall_store.current_roster(uow.conn)
            oncall_store.insert_roster(
                uow.conn, version + 1, ordered, _utc(self.coverage.clock()), principal.reference
            )
            audited(uow, principal, audit.UPDATE, ROSTER, None, f"version {version + 1}")
            return str(version + 1)

        asked = once.Asked(
            principal, "SetOnCallRoster", request_id, {"shifts": oncall_store.shifts_json(ordered)}
        )
        if request_id:
            once.create(self.db, asked, _set)
        else:
            with UnitOfWork(self.db) as uow:
                _set(uow, "")
                uow.commit()
        return self.roster()

    def escalate_due(self, now: datetime | None = None) -> int:
        """Sends every routed alert nobody acknowledged within the setting's minutes to the next
        clinician on the roster (the order in force now, else the one in force when it was last
        sent); each step is claimed once (its key), so replicas and restarts never send it twice.
        Returns how many were sent."""
        now = _utc(now or self.coverage.clock())
        minutes = self.coverage.escalation_minutes
        sent = 0
        with self.db.read() as conn:
            due = [
                alert
                for alert in oncall_store.open_routed_alerts(conn)
                if rules.escalation_due(alert[3], now, minutes)
            ]
        for flag_id, patient_id, step, notified_at in due:
            # One alert per transaction: its thread's lock is held only while it is written.
            with UnitOfWork(self.db) as uow:
                if not oncall_store.lock_open_alert(uow.conn, flag_id):
                    continue  # acknowledged meanwhile
                _, shifts, _, _ = oncall_store.current_roster(uow.conn)
                route = oncall_store.routes(uow.conn, flag_id)
                order = rules.on_call_at(shifts, now) or rules.on_call_at(shifts, notified_at)
                following = rules.next_in_order(order, [r.clinician for r in route])
                if following is None or not oncall_store.add_route(
                    uow.conn, flag_id, step + 1, patient_id, following, now
                ):
                    continue
                flag = flag_store.flags.load(uow.conn, flag_id)
                append_message(
                    uow,
                    NewMessage(
                        patient_id=patient_id,
                        text=escalation_text(minutes, route[-1].clinician),
                        priority="stat",
                        category="crisis",
                        sender=codes.SYSTEM_SENDER,
                        about=(f"Flag/{flag_id}",),
                        recipients=(following,),
                        # As labelled as the alert it escalates (42 CFR 2.12(d)).
                        security=derived_labels(flag.resource) if flag is not None else (),
                    ),
                )
                uow.commit()
                sent += 1
        if sent:
            log.warning("escalated %d unacknowledged alerts along the on-call roster", sent)
            self.notify_outbox()
        return sent


def on_call_basis(
    uow: UnitOfWork, flag_id: str, patient_id: str, principal: Principal
) -> str | None:
    """`on-call` when the alert was routed to the caller along the roster (they may then
    acknowledge it without being on the patient's team), else None. A token pinned to another
    launch patient is refused whatever the basis."""
    if principal.practitioner_id is None or principal.role == "patient":
        return None
    if oncall_store.was_routed(uow.conn, flag_id, principal.reference):
        within_launch_context(principal.patient_limit, patient_id)
        return "on-call"
    return None
