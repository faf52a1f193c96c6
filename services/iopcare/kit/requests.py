"""Idempotent writes: one mechanism for every mutating RPC of every service.

A client's `request_id` names one request. The service's request log maps (caller, operation,
request id) to what the first attempt resolved to, beside a fingerprint of the request: a canonical
hash of what was asked (the request message without its `request_id`, or the use case's inputs,
which are a function of it). Then:

- a repeat of the same request (a retry after a lost answer, or concurrent copies of it) returns
  the first result and changes nothing (test-matrix B8);
- the same request id with a different request is refused with INVALID_ARGUMENT, reason
  `REQUEST_ID_REUSED` (AIP-155), and audited. Answering it with the first result would tell the
  caller that something it never asked for was done, and could hand it another patient's record
  (issue 10, defect 14: CreateGoal for patient B returned A's goal).

The key is scoped by caller (token subject) and operation, so two callers never share a request id
and nobody can read another caller's result by guessing theirs. The log row and the effect commit
in one transaction: either both exist or neither does. Rows written before fingerprints were kept
have none and are answered as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from enum import Enum
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.exc import IntegrityError

from iopcare.kit import audit
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import Aborted, FieldViolation, InvalidArgument

MAX_REQUEST_ID = 100
#: The ErrorInfo reason of a request id reused for a different request.
REQUEST_ID_REUSED = "REQUEST_ID_REUSED"


class RequestIdReused(InvalidArgument):
    """The request id was already used by this caller for a different request of this
    operation. A client bug, never retried: a new request needs a new id."""

    reason = REQUEST_ID_REUSED

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"request_id was already used for a different {operation} request",
            [FieldViolation("request_id", "a new id for each new request; the same for a retry")],
            operation=operation,
        )


def check_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
        raise InvalidArgument(
            "request_id is required",
            [FieldViolation("request_id", f"1 to {MAX_REQUEST_ID} printable characters")],
        )


def fingerprint(request: object) -> str:
    """The canonical SHA-256 of a request: a protobuf message without its `request_id` (the
    field every mutating RPC has), or the inputs of a use case (dataclasses, mappings, sequences,
    datetimes, enums and scalars). Two requests that ask for the same thing hash the same
    whatever the field or key order."""
    text = json.dumps(_canonical(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, Message):
        copy = type(value)()
        copy.CopyFrom(value)
        if "request_id" in copy.DESCRIPTOR.fields_by_name:
            copy.ClearField("request_id")
        return {
            "@type": copy.DESCRIPTOR.full_name,
            "value": json_format.MessageToDict(copy, preserving_proto_field_name=True),
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=json.dumps)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return _canonical(value.value)
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def _key(request_log: Table, principal: Principal, operation: str, request_id: str) -> Any:
    return (
        (request_log.c.principal == principal.subject)
        & (request_log.c.operation == operation)
        & (request_log.c.request_id == request_id)
    )


def _first_result(
    conn: Connection,
    request_log: Table,
    principal: Principal,
    operation: str,
    request_id: str,
    digest: str,
) -> str | None:
    """The first result of this request if it ran before; RequestIdReused if what ran under its
    id was a different request."""
    row = conn.execute(
        select(request_log.c.result_id, request_log.c.fingerprint).where(
            _key(request_log, principal, operation, request_id)
        )
    ).first()
    if row is None:
        return None
    # None: logged before fingerprints were kept; answered as before.
    if row.fingerprint is not None and row.fingerprint != digest:
        raise RequestIdReused(operation)
    return str(row.result_id)


def _refusal_audited(
    db: Database,
    audit_log: Table | None,
    principal: Principal,
    operation: str,
    patient_id: str | None,
    exc: RequestIdReused,
) -> RequestIdReused:
    # Every refusal has its audit row (test-matrix C11); the refused transaction wrote nothing.
    # Without a table the caller audits it (the call runs inside its audit.refusals).
    if audit_log is None:
        return exc
    audit.record_separately(
        db,
        audit_log,
        principal,
        audit.CREATE,
        resource=operation,
        patient_id=patient_id,
        outcome=audit.DENIED,
        detail=exc.reason,
    )
    return exc


def replayed(
    db: Database,
    request_log: Table,
    principal: Principal,
    operation: str,
    request_id: str,
    *,
    request: object,
    audit_log: Table | None = None,
    patient_id: str | None = None,
) -> str | None:
    """The first result of a request that already ran (None if it did not), under the same
    rule as `create_once`: for a use case that cannot re-run its request after the first attempt
    (sending a draft deletes the draft), so it asks before it starts."""
    check_request_id(request_id)
    digest = fingerprint(request)
    with db.read() as conn:
        try:
            return _first_result(conn, request_log, principal, operation, request_id, digest)
        except RequestIdReused as exc:
            raise _refusal_audited(db, audit_log, principal, operation, patient_id, exc) from None


def create_once(
    db: Database,
    request_log: Table,
    principal: Principal,
    operation: str,
    request_id: str,
    create: Callable[[UnitOfWork, str], str | None],
    new_id: Callable[[], str],
    *,
    request: object,
    audit_log: Table | None = None,
    patient_id: str | None = None,
) -> tuple[str, bool]:
    """Runs `create` in a unit of work unless this request ran before.

    `request` is what the caller asked for (see `fingerprint`); a repeat must ask for the same.
    A refusal is audited in `audit_log` (with `patient_id`); pass None only when the call already
    runs inside the caller's `audit.refusals`, which audits it.
    `create(uow, new_id)` creates the resource under the id `new_id()` chose, or returns the id
    of the existing resource the request resolved to instead (a registration that linked to a
    known patient); that id is what a retry gets back. Returns the id and whether this call
    created or changed it. The request log row is inserted in the same transaction as the
    creation: either both commit or neither does. Two concurrent attempts with the same request
    id (a client retry racing its own first attempt) collide on the request log's primary key;
    the loser rolls back, then reads the winner's row: the same request gets the winner's result,
    a different one is refused (test-matrix B8).
    """
    check_request_id(request_id)
    digest = fingerprint(request)
    key = _key(request_log, principal, operation, request_id)
    for _ in range(3):
        with UnitOfWork(db) as uow:
            try:
                existing = _first_result(
                    uow.conn, request_log, principal, operation, request_id, digest
                )
            except RequestIdReused as exc:
                refused = exc
                break  # audited once this transaction has ended (it holds the writer)
            if existing is not None:
                return existing, False
            result_id = new_id()
            try:
                uow.conn.execute(
                    insert(request_log).values(
                        principal=principal.subject,
                        operation=operation,
                        request_id=request_id,
                        result_id=result_id,
                        fingerprint=digest,
                        created_at=datetime.now(UTC),
                    )
                )
            except IntegrityError:
                continue  # the concurrent attempt committed; read its result
            resolved = create(uow, result_id)
            if resolved is not None and resolved != result_id:
                uow.conn.execute(request_log.update().where(key).values(result_id=resolved))
                result_id = resolved
            uow.commit()
            return result_id, True
    else:
        raise Aborted("the request collided with a concurrent retry of itself; retry it")
    raise _refusal_audited(db, audit_log, principal, operation, patient_id, refused)


def change_once(
    db: Database,
    request_log: Table,
    principal: Principal,
    operation: str,
    request_id: str,
    resource_id: str,
    change: Callable[[UnitOfWork], None],
    *,
    request: object,
    audit_log: Table | None = None,
    patient_id: str | None = None,
) -> bool:
    """Changes an existing resource in one unit of work, at most once per request id: the same
    rule as `create_once` for the RPCs that revise (the first result is the resource, which the
    caller reloads). Without a request id the change just runs: the expected version it carries
    keeps a repeat from being applied twice, and the repeat is told STALE_VERSION instead of
    getting the first result. Returns whether this call made the change."""
    if not request_id:
        with UnitOfWork(db) as uow:
            change(uow)
            uow.commit()
        return True

    def _change(uow: UnitOfWork, _new_id: str) -> str:
        change(uow)
        return resource_id

    _, changed = create_once(
        db,
        request_log,
        principal,
        operation,
        request_id,
        _change,
        lambda: resource_id,
        request=request,
        audit_log=audit_log,
        patient_id=patient_id,
    )
    return changed


@dataclasses.dataclass(frozen=True)
class Asked:
    """One request under the rule, for a use case that runs inside its caller's
    `audit.refusals` (which audits a reused request id): the service's request log, who asked,
    for which operation, under which `request_id`, and what it asked for (`request`)."""

    request_log: Table
    principal: Principal
    operation: str
    request_id: str
    request: object

    def create(
        self, db: Database, make: Callable[[UnitOfWork, str], str | None], new_id: Callable[[], str]
    ) -> tuple[str, bool]:
        """`create_once` of this request."""
        return create_once(db, *self._key, make, new_id, request=self.request)

    def change(self, db: Database, resource_id: str, apply: Callable[[UnitOfWork], None]) -> bool:
        """`change_once` of this request."""
        return change_once(db, *self._key, resource_id, apply, request=self.request)

    @property
    def _key(self) -> tuple[Table, Principal, str, str]:
        return self.request_log, self.principal, self.operation, self.request_id
