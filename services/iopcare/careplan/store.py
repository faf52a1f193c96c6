"""The care plan service's tables and the queries on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, DateTime, Integer, MetaData, String, Table, Text, select

from iopcare.kit.schema import add_kit_tables

metadata = MetaData()
kit = add_kit_tables(metadata)
outbox, inbox, request_log, audit_log = (
    kit["outbox"],
    kit["inbox"],
    kit["request_log"],
    kit["audit_log"],
)

care_plan = Table(
    "care_plan",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    # The canonical FHIR JSON as validated at the edge: reads serve these bytes as they are.
    Column("resource", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

care_plan_history = Table(
    "care_plan_history",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("resource", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    # Who made this version and how: the Provenance of each revision.
    Column("changed_by", String(200), nullable=False),
    Column("change", String(40), nullable=False),
    Column("status", String(32), nullable=True),
    Column("reason", Text, nullable=True),
)


@dataclass(frozen=True)
class StoredPlan:
    id: str
    version: int
    patient_id: str
    status: str
    updated_at: datetime
    resource: str


@dataclass(frozen=True)
class PlanVersion:
    version: int
    changed_at: datetime
    changed_by: str
    change: str
    status: str | None
    reason: str | None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def insert_plan(
    conn: Connection, plan: StoredPlan, changed_by: str, change: str = "create"
) -> None:
    conn.execute(
        care_plan.insert().values(
            id=plan.id,
            patient_id=plan.patient_id,
            status=plan.status,
            version=plan.version,
            resource=plan.resource,
            created_at=plan.updated_at,
            updated_at=plan.updated_at,
        )
    )
    conn.execute(
        care_plan_history.insert().values(
            id=plan.id,
            version=plan.version,
            resource=plan.resource,
            changed_at=plan.updated_at,
            changed_by=changed_by,
            change=change,
            status=plan.status,
        )
    )


def update_plan(
    conn: Connection,
    plan: StoredPlan,
    expected_version: int,
    changed_by: str,
    change: str,
    reason: str | None,
) -> bool:
    """Stores `plan` as the new current version if the current one is still `expected_version`.

    The version check is in the UPDATE's WHERE clause, not a separate read: on PostgreSQL a
    concurrent writer that got there first holds the row lock, and when it commits this UPDATE
    re-evaluates its WHERE, finds the version moved on, and changes nothing. Returns False then.
    """
    updated = conn.execute(
        care_plan.update()
        .where((care_plan.c.id == plan.id) & (care_plan.c.version == expected_version))
        .values(
            status=plan.status,
            version=plan.version,
            resource=plan.resource,
            updated_at=plan.updated_at,
        )
    )
    if updated.rowcount != 1:
        return False
    conn.execute(
        care_plan_history.insert().values(
            id=plan.id,
            version=plan.version,
            resource=plan.resource,
            changed_at=plan.updated_at,
            changed_by=changed_by,
            change=change,
            status=plan.status,
            reason=reason or None,
        )
    )
    return True


def list_versions(
    conn: Connection, plan_id: str, limit: int, before: int | None
) -> list[PlanVersion]:
    h = care_plan_history
    query = select(h.c.version, h.c.changed_at, h.c.changed_by, h.c.change, h.c.status, h.c.reason)
    query = query.where(h.c.id == plan_id)
    if before is not None:
        query = query.where(h.c.version < before)
    rows = conn.execute(query.order_by(h.c.version.desc()).limit(limit)).all()
    return [
        PlanVersion(r.version, _utc(r.changed_at), r.changed_by, r.change, r.status, r.reason)
        for r in rows
    ]


def load_version(conn: Connection, plan_id: str, version: int) -> StoredPlan | None:
    h = care_plan_history
    row = conn.execute(
        select(h.c.resource, h.c.changed_at, h.c.status, care_plan.c.patient_id)
        .join(care_plan, care_plan.c.id == h.c.id)
        .where((h.c.id == plan_id) & (h.c.version == version))
    ).first()
    if row is None:
        return None
    return StoredPlan(
        plan_id, version, row.patient_id, row.status or "", _utc(row.changed_at), row.resource
    )


def load_plan(conn: Connection, plan_id: str) -> StoredPlan | None:
    row = conn.execute(select(care_plan).where(care_plan.c.id == plan_id)).first()
    if row is None:
        return None
    return StoredPlan(
        row.id, row.version, row.patient_id, row.status, _utc(row.updated_at), row.resource
    )
