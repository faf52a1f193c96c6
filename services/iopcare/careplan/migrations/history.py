"""Table shapes that more than one of careplan's migrations writes: one definition for the
revision that creates a table and the ones that rebuild it."""

from __future__ import annotations

from typing import Any

from iopcare.kit import migration_columns as col


def session_view_columns() -> list[Any]:
    """The session view's columns (0006), without its primary key, which 0011 changed."""
    return [
        col.ref("appointment_id"),
        col.ref("patient_id"),
        col.ref("care_plan_id", nullable=True),
        col.at("start"),
        col.at("end"),
        col.string("status", 32),
        col.string("description", 200, nullable=True),
        col.version(),
    ]
