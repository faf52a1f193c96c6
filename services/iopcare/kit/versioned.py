"""Versioned FHIR resources: a current row per resource and a history row per version.

Every resource a service owns and lets clients revise (a CarePlan, a CareTeam, ...) is stored the
same way: the current version, with the columns needed to find it, and its canonical JSON; and one
history row per version with who made it, what kind of change it was and why (the Provenance of
the revision). Updates carry the version they are based on and only apply if it is still current.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, DateTime, Integer, MetaData, String, Table, Text, select

from iopcare.kit import labels
from iopcare.kit.db import Database, as_utc
from iopcare.kit.errors import NotFound, StaleVersion, must_exist


@dataclass(frozen=True)
class Stored:
    """One version of a resource as stored."""

    id: str
    version: int
    patient_id: str
    status: str
    updated_at: datetime
    resource: str


@dataclass(frozen=True)
class Version:
    """One entry of a resource's history."""

    version: int
    changed_at: datetime
    changed_by: str
    change: str
    status: str | None
    reason: str | None


def _current_columns() -> list[Any]:
    return [
        Column("id", String(64), primary_key=True),
        Column("patient_id", String(64), nullable=False, index=True),
        Column("status", String(32), nullable=False),
        Column("version", Integer, nullable=False),
        # The canonical FHIR JSON as validated at the edge: reads serve these bytes as they are.
        Column("resource", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    ]


def _history_columns() -> list[Any]:
    return [
        Column("id", String(64), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("resource", Text, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        # Who made this version and how: the Provenance of each revision.
        Column("changed_by", String(200), nullable=False),
        Column("change", String(40), nullable=False),
        Column("status", String(32), nullable=True),
        Column("reason", Text, nullable=True),
    ]


def create_versioned_tables_v1(op: Any, name: str) -> None:
    """Alembic operations creating `name` and `name_history` as VersionedTables describes them."""
    op.create_table(name, *_current_columns())  # index=True on patient_id creates its index
    op.create_table(f"{name}_history", *_history_columns())


def _version_values(item: Stored) -> dict[str, Any]:
    """What a version sets in both tables: its number, its status and the resource itself."""
    return {"version": item.version, "status": item.status, "resource": item.resource}


class VersionedTables:
    """The current and history tables of one resource type, and the queries on them."""

    def __init__(self, metadata: MetaData, name: str) -> None:
        self.current = Table(name, metadata, *_current_columns())
        self.history = Table(f"{name}_history", metadata, *_history_columns())

    def _stored(self, row: Any) -> Stored:
        return Stored(
            row.id, row.version, row.patient_id, row.status, as_utc(row.updated_at), row.resource
        )

    def insert(
        self,
        conn: Connection,
        item: Stored,
        changed_by: str,
        change: str = "create",
        reason: str | None = None,
    ) -> None:
        conn.execute(
            self.current.insert().values(
                id=item.id,
                patient_id=item.patient_id,
                created_at=item.updated_at,
                updated_at=item.updated_at,
                **_version_values(item),
            )
        )
        self._append_history(conn, item, changed_by, change, reason)

    def update(
        self,
        conn: Connection,
        item: Stored,
        expected_version: int,
        changed_by: str,
        change: str,
        reason: str | None,
    ) -> bool:
        """Stores `item` as the new current version if `expected_version` is still current.

        The version check is in the UPDATE's WHERE clause, not a separate read: on PostgreSQL a
        concurrent writer that got there first holds the row lock, and when it commits this
        UPDATE re-evaluates its WHERE, finds the version moved on, and changes nothing. Returns
        False then, and the caller reports the stale version.
        """
        c = self.current.c
        updated = conn.execute(
            self.current.update()
            .where((c.id == item.id) & (c.version == expected_version))
            .values(updated_at=item.updated_at, **_version_values(item))
        )
        if updated.rowcount != 1:
            return False
        self._append_history(conn, item, changed_by, change, reason)
        return True

    def _append_history(
        self, conn: Connection, item: Stored, changed_by: str, change: str, reason: str | None
    ) -> None:
        conn.execute(
            self.history.insert().values(
                id=item.id,
                changed_at=item.updated_at,
                changed_by=changed_by,
                change=change,
                reason=reason or None,
                **_version_values(item),
            )
        )

    def load(self, conn: Connection, item_id: str) -> Stored | None:
        row = conn.execute(select(self.current).where(self.current.c.id == item_id)).first()
        return self._stored(row) if row is not None else None

    def for_patient(self, conn: Connection, patient_id: str, *, lock: bool = False) -> list[Stored]:
        """The patient's resources, oldest first. With `lock`, the rows stay locked until the
        transaction ends (PostgreSQL; SQLite has one writer anyway), so a server-side change of
        several of them (a crisis making reviews due, a discharge completing plans) cannot race a
        client's update of one and fail on a stale version."""
        query = (
            select(self.current)
            .where(self.current.c.patient_id == patient_id)
            .order_by(self.current.c.created_at, self.current.c.id)
        )
        rows = conn.execute(query.with_for_update() if lock else query).all()
        return [self._stored(row) for row in rows]

    def versions(
        self, conn: Connection, item_id: str, limit: int, before: int | None
    ) -> list[Version]:
        h = self.history.c
        query = select(h.version, h.changed_at, h.changed_by, h.change, h.status, h.reason).where(
            h.id == item_id
        )
        if before is not None:
            query = query.where(h.version < before)
        rows = conn.execute(query.order_by(h.version.desc()).limit(limit)).all()
        return [
            Version(r.version, as_utc(r.changed_at), r.changed_by, r.change, r.status, r.reason)
            for r in rows
        ]

    def load_version(self, conn: Connection, item_id: str, version: int) -> Stored | None:
        h, c = self.history.c, self.current.c
        row = conn.execute(
            select(h.resource, h.changed_at, h.status, c.patient_id)
            .join(self.current, c.id == h.id)
            .where((h.id == item_id) & (h.version == version))
        ).first()
        if row is None:
            return None
        return Stored(
            item_id, version, row.patient_id, row.status or "", as_utc(row.changed_at), row.resource
        )


#: Builds the next version from the current one: given the current state, the new version number
#: and the time, returns (canonical JSON of the new version, its status, the kind of change).
Reviser = Callable[[Stored, int, datetime], tuple[str, str, str]]


def revise(
    conn: Connection,
    tables: VersionedTables,
    resource_type: str,
    item_id: str,
    expected_version: int,
    reviser: Reviser,
    changed_by: str,
    reason: str | None,
    *,
    may_lower_labels: bool = False,
) -> tuple[Stored, Stored, str]:
    """Stores the next version of a resource if `expected_version` is still current.

    The new version keeps every security label of the current one (labels only go up; 42 CFR
    2.12(d): the restrictions stay with the record): a revision that leaves `meta.security` out,
    or drops a label, gets the stored labels merged back in, on every update path of every
    service, since they all revise through here. `may_lower_labels` is for a privacy officer's
    deliberate change only (`iopcare.kit.labels.may_lower_labels`).

    Returns (previous, revised, kind of change). Raises NotFound, or StaleVersion carrying the
    current version, and then writes nothing (test-matrix B1, B2).
    """
    name = f"{resource_type}/{item_id}"
    current = must_exist(tables.load(conn, item_id), name)
    if current.version != expected_version:
        raise StaleVersion(name, expected_version, current.version)
    now = datetime.now(UTC)
    resource, status, change = reviser(current, current.version + 1, now)
    if not may_lower_labels:
        resource = labels.keep_labels(current.resource, resource)
    revised = Stored(item_id, current.version + 1, current.patient_id, status, now, resource)
    if not tables.update(conn, revised, expected_version, changed_by, change, reason):
        # A concurrent update committed between our read and our write.
        latest = tables.load(conn, item_id)
        raise StaleVersion(name, expected_version, latest.version if latest else 0)
    return current, revised, change


T = TypeVar("T")


def reread(db: Database, load: Callable[[Connection, str], T | None], item_id: str, name: str) -> T:
    """What this request, or the first attempt of its request id, just wrote, read back with
    `load`; NotFound naming `name` if it is not there."""
    with db.read() as conn:
        item = load(conn, item_id)
    if item is None:  # pragma: no cover - committed by the caller
        raise NotFound(f"{name} not found")
    return item
