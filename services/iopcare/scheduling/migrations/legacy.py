"""Tables scheduling's migrations once created and later replaced: one definition for the
revision that creates each and the one whose downgrade brings it back."""

from __future__ import annotations

from typing import Any

from iopcare.kit import migration_columns as col


def create_request_fingerprint_table(op: Any) -> None:
    """What each idempotent request asked for (0005), until the request log had it (0007)."""
    op.create_table(
        "request_fingerprint",
        col.who("principal", primary_key=True),
        col.string("operation", 100, primary_key=True),
        col.string("request_id", 100, primary_key=True),
        col.string("fingerprint", 64),
    )
