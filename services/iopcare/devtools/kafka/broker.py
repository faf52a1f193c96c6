"""The broker's process: start (with port picking and readiness), stop, kill, pause, restart."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient

from iopcare.devtools import downloads
from iopcare.devtools.kafka import config, jars
from iopcare.devtools.kafka.admin import open_admin
from iopcare.devtools.kafka.common import (
    HOST,
    POLL_INTERVAL,
    SCRAM_MECHANISM,
    SUPER_USER,
    BrokerError,
    free_ports,
)
from iopcare.devtools.kafka.tls import BrokerTls
from iopcare.devtools.lifetime import StartStop, die_with_parent
from iopcare.kit.settings import Settings

__all__ = ["KafkaBroker"]

log = logging.getLogger(__name__)

_LOG_TAIL_LINES = 40
# A group nobody uses: asking for its offsets forces the broker to find and load the group
# coordinator, which is the last thing to become ready after a start.
_PROBE_GROUP = "iopcare-readiness-probe"
# Log lines after which the JVM is certain to exit, though it can take ~30 s to do so (a taken
# port makes it wait for acceptors that never start). Seeing one ends the start-up wait at once.
_FATAL_LOG_MARKERS = ("java.net.BindException", "Encountered fatal fault")
_BIND_FAILURE = re.compile(r"failed to bind to \S+?:(\d+)")


def _read_log(path: Path, since: int = 0, limit: int = 65536) -> str:
    """At most the last ``limit`` bytes of ``path`` written after offset ``since``."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(since, size - limit, 0))
            data = handle.read()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return data.decode("utf-8", errors="replace")


def _tail(path: Path, lines: int = _LOG_TAIL_LINES, since: int = 0) -> str:
    # The broker dumps a ~30 kB config at start; 64 kB is plenty for 40 lines after it.
    return "\n".join(_read_log(path, since).splitlines()[-lines:])


_running: weakref.WeakSet[KafkaBroker] = weakref.WeakSet()
_running_lock = threading.Lock()


@atexit.register
def _stop_running_brokers() -> None:
    # The JVM runs in its own session, so nothing else stops it when Python exits without
    # calling stop() (a failing test session, an uncaught exception).
    with _running_lock:
        brokers = list(_running)
    for broker in brokers:
        with contextlib.suppress(Exception):
            broker.stop(timeout=10)


# eq=False: brokers are compared (and hashed, for the at-exit registry) by identity.
@dataclass(eq=False)
class KafkaBroker(StartStop):
    """A single-node KRaft broker (combined broker + controller) running as a ``java`` child.

    Ports given as 0 are picked at the first ``start()`` and written back into the fields, so a
    ``restart()`` comes back on the same address and clients simply reconnect.
    """

    data_dir: Path
    broker_port: int = 0
    controller_port: int = 0
    heap: str = "512m"
    log_file: Path | None = None
    # A folder of jars used as is; None means ensure_jars() (the Maven cache).
    libs_dir: Path | None = None
    # The broker's message.max.bytes: Settings.kafka_max_message_bytes (one limit everywhere).
    max_message_bytes: int = field(default_factory=lambda: Settings().kafka_max_message_bytes)
    # SASL users (name -> password). Given, the client listener is SASL_PLAINTEXT with
    # SCRAM-SHA-512, these users' credentials are written into the storage when it is formatted,
    # and the StandardAuthorizer denies whatever no ACL allows; `SUPER_USER` must be among them
    # (the launcher's own admin, and the broker's identity towards itself). None: the old open
    # PLAINTEXT broker, for tests that do not exercise security.
    sasl_users: dict[str, str] | None = field(default=None, repr=False)
    # TLS on the client listener (devtools.kafka.tls): with sasl_users it is SASL_SSL (SCRAM
    # over TLS), without them SSL, requiring client certificates if tls.client_auth (mTLS; the
    # certificate's common name is the principal, and every principal may do anything: no
    # authorizer without SASL users). None: no TLS.
    tls: BrokerTls | None = None
    # With tls: a second listener on this port (0: picked at start) speaking SSL and requiring
    # a client certificate signed by tls.ca_file (mTLS). The certificate's common name is the
    # principal (CN=careplan is User:careplan), under the same ACLs as the SCRAM users.
    # None: no such listener.
    mtls_port: int | None = None

    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _ports_settled: bool = field(default=False, init=False, repr=False)
    # Where the current run's output starts in the (appended) log file, how far start-up has
    # scanned it, and the fatal marker found there, if any.
    _log_offset: int = field(default=0, init=False, repr=False)
    _scan_offset: int = field(default=0, init=False, repr=False)
    _fatal_marker: str | None = field(default=None, init=False, repr=False)
    _auto_broker_port: bool = field(default=False, init=False, repr=False)
    _auto_controller_port: bool = field(default=False, init=False, repr=False)
    _auto_mtls_port: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        # Absolute paths: the JVM runs with data_dir as its working folder.
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        self.log_file = (
            self.data_dir / "broker.log"
            if self.log_file is None
            else Path(self.log_file).expanduser().resolve()
        )
        self._auto_broker_port = self.broker_port == 0
        self._auto_controller_port = self.controller_port == 0
        self._auto_mtls_port = self.mtls_port == 0
        if self.mtls_port is not None and self.tls is None:
            raise BrokerError("an mTLS listener (mtls_port) needs tls")

    # -- public API ---------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if self.broker_port == 0:
            raise BrokerError("the broker port is picked by start(); call it first")
        return f"{HOST}:{self.broker_port}"

    @property
    def pid(self) -> int | None:
        """The JVM's pid while it runs (paused counts as running), else None."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None
        return proc.pid

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        # A secured broker keeps its own storage: SCRAM credentials are written when it is
        # formatted, so a folder formatted for the open broker would start without any users.
        return self.data_dir / ("kraft-sasl" if self.sasl_users else "kraft")

    @property
    def mtls_bootstrap_servers(self) -> str:
        """The address of the mTLS listener (``mtls_port``)."""
        if not self.mtls_port:
            raise BrokerError("no mTLS listener, or its port is picked by start()")
        return f"{HOST}:{self.mtls_port}"

    @property
    def security_protocol(self) -> str:
        """What the client listener speaks: PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL."""
        if self.tls is None:
            return "SASL_PLAINTEXT" if self.sasl_users else "PLAINTEXT"
        return "SASL_SSL" if self.sasl_users else "SSL"

    def client_options(self) -> dict[str, Any]:
        """Options of an administrative client (the super user) of this broker."""
        options: dict[str, Any] = {}
        if self.sasl_users:
            options.update(
                sasl_mechanism=SCRAM_MECHANISM,
                sasl_plain_username=SUPER_USER,
                sasl_plain_password=self.sasl_users[SUPER_USER],
            )
        if self.tls is not None:
            options.update(ssl_cafile=str(self.tls.ca_file), ssl_check_hostname=True)
            if self.tls.admin_certfile is not None and self.tls.admin_keyfile is not None:
                options.update(
                    ssl_certfile=str(self.tls.admin_certfile),
                    ssl_keyfile=str(self.tls.admin_keyfile),
                )
        if options:
            options["security_protocol"] = self.security_protocol
        return options

    def start(self, timeout: float = 60) -> None:
        """Start the broker and return once clients and consumer groups can use it.

        Does nothing if this broker is already running.
        """
        if self.pid is not None:
            return
        deadline = time.monotonic() + timeout
        libs = jars.libs_folder(self.libs_dir)
        java = jars.java()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A port picked by us can be taken by someone else before the JVM binds it; only then,
        # and only before the first successful start, is it worth picking again.
        attempts = 3 if not self._ports_settled and self._picks_ports() else 1
        for attempt in range(1, attempts + 1):
            self._choose_ports(repick=attempt > 1)
            self._write_config()
            self._format_storage(java, libs)
            self._launch(java, libs)
            try:
                self._wait_ready(deadline, timeout)
            except BaseException as exc:
                self._terminate(grace=5)
                clashes = self._bind_failures()
                if (
                    isinstance(exc, BrokerError)
                    and attempt < attempts
                    and clashes
                    and clashes <= self._auto_ports()
                ):
                    log.info("ports %s were taken while Kafka started, picking new ones", clashes)
                    continue
                raise
            self._ports_settled = True
            return

    def stop(self, timeout: float = 30) -> None:
        """Shut the broker down cleanly (SIGTERM), killing it if it takes too long. Idempotent."""
        self._terminate(grace=timeout)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; ``start()``/``restart()`` brings it back."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(signal.SIGKILL)
        # Reap it so the ports are free before anyone restarts the broker.
        proc.wait()
        self._forget()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        self._require_running()
        self._signal(signal.SIGSTOP)
        self._await_stopped(True)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        self._require_running()
        self._signal(signal.SIGCONT)
        self._await_stopped(False)

    def restart(self, timeout: float = 60) -> None:
        """Stop, then start again on the same ports and data."""
        self.stop()
        self.start(timeout=timeout)

    # -- internals ----------------------------------------------------------------------------

    def _log_path(self) -> Path:
        assert self.log_file is not None  # set in __post_init__
        return self.log_file

    def _auto_ports(self) -> set[int]:
        auto = set()
        if self._auto_broker_port:
            auto.add(self.broker_port)
        if self._auto_controller_port:
            auto.add(self.controller_port)
        if self._auto_mtls_port and self.mtls_port:
            auto.add(self.mtls_port)
        return auto

    def _bind_failures(self) -> set[int]:
        run_log = _read_log(self._log_path(), since=self._log_offset, limit=1 << 24)
        return {int(port) for port in _BIND_FAILURE.findall(run_log)}

    def _picks_ports(self) -> bool:
        return self._auto_broker_port or self._auto_controller_port or self._auto_mtls_port

    def _choose_ports(self, repick: bool) -> None:
        wanted = [
            self._auto_broker_port and (repick or self.broker_port == 0),
            self._auto_controller_port and (repick or self.controller_port == 0),
            self._auto_mtls_port and (repick or self.mtls_port == 0),
        ]
        fresh = iter(free_ports(sum(wanted)))
        if wanted[0]:
            self.broker_port = next(fresh)
        if wanted[1]:
            self.controller_port = next(fresh)
        if wanted[2]:
            self.mtls_port = next(fresh)
        ports = [self.broker_port, self.controller_port]
        if self.mtls_port is not None:
            ports.append(self.mtls_port)
        if len(set(ports)) < len(ports):
            raise BrokerError(f"the broker's ports {ports} must differ from each other")

    def _write_config(self) -> None:
        self.config_file.write_text(
            config.server_properties(
                broker_port=self.broker_port,
                controller_port=self.controller_port,
                log_dirs=self.log_dirs,
                max_message_bytes=self.max_message_bytes,
                sasl_users=self.sasl_users,
                tls=self.tls,
                mtls_port=self.mtls_port,
            ),
            encoding="utf-8",
        )

    def _format_storage(self, java: str, libs: Path) -> None:
        if (self.log_dirs / "meta.properties").is_file():
            return
        command = [
            # A short-lived tool: a small heap and the C1 compiler start faster.
            *jars.java_command(java, libs, "-Xmx256m", "-XX:TieredStopAtLevel=1"),
            *config.format_arguments(self.config_file, self.sasl_users),
        ]
        result = downloads.run(
            command, BrokerError, "formatting Kafka storage", timeout=120, cwd=self.data_dir
        )
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-_LOG_TAIL_LINES:])
            raise BrokerError(
                f"formatting Kafka storage in {self.log_dirs} failed "
                f"(exit code {result.returncode}):\n{tail}"
            )

    def _launch(self, java: str, libs: Path) -> None:
        command = [
            *jars.java_command(
                java,
                libs,
                f"-Xms{self.heap}",
                f"-Xmx{self.heap}",
                "-XX:+ExitOnOutOfMemoryError",
            ),
            "kafka.Kafka",
            str(self.config_file),
        ]
        log_path = self._log_path()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # Append, so a restart keeps the history of earlier runs for post-mortems.
        with log_path.open("ab") as log_handle:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log_handle.write(f"\n===== iopcare: starting Kafka broker at {stamp} =====\n".encode())
            log_handle.flush()
            self._log_offset = self._scan_offset = log_handle.tell()
            self._fatal_marker = None
            # Own session: a Ctrl-C in the terminal reaches Python, which then stops the broker
            # in order, instead of the JVM dying half-way through its own shutdown.
            self._proc = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Ends with its launcher (a SIGKILLed `iopcare up` or test session), instead of
                # holding the broker's ports (devtools.lifetime).
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        with _running_lock:
            _running.add(self)

    def _scan_log(self) -> None:
        if self._fatal_marker is not None:
            return
        try:
            with self._log_path().open("rb") as handle:
                handle.seek(self._scan_offset)
                chunk = handle.read()
        except OSError:
            return
        # Step back a little next time, so a marker split across two reads is still found.
        overlap = max(len(marker) for marker in _FATAL_LOG_MARKERS)
        self._scan_offset = max(self._scan_offset, self._scan_offset + len(chunk) - overlap)
        text = chunk.decode("utf-8", errors="replace")
        self._fatal_marker = next((m for m in _FATAL_LOG_MARKERS if m in text), None)

    def _failure(self, message: str) -> BrokerError:
        log_path = self._log_path()
        tail = _tail(log_path, since=self._log_offset)
        return BrokerError(f"{message}\n--- last {_LOG_TAIL_LINES} lines of {log_path} ---\n{tail}")

    def _check_alive(self) -> None:
        proc = self._proc
        if proc is None:
            raise BrokerError("the broker is not running")
        code = proc.poll()
        if code is not None:
            raise self._failure(f"the Kafka broker exited with code {code} during start-up")
        self._scan_log()
        if self._fatal_marker is not None:
            raise self._failure(f"the Kafka broker failed during start-up ({self._fatal_marker})")

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        # Wait for the listener first: kafka-python clients built before it accepts connections
        # just burn their bootstrap timeout.
        while True:
            self._check_alive()
            try:
                with socket.create_connection((HOST, self.broker_port), timeout=1):
                    break
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise self._failure(
                    f"the Kafka broker did not listen on {self.broker_port} within {timeout:g}s"
                )
            time.sleep(POLL_INTERVAL)

        admin: KafkaAdminClient | None = None
        last_error: BaseException | None = None
        try:
            while True:
                self._check_alive()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._failure(
                        f"the Kafka broker was not ready within {timeout:g}s "
                        f"(last client error: {last_error!r})"
                    )
                try:
                    if admin is None:
                        # Short client timeouts: a JVM that is about to die (see _FATAL_LOG_MARKERS)
                        # is only noticed between attempts.
                        admin = open_admin(
                            self.bootstrap_servers,
                            min(remaining, 2),
                            "iopcare-readiness",
                            request_timeout=3,
                            client_options=self.client_options(),
                        )
                    admin.describe_topics()
                    # Right after a start the coordinator answers COORDINATOR_NOT_AVAILABLE
                    # (creating __consumer_offsets) or COORDINATOR_LOAD_IN_PROGRESS for a while;
                    # consumers that join then fail or stall, so wait it out here.
                    admin.list_group_offsets({_PROBE_GROUP: None})
                    return
                except kafka_errors.KafkaError as exc:
                    last_error = exc
                time.sleep(POLL_INTERVAL)
        finally:
            if admin is not None:
                admin.close()

    def _signal(self, signum: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        # The JVM leads its own process group (start_new_session); signal the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    def _await_stopped(self, stopped: bool) -> None:
        # Signals are delivered asynchronously; a fault test must not act before the JVM has
        # actually frozen (or thawed).
        proc = self._proc
        if proc is None:
            return
        stat_path = Path(f"/proc/{proc.pid}/stat")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                stat = stat_path.read_text()
            except OSError:
                return  # no procfs, or the process is gone: nothing to wait for
            state = stat[stat.rindex(")") + 2 :][:1]
            if (state in ("T", "t")) == stopped:
                return
            time.sleep(0.01)

    def _require_running(self) -> None:
        if self.pid is None:
            raise BrokerError("the broker is not running")

    def _terminate(self, grace: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            # A paused JVM would hold the TERM until someone continues it.
            self._signal(signal.SIGCONT)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("Kafka broker %s ignored SIGTERM for %gs, killing it", proc.pid, grace)
                self._signal(signal.SIGKILL)
                proc.wait()
        self._forget()

    def _forget(self) -> None:
        self._proc = None
        with _running_lock:
            _running.discard(self)
