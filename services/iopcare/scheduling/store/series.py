"""Plan series: which plans scheduling carries out, and how far ahead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from iopcare.kit.copying import by_name, from_row
from iopcare.kit.db import as_utc
from iopcare.scheduling.store.tables import (
    plan_series,
)


@dataclass(frozen=True)
class StoredSeries:
    plan_id: str
    patient_id: str
    version: int
    resource: str
    horizon_end: datetime
    active: bool
    started_at: datetime | None = None


def load_series(conn: Connection, plan_id: str) -> StoredSeries | None:
    row = conn.execute(
        select(plan_series).where(plan_series.c.plan_id == plan_id).with_for_update()
    ).first()
    if row is None:
        return None
    return from_row(
        StoredSeries,
        row,
        horizon_end=as_utc(row.horizon_end),
        started_at=as_utc(row.started_at) if row.started_at is not None else None,
    )


def save_series(conn: Connection, s: StoredSeries) -> None:
    values = by_name(s, "patient_id version resource horizon_end active started_at")
    updated = conn.execute(
        plan_series.update().where(plan_series.c.plan_id == s.plan_id).values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(plan_series.insert().values(plan_id=s.plan_id, **values))


def series_due(conn: Connection, before: datetime, limit: int = 500) -> list[str]:
    """Active series whose horizon ends before `before` (they need extending)."""
    return list(
        conn.execute(
            select(plan_series.c.plan_id)
            .where(plan_series.c.active & (plan_series.c.horizon_end < before))
            .order_by(plan_series.c.horizon_end)
            .limit(limit)
        ).scalars()
    )
