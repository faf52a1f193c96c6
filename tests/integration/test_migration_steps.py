"""Every revision's downgrade gives back exactly the schema its upgrade found, one step at a time,
on SQLite and PostgreSQL: the shared steps (kit.migration_steps) and column kinds
(kit.migration_columns) undo what they do wherever a service's chain uses them."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from iopcare.careplan import app as careplan_app
from iopcare.kit.db import Database, alembic_config
from iopcare.notes import app as notes_app
from iopcare.scheduling import app as scheduling_app

SERVICES: list[tuple[str, Path]] = [
    ("careplan", careplan_app.MIGRATIONS),
    ("scheduling", scheduling_app.MIGRATIONS),
    ("notes", notes_app.MIGRATIONS),
]


#: Revisions that move data and leave the schema as it was (tested on their own).
DATA_ONLY = {"careplan": ("0016",)}  # contained goals to Goals: test_goals_migration.py


def _schema(conn: Connection) -> dict[str, Any]:
    """Each table's columns (type, nullability, default), keys, uniques, checks and indexes."""
    found = inspect(conn)
    schema: dict[str, Any] = {}
    for table in sorted(set(found.get_table_names()) - {"alembic_version"}):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in found.get_columns(table)
            ],
            "primary_key": found.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(table)),
            "checks": sorted(c["sqltext"] for c in found.get_check_constraints(table)),
            "indexes": sorted(
                (i["name"] or "", tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(table)
            ),
        }
    return schema


def _step(db: Database, migrations: Path, direction: str, target: str) -> dict[str, Any]:
    config = alembic_config(migrations, db.url)
    with db.write_engine.connect() as conn:
        config.attributes["connection"] = conn
        getattr(command, direction)(config, target)
        conn.commit()
    with db.write_engine.connect() as conn:
        return _schema(conn)


@pytest.mark.parametrize(("name", "migrations"), SERVICES, ids=[s[0] for s in SERVICES])
def test_each_downgrade_restores_the_schema_before_its_upgrade(
    name: str, migrations: Path, database_url: str
) -> None:
    script = ScriptDirectory.from_config(alembic_config(migrations, database_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert len(revisions) > 5, f"{name}: the chain was not found"
    db = Database(database_url)
    try:
        with db.write_engine.connect() as conn:
            before = [_schema(conn)]
        for revision in revisions:
            before.append(_step(db, migrations, "upgrade", revision))
        # Every revision changes what the snapshot sees, so a downgrade that undid too little (or
        # too much) shows as a difference below.
        unchanged = [
            r
            for r, (a, b) in zip(revisions, pairwise(before), strict=True)
            if a == b and r not in DATA_ONLY.get(name, ())
        ]
        assert unchanged == [], f"{name}: revisions the snapshot cannot tell apart: {unchanged}"
        for revision, expected in zip(reversed(revisions), reversed(before[:-1]), strict=True):
            got = _step(db, migrations, "downgrade", "-1")
            assert got == expected, f"{name}: downgrading {revision} left another schema"
    finally:
        db.dispose()
