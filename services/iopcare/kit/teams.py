"""Care team membership, shared by every service: who may see which patient.

careplan owns CareTeam resources and writes these rows in the team's own transaction; scheduling
and notes keep the same rows as a projection of careplan's `careteam` events (a service never
reads another's tables). The access rule itself is one function, `access_basis`, so all services
apply the same policy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    select,
)

from iopcare.kit import audit, fhir
from iopcare.kit.access import SNOMED, TEAM_ROLE_BY_CODE, Membership, access_basis
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.events import ReceivedEvent
from iopcare.kit.schema import BigId

T = TypeVar("T")


def as_date(value: Any) -> date | None:
    """A FHIR date or dateTime as a date (the day it names). Partial dates (`2024`, `2024-05`),
    which FHIR allows, mean their first day."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    parts = [int(p) for p in text.split("T")[0].split("-")[:3]]
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)


def memberships(team: fhir.Resource) -> list[Membership]:
    """The participants of a CareTeam resource that name a member."""
    result = []
    for participant in getattr(team, "participant", None) or []:
        reference = participant.member.reference if participant.member else None
        if not reference:
            continue
        codes = [
            coding.code
            for concept in participant.role or []
            for coding in concept.coding or []
            if coding.system == SNOMED and coding.code in TEAM_ROLE_BY_CODE
        ]
        period = participant.period
        result.append(
            Membership(
                reference=reference,
                role=TEAM_ROLE_BY_CODE[codes[0]] if codes else None,
                period_start=as_date(period.start) if period else None,
                period_end=as_date(period.end) if period else None,
            )
        )
    return result


def _member_columns() -> list[Any]:
    return [
        Column("row_id", BigId, primary_key=True, autoincrement=True),
        Column("team_id", String(64), nullable=False),
        Column("patient_id", String(64), nullable=False),
        Column("member", String(200), nullable=False),
        Column("role", String(64), nullable=True),
        Column("period_start", Date, nullable=True),
        Column("period_end", Date, nullable=True),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    ]


def add_member_table(metadata: MetaData) -> Table:
    table = Table("care_team_member", metadata, *_member_columns())
    Index("ix_care_team_member_lookup", table.c.member, table.c.patient_id)
    Index("ix_care_team_member_team", table.c.team_id)
    return table


def _projection_columns() -> list[Any]:
    return [
        Column("team_id", String(64), primary_key=True),
        Column("version", Integer, nullable=False),
    ]


def add_projection_table(metadata: MetaData) -> Table:
    """The latest team version a projecting service has applied (stale events are ignored)."""
    return Table("care_team_seen", metadata, *_projection_columns())


def create_member_table_v1(op: Any) -> None:
    op.create_table("care_team_member", *_member_columns())
    op.create_index("ix_care_team_member_lookup", "care_team_member", ["member", "patient_id"])
    op.create_index("ix_care_team_member_team", "care_team_member", ["team_id"])


def create_projection_table_v1(op: Any) -> None:
    op.create_table("care_team_seen", *_projection_columns())


def replace_members(
    conn: Connection,
    table: Table,
    team_id: str,
    patient_id: str,
    members: list[Membership],
    active: bool,
) -> None:
    """Rewrites one team's rows from its current version (none unless the team is active)."""
    conn.execute(delete(table).where(table.c.team_id == team_id))
    if not active or not members:
        return
    now = datetime.now(UTC)
    conn.execute(
        table.insert(),
        [
            {
                "team_id": team_id,
                "patient_id": patient_id,
                "member": m.reference,
                "role": m.role,
                "period_start": m.period_start,
                "period_end": m.period_end,
                "updated_at": now,
            }
            for m in members
        ],
    )


def _current(table: Table, patient_id: str, today: date) -> ColumnElement[bool]:
    """Rows of the patient's teams whose participation period covers `today`."""
    m = table.c
    return (
        (m.patient_id == patient_id)
        & (m.period_start.is_(None) | (m.period_start <= today))
        & (m.period_end.is_(None) | (m.period_end >= today))
    )


def is_member(conn: Connection, table: Table, reference: str, patient_id: str, today: date) -> bool:
    """Whether `reference` is, today, a member of an active care team of the patient."""
    where = _current(table, patient_id, today) & (table.c.member == reference)
    return conn.execute(select(table.c.row_id).where(where).limit(1)).first() is not None


def roles_of_member(
    conn: Connection, table: Table, reference: str, patient_id: str, today: date
) -> set[str]:
    """The roles in which `reference` is, today, on one of the patient's active teams."""
    where = _current(table, patient_id, today) & (table.c.member == reference)
    return {str(r) for r in conn.execute(select(table.c.role).where(where)).scalars() if r}


def members_with_role(
    conn: Connection, table: Table, patient_id: str, role: str, today: date
) -> list[str]:
    """References of the patient's current team members in `role` (e.g. who gets a crisis alert)."""
    where = _current(table, patient_id, today) & (table.c.role == role)
    return sorted(conn.execute(select(table.c.member).where(where).distinct()).scalars())


def today() -> date:
    return datetime.now(UTC).date()


class TeamAccess:
    """Applies `access_basis` with the memberships in one service's database."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def on_team(self, conn: Connection, principal: Principal, patient_id: str) -> bool:
        return bool(principal.practitioner_id) and is_member(
            conn, self.table, principal.reference, patient_id, today()
        )

    def basis(self, conn: Connection, principal: Principal, patient_id: str) -> str:
        """Why the caller may see the patient (care-team, role:..., break-glass) or raises."""
        return access_basis(
            principal.role,
            principal.break_glass,
            self.on_team(conn, principal, patient_id),
            patient_id=patient_id,
            patient_limit=principal.patient_limit,
        )


def apply_team_event(
    conn: Connection, members_table: Table, seen_table: Table, team: fhir.Resource
) -> bool:
    """Projects a careteam event; returns False for a version older than one already applied.

    Events of one patient arrive in order, but a replay or a redelivery can bring an old version
    after a newer one: membership must never roll back to it (test-matrix A15).
    """
    team_id = team.id
    version = int(team.meta.versionId) if team.meta and team.meta.versionId else 0
    patient_id = fhir.reference_id(team.subject.reference if team.subject else None, "Patient")
    if not team_id or not patient_id:
        return False
    seen = conn.execute(
        select(seen_table.c.version).where(seen_table.c.team_id == team_id)
    ).scalar()
    if seen is not None and seen >= version:
        return False
    if seen is None:
        conn.execute(seen_table.insert().values(team_id=team_id, version=version))
    else:
        conn.execute(
            seen_table.update().where(seen_table.c.team_id == team_id).values(version=version)
        )
    replace_members(
        conn, members_table, team_id, patient_id, memberships(team), team.status == "active"
    )
    return True


def require_access(
    db: Database,
    audit_table: Table,
    access: TeamAccess,
    principal: Principal,
    action: str,
    resource: str,
    patient_id: str,
) -> str:
    """The basis of the caller's access to the patient; a refusal is audited, then raised."""
    with (
        audit.refusals(db, audit_table, principal, action, resource, patient_id),
        db.read() as conn,
    ):
        return access.basis(conn, principal, patient_id)


def audited_search(
    db: Database,
    audit_table: Table,
    access: TeamAccess,
    principal: Principal,
    resource: str,
    patient_id: str,
    query: Callable[[Connection], list[T]],
) -> list[T]:
    """A search in one patient's record: access checked, the hits read, the search audited with
    how many hits and on what basis (or the refusal)."""
    basis = require_access(db, audit_table, access, principal, audit.SEARCH, resource, patient_id)
    with db.read() as conn:
        found = query(conn)
    audit.record_separately(
        db,
        audit_table,
        principal,
        audit.SEARCH,
        resource=resource,
        patient_id=patient_id,
        detail=f"{len(found)} hits; {basis}",
    )
    return found


def projection_handler(
    members_table: Table, seen_table: Table
) -> Callable[[UnitOfWork, ReceivedEvent], None]:
    """The event handler with which scheduling and notes keep their copy of the memberships."""

    def on_care_team_changed(uow: UnitOfWork, received: ReceivedEvent) -> None:
        apply_team_event(uow.conn, members_table, seen_table, received.resource)

    return on_care_team_changed
