"""Alerts already raised, so each is raised once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from iopcare.scheduling.store.tables import (
    alert_raised,
)


def raise_alert_once(conn: Connection, patient_id: str, kind: str, about: str) -> bool:
    """Records that an alert was raised; False if it had been (the caller then emits nothing).

    ON CONFLICT DO NOTHING: two places raising the same alert at once (two no-shows recorded
    together, two replicas' periodic checks) agree on one of them, and neither fails on the key."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    inserted = conn.execute(
        insert(alert_raised)
        .values(patient_id=patient_id, kind=kind, about=about, raised_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["patient_id", "kind", "about"])
        .returning(alert_raised.c.kind)
    ).first()
    return inserted is not None
