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

from iopcare.kit import requests
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.notes import store


def earlier(
    db: Database,
    principal: Principal,
    operation: str,
    request_id: str,
    request: object,
    patient_id: str | None = None,
) -> str | None:
    """The first result of this request if it ran before (None without a request id)."""
    if not request_id:
        return None
    return requests.replayed(
        db,
        store.request_log,
        principal,
        operation,
        request_id,
        request=request,
        audit_log=store.audit_log,
        patient_id=patient_id,
    )


def create(
    db: Database,
    principal: Principal,
    operation: str,
    request_id: str,
    request: object,
    make: Callable[[UnitOfWork, str], str | None],
    patient_id: str | None = None,
) -> tuple[str, bool]:
    """`kit.requests.create_once` with a new uuid: (the result's id, whether this call made it)."""
    return requests.create_once(
        db,
        store.request_log,
        principal,
        operation,
        request_id,
        make,
        lambda: str(uuid.uuid4()),
        request=request,
        audit_log=store.audit_log,
        patient_id=patient_id,
    )


def change(
    db: Database,
    principal: Principal,
    operation: str,
    request_id: str,
    request: object,
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
        store.request_log,
        principal,
        operation,
        request_id,
        result_id,
        apply,
        request=request,
        audit_log=None if caller_audits_refusals else store.audit_log,
        patient_id=patient_id,
    )
