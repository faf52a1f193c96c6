"""The audit trail: one row for every read, write and refusal of patient data.

Writes are audited in the same transaction as the change (a change without its audit row cannot
commit); reads and refusals in a transaction of their own. Rows can be exported as FHIR AuditEvent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Table, insert

from iopcare.kit.auth import Principal
from iopcare.kit.db import Database
from iopcare.kit.errors import IopcareError, NotFound

READ = "read"
SEARCH = "search"
CREATE = "create"
UPDATE = "update"

SUCCESS = "success"
DENIED = "denied"
NOT_FOUND = "not-found"


def record(
    conn: Connection,
    audit: Table,
    principal: Principal,
    action: str,
    *,
    resource: str | None,
    patient_id: str | None,
    outcome: str = SUCCESS,
    detail: str | None = None,
) -> None:
    conn.execute(
        insert(audit).values(
            time=datetime.now(UTC),
            principal=principal.subject,
            role=principal.role,
            action=action,
            resource=resource,
            patient_id=patient_id,
            outcome=outcome,
            detail=detail,
        )
    )


def record_separately(
    db: Database,
    audit: Table,
    principal: Principal,
    action: str,
    *,
    resource: str | None,
    patient_id: str | None,
    outcome: str = SUCCESS,
    detail: str | None = None,
) -> None:
    """Audits a read or a refusal in its own transaction."""
    with db.write() as conn:
        record(
            conn,
            audit,
            principal,
            action,
            resource=resource,
            patient_id=patient_id,
            outcome=outcome,
            detail=detail,
        )


@contextmanager
def refusals(
    db: Database,
    audit: Table,
    principal: Principal,
    action: str,
    resource: str,
    patient_id: str | None = None,
) -> Iterator[None]:
    """Audits a refused request (reliability C11: every refusal has its row) and re-raises it.

    The row is written in its own transaction, since the refused one is rolled back.
    """
    try:
        yield
    except IopcareError as exc:
        record_separately(
            db,
            audit,
            principal,
            action,
            resource=resource,
            patient_id=patient_id,
            outcome=NOT_FOUND if isinstance(exc, NotFound) else DENIED,
            detail=exc.reason,
        )
        raise
