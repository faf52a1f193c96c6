"""kit.journal: a write's change, its outbox event and its audit row commit together or not at
all, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, MetaData, String, Table, event, func, insert, select

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


def test_concurrent_reads_share_audit_transactions_and_each_returns_once_its_row_committed(
    db: Database,
) -> None:
    """Group commit (ADR 0013): rows of concurrent requests share transactions, and each request
    returns only once its own row is committed (another connection sees it at once)."""
    commits: list[int] = []
    event.listen(db.write_engine, "commit", lambda _conn: commits.append(1))
    threads, per_thread = 16, 10
    start = threading.Barrier(threads)
    missing: list[str] = []
    checker = Database(db.url)  # its own engine: only the audit transactions are counted

    def reader(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            resource = f"Thing/{n}-{i}"
            JOURNAL.audit_separately(db, PRINCIPAL, audit.READ, resource=resource, patient_id="p1")
            with checker.read() as conn:
                found = conn.execute(
                    select(func.count())
                    .select_from(kit["audit_log"])
                    .where(kit["audit_log"].c.resource == resource)
                ).scalar_one()
            if found != 1:
                missing.append(resource)

    workers = [threading.Thread(target=reader, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    checker.dispose()
    assert missing == []
    assert _counts(db)[2] == threads * per_thread
    assert len(commits) < threads * per_thread  # shared, not one transaction per read


def test_a_failed_audit_commit_is_raised_in_every_request_whose_row_it_carried(
    db: Database,
) -> None:
    """A read whose audit row could not be written is not answered: every request of the failed
    transaction raises, none returns as if audited."""
    columns = [c._copy() for c in kit["audit_log"].columns]
    absent = Table("audit_absent", MetaData(), *columns)  # never created in this database
    threads = 8
    start = threading.Barrier(threads)
    outcomes: list[str] = []

    def reader() -> None:
        start.wait()
        try:
            audit.record_separately(
                db, absent, PRINCIPAL, audit.READ, resource="Thing/x", patient_id="p1"
            )
            outcomes.append("returned")
        except Exception:
            outcomes.append("raised")

    workers = [threading.Thread(target=reader) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert outcomes == ["raised"] * threads
    # The group is not wedged by the failure: the next row is written.
    JOURNAL.audit_separately(db, PRINCIPAL, audit.READ, resource="Thing/y", patient_id="p1")
    assert _counts(db)[2] == 1
