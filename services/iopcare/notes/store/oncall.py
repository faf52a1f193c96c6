"""After-hours coverage: the on-call roster (one row per version, the latest in force), the
route each urgent alert took along it, and who each message is addressed to (the on-call
clinician's `WatchThread` across threads)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from iopcare.kit.db import as_utc
from iopcare.kit.schema import BigId
from iopcare.notes.domain.oncall import Shift
from iopcare.notes.store.schema import metadata

#: The roster: every version kept (who changed it, when); the highest version is in force.
oncall_roster = Table(
    "oncall_roster",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("shifts", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
)

#: Each step of an urgent alert's route along the roster: step 0 the clinician on call when it
#: was raised, then one row per escalation. (flag_id, step) is the key, so an escalation is
#: claimed once whatever runs it (two replicas, a restart in the middle).
crisis_route = Table(
    "crisis_route",
    metadata,
    Column("flag_id", String(64), primary_key=True),
    Column("step", Integer, primary_key=True, autoincrement=False),
    Column("patient_id", String(64), nullable=False),
    Column("clinician", String(200), nullable=False),
    Column("notified_at", DateTime(timezone=True), nullable=False),
)
Index("ix_crisis_route_clinician", crisis_route.c.clinician, crisis_route.c.patient_id)

#: Who each message is addressed to, in the order messages were stored (a row per recipient).
message_recipient = Table(
    "message_recipient",
    metadata,
    Column("row_id", BigId, primary_key=True, autoincrement=True),
    Column("recipient", String(200), nullable=False),
    Column("seq", BigId, nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
)
Index("ix_message_recipient_seq", message_recipient.c.recipient, message_recipient.c.seq)


def shifts_json(shifts: list[Shift]) -> str:
    return json.dumps(
        [
            {
                "start": s.starts.isoformat(),
                "end": s.ends.isoformat(),
                "clinicians": list(s.clinicians),
            }
            for s in shifts
        ]
    )


def _shifts(text: str) -> list[Shift]:
    return [
        Shift(
            datetime.fromisoformat(s["start"]),
            datetime.fromisoformat(s["end"]),
            tuple(s["clinicians"]),
        )
        for s in json.loads(text)
    ]


def current_roster(conn: Connection) -> tuple[int, list[Shift], datetime | None, str]:
    """(version, shifts, when set, by whom) of the roster in force; version 0 when none."""
    row = conn.execute(
        select(oncall_roster).order_by(oncall_roster.c.version.desc()).limit(1)
    ).first()
    if row is None:
        return 0, [], None, ""
    return row.version, _shifts(row.shifts), as_utc(row.updated_at), row.updated_by


def insert_roster(
    conn: Connection, version: int, shifts: list[Shift], at: datetime, by: str
) -> None:
    """Stores the next version (a concurrent change with the same version fails on the key)."""
    conn.execute(
        oncall_roster.insert().values(
            version=version, shifts=shifts_json(shifts), updated_at=at, updated_by=by
        )
    )


def add_route(
    conn: Connection, flag_id: str, step: int, patient_id: str, clinician: str, at: datetime
) -> bool:
    """Records the step of an alert's route unless it was recorded; True if it is new."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    done = conn.execute(
        insert(crisis_route)
        .values(
            flag_id=flag_id, step=step, patient_id=patient_id, clinician=clinician, notified_at=at
        )
        .on_conflict_do_nothing(index_elements=["flag_id", "step"])
        .returning(crisis_route.c.step)
    ).first()
    return done is not None


def routes(conn: Connection, flag_id: str) -> list[Any]:
    """The alert's route so far, in step order."""
    c = crisis_route.c
    return list(conn.execute(select(crisis_route).where(c.flag_id == flag_id).order_by(c.step)))


def open_routed_alerts(conn: Connection) -> list[tuple[str, str, int, datetime]]:
    """Every unacknowledged alert that has a route: (flag_id, patient_id, last step, when that
    step was notified), oldest flag id first."""
    from iopcare.notes.store.flags import crisis_alert

    c, a = crisis_route.c, crisis_alert.c
    last = select(c.flag_id, func.max(c.step).label("step")).group_by(c.flag_id).subquery()
    rows = conn.execute(
        select(c.flag_id, c.patient_id, c.step, c.notified_at)
        .join(last, (last.c.flag_id == c.flag_id) & (last.c.step == c.step))
        .join(crisis_alert, a.flag_id == c.flag_id)
        .where(a.acknowledged_at.is_(None))
        .order_by(c.flag_id)
    ).all()
    return [(r.flag_id, r.patient_id, r.step, as_utc(r.notified_at)) for r in rows]


def lock_open_alert(conn: Connection, flag_id: str) -> bool:
    """Holds the alert's row to the end of the transaction if it is still unacknowledged
    (PostgreSQL: FOR UPDATE, which waits for an acknowledgement in progress and then sees it;
    SQLite has one writer at a time). Alert rows are taken before the thread lock, as
    acknowledging takes them, so the two cannot deadlock."""
    from iopcare.notes.store.flags import crisis_alert

    a = crisis_alert.c
    row = conn.execute(
        select(a.flag_id)
        .where((a.flag_id == flag_id) & a.acknowledged_at.is_(None))
        .with_for_update()
    ).first()
    return row is not None


def was_routed(conn: Connection, flag_id: str, clinician: str) -> bool:
    """Whether the alert was sent to `clinician` along the roster."""
    c = crisis_route.c
    found = conn.execute(
        select(c.step).where((c.flag_id == flag_id) & (c.clinician == clinician)).limit(1)
    ).first()
    return found is not None


def add_recipients(
    conn: Connection, message_id: str, seq: int, recipients: tuple[str, ...], at: datetime
) -> None:
    if recipients:
        conn.execute(
            message_recipient.insert(),
            [
                {"recipient": r, "seq": seq, "message_id": message_id, "stored_at": at}
                for r in dict.fromkeys(recipients)
            ],
        )


def addressed_to(
    conn: Connection, recipient: str, after_seq: int, since: datetime, limit: int
) -> list[tuple[int, str]]:
    """(seq, message id) of the messages addressed to `recipient` after `after_seq`, and of
    those stored since `since` (a late commit of a lower seq: the caller drops what it has
    delivered already), in seq order."""
    m = message_recipient.c
    mine = select(m.seq, m.message_id).where(m.recipient == recipient).order_by(m.seq)
    # Two reads, each limited on its own: many recent deliveries already sent must not fill the
    # page and hold back the newer messages behind them.
    newer = conn.execute(mine.where(m.seq > after_seq).limit(limit)).all()
    late = conn.execute(mine.where((m.seq <= after_seq) & (m.stored_at >= since)).limit(limit))
    rows = sorted({(int(r.seq), str(r.message_id)) for r in [*newer, *late.all()]})
    return rows


def last_addressed_seq(conn: Connection, recipient: str) -> int:
    m = message_recipient.c
    value = conn.execute(select(func.max(m.seq)).where(m.recipient == recipient)).scalar()
    return int(value or 0)
