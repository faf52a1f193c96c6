"""The care plan service's tables and the queries on them."""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    delete,
    select,
)

from iopcare.careplan.domain.team import Member
from iopcare.kit.schema import BigId, add_kit_tables
from iopcare.kit.versioned import Stored, VersionedTables

metadata = MetaData()
kit = add_kit_tables(metadata)
outbox, inbox, request_log, audit_log = (
    kit["outbox"],
    kit["inbox"],
    kit["request_log"],
    kit["audit_log"],
)

plans = VersionedTables(metadata, "care_plan")
care_plan, care_plan_history = plans.current, plans.history

teams = VersionedTables(metadata, "care_team")

#: Who is on which patient's team, from the current version of every CareTeam: the access rule
#: (a clinician sees a patient while on an active team of theirs) is one indexed lookup here.
care_team_member = Table(
    "care_team_member",
    metadata,
    Column("row_id", BigId, primary_key=True, autoincrement=True),
    Column("team_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("member", String(200), nullable=False),
    Column("role", String(64), nullable=True),
    Column("period_start", Date, nullable=True),
    Column("period_end", Date, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_care_team_member_lookup", care_team_member.c.member, care_team_member.c.patient_id)
Index("ix_care_team_member_team", care_team_member.c.team_id)

StoredPlan = Stored


def replace_members(
    conn: Connection, team: Stored, members: list[dict[str, object]], active: bool
) -> None:
    """Rewrites the membership rows of one team from its current version."""
    conn.execute(delete(care_team_member).where(care_team_member.c.team_id == team.id))
    if not active or not members:
        return
    conn.execute(
        care_team_member.insert(),
        [
            {
                "team_id": team.id,
                "patient_id": team.patient_id,
                "updated_at": team.updated_at,
                **member,
            }
            for member in members
        ],
    )


def member_rows(members: list[Member]) -> list[dict[str, object]]:
    return [
        {
            "member": m.reference,
            "role": m.role,
            "period_start": m.period_start,
            "period_end": m.period_end,
        }
        for m in members
        if m.reference
    ]


def is_member(conn: Connection, reference: str, patient_id: str, today: date) -> bool:
    """Whether `reference` is, today, a member of an active care team of the patient."""
    m = care_team_member.c
    row = conn.execute(
        select(m.row_id)
        .where(
            (m.member == reference)
            & (m.patient_id == patient_id)
            & ((m.period_start.is_(None)) | (m.period_start <= today))
            & ((m.period_end.is_(None)) | (m.period_end >= today))
        )
        .limit(1)
    ).first()
    return row is not None
