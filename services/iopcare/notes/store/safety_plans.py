"""Safety plans (a QuestionnaireResponse per patient, versioned) and their reviews: a crisis makes
the patient's safety plan due for review; recording a new version clears it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
)

from iopcare.kit.copying import from_row
from iopcare.kit.db import as_utc
from iopcare.kit.versioned import Stored, VersionedTables
from iopcare.notes.cursor import Position, after
from iopcare.notes.store.schema import metadata

#: The safety plan of each patient (one per patient), versioned: every version is kept.
safety_plans = VersionedTables(metadata, "safety_plan")
Index("ux_safety_plan_patient", safety_plans.current.c.patient_id, unique=True)

#: Reviews a crisis made due: open until a new version of the plan is recorded.
safety_plan_review = Table(
    "safety_plan_review",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("due_since", DateTime(timezone=True), nullable=False),
    #: Why (the first crisis's text) and how many crises happened while it was due.
    Column("reason", Text, nullable=False),
    Column("flag_id", String(64), nullable=True),
    Column("crises", Integer, nullable=False),
    Column("cleared_at", DateTime(timezone=True), nullable=True),
    Column("cleared_by", String(200), nullable=True),
    Column("cleared_version", Integer, nullable=True),
)

#: The 42 CFR Part 2 labels of each of the patient's care plans (from careplan's plan events): a
#: safety plan written in an SUD program is a Part 2 record too, and carries them.
plan_part2_label = Table(
    "plan_part2_label",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    #: The labels as a JSON list of codings (empty: none, or the plan was entered in error).
    Column("labels", Text, nullable=False),
)


def remember_plan_labels(conn: Connection, plan_id: str, patient_id: str, labels: str) -> None:
    p = plan_part2_label.c
    updated = conn.execute(
        plan_part2_label.update().where(p.plan_id == plan_id).values(labels=labels)
    )
    if not updated.rowcount:
        conn.execute(
            plan_part2_label.insert().values(plan_id=plan_id, patient_id=patient_id, labels=labels)
        )


def part2_labels_of(conn: Connection, patient_id: str, plan_id: str | None = None) -> list[str]:
    """The JSON label lists of the patient's care plans (of one plan, with `plan_id`)."""
    p = plan_part2_label.c
    where = p.patient_id == patient_id
    if plan_id is not None:
        where = where & (p.plan_id == plan_id)
    return [str(x) for x in conn.execute(select(p.labels).where(where)).scalars()]


@dataclass(frozen=True)
class Review:
    """A safety plan review a crisis made due (open while `cleared_at` is None)."""

    id: str
    patient_id: str
    due_since: datetime
    reason: str
    flag_id: str | None
    crises: int
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    cleared_version: int | None = None


def _review(row: object) -> Review:
    cleared = getattr(row, "cleared_at", None)
    return from_row(
        Review,
        row,
        due_since=as_utc(row.due_since),  # type: ignore[attr-defined]
        cleared_at=as_utc(cleared) if cleared is not None else None,
    )


def plan_of(conn: Connection, patient_id: str) -> Stored | None:
    c = safety_plans.current.c
    row = conn.execute(select(c.id).where(c.patient_id == patient_id)).first()
    return safety_plans.load(conn, row.id) if row is not None else None


def open_review(conn: Connection, patient_id: str) -> Review | None:
    r = safety_plan_review.c
    row = conn.execute(
        select(safety_plan_review).where((r.patient_id == patient_id) & r.cleared_at.is_(None))
    ).first()
    return _review(row) if row is not None else None


def mark_due(
    conn: Connection,
    review_id: str,
    patient_id: str,
    reason: str,
    flag_id: str | None,
    at: datetime,
) -> bool:
    """The patient's safety plan review due (True), or, if one is due already, one more crisis
    counted on it (False)."""
    r = safety_plan_review.c
    counted = conn.execute(
        safety_plan_review.update()
        .where((r.patient_id == patient_id) & r.cleared_at.is_(None))
        .values(crises=r.crises + 1)
    )
    if counted.rowcount:
        return False
    conn.execute(
        safety_plan_review.insert().values(
            id=review_id,
            patient_id=patient_id,
            due_since=at,
            reason=reason,
            flag_id=flag_id,
            crises=1,
        )
    )
    return True


def clear(conn: Connection, patient_id: str, by: str, version: int, at: datetime) -> Review | None:
    """Clears the patient's open review (a new version of the plan was recorded); returns it."""
    found = open_review(conn, patient_id)
    if found is None:
        return None
    r = safety_plan_review.c
    conn.execute(
        safety_plan_review.update()
        .where((r.id == found.id) & r.cleared_at.is_(None))
        .values(cleared_at=at, cleared_by=by, cleared_version=version)
    )
    return found


def reviews_page(
    conn: Connection, patient_ids: list[str], limit: int, position: Position | None
) -> list[Review]:
    """Open reviews of these patients, oldest due first (due time, then id)."""
    r = safety_plan_review.c
    rows = conn.execute(
        select(safety_plan_review)
        .where(
            r.patient_id.in_(patient_ids)
            & r.cleared_at.is_(None)
            & after(r.due_since, r.id, position)
        )
        .order_by(r.due_since, r.id)
        .limit(limit)
    ).all()
    return [_review(row) for row in rows]


def patients_of(
    conn: Connection, members: Table, reference: str, roles: frozenset[str], today: date
) -> list[str]:
    """The patients on whose active teams `reference` is, today, in one of `roles`."""
    m = members.c
    rows = conn.execute(
        select(m.patient_id)
        .where(
            (m.member == reference)
            & m.role.in_(sorted(roles))
            & (m.period_start.is_(None) | (m.period_start <= today))
            & (m.period_end.is_(None) | (m.period_end >= today))
        )
        .distinct()
    ).scalars()
    return sorted(str(p) for p in rows)
