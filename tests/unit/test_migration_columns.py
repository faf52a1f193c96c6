"""The column kinds shipped migrations create (kit.migration_columns) keep their SQL types: a
database built by an older release must still match what a new install's migrations build."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from iopcare.kit import migration_columns as col

# (column, its line in SQLite's CREATE TABLE, its line in PostgreSQL's)
KINDS: list[tuple[Any, str, str]] = [
    (col.ref("patient_id"), "patient_id VARCHAR(64) NOT NULL", "patient_id VARCHAR(64) NOT NULL"),
    (col.ref("plan_id", nullable=True), "plan_id VARCHAR(64)", "plan_id VARCHAR(64)"),
    (col.who("author"), "author VARCHAR(200) NOT NULL", "author VARCHAR(200) NOT NULL"),
    (col.who("signed_by", nullable=True), "signed_by VARCHAR(200)", "signed_by VARCHAR(200)"),
    (col.string("status", 32), "status VARCHAR(32) NOT NULL", "status VARCHAR(32) NOT NULL"),
    (
        col.string("kind", 16, server_default="individual"),
        "kind VARCHAR(16) DEFAULT 'individual' NOT NULL",
        "kind VARCHAR(16) DEFAULT 'individual' NOT NULL",
    ),
    (col.text("body"), "body TEXT NOT NULL", "body TEXT NOT NULL"),
    (col.text("reason", nullable=True), "reason TEXT", "reason TEXT"),
    (col.resource(), "resource TEXT NOT NULL", "resource TEXT NOT NULL"),
    (col.at("sent_at"), "sent_at DATETIME NOT NULL", "sent_at TIMESTAMP WITH TIME ZONE NOT NULL"),
    (col.at("seen_at", nullable=True), "seen_at DATETIME", "seen_at TIMESTAMP WITH TIME ZONE"),
    (col.day("due"), "due DATE NOT NULL", "due DATE NOT NULL"),
    (col.number("capacity"), "capacity INTEGER NOT NULL", "capacity INTEGER NOT NULL"),
    (col.version(), "version INTEGER NOT NULL", "version INTEGER NOT NULL"),
    (col.flag("active"), "active BOOLEAN NOT NULL", "active BOOLEAN NOT NULL"),
]


def _ddl(table: sa.Table, dialect: Any) -> list[str]:
    text = str(CreateTable(table).compile(dialect=dialect))
    return [line.strip().rstrip(",").strip() for line in text.strip().splitlines()[1:-1]]


@pytest.mark.parametrize(("column", "on_sqlite", "on_postgresql"), KINDS, ids=[k[1] for k in KINDS])
def test_each_kind_has_its_type_on_both_databases(
    column: Any, on_sqlite: str, on_postgresql: str
) -> None:
    table = sa.Table("t", sa.MetaData(), column)
    assert _ddl(table, sqlite.dialect()) == [on_sqlite]
    assert _ddl(table, postgresql.dialect()) == [on_postgresql]


def test_keys_are_ids_and_compose_with_other_key_columns() -> None:
    table = sa.Table(
        "t",
        sa.MetaData(),
        col.key("plan_id"),
        col.version(primary_key=True),
        col.who("reader", primary_key=True),
    )
    assert _ddl(table, postgresql.dialect()) == [
        "plan_id VARCHAR(64) NOT NULL",
        "version INTEGER NOT NULL",
        "reader VARCHAR(200) NOT NULL",
        "PRIMARY KEY (plan_id, version, reader)",
    ]
    assert col.key().name == "id"


def test_column_options_pass_through() -> None:
    table = sa.Table(
        "t",
        sa.MetaData(),
        col.key(),
        col.ref("patient_id", index=True),
        col.ref("source_event_id", nullable=True, unique=True),
    )
    assert _ddl(table, sqlite.dialect())[-1] == "UNIQUE (source_event_id)"
    assert [(i.name, [c.name for c in i.columns]) for i in table.indexes] == [
        ("ix_t_patient_id", ["patient_id"])
    ]


def test_each_call_makes_a_new_column() -> None:
    # A migration's upgrade may run again in the same process (downgrade, then upgrade): a column
    # already bound to the first run's table could not be bound to the second's.
    first, second = col.resource(), col.resource()
    assert first is not second
    sa.Table("a", sa.MetaData(), first)
    sa.Table("b", sa.MetaData(), second)
