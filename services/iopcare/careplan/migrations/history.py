"""Table shapes that more than one of careplan's migrations writes: one definition for the
revision that creates a table and the ones that rebuild it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def session_view_columns() -> list[Any]:
    """The session view's columns (0006), without its primary key, which 0011 changed."""
    return [
        sa.Column("appointment_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("care_plan_id", sa.String(64), nullable=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    ]
