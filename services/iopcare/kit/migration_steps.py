"""Alembic steps that every service's migrations take alike, each written once, both ways.

The kit's tables (kit.schema) and the care-team projection (kit.teams) change the same way in
every service that has them; only where the step stands in each service's revision chain differs.
A service's migration for such a step names its revision and binds the step:

    revision = "0006"
    down_revision = "0005"
    upgrade, downgrade = migration_steps.AUDIT_SEAL_V2

A step is versioned like the helpers it calls: a later change is a new step and a new migration in
each service, never an edit of one that has shipped (databases already carry its effect).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from alembic import op

from iopcare.kit.schema import (
    add_audit_seal_v2,
    add_outbox_parking_v2,
    add_request_fingerprint_v2,
)
from iopcare.kit.teams import create_member_table_v1, create_projection_table_v1
from iopcare.kit.versioned import create_versioned_tables_v1

#: The kit's tables as the services' first migrations create them, in the order they drop.
KIT_TABLES_V1 = ("audit_log", "request_log", "inbox", "outbox")


class Step(NamedTuple):
    """A migration's `upgrade` and `downgrade`, run on Alembic's current operations."""

    upgrade: Callable[[], None]
    downgrade: Callable[[], None]


def step(upgrade: Callable[[Any], None], downgrade: Callable[[Any], None]) -> Step:
    """The step of two functions taking Alembic's `op`."""
    return Step(lambda: upgrade(op), lambda: downgrade(op))


def drop_kit_tables_v1(ops: Any) -> None:
    """Undoes `kit.schema.create_kit_tables_v1` (the end of each service's first downgrade)."""
    for table in KIT_TABLES_V1:
        ops.drop_table(table)


def drop_audit_seal_v2(ops: Any) -> None:
    ops.drop_column("audit_log", "seal")


def drop_request_fingerprint_v2(ops: Any) -> None:
    ops.drop_column("request_log", "fingerprint")


def drop_outbox_parking_v2(ops: Any) -> None:
    ops.drop_column("outbox", "park_reason")
    ops.drop_column("outbox", "parked_at")


def drop_member_table_v1(ops: Any) -> None:
    """Undoes `kit.teams.create_member_table_v1` (its indexes go with the table)."""
    ops.drop_table("care_team_member")


def create_team_projection_v1(ops: Any) -> None:
    """The memberships a projecting service (scheduling, notes) keeps, and the versions it saw."""
    create_member_table_v1(ops)
    create_projection_table_v1(ops)


def drop_team_projection_v1(ops: Any) -> None:
    ops.drop_table("care_team_seen")
    drop_member_table_v1(ops)


def drop_versioned_tables_v1(ops: Any, name: str) -> None:
    """Undoes `kit.versioned.create_versioned_tables_v1` (the patient index goes with its table)."""
    ops.drop_table(f"{name}_history")
    ops.drop_table(name)


def versioned_tables_v1(*names: str) -> Step:
    """The step creating each named resource's current and history tables (kit.versioned), its
    downgrade dropping them in the reverse order."""

    def upgrade(ops: Any) -> None:
        for name in names:
            create_versioned_tables_v1(ops, name)

    def downgrade(ops: Any) -> None:
        for name in reversed(names):
            drop_versioned_tables_v1(ops, name)

    return step(upgrade, downgrade)


#: Audit rows sealed with an HMAC of their content (kit.audit; test-matrix C12).
AUDIT_SEAL_V2 = step(add_audit_seal_v2, drop_audit_seal_v2)
#: The request log keeps each request's fingerprint (kit.requests; issue 11, item 2).
REQUEST_FINGERPRINT_V2 = step(add_request_fingerprint_v2, drop_request_fingerprint_v2)
#: Outbox rows the brokers refuse for good are parked (kit.relay; issue 10).
OUTBOX_PARKING_V2 = step(add_outbox_parking_v2, drop_outbox_parking_v2)
#: Care team memberships projected from careplan's events (kit.teams).
TEAM_PROJECTION_V1 = step(create_team_projection_v1, drop_team_projection_v1)
