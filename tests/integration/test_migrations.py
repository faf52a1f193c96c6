"""Each service's Alembic migrations build exactly the schema its code expects, on both DBs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, inspect

from iopcare.careplan import app as careplan_app
from iopcare.careplan import store as careplan_store
from iopcare.gateway.subscriptions import store as subscriptions_store
from iopcare.kit.db import Database, alembic_config, migrate
from iopcare.notes import app as notes_app
from iopcare.notes import store as notes_store
from iopcare.scheduling import app as scheduling_app
from iopcare.scheduling import store as scheduling_store

SERVICES: list[tuple[str, Path, MetaData]] = [
    ("careplan", careplan_app.MIGRATIONS, careplan_store.metadata),
    ("scheduling", scheduling_app.MIGRATIONS, scheduling_store.metadata),
    ("notes", notes_app.MIGRATIONS, notes_store.metadata),
    # The gateway's own database (ADR 0027): its subscriptions.
    ("gateway-subscriptions", subscriptions_store.MIGRATIONS, subscriptions_store.metadata),
]


def _not_a_full_text_index(conn: Connection) -> Any:
    """Full-text indexes are created by migrations with raw DDL that table metadata cannot
    describe: SQLite FTS5 virtual tables (and their shadow tables, `<name>_data`, ...) and
    PostgreSQL expression indexes named `..._fts`. Leave them out of the comparison."""
    virtual: list[str] = []
    if conn.dialect.name == "sqlite":
        virtual = list(
            conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'"
            ).scalars()
        )

    def include(name: str | None, kind: str, _parents: Any) -> bool:
        if kind == "index" and name is not None and name.endswith("_fts"):
            return False
        return not (
            kind == "table"
            and name is not None
            and any(name == v or name.startswith(f"{v}_") for v in virtual)
        )

    return include


@pytest.mark.parametrize(("name", "migrations", "metadata"), SERVICES, ids=[s[0] for s in SERVICES])
def test_migrated_schema_matches_the_code(
    name: str, migrations: Path, metadata: MetaData, database_url: str
) -> None:
    db = Database(database_url)
    try:
        migrate(db, migrations)
        migrate(db, migrations)  # a second run is a no-op
        with db.write_engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_name": _not_a_full_text_index(conn)}
            )
            diff = compare_metadata(context, metadata)
        assert diff == [], f"{name}: migrations and tables differ: {diff}"
    finally:
        db.dispose()


def _run(db: Database, migrations: Path, direction: str, target: str) -> None:
    config = alembic_config(migrations, db.url)
    with db.write_engine.connect() as conn:
        config.attributes["connection"] = conn
        getattr(command, direction)(config, target)
        conn.commit()


@pytest.mark.parametrize(("name", "migrations", "metadata"), SERVICES, ids=[s[0] for s in SERVICES])
def test_downgrade_to_base_and_up_again(
    name: str, migrations: Path, metadata: MetaData, database_url: str
) -> None:
    """Every downgrade runs, on SQLite and PostgreSQL (whose constraint names are relations and
    can collide), and the schema built again afterwards is the one the code expects."""
    db = Database(database_url)
    try:
        migrate(db, migrations)
        _run(db, migrations, "downgrade", "base")
        with db.write_engine.connect() as conn:
            left = set(inspect(conn).get_table_names()) - {"alembic_version"}
        assert left == set(), f"{name}: tables left after downgrade to base: {sorted(left)}"
        migrate(db, migrations)
        with db.write_engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_name": _not_a_full_text_index(conn)}
            )
            diff = compare_metadata(context, metadata)
        assert diff == [], f"{name}: migrations and tables differ after a round trip: {diff}"
    finally:
        db.dispose()
