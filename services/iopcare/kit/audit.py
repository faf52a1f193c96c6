"""The audit trail: one row for every read, write and refusal of patient data.

Writes are audited in the same transaction as the change (a change without its audit row cannot
commit); reads and refusals in a transaction of their own, shared by the reads that arrive together
(group commit, ADR 0013: each request still waits until its own row has committed). Rows can be
exported as FHIR AuditEvent.

Every row is sealed with an HMAC-SHA256 of its content under the audit key (`configure`, done by
each service at start from `IOPCARE_AUDIT_KEY_FILE`, or a development key in the data folder), so
`verify` finds a row altered in the database afterwards (test-matrix C12). Someone holding the key
and the database could forge rows: the key belongs outside the database's reach.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Required, TypedDict, Unpack

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


class Entry(TypedDict, total=False):
    """What an audit row says besides who acted and how: the resource (e.g. `CarePlan/p1`, or an
    operation's name) and its patient, what came of it and why (a refusal's reason)."""

    resource: Required[str | None]
    patient_id: Required[str | None]
    outcome: str
    detail: str | None


def row(principal: Principal, action: str, **entry: Unpack[Entry]) -> dict[str, Any]:
    """The content of an audit row of `principal` doing `action` now (outcome: SUCCESS unless
    said otherwise)."""
    return {
        "time": datetime.now(UTC),
        "principal": principal.subject,
        "role": principal.role,
        "action": action,
        "resource": entry["resource"],
        "patient_id": entry["patient_id"],
        "outcome": entry.get("outcome", SUCCESS),
        "detail": entry.get("detail"),
    }


def record(
    conn: Connection, audit: Table, principal: Principal, action: str, **entry: Unpack[Entry]
) -> None:
    """Audits in the caller's transaction (a write: its row commits with the change or not at
    all)."""
    record_rows(conn, audit, [row(principal, action, **entry)])


def record_rows(conn: Connection, audit: Table, rows: list[dict[str, Any]]) -> None:
    """Inserts prepared audit rows (e.g. one per search hit), each sealed."""
    sealed = [{**one, "seal": seal(_key, one) if _key is not None else None} for one in rows]
    conn.execute(insert(audit), sealed)


def record_separately(
    db: Database, audit: Table, principal: Principal, action: str, **entry: Unpack[Entry]
) -> None:
    """Audits a read or a refusal outside the request's own transaction: returns once the row has
    committed (or raises why it could not), in a transaction shared with the rows of concurrent
    requests (`GroupCommit`)."""
    group_commit(db, audit).write(row(principal, action, **entry))


class _Waiting:
    """One request's row, waiting for the transaction that commits it."""

    __slots__ = ("done", "error", "lead", "row")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.done = threading.Event()
        self.lead = False
        self.error: BaseException | None = None


class GroupCommit:
    """Writes the audit rows of concurrent requests in one transaction (ADR 0013).

    A request that finds no transaction under way leads one: it takes every row waiting (its own
    and those queued meanwhile), inserts them, commits, and wakes their requests; a row queued
    while that transaction runs waits for the next one, led by the first such request. Every
    request returns only once its own row has committed, and a failed commit raises in every
    request whose row it carried: a read is never answered without its durable audit row. On
    SQLite that makes one write transaction (one lock hand-over, one WAL commit) per burst of
    reads instead of one per read.
    """

    def __init__(self, db: Database, audit: Table) -> None:
        self.db = db
        self.audit = audit
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._busy = False

    def write(self, row: dict[str, Any]) -> None:
        mine = _Waiting(row)
        with self._lock:
            self._queue.append(mine)
            lead = not self._busy
            self._busy = True
        if not lead:
            mine.done.wait()
            if not mine.lead:
                if mine.error is not None:
                    raise mine.error
                return
        self._commit_queued()
        if mine.error is not None:
            raise mine.error

    def _commit_queued(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        error: BaseException | None = None
        try:
            with self.db.write() as conn:
                record_rows(conn, self.audit, [w.row for w in batch])
        except BaseException as exc:  # every request of the batch learns its row is not written
            error = exc
        with self._lock:
            following = self._queue[0] if self._queue else None
            if following is None:
                self._busy = False
        for waiting in batch:
            waiting.error = error
            waiting.done.set()
        if following is not None:  # hand the next transaction to the first request queued
            following.lead = True
            following.done.set()


def group_commit(db: Database, audit: Table) -> GroupCommit:
    """The one `GroupCommit` of a database's audit table in this process."""
    with db.shared_lock:
        group = db.shared.get(("audit", audit.name))
        if not isinstance(group, GroupCommit) or group.audit is not audit:
            group = db.shared[("audit", audit.name)] = GroupCommit(db, audit)
    return group


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
