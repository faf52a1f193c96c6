"""Calendars and free slots: the service layer of Schedule and Slot."""

from __future__ import annotations

import heapq
import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from iopcare.kit import audit, paging
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    AlreadyExists,
    FieldViolations,
    NotFound,
    PermissionDenied,
    StaleVersion,
    must_exist,
)
from iopcare.kit.requests import Asked
from iopcare.scheduling import codes, fhir_map, store
from iopcare.scheduling.domain.calendar import (
    MAX_SLOT_MINUTES,
    MAX_SLOT_RANGE,
    MIN_SLOT_MINUTES,
    Calendar,
    Interval,
    check_calendar,
    check_range,
    slots,
    subtract,
)

#: Who may create and change calendars: they decide when clinicians can be booked.
CALENDAR_ADMINS = frozenset({"admin", "case-manager", "system", "service"})
#: Session type and role codes: no spaces or LIKE wildcards (see store.find_schedules).
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,63}$")
UPDATABLE = frozenset(
    {"opening_hours", "closed_dates", "capacity", "role", "service_types", "active"}
)


@dataclass(frozen=True)
class CalendarInput:
    """A calendar as the API sends it (text times and dates, validated here)."""

    actor: str
    kind: str
    role: str
    service_types: tuple[str, ...]
    capacity: int
    hours: tuple[tuple[str, str, str], ...]
    closed_dates: tuple[str, ...]
    active: bool


@dataclass(frozen=True)
class FoundSlot:
    schedule_id: str
    actor: str
    interval: Interval
    appointment_id: str = ""
    seats_left: int = 0


def require_calendar_admin(principal: Principal) -> None:
    if principal.role not in CALENDAR_ADMINS:
        raise PermissionDenied(
            "only administrators and case managers manage calendars", reason="NOT_CALENDAR_ADMIN"
        )


def validate(value: CalendarInput, problems: FieldViolations) -> Calendar:
    calendar = check_calendar(
        value.kind, value.actor, value.capacity, value.hours, value.closed_dates, problems
    )
    if value.role and not CODE.match(value.role):
        problems.add("schedule.role", "a code of letters, digits, '.' and '-'")
    if value.kind == "room" and value.role:
        problems.add("schedule.role", "only practitioner calendars have a role")
    for i, code in enumerate(value.service_types):
        if not CODE.match(code):
            problems.add(f"schedule.service_types[{i}]", "a code of letters, digits, '.' and '-'")
    if len(value.service_types) > 20:
        problems.add("schedule.service_types", "at most 20")
    if len(value.closed_dates) > 1000:
        problems.add("schedule.closed_dates", "at most 1000")
    if len(value.hours) > 50:
        problems.add("schedule.opening_hours", "at most 50")
    return calendar


def _journal(
    uow: UnitOfWork,
    principal: Principal,
    event: str,
    action: str,
    schedule: store.StoredSchedule,
    detail: str | None = None,
) -> None:
    """A calendar's change in `uow`: its event and its audit row. A calendar is nobody's health
    record: its events are keyed by its actor, so its versions stay in order on one partition."""
    store.JOURNAL.publish(uow, event, schedule.subject, key=schedule.actor, data=schedule.resource)
    store.JOURNAL.audit(
        uow, principal, action, resource=f"Schedule/{schedule.id}", patient_id=None, detail=detail
    )


class Calendars:
    def __init__(self, db: Database, *, zone: ZoneInfo, horizon: timedelta) -> None:
        self.db = db
        self.zone = zone
        self.horizon = horizon
        #: Parsed calendars by (schedule id, version): FindSlots must not re-parse hours each call.
        self._parsed: dict[tuple[str, int], Calendar] = {}

    def calendar(self, s: store.StoredSchedule) -> Calendar:
        key = (s.id, s.version)
        found = self._parsed.get(key)
        if found is None:
            found = check_calendar(
                s.kind, s.actor, s.capacity, s.hours, s.closed_dates, FieldViolations()
            )
            if len(self._parsed) > 10_000:
                self._parsed.clear()
            self._parsed[key] = found
        return found

    def _resource(self, s: store.StoredSchedule, at: datetime) -> str:
        return fhir_map.schedule_resource(
            s.id,
            s.version,
            s.actor,
            s.kind,
            s.role,
            s.service_types,
            s.capacity,
            s.active,
            at + self.horizon,
            at,
        )

    def create(
        self, principal: Principal, request_id: str, value: CalendarInput
    ) -> store.StoredSchedule:
        with store.JOURNAL.refusals(self.db, principal, audit.CREATE, "Schedule"):
            require_calendar_admin(principal)
            problems = FieldViolations()
            validate(value, problems)
            problems.raise_if_any("the schedule is invalid")

            def _create(uow: UnitOfWork, schedule_id: str) -> None:
                if store.schedule_of(uow.conn, value.actor) is not None:
                    raise AlreadyExists(
                        f"{value.actor} already has a schedule", reason="SCHEDULE_EXISTS"
                    )
                now = datetime.now(UTC)
                stored = store.StoredSchedule(
                    schedule_id,
                    1,
                    value.actor,
                    value.kind,
                    value.role or None,
                    value.service_types,
                    value.capacity,
                    value.hours,
                    value.closed_dates,
                    value.active,
                    "",
                )
                stored = replace(stored, resource=self._resource(stored, now))
                try:
                    store.insert_schedule(uow.conn, stored)
                except IntegrityError:
                    # Created meanwhile by a concurrent request (the actor is unique): the same
                    # answer as when it was there before; the transaction is rolled back.
                    raise AlreadyExists(
                        f"{value.actor} already has a schedule", reason="SCHEDULE_EXISTS"
                    ) from None
                _journal(uow, principal, codes.EVENT_SCHEDULE_CREATED, audit.CREATE, stored)

            asked = Asked(store.request_log, principal, "CreateSchedule", request_id, value)
            schedule_id, _ = asked.create(self.db, _create, lambda: str(uuid.uuid4()))
        return self.get(schedule_id)

    def update(
        self,
        principal: Principal,
        schedule_id: str,
        expected_version: int,
        value: CalendarInput,
        mask: list[str],
        *,
        request_id: str = "",
    ) -> store.StoredSchedule:
        """Changes the fields named in `mask` if `expected_version` is current. Idempotent by
        `request_id` (kit.requests); without one, the expected version guards a repeat."""
        name = f"Schedule/{schedule_id}"
        with store.JOURNAL.refusals(self.db, principal, audit.UPDATE, name):
            require_calendar_admin(principal)
            problems = FieldViolations()
            unknown = [p for p in mask if p not in UPDATABLE]
            if not mask:
                problems.add(
                    "update_mask", f"name the fields to change: {', '.join(sorted(UPDATABLE))}"
                )
            for p in unknown:
                problems.add("update_mask", f"{p} cannot be changed")
            if expected_version < 1:
                problems.add("expected_version", "required, >= 1")
            problems.raise_if_any("the schedule update is invalid")
            body = ("update", schedule_id, expected_version, value, sorted(mask))
            asked = Asked(store.request_log, principal, "UpdateSchedule", request_id, body)
            asked.change(
                self.db,
                schedule_id,
                lambda uow: self._update_in(uow, principal, name, expected_version, value, mask),
            )
        return self.get(schedule_id)

    def _update_in(
        self,
        uow: UnitOfWork,
        principal: Principal,
        name: str,
        expected_version: int,
        value: CalendarInput,
        mask: list[str],
    ) -> None:
        schedule_id = name.split("/", 1)[1]
        problems = FieldViolations()
        current = store.load_schedule(uow.conn, schedule_id)
        if current is None:
            raise NotFound(f"{name} not found", resource=name)
        if current.version != expected_version:
            raise StaleVersion(name, expected_version, current.version)
        merged = CalendarInput(
            actor=current.actor,
            kind=current.kind,
            role=value.role if "role" in mask else (current.role or ""),
            service_types=value.service_types if "service_types" in mask else current.service_types,
            capacity=value.capacity if "capacity" in mask else current.capacity,
            hours=value.hours if "opening_hours" in mask else current.hours,
            closed_dates=value.closed_dates if "closed_dates" in mask else current.closed_dates,
            active=value.active if "active" in mask else current.active,
        )
        validate(merged, problems)
        problems.raise_if_any("the schedule is invalid")
        now = datetime.now(UTC)
        revised = store.StoredSchedule(
            schedule_id,
            current.version + 1,
            merged.actor,
            merged.kind,
            merged.role or None,
            merged.service_types,
            merged.capacity,
            merged.hours,
            merged.closed_dates,
            merged.active,
            "",
        )
        revised = replace(revised, resource=self._resource(revised, now))
        if not store.update_schedule(uow.conn, revised, expected_version):
            raise StaleVersion(name, expected_version, current.version + 1)
        _journal(
            uow,
            principal,
            codes.EVENT_SCHEDULE_UPDATED,
            audit.UPDATE,
            revised,
            ",".join(sorted(mask)),
        )

    def get(self, schedule_id: str) -> store.StoredSchedule:
        with self.db.read() as conn:
            return must_exist(store.load_schedule(conn, schedule_id), f"Schedule/{schedule_id}")

    def list_schedules(
        self,
        *,
        actor: str,
        kind: str,
        role: str,
        service_type: str,
        page_size: int,
        page_token: str,
    ) -> tuple[list[store.StoredSchedule], str]:
        size = paging.page_size(page_size)
        position = paging.decode(page_token, {"id": str})
        with self.db.read() as conn:
            items = store.find_schedules(
                conn,
                actor=actor,
                kind=kind,
                role=role,
                service_type=service_type,
                after_id=position["id"] if position else "",
                limit=size + 1,
            )
        token = ""
        if len(items) > size:
            items = items[:size]
            token = paging.encode({"id": items[-1].id})
        return items, token

    # Slots ------------------------------------------------------------------------------------
    def find_slots(
        self,
        *,
        schedule_id: str,
        actor: str,
        role: str,
        service_type: str,
        start: datetime | None,
        end: datetime | None,
        duration_minutes: int,
        page_size: int,
    ) -> tuple[list[FoundSlot], bool]:
        """Free slots of the selected calendars, earliest first, and whether there were more.

        Computed, not stored: opening hours minus holidays minus the actors' bookings read in one
        transaction. A slot offered here can still be taken before the caller books it; the
        booking itself is what the database guards (docs/decisions/0007).
        """
        problems = FieldViolations()
        selectors = [x for x in (schedule_id, actor, role, service_type) if x]
        if len(selectors) != 1:
            problems.add("schedule_id", "exactly one of schedule_id, actor, role, service_type")
        for field_name, value in (("role", role), ("service_type", service_type)):
            if value and not CODE.match(value):
                problems.add(field_name, "a code of letters, digits, '.' and '-'")
        minutes = duration_minutes or 60
        if not MIN_SLOT_MINUTES <= minutes <= MAX_SLOT_MINUTES:
            problems.add("duration_minutes", f"{MIN_SLOT_MINUTES} to {MAX_SLOT_MINUTES} minutes")
        wanted = check_range(start, end, problems, longest=MAX_SLOT_RANGE)
        size = paging.page_size(page_size)
        problems.raise_if_any("the slot search is invalid")
        assert wanted is not None
        length = timedelta(minutes=minutes)
        with self.db.read() as conn:
            schedules = store.find_schedules(
                conn,
                schedule_id=schedule_id,
                actor=actor,
                role=role,
                kind="practitioner" if role else "",
                service_type=service_type,
                active_only=True,
            )
            if not schedules and (schedule_id or actor):
                what = f"Schedule/{schedule_id}" if schedule_id else f"the schedule of {actor}"
                raise NotFound(f"{what} not found (or not active)")
            actors = [s.actor for s in schedules]
            busy = store.busy_in_range(conn, actors, wanted.start, wanted.end)
            rooms = [s.actor for s in schedules if s.kind == "room"]
            groups = (
                store.open_group_sessions(conn, rooms, wanted.start, wanted.end) if rooms else []
            )
        streams = self._slot_streams(schedules, busy, groups, wanted, length)
        # Each stream is in start order: merging lazily stops after one page, so a search over
        # 50 calendars and a quarter costs a page, not every slot of the quarter.
        merged = itertools.islice(heapq.merge(*streams, key=lambda t: (t[0], t[1])), size + 1)
        found = [item[2] for item in merged]
        return found[:size], len(found) > size

    def _slot_streams(
        self,
        schedules: list[store.StoredSchedule],
        busy: dict[str, list[tuple[datetime, datetime]]],
        groups: list[tuple[str, store.StoredAppointment]],
        wanted: Interval,
        length: timedelta,
    ) -> list[Iterator[tuple[datetime, int, FoundSlot]]]:
        """One lazy stream of (start, order, slot) per calendar, and one of the open group
        sessions, each in start order."""
        by_actor = {s.actor: s for s in schedules}
        streams: list[Iterator[tuple[datetime, int, FoundSlot]]] = []
        for order, s in enumerate(schedules):
            free = subtract(
                self.calendar(s).open_intervals(wanted.start, wanted.end, self.zone),
                (Interval(b, e) for b, e in busy[s.actor]),
            )
            streams.append(
                (i.start, order, FoundSlot(s.id, s.actor, i)) for i in slots(free, length)
            )
        streams.append(
            (
                (
                    session.start,
                    -1,
                    FoundSlot(
                        by_actor[room].id,
                        room,
                        Interval(session.start, session.end),
                        session.id,
                        session.capacity - session.seats_taken,
                    ),
                )
                for room, session in groups
            )
        )
        return streams
