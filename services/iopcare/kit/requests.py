"""Idempotent creates: a client's `request_id` maps to what its first attempt created."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError

from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import Aborted, FieldViolation, InvalidArgument

MAX_REQUEST_ID = 100


def check_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
        raise InvalidArgument(
            "request_id is required",
            [FieldViolation("request_id", f"1 to {MAX_REQUEST_ID} printable characters")],
        )


def create_once(
    db: Database,
    request_log: Table,
    principal: Principal,
    operation: str,
    request_id: str,
    create: Callable[[UnitOfWork, str], str | None],
    new_id: Callable[[], str],
) -> tuple[str, bool]:
    """Runs `create` in a unit of work unless this request ran before.

    `create(uow, new_id)` creates the resource under the id `new_id()` chose, or returns the id
    of the existing resource the request resolved to instead (a registration that linked to a
    known patient); that id is what a retry gets back. Returns the id and whether this call
    created or changed it. The request log row is
    inserted in the same transaction as the creation: either both commit or neither does. Two
    concurrent attempts with the same request id (a client retry racing its own first attempt)
    collide on the request log's primary key; the loser rolls back and returns the winner's
    result (reliability B8).
    """
    check_request_id(request_id)
    key = (
        (request_log.c.principal == principal.subject)
        & (request_log.c.operation == operation)
        & (request_log.c.request_id == request_id)
    )
    for _ in range(3):
        with UnitOfWork(db) as uow:
            existing = uow.conn.execute(select(request_log.c.result_id).where(key)).scalar()
            if existing is not None:
                return str(existing), False
            result_id = new_id()
            try:
                uow.conn.execute(
                    insert(request_log).values(
                        principal=principal.subject,
                        operation=operation,
                        request_id=request_id,
                        result_id=result_id,
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
    raise Aborted("the request collided with a concurrent retry of itself; retry it")
