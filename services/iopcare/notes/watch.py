"""Waking `WatchThread` streams when a patient's thread gets a new message.

Any transaction that stores a message marks its patient on the connection (`posted`); once the
transaction has committed and the connection went back to the pool, the hub bumps the patient's
counter and wakes the streams waiting on it. Streams then read the thread from their cursor, so a
wake-up is only a hint: a stream that misses one (or reconnects with its cursor) still catches up
from the database, and a periodic re-read bounds how late a missed hint can make it.

Why after check-in and not on the "commit" event: SQLAlchemy fires that event before the database
commits, and a stream woken then could read before the row is visible and go back to sleep with
the message unread. A connection is checked in only after its transaction committed or rolled
back; rolled back marks are dropped on the "rollback" event.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Connection, Engine, event

from iopcare.kit import limits

_PENDING = "iopcare_notes_posted"
_COMMITTED = "iopcare_notes_committed"


def inbox_key(recipient: str) -> str:
    """The key a recipient's own stream waits on (never a patient id: those have no colon)."""
    return f"to:{recipient}"


def posted(conn: Connection, patient_id: str) -> None:
    """Marks that this transaction stores a message in the patient's thread."""
    conn.info.setdefault(_PENDING, set()).add(patient_id)


class ThreadWatch:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._counters: dict[str, int] = {}
        self._closed = False

    def install(self, engine: Engine) -> None:
        event.listen(engine, "commit", self._on_commit)
        event.listen(engine, "rollback", self._on_rollback)
        event.listen(engine, "checkin", self._on_checkin)

    @staticmethod
    def _on_commit(conn: Connection) -> None:
        pending = conn.info.pop(_PENDING, None)
        if pending:
            conn.info.setdefault(_COMMITTED, set()).update(pending)

    @staticmethod
    def _on_rollback(conn: Connection) -> None:
        conn.info.pop(_PENDING, None)

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        committed = record.info.pop(_COMMITTED, None)
        if committed:
            self.notify(committed)

    def notify(self, patients: set[str]) -> None:
        with self._changed:
            for patient in patients:
                self._counters[patient] = self._counters.get(patient, 0) + 1
            self._changed.notify_all()

    def counter(self, patient_id: str) -> int:
        with self._changed:
            return self._counters.get(patient_id, 0)

    def wait(self, patient_id: str, seen: int, timeout: float) -> None:
        """Returns when the patient's thread changed since `seen`, on close, or after timeout."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._closed or self._counters.get(patient_id, 0) != seen, timeout
            )

    def wake_all(self) -> None:
        with self._changed:
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Ends every stream (server shutdown): they return after their current batch."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class WatchPlaces:
    """The places WatchThread streams may hold: `total` on this server and `per_client` for one
    principal (token subject).

    Why both: each stream holds a server thread while it waits, so `total` keeps threads for the
    other calls; without `per_client` one clinician (or one stolen token) could open every one
    of those places and leave the rest of the team without a live thread (issue 10). The
    per-client check comes first, so a client over its share never takes a server-wide place
    even for an instant."""

    def __init__(self, total: int, per_client: int, retry_after_seconds: float = 1.0) -> None:
        self._total = threading.BoundedSemaphore(max(1, total))
        self._clients = limits.ClientLimiter(
            max(1, per_client),
            retry_after_seconds,
            what="WatchThread streams",
            reason="TOO_MANY_WATCHERS_FOR_CLIENT",
        )
        self.retry_after_seconds = retry_after_seconds

    def acquire(self, subject: str) -> None:
        """Takes a place for the subject's stream, or raises Throttled (RESOURCE_EXHAUSTED with
        a RetryInfo)."""
        self._clients.acquire(subject)
        if not self._total.acquire(blocking=False):
            self._clients.release(subject)
            raise limits.Throttled(
                "too many WatchThread streams are open on this server; retry later",
                self.retry_after_seconds,
                reason="TOO_MANY_WATCHERS",
            )

    def release(self, subject: str) -> None:
        self._total.release()
        self._clients.release(subject)
