"""Database engines, the unit of work, and migrations.

SQLite is the embedded default, PostgreSQL the production database; the same code runs on both.

Why SQLite write transactions start with BEGIN IMMEDIATE: a deferred transaction that first reads
and then writes must upgrade its lock, and when two connections try that at once SQLite answers
"database is locked" at once instead of waiting (busy_timeout does not apply to the upgrade, since
waiting could deadlock). Taking the write lock at BEGIN makes writers queue on busy_timeout instead,
so concurrent writes wait rather than fail. Reads use a second engine with plain BEGIN so that, in
WAL mode, they never wait for a writer.

TLS to PostgreSQL is libpq's: `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, given either in the
URL's query (`postgresql+psycopg://u@db/careplan?sslmode=verify-full&sslrootcert=/ca.pem`) or by
the service's settings (`IOPCARE_<SERVICE>_DATABASE_SSLMODE` and so on, kit.settings), which
`with_tls` adds to the URL. Both may be used; a parameter given both ways with two different values
is refused (`TlsConfigurationError`) rather than one silently winning.
"""

from __future__ import annotations

import fcntl
import logging
import os
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
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from iopcare.kit import files
from iopcare.kit.errors import Aborted, Unavailable

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 60_000


#: libpq's TLS parameters, as the settings name them (`database_<name>`).
TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
#: sslmodes that check the server's certificate; verify-full also checks it names the host.
VERIFYING_SSLMODES = frozenset({"verify-ca", "verify-full"})


class TlsConfigurationError(ValueError):
    """The database's TLS settings contradict the URL or name a file that is not there."""


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def with_tls(url: str, **parameters: str | Path | None) -> str:
    """`url` with the libpq TLS `parameters` that are set (sslmode, sslrootcert, sslcert, sslkey)
    added to its query. A parameter already in the URL with another value, a parameter for a
    database that is not PostgreSQL, or a certificate or key file that does not exist is refused
    with TlsConfigurationError naming it (libpq's own message would come at the first connection,
    as an unavailable database)."""
    unknown = set(parameters) - set(TLS_PARAMETERS)
    if unknown:
        raise TypeError(f"not a libpq TLS parameter: {', '.join(sorted(unknown))}")
    given = {name: str(value) for name, value in parameters.items() if value is not None}
    if not given:
        return url
    parsed: URL = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise TlsConfigurationError(
            f"database TLS settings ({', '.join(f'database_{n}' for n in given)}) apply to "
            f"PostgreSQL only, but the database URL is {parsed.get_backend_name()!r}"
        )
    for name, value in given.items():
        in_url = parsed.query.get(name)
        if in_url is not None and in_url != value:
            raise TlsConfigurationError(
                f"the database URL has {name}={in_url} but the setting database_{name} is "
                f"{value}: give it one way only"
            )
        # `system` (libpq 16+): the operating system's trusted roots.
        is_file = name != "sslmode" and not (name == "sslrootcert" and value == "system")
        if is_file and not Path(value).is_file():
            raise TlsConfigurationError(f"database_{name}: no such file {value}")
    return parsed.update_query_dict(given).render_as_string(hide_password=False)


def tls_parameters(url: str) -> dict[str, str]:
    """The libpq TLS parameters a PostgreSQL URL carries (none for another database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    return {
        name: value for name in TLS_PARAMETERS if isinstance(value := parsed.query.get(name), str)
    }


def uses_tcp(url: str) -> bool:
    """Whether a PostgreSQL URL reaches its server over TCP (libpq: a host that is not a socket
    folder, or a hostaddr), where the connection can be read or diverted on the way."""
    parsed = make_url(url)
    hosts = [parsed.host or ""]
    query_host = parsed.query.get("host")
    if query_host is not None:
        hosts = [query_host] if isinstance(query_host, str) else list(query_host)
    if parsed.query.get("hostaddr"):
        return True
    return any(host and not host.startswith("/") for host in hosts)


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

    url: str = field(repr=False)  # may carry the password
    write_engine: Engine = field(init=False)
    read_engine: Engine = field(init=False)
    #: SQLite only: serialises this process's write transactions (see `write_lock`).
    _write_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    #: Several processes of one service share this SQLite file (a worker of iopcare.workers,
    #: ADR 0026): writers queue on a file lock, and the relay holds a file lease.
    cross_process: bool = field(
        default_factory=lambda: "IOPCARE_WORKER_INDEX" in os.environ, compare=False
    )
    #: SQLite only: the file lock the processes of one database queue on (-1: none).
    _writer_fd: int | None = field(init=False, default=None, repr=False, compare=False)
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
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file (None: PostgreSQL, or an in-memory database)."""
        if not self.is_sqlite:
            return None
        database = make_url(self.url).database
        return Path(database) if database and database != ":memory:" else None

    def lock_file(self, purpose: str) -> int | None:
        """An open descriptor of `<database file>.<purpose>.lock`, for `fcntl.flock` between the
        processes of one SQLite database (None when there is no file). The kernel releases a
        flock when its holder dies, however it dies."""
        database = self.sqlite_file
        if database is None:
            return None
        path = database.with_name(f"{database.name}.{purpose}.lock")
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    def dispose(self) -> None:
        fd, self._writer_fd = self._writer_fd, None
        if fd is not None and fd >= 0:
            os.close(fd)
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
            # Several processes of one service (ADR 0026) queue on a file lock too: SQLite's own
            # busy handler would make them sleep and poll. One descriptor per process, taken by
            # one thread at a time (under the thread lock above).
            if self._writer_fd is None:
                shared = self.cross_process and self.sqlite_file
                self._writer_fd = self.lock_file("writer") if shared else -1
            fd = self._writer_fd
            if fd is None or fd < 0:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

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
