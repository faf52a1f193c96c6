"""What every notes use case stands on: its database, the care-team access rule, the audit of
reads and refusals, and the paged, audited list of one patient's items."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy import Connection

from iopcare.kit import audit, paging, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.notes import cursor, store

T = TypeVar("T")


def audited(
    uow: UnitOfWork,
    principal: Principal,
    action: str,
    resource: str,
    patient_id: str | None,
    detail: str,
) -> None:
    """The audit row of a write, in the write's unit of work (`store.JOURNAL.audit`)."""
    store.JOURNAL.audit(
        uow, principal, action, resource=resource, patient_id=patient_id, detail=detail
    )


class UseCase:
    def __init__(self, db: Database, *, notify_outbox: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.notify_outbox = notify_outbox
        self.access = teams.TeamAccess(store.care_team_member)

    def basis(self, principal: Principal, action: str, resource: str, patient_id: str) -> str:
        """The caller's basis for acting on the patient's record (`kit.teams`), or the refusal,
        audited and raised."""
        return teams.require_access(
            self.db, store.audit_log, self.access, principal, action, resource, patient_id
        )

    def audit_access(
        self,
        principal: Principal,
        action: str,
        resource: str,
        patient_id: str | None,
        detail: str,
        outcome: str = audit.SUCCESS,
    ) -> None:
        """The audit row of a read or a refusal, in a transaction of its own."""
        store.JOURNAL.audit_separately(
            self.db,
            principal,
            action,
            resource=resource,
            patient_id=patient_id,
            outcome=outcome,
            detail=detail,
        )

    def refusals(
        self, principal: Principal, action: str, resource: str, patient_id: str | None = None
    ) -> AbstractContextManager[None]:
        """Audits a refusal raised in the block and re-raises it."""
        return store.JOURNAL.refusals(self.db, principal, action, resource, patient_id)

    def listed(
        self,
        principal: Principal,
        resource: str,
        patient_id: str,
        page_size: int,
        page_token: str,
        read: Callable[[Connection, int, cursor.Position | None], list[T]],
        key: Callable[[T], cursor.Position],
        basis: Callable[[], str] | None = None,
    ) -> tuple[list[T], str]:
        """A page of one patient's items in (time, id) order and the next page's token:
        `read(conn, limit, after)` reads them; the search is audited with its hits and basis
        (the care-team rule unless `basis` decides it)."""
        size = paging.page_size(page_size)
        position = cursor.position_after(page_token)
        if basis is not None:
            why = basis()
        else:
            why = self.basis(principal, audit.SEARCH, resource, patient_id)
        with self.db.read() as conn:
            rows = read(conn, size + 1, position)
        found, token = cursor.page(rows, size, key)
        self.audit_access(
            principal, audit.SEARCH, resource, patient_id, f"{len(found)} hits; {why}"
        )
        return found, token
