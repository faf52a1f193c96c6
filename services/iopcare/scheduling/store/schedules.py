"""Schedules: one calendar per practitioner or room."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from iopcare.kit.copying import by_name, from_row
from iopcare.scheduling.store.tables import (
    schedule,
)


@dataclass(frozen=True)
class StoredSchedule:
    id: str
    version: int
    actor: str
    kind: str
    role: str | None
    service_types: tuple[str, ...]
    capacity: int
    hours: tuple[tuple[str, str, str], ...]
    closed_dates: tuple[str, ...]
    active: bool
    resource: str

    @property
    def subject(self) -> str:
        """The event subject of this version."""
        return f"Schedule/{self.id}/_history/{self.version}"


def _schedule_from_row(row: Any) -> StoredSchedule:
    return from_row(
        StoredSchedule,
        row,
        service_types=tuple(row.service_types.split()),
        hours=tuple(tuple(h) for h in json.loads(row.hours)),
        closed_dates=tuple(json.loads(row.closed_dates)),
    )


def _schedule_values(s: StoredSchedule) -> dict[str, Any]:
    return {
        **by_name(s, "actor kind role capacity active version resource"),
        "service_types": f" {' '.join(s.service_types)} ",
        "hours": json.dumps([list(h) for h in s.hours]),
        "closed_dates": json.dumps(list(s.closed_dates)),
        "updated_at": datetime.now(UTC),
    }


def insert_schedule(conn: Connection, s: StoredSchedule) -> None:
    conn.execute(schedule.insert().values(id=s.id, **_schedule_values(s)))


def update_schedule(conn: Connection, s: StoredSchedule, expected_version: int) -> bool:
    updated = conn.execute(
        schedule.update()
        .where((schedule.c.id == s.id) & (schedule.c.version == expected_version))
        .values(**_schedule_values(s))
    )
    return updated.rowcount == 1


def load_schedule(conn: Connection, schedule_id: str) -> StoredSchedule | None:
    row = conn.execute(select(schedule).where(schedule.c.id == schedule_id)).first()
    return _schedule_from_row(row) if row is not None else None


def schedule_of(conn: Connection, actor: str) -> StoredSchedule | None:
    row = conn.execute(select(schedule).where(schedule.c.actor == actor)).first()
    return _schedule_from_row(row) if row is not None else None


def find_schedules(
    conn: Connection,
    *,
    schedule_id: str = "",
    actor: str = "",
    kind: str = "",
    role: str = "",
    service_type: str = "",
    active_only: bool = False,
    after_id: str = "",
    limit: int = 1000,
) -> list[StoredSchedule]:
    query = select(schedule)
    if schedule_id:
        query = query.where(schedule.c.id == schedule_id)
    if actor:
        query = query.where(schedule.c.actor == actor)
    if kind:
        query = query.where(schedule.c.kind == kind)
    if role:
        query = query.where(schedule.c.role == role)
    if service_type:
        # Codes are validated to contain no spaces or wildcards, so this matches whole codes only.
        query = query.where(schedule.c.service_types.like(f"% {service_type} %"))
    if active_only:
        query = query.where(schedule.c.active)
    if after_id:
        query = query.where(schedule.c.id > after_id)
    rows = conn.execute(query.order_by(schedule.c.id).limit(limit)).all()
    return [_schedule_from_row(row) for row in rows]
