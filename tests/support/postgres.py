"""Throwaway PostgreSQL servers for tests.

A :class:`PostgresServer` runs the distribution's PostgreSQL (Debian's
``/usr/lib/postgresql/<major>/bin``) in a temporary folder on a free port; every test database is
created in it with :meth:`PostgresServer.create_database`. PostgreSQL refuses to run as root, so
under root the server runs as the ``postgres`` user (``runuser``).

With ``IOPCARE_TEST_POSTGRES_URL`` set to a server-level URL (for example
``postgresql+psycopg://user@host:5432/``) nothing is started and databases are created on that
server instead.

``PostgresServer(tls=ServerTls(...))`` runs a local server with ``ssl=on`` whose TCP clients must
use TLS (``hostssl`` only; ``hostnossl`` is rejected) and, with a client CA, authenticate by
certificate (pg_hba ``cert``: the certificate's CN is the user); its URL names ``localhost``, the
name :func:`make_certificates` puts in the server certificate. The test connects to it through
the unix socket for administration.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from iopcare.devtools.kafka_broker import free_port
from iopcare.devtools.lifetime import StartStop

__all__ = [
    "POSTGRES_URL_ENV",
    "PkiFiles",
    "PostgresError",
    "PostgresServer",
    "ServerTls",
    "local_server_unavailable",
    "make_certificates",
    "postgres_available",
    "start_session_server",
]

POSTGRES_URL_ENV = "IOPCARE_TEST_POSTGRES_URL"

_HOST = "127.0.0.1"
_SUPERUSER = "postgres"
_OS_USER = "postgres"
_INITDB_GLOB = "/usr/lib/postgresql/*/bin/initdb"
_START_TIMEOUT = 60
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """The test PostgreSQL server could not do what was asked."""


def _bin_dir() -> Path | None:
    def major(initdb: str) -> tuple[int, ...]:
        # /usr/lib/postgresql/<major>/bin/initdb; numeric order, so 10 sorts after 9.
        version = Path(initdb).parent.parent.name
        return tuple(int(part) for part in re.findall(r"\d+", version))

    candidates = sorted(glob.glob(_INITDB_GLOB), key=major, reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _is_root() -> bool:
    return os.geteuid() == 0


def postgres_available() -> str | None:
    """None if tests can get a PostgreSQL server, else the reason they cannot (for a skip)."""
    if os.environ.get(POSTGRES_URL_ENV, "").strip():
        return None
    return local_server_unavailable()


def local_server_unavailable() -> str | None:
    """None if a local server can be started here (whatever IOPCARE_TEST_POSTGRES_URL says), else
    why not: tests that configure the server themselves (TLS) need one of their own."""
    if _bin_dir() is None:
        return (
            f"PostgreSQL server binaries not found ({_INITDB_GLOB}); install the postgresql "
            f"package or set {POSTGRES_URL_ENV}"
        )
    if _is_root():
        try:
            pwd.getpwnam(_OS_USER)
        except KeyError:
            return f"running as root but there is no {_OS_USER!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root but runuser is not available to drop privileges"
    return None


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate chain and key (PEM) and, optionally, the CA whose client
    certificates it accepts (then TCP clients authenticate by certificate, pg_hba ``cert``)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    #: A pg_hba.conf to use instead of the TLS-only one written here (it must keep a `local`
    #: line the tests' administration can use).
    hba_file: Path | None = None


@dataclass(frozen=True)
class PkiFiles:
    """What :func:`make_certificates` wrote: a CA, a server certificate signed by it, client
    certificates by user name, and a second CA that signed nothing of this server's."""

    ca_file: Path
    server: ServerTls
    clients: dict[str, tuple[Path, Path]]
    other_ca_file: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    # libpq and the server refuse a private key others can read.
    path.chmod(0o600)
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    dns_names: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signing_key = issuer if issuer is not None else (name, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = (
            x509.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.ExtendedKeyUsageOID.SERVER_AUTH
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def make_certificates(
    folder: Path, *, server_names: tuple[str, ...] = ("localhost",), clients: tuple[str, ...] = ()
) -> PkiFiles:
    """A throwaway PKI in ``folder``: a CA, a server certificate for ``server_names`` (DNS names
    only: an address such as 127.0.0.1 is deliberately not in it), a client certificate per user
    name in ``clients`` (CN = the user), and an unrelated second CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("iopcare test CA", ca_key, None)
    issuer = (ca_cert.subject, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate(server_names[0], server_key, issuer, dns_names=server_names)
    client_files = {}
    for user in clients:
        client_key = ec.generate_private_key(ec.SECP256R1())
        client_cert = _certificate(user, client_key, issuer, client=True)
        client_files[user] = (
            _write_cert(client_cert, folder / f"{user}.crt"),
            _write_key(client_key, folder / f"{user}.key"),
        )
    other_key = ec.generate_private_key(ec.SECP256R1())
    ca_file = _write_cert(ca_cert, folder / "ca.crt")
    return PkiFiles(
        ca_file=ca_file,
        server=ServerTls(
            cert_file=_write_cert(server_cert, folder / "server.crt"),
            key_file=_write_key(server_key, folder / "server.key"),
            client_ca_file=ca_file if clients else None,
        ),
        clients=client_files,
        other_ca_file=_write_cert(
            _certificate("another CA", other_key, None), folder / "other-ca.crt"
        ),
    )


def _process_gone(pid: int) -> bool:
    # A killed postmaster has already exited pg_ctl's care, and this container's init may never
    # reap it: a zombie counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat[stat.rindex(")") + 2 :].startswith(("Z", "X"))


def _children(pid: int) -> list[int]:
    children = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(stat_path.parent.name))
    return children


_running: weakref.WeakSet[PostgresServer] = weakref.WeakSet()
_running_lock = threading.Lock()


@atexit.register
def _stop_running_servers() -> None:
    # pg_ctl detaches the postmaster from us; without this an aborted test run leaves it behind.
    with _running_lock:
        servers = list(_running)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


class PostgresServer(StartStop):
    """A PostgreSQL server for one test session: local and throwaway, or an external one.

    ``PostgresServer()`` runs a local server (``start()``/``stop()``); ``PostgresServer(url)``
    (or :func:`start_session_server` with ``IOPCARE_TEST_POSTGRES_URL`` set) only creates
    databases on an existing server, and ``kill``/``restart`` are refused there.
    """

    def __init__(
        self, external_url: str | None = None, *, port: int = 0, tls: ServerTls | None = None
    ) -> None:
        if external_url is not None and tls is not None:
            raise PostgresError("TLS is configured on an external server, not by the tests")
        self._tls = tls
        self._external: URL | None = None
        if external_url is not None:
            try:
                self._external = make_url(external_url)
            except Exception as exc:
                raise PostgresError(f"invalid PostgreSQL URL {external_url!r}: {exc}") from exc
        self._port = port
        self._auto_port = port == 0
        self._dir: Path | None = None
        self._bin: Path | None = None
        self._started_once = False

    # -- public API ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls) -> PostgresServer:
        """An external server if ``IOPCARE_TEST_POSTGRES_URL`` is set, else a local one."""
        url = os.environ.get(POSTGRES_URL_ENV, "").strip()
        return cls(url or None)

    @property
    def is_external(self) -> bool:
        return self._external is not None

    @property
    def port(self) -> int:
        if self._external is not None:
            return self._external.port or 5432
        if self._port == 0:
            raise PostgresError("the port is picked by start(); call it first")
        return self._port

    @property
    def url(self) -> str:
        """Server-level SQLAlchemy URL (no database)."""
        return self._server_url().render_as_string(hide_password=False)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs; None for external or stopped servers."""
        if self._external is not None or self._dir is None:
            return None
        pid = self._postmaster_pid()
        return pid if pid is not None and not _process_gone(pid) else None

    def start(self) -> None:
        """Create the cluster (once) and start the server. Does nothing if it already runs.

        For an external server this only checks that it answers.
        """
        if self._external is not None:
            self._admin_connection().close()
            return
        if self.pid is not None:
            return
        if self._dir is None:
            self._create_cluster()
        # A port we picked can be grabbed by someone else before the postmaster binds it; retry
        # with a new one then. A port chosen by the caller (or kept for restart) is not changed.
        attempts = 3 if self._auto_port and not self._started_once else 1
        for attempt in range(1, attempts + 1):
            if self._port == 0 or attempt > 1:
                self._port = free_port()
            try:
                self._ctl_start()
            except PostgresError as exc:
                if attempt < attempts and "could not bind" in str(exc):
                    continue
                raise
            self._started_once = True
            with _running_lock:
                _running.add(self)
            return

    def stop(self) -> None:
        """Stop the server and delete its files. Idempotent."""
        if self._external is not None:
            return
        try:
            self._ctl_stop()
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            with _running_lock:
                _running.discard(self)

    def kill(self) -> None:
        """SIGKILL the server (postmaster and its backends), as a crash would.

        The data stays; :meth:`restart` or :meth:`start` brings the server back on the same port
        and runs crash recovery.
        """
        self._refuse_if_external("kill")
        pid = self.pid
        if pid is None:
            return
        # Killing the backends too makes the crash deterministic: a backend that outlived its
        # postmaster keeps the old shared memory attached and the next start would refuse to run.
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not all(_process_gone(victim) for victim in victims):
            if time.monotonic() >= deadline:
                raise PostgresError(f"PostgreSQL processes {victims} survived SIGKILL")
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop (cleanly, unless already dead) and start again on the same port and data."""
        self._refuse_if_external("restart")
        if self._dir is None:
            raise PostgresError("the server was never started")
        self._ctl_stop()
        self.start()

    def create_database(self, name: str, owner: str | None = None) -> str:
        """(Re)create database ``name`` empty and return its SQLAlchemy URL.

        An existing database of that name (say, left over by an aborted run on an external
        server) is dropped first, with its connections. With ``owner`` (a role, created if
        missing) the database is that role's and the URL connects as it.
        """
        if not _DATABASE_NAME.match(name):
            # Names are spliced into URLs too; keep them plain identifiers.
            raise PostgresError(f"database name {name!r} is not a plain identifier")
        if owner is not None and not _DATABASE_NAME.match(owner):
            raise PostgresError(f"role name {owner!r} is not a plain identifier")
        if self._external is None and self.pid is None:
            raise PostgresError("the server is not running; call start() first")
        ident = sql.Identifier(name)
        with self._admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            if owner is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
            else:
                role = sql.Identifier(owner)
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)
                ).fetchone()
                if exists is None:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(ident, role))
        url = self._server_url().set(database=name)
        if owner is not None:
            url = url.set(username=owner)
        return url.render_as_string(hide_password=False)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (and its connections) if it exists."""
        if not _DATABASE_NAME.match(name):
            raise PostgresError(f"database name {name!r} is not a plain identifier")
        with self._admin_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def run_sql_file(self, path: Path) -> None:
        """Runs the statements of `path` as the superuser (each in its own transaction, as psql
        runs a script), e.g. the compose file's database initialisation."""
        with self._admin_connection() as conn:
            for statement in path.read_text().split(";"):
                lines = [ln for ln in statement.splitlines() if not ln.strip().startswith("--")]
                if "\n".join(lines).strip():
                    conn.execute("\n".join(lines).encode())

    def client_tool(self, tool: str) -> Path:
        """A PostgreSQL client program (``pg_dump``, ``pg_restore``, ``psql``) of the same
        installation as the server's ``initdb``."""
        folder = self._bin or _bin_dir()
        if folder is None or not (folder / tool).exists():
            raise PostgresError(f"{tool} not found next to {_INITDB_GLOB}")
        return folder / tool

    def connection_args(self, database: str) -> tuple[list[str], dict[str, str]]:
        """libpq command-line arguments and environment reaching ``database`` as the URL's user
        (the password, if any, in PGPASSWORD, never on the command line)."""
        url = self._server_url()
        args = [
            "--host",
            url.host or _HOST,
            "--port",
            str(url.port or 5432),
            "--username",
            url.username or _SUPERUSER,
            "--dbname",
            database,
        ]
        env = {**os.environ}
        if url.password is not None:
            env["PGPASSWORD"] = url.password
        # libpq's TLS parameters of the URL, as the client programs read them from the
        # environment.
        for parameter in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
            value = url.query.get(parameter)
            if isinstance(value, str):
                env[f"PG{parameter.upper()}"] = value
        return args, env

    def dump(self, database: str, target: Path) -> None:
        """``pg_dump --format=custom`` of ``database`` into the file ``target``, as the runbook in
        docs/operations.md does."""
        args, env = self.connection_args(database)
        self._client(
            [str(self.client_tool("pg_dump")), "--format=custom", f"--file={target}", *args], env
        )

    def restore(self, database: str, source: Path) -> None:
        """``pg_restore`` of a custom-format dump into ``database``, which must exist and be
        empty; stops at the first error, in one transaction."""
        args, env = self.connection_args(database)
        self._client(
            [
                str(self.client_tool("pg_restore")),
                "--exit-on-error",
                "--single-transaction",
                "--no-owner",
                *args,
                str(source),
            ],
            env,
        )

    def _client(self, command: list[str], env: dict[str, str], timeout: float = 300) -> None:
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"timed out after {timeout}s: {' '.join(command)}") from exc
        if result.returncode != 0:
            raise PostgresError(
                f"{' '.join(command)} failed with exit code {result.returncode}:\n{result.stdout}"
            )

    def __repr__(self) -> str:
        started = self._external is not None or self._port
        where = self._server_url().render_as_string() if started else "not started"
        return f"PostgresServer({where}, dir={self._dir})"

    # -- internals ----------------------------------------------------------------------------

    def _refuse_if_external(self, action: str) -> None:
        if self._external is not None:
            raise PostgresError(f"cannot {action} an external PostgreSQL server")

    def _server_url(self) -> URL:
        if self._external is not None:
            return self._external.set(database=None)
        # A TLS server's certificate names localhost (make_certificates), not the address.
        host = "localhost" if self._tls is not None else _HOST
        return URL.create(
            "postgresql+psycopg", username=_SUPERUSER, host=host, port=self.port, database=None
        )

    def _admin_connection(self) -> psycopg.Connection[Any]:
        url = self._server_url()
        params: dict[str, Any] = {
            # A TLS server takes TCP clients with certificates only: administer it through its
            # unix socket (pg_hba `local ... trust`).
            "host": str(self._dir) if self._tls is not None else url.host or _HOST,
            "port": url.port or 5432,
            "user": url.username or _SUPERUSER,
            "dbname": "postgres",
            "autocommit": True,
            "connect_timeout": 10,
        }
        if url.password is not None:
            params["password"] = url.password
        # Options such as sslmode=require carried by the external URL.
        params.update({key: value for key, value in url.query.items() if isinstance(value, str)})
        try:
            return psycopg.connect(**params)
        except psycopg.OperationalError as exc:
            raise PostgresError(f"cannot connect to PostgreSQL at {self.url}: {exc}") from exc

    def _data_dir(self) -> Path:
        assert self._dir is not None
        return self._dir / "data"

    def _log_path(self) -> Path:
        assert self._dir is not None
        return self._dir / "log"

    def _postmaster_pid(self) -> int | None:
        try:
            first_line = (self._data_dir() / "postmaster.pid").read_text().splitlines()[0]
            return int(first_line.strip())
        except (OSError, IndexError, ValueError):
            return None

    def _command(self, tool: str, *args: str) -> list[str]:
        assert self._bin is not None
        command = [str(self._bin / tool), *args]
        if _is_root():
            # PostgreSQL refuses to run as root.
            return ["runuser", "-u", _OS_USER, "--", *command]
        return command

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        command = self._command(tool, *args)
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"timed out after {timeout}s: {' '.join(command)}") from exc
        if result.returncode != 0:
            raise PostgresError(
                f"{' '.join(command)} failed with exit code {result.returncode}:\n{result.stdout}"
            )
        return result.stdout

    def _create_cluster(self) -> None:
        reason = local_server_unavailable()
        if reason is not None:
            raise PostgresError(reason)
        self._bin = _bin_dir()
        folder = Path(tempfile.mkdtemp(prefix="iopcare-pg-"))
        try:
            if _is_root():
                user = pwd.getpwnam(_OS_USER)
                os.chown(folder, user.pw_uid, user.pw_gid)
            self._dir = folder
            self._run(
                "initdb",
                "-D",
                str(self._data_dir()),
                "-A",
                "trust",
                "-U",
                _SUPERUSER,
                "--encoding",
                "UTF8",
                "--no-locale",
            )
            if self._tls is not None:
                self._configure_tls()
        except BaseException:
            self._dir = None
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _configure_tls(self) -> None:
        """Copies the certificate files where the server (as the postgres user under root) can
        read them, with the key 0600 as it demands, and lets TCP clients in over TLS only."""
        assert self._dir is not None and self._tls is not None
        folder = self._dir / "tls"
        folder.mkdir(mode=0o700)
        sources = {"server.crt": self._tls.cert_file, "server.key": self._tls.key_file}
        if self._tls.client_ca_file is not None:
            sources["client-ca.crt"] = self._tls.client_ca_file
        for name, source in sources.items():
            shutil.copyfile(source, folder / name)
            (folder / name).chmod(0o600)
        if _is_root():
            user = pwd.getpwnam(_OS_USER)
            for path in [folder, *folder.iterdir()]:
                os.chown(path, user.pw_uid, user.pw_gid)
        if self._tls.hba_file is not None:
            shutil.copyfile(self._tls.hba_file, self._data_dir() / "pg_hba.conf")
            return
        method = "cert" if self._tls.client_ca_file is not None else "trust"
        (self._data_dir() / "pg_hba.conf").write_text(
            "# Written by tests/support/postgres.py: TLS-only TCP clients.\n"
            "local all all trust\n"
            f"hostssl all all 127.0.0.1/32 {method}\n"
            f"hostssl all all ::1/128 {method}\n"
            "hostnossl all all all reject\n"
        )

    def _tls_options(self) -> str:
        if self._tls is None:
            return ""
        assert self._dir is not None
        folder = self._dir / "tls"
        options = (
            f" -c ssl=on -c ssl_cert_file={folder / 'server.crt'}"
            f" -c ssl_key_file={folder / 'server.key'}"
        )
        if self._tls.client_ca_file is not None:
            options += f" -c ssl_ca_file={folder / 'client-ca.crt'}"
        return options

    def _ctl_start(self) -> None:
        assert self._dir is not None
        if not self._old_server_gone():
            raise PostgresError(f"an earlier server in {self._dir} is still running")
        # A killed server leaves its lock files behind. PostgreSQL ignores them when their pid is
        # gone, but not when it is a zombie, which is what it stays under an init that never
        # reaps (as in some containers); the old server is known to be gone, so drop them.
        stale = [self._data_dir() / "postmaster.pid", *self._dir.glob(".s.PGSQL.*")]
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        options = (
            f"-c listen_addresses={_HOST} -p {self._port} -k {self._dir} "
            "-c fsync=off -c max_connections=300" + self._tls_options()
        )
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self._data_dir()),
                "-o",
                options,
                "-l",
                str(self._log_path()),
                "-t",
                str(_START_TIMEOUT),
                "-w",
                "start",
                timeout=_START_TIMEOUT + 30,
            )
        except PostgresError as exc:
            raise PostgresError(f"{exc}\n--- {self._log_path()} ---\n{self._log_tail()}") from exc

    def _old_server_gone(self) -> bool:
        pid = self._postmaster_pid()
        return pid is None or _process_gone(pid)

    def _ctl_stop(self) -> None:
        if self._dir is None or self._old_server_gone():
            return
        self._run("pg_ctl", "-D", str(self._data_dir()), "-m", "fast", "-w", "stop")

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self._log_path().read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def start_session_server() -> PostgresServer:
    """A started server for a test session: external if ``IOPCARE_TEST_POSTGRES_URL`` is set.

    The caller owns it and calls ``stop()`` at the end (a no-op for an external server).
    """
    server = PostgresServer.from_env()
    server.start()
    return server
