"""The audit trail: one row for every read, write and refusal of patient data.

Writes are audited in the same transaction as the change (a change without its audit row cannot
commit); reads and refusals in a transaction of their own. Rows can be exported as FHIR AuditEvent.

Every row is sealed with an HMAC-SHA256 of its content under the audit key (`configure`, done by
each service at start from `IOPCARE_AUDIT_KEY_FILE`, or a development key in the data folder), so
`verify` finds a row altered in the database afterwards (test-matrix C12). Someone holding the key
and the database could forge rows: the key belongs outside the database's reach.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, insert, select

from iopcare.kit import files
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, as_utc
from iopcare.kit.errors import IopcareError, NotFound
from iopcare.kit.settings import ConfigurationError, Settings

READ = "read"
SEARCH = "search"
CREATE = "create"
UPDATE = "update"

SUCCESS = "success"
DENIED = "denied"
NOT_FOUND = "not-found"


_key: bytes | None = None


def configure(key: bytes) -> None:
    """The key rows are sealed with from now on, in this process."""
    global _key
    _key = key


def load_key(path: Path, *, create: bool = True) -> bytes:
    """The audit key in `path`, created (32 random bytes, owner-only) when there is none yet and
    `create` allows it (the development key only: a configured key that is missing must stop
    the process, or each pod would seal with a random key of its own that nobody can verify)."""
    if not path.exists():
        if not create:
            raise ConfigurationError(
                f"IOPCARE_AUDIT_KEY_FILE names {path}, which does not exist; provide the key "
                "(e.g. from a secret) rather than letting a pod generate its own"
            )
        files.write_private(path, secrets.token_bytes(32))
    return path.read_bytes()


def key_for(settings: Settings) -> bytes:
    """The audit key a process seals (or verifies) with: IOPCARE_AUDIT_KEY_FILE, or in
    development mode a key generated once under data_dir/dev-keys."""
    settings.require_keys(audit_key=True)
    return load_key(settings.audit_key_path, create=settings.audit_key_file is None)


def seal(key: bytes, values: dict[str, Any]) -> str:
    """HMAC-SHA256 (hex) of an audit row's content, field by field, time as a UTC instant."""
    parts = [as_utc(values["time"]).astimezone(UTC).isoformat()] + [
        "\x00" if values.get(name) is None else str(values[name]) for name in _SEALED
    ]
    message = "\x1f".join(parts).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


_SEALED = ("principal", "role", "action", "resource", "patient_id", "outcome", "detail")


def verify(conn: Connection, audit: Table, key: bytes) -> tuple[list[int], int]:
    """(ids of rows whose content no longer matches their seal, count of unsealed rows)."""
    altered: list[int] = []
    unsealed = 0
    for row in conn.execute(select(audit).order_by(audit.c.id)).mappings():
        if row["seal"] is None:
            unsealed += 1
        elif not hmac.compare_digest(row["seal"], seal(key, dict(row))):
            altered.append(int(row["id"]))
    return altered, unsealed


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
    values: dict[str, Any] = {
        "time": datetime.now(UTC),
        "principal": principal.subject,
        "role": principal.role,
        "action": action,
        "resource": resource,
        "patient_id": patient_id,
        "outcome": outcome,
        "detail": detail,
    }
    record_rows(conn, audit, [values])


def record_rows(conn: Connection, audit: Table, rows: list[dict[str, Any]]) -> None:
    """Inserts prepared audit rows (e.g. one per search hit), each sealed."""
    sealed = [{**row, "seal": seal(_key, row) if _key is not None else None} for row in rows]
    conn.execute(insert(audit), sealed)


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
    """Audits a refused request (test-matrix C11: every refusal has its row) and re-raises it.

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
