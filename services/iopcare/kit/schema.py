"""Tables every service has: outbox, inbox, request log and audit log.

Each service adds them to its own MetaData with `add_kit_tables(metadata)` (through its
kit.service_schema.ServiceSchema) and creates them in its first Alembic migration with
`create_kit_tables_v1(op)`. The migration helpers are versioned on purpose: a later change to these
tables is a new helper, a new step in kit.migration_steps and a new migration in each service,
never an edit here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def outbox_columns(version: int = 2) -> list[Any]:
    """The outbox's columns; `version=1` is what the services' first migrations created."""
    columns = [
        # The id orders publication: rows go out in commit order per key, because the relay reads
        # them by id and one patient's rows land on one partition.
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("source", String(200), nullable=False),
        Column("subject", String(400), nullable=False),
        Column("time", DateTime(timezone=True), nullable=False),
        Column("traceparent", String(60), nullable=True),
        Column("content_type", String(100), nullable=False),
        Column("payload", Text, nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
    ]
    if version >= 2:
        columns += outbox_parking_columns()
    return columns


def outbox_parking_columns() -> list[Any]:
    """A row the brokers can never take (too large, invalid) is parked by the relay instead of
    being retried forever (kit.relay): when, and the error. Null on every other row."""
    return [
        Column("parked_at", DateTime(timezone=True), nullable=True),
        Column("park_reason", Text, nullable=True),
    ]


def add_outbox_parking_v2(op: Any) -> None:
    """Alembic operation adding the parking columns (each service's migration calls it once)."""
    for column in outbox_parking_columns():
        op.add_column("outbox", column)


def inbox_columns() -> list[Any]:
    return [
        # (consumer, event_id) is the idempotency key: inserting it in the same transaction as
        # the effect means a redelivered event fails the insert and its effect is never applied
        # twice.
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False),
    ]


def request_log_columns(version: int = 2) -> list[Any]:
    """The request log's columns; `version=1` is what the services' first migrations created."""
    columns = [
        # A client's request_id, scoped by caller and operation, mapped to what the first attempt
        # created: a retry after a lost answer returns that instead of creating a twin.
        Column("principal", String(200), primary_key=True),
        Column("operation", String(100), primary_key=True),
        Column("request_id", String(100), primary_key=True),
        Column("result_id", String(100), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    ]
    if version >= 2:
        # What the first attempt asked for (kit.requests.fingerprint): a repeat with another
        # request under the same id is refused, not answered with this row's result. Null on
        # rows written before version 2 (answered as before).
        columns.append(Column("fingerprint", String(64), nullable=True))
    return columns


def audit_columns(version: int = 2) -> list[Any]:
    """The audit log's columns; `version=1` is what the services' first migrations created."""
    columns = [
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("time", DateTime(timezone=True), nullable=False),
        Column("principal", String(200), nullable=False),
        Column("role", String(100), nullable=False),
        Column("action", String(40), nullable=False),
        Column("resource", String(200), nullable=True),
        Column("patient_id", String(100), nullable=True),
        Column("outcome", String(40), nullable=False),
        Column("detail", Text, nullable=True),
    ]
    if version >= 2:
        # HMAC-SHA256 of the row's content under the audit key (kit.audit): an altered row no
        # longer matches its seal (test-matrix C12). Null on rows written before version 2.
        columns.append(Column("seal", String(64), nullable=True))
    return columns


def add_audit_seal_v2(op: Any) -> None:
    """Alembic operation adding the audit seal (each service's migration calls it once)."""
    op.add_column("audit_log", sa.Column("seal", sa.String(64), nullable=True))


def add_request_fingerprint_v2(op: Any) -> None:
    """Alembic operation adding the request fingerprint (each service's migration calls it once)."""
    op.add_column("request_log", sa.Column("fingerprint", sa.String(64), nullable=True))


def add_kit_tables(metadata: MetaData) -> dict[str, Table]:
    outbox = Table("outbox", metadata, *outbox_columns())
    Index(
        "ix_outbox_unsent",
        outbox.c.id,
        sqlite_where=outbox.c.sent_at.is_(None),
        postgresql_where=outbox.c.sent_at.is_(None),
    )
    inbox = Table("inbox", metadata, *inbox_columns())
    request_log = Table("request_log", metadata, *request_log_columns())
    audit = Table("audit_log", metadata, *audit_columns())
    Index("ix_audit_log_patient", audit.c.patient_id, audit.c.time)
    return {"outbox": outbox, "inbox": inbox, "request_log": request_log, "audit_log": audit}


def create_kit_tables_v1(op: Any) -> None:
    """Alembic operations creating the kit tables as `add_kit_tables` describes them (v1)."""
    op.create_table("outbox", *outbox_columns(version=1))
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["id"],
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_table("inbox", *inbox_columns())
    op.create_table("request_log", *request_log_columns(version=1))
    op.create_table("audit_log", *audit_columns(version=1))
    op.create_index("ix_audit_log_patient", "audit_log", ["patient_id", "time"])
