"""The kinds of column the services' migrations create, each kind's SQL type written once.

A migration's table reads as what its columns hold: `key()` the row's id, `ref("patient_id")`
another resource's id, `who("author")` a principal's reference, `string("status", 32)` a code of at
most 32 characters, `at("signed_at", nullable=True)` an instant... Columns are NOT NULL unless
they say `nullable=True`; other Column options (`primary_key`, `unique`, `index`,
`server_default`) pass through.

Shipped migrations call these, and databases already carry their effect: a kind's type never
changes (tests/unit/test_migration_columns.py holds each to its DDL on SQLite and PostgreSQL). A
column of another type is a plain `sa.Column`, or a new kind, in the migration that needs it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

Column = sa.Column[Any]


def _column(name: str, type_: Any, nullable: bool, options: dict[str, Any]) -> Column:
    return sa.Column(name, type_, nullable=nullable, **options)


def key(name: str = "id") -> Column:
    """A resource's id as the table's primary key (its first part, where columns after it say
    `primary_key=True` too)."""
    return sa.Column(name, sa.String(64), primary_key=True)


def ref(name: str, *, nullable: bool = False, **options: Any) -> Column:
    """A resource's id (`patient_id`, `care_plan_id`, ...): what `key()` holds, 64 characters."""
    return _column(name, sa.String(64), nullable, options)


def who(name: str, *, nullable: bool = False, **options: Any) -> Column:
    """A principal or participant as a reference (`Practitioner/p1`), 200 characters."""
    return _column(name, sa.String(200), nullable, options)


def string(name: str, length: int, *, nullable: bool = False, **options: Any) -> Column:
    """A code, a label or a title of at most `length` characters."""
    return _column(name, sa.String(length), nullable, options)


def text(name: str, *, nullable: bool = False) -> Column:
    """Text of any length (a note's body, a JSON list)."""
    return _column(name, sa.Text, nullable, {})


def resource() -> Column:
    """The resource's canonical FHIR JSON, as validated at the edge."""
    return text("resource")


def at(name: str, *, nullable: bool = False) -> Column:
    """An instant, with its time zone."""
    return _column(name, sa.DateTime(timezone=True), nullable, {})


def day(name: str, **options: Any) -> Column:
    """A calendar date."""
    return _column(name, sa.Date, False, options)


def number(name: str, **options: Any) -> Column:
    """A whole number (a count, a capacity)."""
    return _column(name, sa.Integer, False, options)


def version(**options: Any) -> Column:
    """The resource's version (the one an update must be based on)."""
    return number("version", **options)


def flag(name: str) -> Column:
    """A yes or no."""
    return _column(name, sa.Boolean, False, {})
