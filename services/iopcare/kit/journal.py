"""One service's write path: the events and audit rows of a change, in the change's transaction.

A service binds its `Journal` once (its event source, its outbox topic, its outbox and audit
tables); every write then records what happened through it, in the caller's unit of work:

    with UnitOfWork(db) as uow:
        tables.insert(uow.conn, stored, principal.reference)          # the change
        JOURNAL.publish(uow, event_type, subject, key=patient_id, data=stored.resource)
        JOURNAL.audit(uow, principal, audit.CREATE, resource=..., patient_id=patient_id)
        uow.commit()
    notify_outbox()                                                    # wake the relay

The change, its outbox rows and its audit rows commit together or not at all: the relay publishes
(signs and, where configured, encrypts) an event only once its row has committed, and a change
cannot commit without its audit row. Waking the relay after commit stays with the caller, which
knows when the commit happened.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Unpack

from sqlalchemy import Table

from iopcare.kit import audit as audit_trail
from iopcare.kit.audit import Entry
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.events import Event, append_to_outbox, child_traceparent
from iopcare.kit.versioned import Stored


@dataclass(frozen=True)
class Journal:
    """Where a service's writes leave their trace: its events (outbox) and its audit rows."""

    source: str
    topic: str
    outbox: Table
    audit_log: Table

    def publish(
        self,
        uow: UnitOfWork,
        event_type: str,
        subject: str,
        *,
        key: str,
        data: str,
        at: datetime | None = None,
        parent_trace: str | None = None,
    ) -> Event:
        """Appends an event to the outbox in `uow`'s transaction; it is published if and only if
        the unit of work commits. `key` picks the partition (a patient's events are keyed by the
        patient, so they stay in order); `parent_trace` continues the trace of what caused it."""
        event = Event(
            type=event_type,
            source=self.source,
            subject=subject,
            key=key,
            data=data,
            time=at or datetime.now(UTC),
            traceparent=child_traceparent(parent_trace),
        )
        append_to_outbox(uow.conn, self.outbox, self.topic, event)
        return event

    def publish_version(
        self,
        uow: UnitOfWork,
        resource_type: str,
        item: Stored,
        event_type: str,
        *,
        parent_trace: str | None = None,
    ) -> Event:
        """The event of a new version of a versioned resource, keyed by its patient, at the time
        the version was written."""
        return self.publish(
            uow,
            event_type,
            f"{resource_type}/{item.id}/_history/{item.version}",
            key=item.patient_id,
            data=item.resource,
            at=item.updated_at,
            parent_trace=parent_trace,
        )

    def record_version(
        self,
        uow: UnitOfWork,
        principal: Principal,
        action: str,
        resource_type: str,
        item: Stored,
        event_type: str,
        *,
        detail: str | None = None,
        parent_trace: str | None = None,
    ) -> Event:
        """The trace of a version a use case wrote (created or revised): its event and its audit
        row naming the resource and its patient, both in `uow`'s transaction."""
        event = self.publish_version(
            uow, resource_type, item, event_type, parent_trace=parent_trace
        )
        self.audit(
            uow,
            principal,
            action,
            resource=f"{resource_type}/{item.id}",
            patient_id=item.patient_id,
            detail=detail,
        )
        return event

    def audit(
        self, uow: UnitOfWork, principal: Principal, action: str, **entry: Unpack[Entry]
    ) -> None:
        """The audit row of a write, in `uow`'s transaction (it commits with the change)."""
        audit_trail.record(uow.conn, self.audit_log, principal, action, **entry)

    def audit_rows(self, uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
        """Prepared audit rows (e.g. one per item touched), in `uow`'s transaction."""
        audit_trail.record_rows(uow.conn, self.audit_log, rows)

    def audit_separately(
        self, db: Database, principal: Principal, action: str, **entry: Unpack[Entry]
    ) -> None:
        """The audit row of a read or a refusal, in a transaction of its own."""
        audit_trail.record_separately(db, self.audit_log, principal, action, **entry)

    def refusals(
        self,
        db: Database,
        principal: Principal,
        action: str,
        resource: str,
        patient_id: str | None = None,
    ) -> AbstractContextManager[None]:
        """Audits a refused request in its own transaction and re-raises it (`audit.refusals`)."""
        return audit_trail.refusals(db, self.audit_log, principal, action, resource, patient_id)
