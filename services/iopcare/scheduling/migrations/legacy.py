"""Tables scheduling's migrations once created and later replaced: one definition for the
revision that creates each and the one whose downgrade brings it back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def create_request_fingerprint_table(op: Any) -> None:
    """What each idempotent request asked for (0005), until the request log had it (0007)."""
    op.create_table(
        "request_fingerprint",
        sa.Column("principal", sa.String(200), primary_key=True),
        sa.Column("operation", sa.String(100), primary_key=True),
        sa.Column("request_id", sa.String(100), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )
