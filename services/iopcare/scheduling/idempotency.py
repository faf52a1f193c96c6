"""Idempotent creates for scheduling: kit's `create_once`, plus a check that a retried request id
carries the same request.

kit's request log maps (caller, operation, request id) to the first result. Alone it answers a
request id reused with a different body (another patient, another time, another session) with
the first request's result, telling the caller that something it never asked for was done. The
fingerprint of the body is stored beside it, in the same transaction, and compared on every
repeat (AIP-155: a reused request id with a different request is an error).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable

from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.requests import create_once
from iopcare.scheduling import store


def fingerprint(body: object) -> str:
    """A stable hash of a request's body (dataclasses, tuples, datetimes...)."""
    text = json.dumps(body, default=repr, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def create_matching_once(
    db: Database,
    principal: Principal,
    operation: str,
    request_id: str,
    body: object,
    create: Callable[[UnitOfWork, str], str | None],
) -> str:
    """Runs `create` once per request id (kit's `create_once`) and returns the id it resolved
    to; a repeat with another body raises INVALID_ARGUMENT on `request_id`."""
    digest = fingerprint(body)

    def _create(uow: UnitOfWork, new_id: str) -> str | None:
        store.remember_request(uow.conn, principal.subject, operation, request_id, digest)
        return create(uow, new_id)

    result_id, created = create_once(
        db, store.request_log, principal, operation, request_id, _create, lambda: str(uuid.uuid4())
    )
    if not created:
        with db.read() as conn:
            known = store.request_fingerprint_of(conn, principal.subject, operation, request_id)
        # None: a request logged before fingerprints were kept; it is answered as before.
        if known is not None and known != digest:
            raise InvalidArgument(
                "request_id was already used for a different request",
                [FieldViolation("request_id", "already used for a different request")],
            )
    return result_id
