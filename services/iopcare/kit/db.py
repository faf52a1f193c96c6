"""Database engines, the unit of work, and migrations.

SQLite is the embedded default, PostgreSQL the production database; the same code runs on both.

Why SQLite write transactions start with BEGIN IMMEDIATE: a deferred transaction that first reads
and then writes must upgrade its lock, and when two connections try that at once SQLite answers
"database is locked" at once instead of waiting (busy_timeout does not apply to the upgrade, since
waiting could deadlock). Taking the write lock at BEGIN makes writers queue on busy_timeout instead,
so concurrent writes wait rather than fail. Reads use a second engine with plain BEGIN so that, in
WAL mode, they never wait for a writer.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from iopcare.kit import files
from iopcare.kit.errors import Aborted, Unavailable

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 60_000


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from the database, time-zone aware. SQLite stores none and returns
    naive datetimes (we only ever store UTC); PostgreSQL returns aware ones."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        # The database holds patient data: owner-only, created so before SQLite opens it (its
        # -wal and -shm files take the database file's mode).
        database = Path(parsed.database)
        files.private_file(database)
        for suffix in ("-wal", "-shm"):
            files.tighten(database.with_name(database.name + suffix))
    engine = create_engine(
        url,
        # Statement parameters are patient data: keep them out of exception messages and logs.
        hide_parameters=True,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=8,
        max_overflow=32,
        pool_timeout=60,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN instead of pysqlite's own logic.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # NORMAL is durable against application crashes in WAL mode (only an OS crash or power
        # loss can lose the last transactions), which is the failure model of the fault tests.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_engine(url: str) -> Engine:
    return create_engine(
        url,
        hide_parameters=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=30,
        # A pooled connection killed with the server (test-matrix A12) is replaced, not reused.
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


@dataclass
class Database:
    """A service's database: a write engine and a read engine (the same one on PostgreSQL)."""

    url: str
    write_engine: Engine = field(init=False)
    read_engine: Engine = field(init=False)
    #: SQLite only: serialises this process's write transactions (see `write_lock`).
    _write_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    #: What the process shares per database (e.g. the audit trail's group commit, kit.audit).
    shared: dict[tuple[str, str], Any] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )
    shared_lock: threading.Lock = field(
        init=False, default_factory=threading.Lock, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            self.write_engine = self.read_engine = _postgres_engine(self.url)

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Held around every write transaction on SQLite.

        SQLite has one writer at a time. Threads that find the write lock taken wait in SQLite's
        busy handler, which sleeps in growing steps (up to 100 ms) instead of waking when the lock
        frees: under contention that turns 2 ms transactions into p99s near a second. Queueing the
        process's writers on a Python lock first leaves the busy handler for the rare writer from
        another process. PostgreSQL has row locks and needs none of this.
        """
        if not self.is_sqlite:
            yield
            return
        with self._write_lock:
            yield

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction outside a unit of work (relay bookkeeping, audit of reads)."""
        with self.write_lock(), translate_db_errors(), self.write_engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with translate_db_errors(), self.read_engine.connect() as conn, conn.begin():
            yield conn


class UnitOfWork:
    """One write transaction: the change, its history row, its outbox rows and its audit row.

    Use as a context manager; `commit()` must be called explicitly, anything else rolls back.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None
        self._committed = False
        self._lock = db.write_lock()

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its `with` block")
        return self._conn

    def __enter__(self) -> UnitOfWork:
        self._lock.__enter__()
        try:
            with translate_db_errors():
                self._conn = self.db.write_engine.connect()
                self._conn.begin()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def commit(self) -> None:
        with translate_db_errors():
            self.conn.commit()
        self._committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not self._committed:
                conn.rollback()
        except DBAPIError:
            log.warning("rollback failed; the connection is discarded", exc_info=True)
            conn.invalidate()
        finally:
            conn.close()
            self._lock.__exit__(None, None, None)
        if exc is not None and isinstance(exc, DBAPIError):
            raise _translate(exc) from exc


def _is_serialization_failure(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    # 40001 serialization_failure, 40P01 deadlock_detected: the transaction can be retried.
    return code in {"40001", "40P01"}


def _translate(exc: DBAPIError) -> Exception:
    if isinstance(exc, IntegrityError):
        return exc  # callers decide: a duplicate key usually means "already done"
    if _is_serialization_failure(exc):
        return Aborted("the change conflicted with a concurrent one; retry it")
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return Unavailable("the database is unavailable; retry later")
    return exc


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Turns a lost or unreachable database into Unavailable, a conflict into Aborted."""
    try:
        yield
    except DBAPIError as exc:
        translated = _translate(exc)
        if translated is exc:
            raise
        raise translated from exc


def is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, IntegrityError)


def alembic_config(script_location: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # `%` is ConfigParser interpolation syntax; URLs may carry it (escaped passwords).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(db: Database, script_location: Path) -> None:
    """Brings the schema to the newest migration (a no-op when it is current)."""
    config = alembic_config(script_location, db.url)
    with db.write_engine.connect() as conn:
        if not db.is_sqlite:
            # Replicas starting together migrate one at a time (the lock is the transaction's,
            # released at its commit); the next finds the schema current. Without it both
            # created the same tables and one died on "relation already exists".
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:k)"),
                {"k": zlib.crc32(f"iopcare-migrate:{script_location.parent.name}".encode())},
            )
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
