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
)


@dataclass(frozen=True)
class StoredPlan:
    id: str
    version: int
    patient_id: str
    status: str
    updated_at: datetime
    resource: str


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
        )
    )


def load_plan(conn: Connection, plan_id: str) -> StoredPlan | None:
    row = conn.execute(select(care_plan).where(care_plan.c.id == plan_id)).first()
    if row is None:
        return None
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return StoredPlan(row.id, row.version, row.patient_id, row.status, updated, row.resource)
