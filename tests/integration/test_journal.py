"""kit.journal: a write's change, its outbox event and its audit row commit together or not at
all, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, insert, select

from iopcare.kit import audit
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.journal import Journal
from iopcare.kit.schema import add_kit_tables

metadata = MetaData()
kit = add_kit_tables(metadata)
thing = Table("thing", metadata, Column("id", String(64), primary_key=True))
JOURNAL = Journal("/iopcare/test", "iopcare.test.v1", kit["outbox"], kit["audit_log"])
PRINCIPAL = Principal(subject="Practitioner/psy-1", role="psychiatrist")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    metadata.create_all(database.write_engine)
    yield database
    database.dispose()


def _write(uow: UnitOfWork, thing_id: str) -> None:
    uow.conn.execute(insert(thing).values(id=thing_id))
    JOURNAL.publish(uow, "iopcare.test.created.v1", f"Thing/{thing_id}", key="p1", data="{}")
    JOURNAL.audit(uow, PRINCIPAL, audit.CREATE, resource=f"Thing/{thing_id}", patient_id="p1")


def _counts(db: Database) -> tuple[int, int, int]:
    with db.read() as conn:
        return (
            conn.execute(select(func.count()).select_from(thing)).scalar_one(),
            conn.execute(select(func.count()).select_from(kit["outbox"])).scalar_one(),
            conn.execute(select(func.count()).select_from(kit["audit_log"])).scalar_one(),
        )


def test_the_change_its_event_and_its_audit_row_commit_together(db: Database) -> None:
    with UnitOfWork(db) as uow:
        _write(uow, "t1")
        uow.commit()
    assert _counts(db) == (1, 1, 1)
    with db.read() as conn:
        row = conn.execute(select(kit["outbox"])).one()
        logged = conn.execute(select(kit["audit_log"])).one()
    assert (row.topic, row.source, row.key) == ("iopcare.test.v1", "/iopcare/test", "p1")
    assert (logged.principal, logged.action, logged.resource) == (
        "Practitioner/psy-1",
        audit.CREATE,
        "Thing/t1",
    )


def test_an_exception_leaves_neither_the_change_nor_its_event_nor_its_audit_row(
    db: Database,
) -> None:
    with pytest.raises(RuntimeError), UnitOfWork(db) as uow:
        _write(uow, "t2")
        raise RuntimeError("the use case failed after writing")
    with UnitOfWork(db) as uow:  # and one that is never committed
        _write(uow, "t3")
    assert _counts(db) == (0, 0, 0)
