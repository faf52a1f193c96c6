"""notes' requests under the kit's idempotency rule (`kit/requests.py`), bound to notes' request
and audit logs: a repeat of a request returns its first result; the same `request_id` with a
different request is refused (INVALID_ARGUMENT, REQUEST_ID_REUSED) and audited.

The RPCs that change an existing resource (retract, mark read, acknowledge, sign, ...) take an
optional `request_id`: with one, `earlier` answers a repeat before anything is checked again (a
retry of a retraction that committed is not told ALREADY_RETRACTED), and `change` runs the change
once; without one, the change runs as before, kept from applying twice by its expected version or
by being idempotent itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Table

from iopcare.kit import requests
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.notes import store


@dataclass(frozen=True)
class Asked:
    """One request under the rule: who asked, for which operation, under which `request_id`,
    and what it asked for (`request`, whose fingerprint a repeat must match)."""

    principal: Principal
    operation: str
    request_id: str
    request: object

    @property
    def key(self) -> tuple[Table, Principal, str, str]:
        """How kit.requests names it: notes' request log, then the key of its row there."""
        return store.request_log, self.principal, self.operation, self.request_id


def earlier(db: Database, asked: Asked, patient_id: str | None = None) -> str | None:
    """The first result of this request if it ran before (None without a request id); a
    refusal is audited for `patient_id`."""
    if not asked.request_id:
        return None
    return requests.replayed(
        db, *asked.key, request=asked.request, audit_log=store.audit_log, patient_id=patient_id
    )


def create(
    db: Database,
    asked: Asked,
    make: Callable[[UnitOfWork, str], str | None],
    patient_id: str | None = None,
) -> tuple[str, bool]:
    """`kit.requests.create_once` with a new uuid: (the result's id, whether this call made it)."""
    return requests.create_once(
        db,
        *asked.key,
        make,
        lambda: str(uuid.uuid4()),
        request=asked.request,
        audit_log=store.audit_log,
        patient_id=patient_id,
    )


def change(
    db: Database,
    asked: Asked,
    result_id: str,
    apply: Callable[[UnitOfWork], None],
    patient_id: str | None = None,
    *,
    caller_audits_refusals: bool = True,
) -> bool:
    """`kit.requests.change_once`: `apply` runs in one unit of work, at most once per request id
    (always without one); `result_id` is what a repeat is answered with. The call runs inside the
    caller's `JOURNAL.refusals` (which audits a refusal) unless `caller_audits_refusals` is
    False."""
    return requests.change_once(
        db,
        *asked.key,
        result_id,
        apply,
        request=asked.request,
        audit_log=None if caller_audits_refusals else store.audit_log,
        patient_id=patient_id,
    )
