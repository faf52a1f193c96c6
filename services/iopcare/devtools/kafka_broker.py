"""Run a real single-node Apache Kafka (KRaft) broker from Maven Central jars.

Development and tests need a genuine broker (consumer groups, rebalances, restarts), not a fake.
The jars come from ``deploy/local/kafka/pom.xml`` via Maven and are cached under
``<repo>/.cache/kafka/<version>/libs``; the broker runs as a plain ``java`` process owned by a
:class:`KafkaBroker`.

Command line::

    python -m iopcare.devtools.kafka_broker --data-dir var/kafka --port 9092 --topics a,b
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

from iopcare.devtools import downloads
from iopcare.devtools.lifetime import die_with_parent
from iopcare.kit.settings import Settings

__all__ = [
    "BrokerError",
    "KafkaBroker",
    "create_topics",
    "ensure_jars",
    "external_bootstrap",
    "free_port",
    "grant_service_acls",
    "main",
    "repo_root",
]

log = logging.getLogger(__name__)

LIBS_ENV = "IOPCARE_KAFKA_LIBS"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

_KAFKA_JAR_GLOB = "kafka_2.13-*.jar"
_HOST = "127.0.0.1"
_POLL_INTERVAL = 0.2
_LOG_TAIL_LINES = 40
# A group nobody uses: asking for its offsets forces the broker to find and load the group
# coordinator, which is the last thing to become ready after a start.
_PROBE_GROUP = "iopcare-readiness-probe"
# Log lines after which the JVM is certain to exit, though it can take ~30 s to do so (a taken
# port makes it wait for acceptors that never start). Seeing one ends the start-up wait at once.
_FATAL_LOG_MARKERS = ("java.net.BindException", "Encountered fatal fault")
_BIND_FAILURE = re.compile(r"failed to bind to \S+?:(\d+)")
#: The administrator of a SASL broker (a super user): the launcher, topic creation, ACLs.
SUPER_USER = "admin"
SCRAM_MECHANISM = "SCRAM-SHA-512"


class BrokerError(RuntimeError):
    """The broker (or the tooling around it) could not do what was asked."""


def repo_root() -> Path:
    """The checkout's top folder (the one holding ``deploy/`` and ``pyproject.toml``)."""
    # services/iopcare/devtools/kafka_broker.py -> parents[3] is the checkout.
    return Path(__file__).resolve().parents[3]


def _deploy_dir() -> Path:
    return repo_root() / "deploy" / "local" / "kafka"


def _pom_path() -> Path:
    return _deploy_dir() / "pom.xml"


def kafka_version() -> str:
    """The Kafka version pinned by the POM (its ``<kafka.version>`` property)."""
    pom = _pom_path()
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise BrokerError(f"cannot read {pom}: {exc}") from exc
    # The POM declares a default namespace, so every tag is qualified with it.
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    version = root.findtext(f"{namespace}properties/{namespace}kafka.version")
    if not version or not version.strip():
        raise BrokerError(f"{pom} has no <kafka.version> property")
    return version.strip()


def _has_kafka_jar(libs: Path) -> bool:
    return any(libs.glob(_KAFKA_JAR_GLOB))


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Return a folder holding the broker's jars, downloading them with Maven if needed.

    ``cache_dir`` is the libs folder itself; by default
    ``<repo>/.cache/kafka/<kafka_version>/libs``. When ``cache_dir`` is not given and
    ``IOPCARE_KAFKA_LIBS`` is set, that folder is used as is and nothing is downloaded.
    """
    if cache_dir is None:
        override = os.environ.get(LIBS_ENV, "").strip()
        if override:
            libs = Path(override).expanduser().resolve()
            if not _has_kafka_jar(libs):
                raise BrokerError(f"{LIBS_ENV}={override} holds no {_KAFKA_JAR_GLOB}")
            return libs
        cache_dir = repo_root() / ".cache" / "kafka" / kafka_version() / "libs"

    libs = Path(cache_dir).expanduser().resolve()
    return downloads.ensure_installed(
        libs, lambda staging: _download_jars(staging, libs), kafka_version()
    )


def _download_jars(staging: Path, libs: Path) -> Path:
    log.info("downloading Kafka jars into %s", libs)
    output = downloads.mvn(
        [
            "-f",
            str(_pom_path()),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        BrokerError,
        LIBS_ENV,
        timeout=900,
    )
    if not _has_kafka_jar(staging):
        raise BrokerError(f"mvn succeeded but copied no {_KAFKA_JAR_GLOB}:\n{output}")
    return staging


def _free_ports(count: int) -> list[int]:
    # Keep every socket open until all are bound, so the ports are distinct from each other.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((_HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_ports(1)[0]


def external_bootstrap() -> str | None:
    """The bootstrap servers of an already running cluster, if ``KAFKA_BOOTSTRAP_SERVERS`` is set.

    Callers that get an address back must not start a broker of their own.
    """
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH (and JAVA_HOME is not set); Kafka needs Java 17+")
    return java


def _cluster_id() -> str:
    # Same format as `kafka-storage.sh random-uuid` (URL-safe base64 of 16 random bytes), made here
    # to save a JVM start. Kafka never hands out ids starting with "-": they read like CLI options.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


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


def _open_admin(
    bootstrap_servers: str,
    timeout: float,
    client_id: str,
    request_timeout: float = 10,
    client_options: dict[str, Any] | None = None,
) -> KafkaAdminClient:
    timeout_ms = max(1000, int(timeout * 1000))
    admin = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(
            **{**(client_options or {}), "bootstrap_servers": bootstrap_servers},
            client_id=client_id,
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(1000, int(min(timeout, request_timeout) * 1000)),
        )
    except BaseException:
        # kafka-python starts its IO thread before bootstrapping and does not stop it when the
        # bootstrap fails, and close() refuses to run on a half-built client: force it.
        if hasattr(admin, "_net"):
            admin._closed = False
            with contextlib.suppress(Exception):
                admin.close()
        raise
    return admin


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
class KafkaBroker:
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
    sasl_users: dict[str, str] | None = None

    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _ports_settled: bool = field(default=False, init=False, repr=False)
    # Where the current run's output starts in the (appended) log file, how far start-up has
    # scanned it, and the fatal marker found there, if any.
    _log_offset: int = field(default=0, init=False, repr=False)
    _scan_offset: int = field(default=0, init=False, repr=False)
    _fatal_marker: str | None = field(default=None, init=False, repr=False)
    _auto_broker_port: bool = field(default=False, init=False, repr=False)
    _auto_controller_port: bool = field(default=False, init=False, repr=False)

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

    # -- public API ---------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if self.broker_port == 0:
            raise BrokerError("the broker port is picked by start(); call it first")
        return f"{_HOST}:{self.broker_port}"

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

    def client_options(self) -> dict[str, Any]:
        """Options of an administrative client (the super user) of this broker."""
        if not self.sasl_users:
            return {}
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": SUPER_USER,
            "sasl_plain_password": self.sasl_users[SUPER_USER],
        }

    def start(self, timeout: float = 60) -> None:
        """Start the broker and return once clients and consumer groups can use it.

        Does nothing if this broker is already running.
        """
        if self.pid is not None:
            return
        deadline = time.monotonic() + timeout
        libs = self._libs()
        java = _java()
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

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _log_path(self) -> Path:
        assert self.log_file is not None  # set in __post_init__
        return self.log_file

    def _libs(self) -> Path:
        if self.libs_dir is None:
            return ensure_jars()
        libs = Path(self.libs_dir).expanduser().resolve()
        if not _has_kafka_jar(libs):
            raise BrokerError(f"libs_dir {libs} holds no {_KAFKA_JAR_GLOB}")
        return libs

    def _auto_ports(self) -> set[int]:
        auto = set()
        if self._auto_broker_port:
            auto.add(self.broker_port)
        if self._auto_controller_port:
            auto.add(self.controller_port)
        return auto

    def _bind_failures(self) -> set[int]:
        run_log = _read_log(self._log_path(), since=self._log_offset, limit=1 << 24)
        return {int(port) for port in _BIND_FAILURE.findall(run_log)}

    def _picks_ports(self) -> bool:
        return self._auto_broker_port or self._auto_controller_port

    def _choose_ports(self, repick: bool) -> None:
        wanted = [
            self._auto_broker_port and (repick or self.broker_port == 0),
            self._auto_controller_port and (repick or self.controller_port == 0),
        ]
        fresh = iter(_free_ports(sum(wanted)))
        if wanted[0]:
            self.broker_port = next(fresh)
        if wanted[1]:
            self.controller_port = next(fresh)
        if self.broker_port == self.controller_port:
            raise BrokerError(f"broker and controller ports are both {self.broker_port}")

    def _write_config(self) -> None:
        template = (_deploy_dir() / "server.properties").read_text(encoding="utf-8")
        # Backslashes are escapes in .properties files.
        log_dirs = str(self.log_dirs).replace("\\", "\\\\")
        config = (
            template.replace("${controller_port}", str(self.controller_port))
            .replace("${broker_port}", str(self.broker_port))
            .replace("${log_dirs}", log_dirs)
            .replace("${max_message_bytes}", str(self.max_message_bytes))
        )
        if self.sasl_users:
            config = self._secured(config)
        # Fail here rather than with a cryptic Kafka config error if the template grows a new
        # placeholder this launcher does not know about.
        for line in config.splitlines():
            if "${" in line and not line.lstrip().startswith("#"):
                raise BrokerError(f"unfilled placeholder in server.properties: {line}")
        self.config_file.write_text(config, encoding="utf-8")

    def _secured(self, config: str) -> str:
        """The template's open listeners replaced by SASL ones and an authorizer.

        - Clients (and the broker towards itself) authenticate with SCRAM-SHA-512 on the client
          listener; the credentials live in the cluster metadata, bootstrapped at format time.
        - The controller listener cannot use SCRAM (the credentials are only known once the
          quorum runs), so it takes PLAIN, with the super user alone in its JAAS configuration:
          an anonymous client reaches neither listener.
        - StandardAuthorizer with allow.everyone.if.no.acl.found=false: a principal may do only
          what an ACL allows it (grant_service_acls); the super user does anything.
        """
        if SUPER_USER not in (self.sasl_users or {}):
            raise BrokerError(f"a SASL broker needs the {SUPER_USER!r} user")
        password = self._jaas_quote(self.sasl_users[SUPER_USER])  # type: ignore[index]
        overridden = {
            "listeners",
            "advertised.listeners",
            "inter.broker.listener.name",
            "listener.security.protocol.map",
        }
        kept = [
            line for line in config.splitlines() if line.split("=", 1)[0].strip() not in overridden
        ]
        credentials = f'username="{SUPER_USER}" password="{password}"'
        scram_login = (
            f"org.apache.kafka.common.security.scram.ScramLoginModule required {credentials};"
        )
        plain_login = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'{credentials} user_{SUPER_USER}="{password}";'
        )
        secured = f"""
# Written by the launcher (KafkaBroker.sasl_users): SASL listeners and ACLs.
listeners=CLIENT://{_HOST}:{self.broker_port},CONTROLLER://{_HOST}:{self.controller_port}
advertised.listeners=CLIENT://{_HOST}:{self.broker_port},CONTROLLER://{_HOST}:{self.controller_port}
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=CLIENT
sasl.enabled.mechanisms={SCRAM_MECHANISM}
sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}
listener.name.client.sasl.enabled.mechanisms={SCRAM_MECHANISM}
listener.name.client.scram-sha-512.sasl.jaas.config={scram_login}
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={plain_login}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:{SUPER_USER}
allow.everyone.if.no.acl.found=false
"""
        return "\n".join(kept) + "\n" + secured

    @staticmethod
    def _jaas_quote(value: str) -> str:
        if any(c in value for c in '"\\;\n'):
            raise BrokerError("SASL passwords may not contain quotes, backslashes or semicolons")
        return value

    def _java_command(self, java: str, libs: Path, *jvm_options: str) -> list[str]:
        return [
            java,
            *jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_deploy_dir() / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
        ]

    def _format_storage(self, java: str, libs: Path) -> None:
        if (self.log_dirs / "meta.properties").is_file():
            return
        command = [
            # A short-lived tool: a small heap and the C1 compiler start faster.
            *self._java_command(java, libs, "-Xmx256m", "-XX:TieredStopAtLevel=1"),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            _cluster_id(),
            "-c",
            str(self.config_file),
            "--ignore-formatted",
        ]
        for user, password in (self.sasl_users or {}).items():
            # SCRAM credentials must exist before the first start: nobody could authenticate to
            # create them afterwards (KIP-900).
            command += [
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={user},password={self._jaas_quote(password)}]",
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
            *self._java_command(
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
                with socket.create_connection((_HOST, self.broker_port), timeout=1):
                    break
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise self._failure(
                    f"the Kafka broker did not listen on {self.broker_port} within {timeout:g}s"
                )
            time.sleep(_POLL_INTERVAL)

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
                        admin = _open_admin(
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
                time.sleep(_POLL_INTERVAL)
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


def create_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int = 3,
    timeout: float = 30,
    max_message_bytes: int | None = None,
    client_options: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> None:
    """Create topics (replication factor 1) and wait until every partition has a leader.

    Each topic gets `kit.topics.topic_config` under `settings` (default: the environment's):
    cleanup policy, retention, segment time and `max.message.bytes` (the limit the producers
    use; `max_message_bytes` overrides it). Topics that already exist are left as they are,
    whatever their partition count and configuration (docs/operations.md says how to alter them).
    """
    from iopcare.kit import topics as topic_names

    settings = settings or Settings()
    limit = max_message_bytes or settings.kafka_max_message_bytes
    names = list(dict.fromkeys(topic.strip() for topic in topics if topic.strip()))
    if not names:
        return
    deadline = time.monotonic() + timeout
    try:
        admin = _open_admin(
            bootstrap_servers, timeout, "iopcare-create-topics", client_options=client_options
        )
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap_servers}: {exc!r}") from exc
    try:
        pending = names
        while pending:
            remaining_ms = max(1000, int((deadline - time.monotonic()) * 1000))
            request = {
                name: {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": {
                        **topic_names.topic_config(name, settings),
                        "max.message.bytes": str(limit),
                    },
                }
                for name in pending
            }
            try:
                response = admin.create_topics(request, timeout_ms=remaining_ms, raise_errors=False)
                retry: list[str] = []
                for result in response["topics"]:
                    error = kafka_errors.for_code(result["error_code"])
                    if error in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                        continue
                    if issubclass(error, kafka_errors.RetriableError):
                        retry.append(result["name"])
                        continue
                    raise BrokerError(
                        f"creating topic {result['name']!r} failed: {error.__name__}: "
                        f"{result.get('error_message') or ''}"
                    )
            except kafka_errors.RetriableError as exc:
                retry, last = pending, exc
            else:
                last = None
            if retry and time.monotonic() >= deadline:
                raise BrokerError(f"topics {retry} not created within {timeout:g}s ({last!r})")
            pending = retry
            if pending:
                time.sleep(_POLL_INTERVAL)
        remaining_ms = max(1000, int((deadline - time.monotonic()) * 1000))
        admin.wait_for_topics(names, timeout_ms=remaining_ms)
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"creating topics {names} failed: {exc!r}") from exc
    finally:
        admin.close()


def service_acls(prefix: str = "", group_prefix: str = "iopcare-") -> list[ACL]:
    """The least each service principal (`User:<service>`) needs, and nothing more:

    - write (and describe) its own topic, never another's: a stolen notes password cannot
      produce careplan's CareTeam events; and read it, which a relay taking over does to find
      what its predecessor published but did not mark sent (kit.relay);
    - read the topics it consumes, and write their dead-letter topics (the consumer parks there
      what it cannot apply);
    - its consumer groups (`<prefix><group_prefix><service>*`);
    - idempotent writes (cluster IDEMPOTENT_WRITE, which carries no topic right).
    Everything else is denied (allow.everyone.if.no.acl.found=false); operators use the super user.
    """
    from iopcare.kit import topics

    def allow(service: str, operation: ACLOperation, resource: ResourcePattern) -> ACL:
        return ACL(
            principal=f"User:{service}",
            host="*",
            operation=operation,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=resource,
        )

    def topic(name: str) -> ResourcePattern:
        return ResourcePattern(ResourceType.TOPIC, topics.physical(prefix, name))

    acls: list[ACL] = []
    for service, own in topics.PRODUCES.items():
        acls += [
            allow(service, op, topic(own))
            for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE, ACLOperation.READ)
        ]
        for consumed in topics.CONSUMES[service]:
            acls += [
                allow(service, op, topic(consumed))
                for op in (ACLOperation.READ, ACLOperation.DESCRIBE)
            ]
            acls += [
                allow(service, op, topic(topics.dead_letter(consumed)))
                for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)
            ]
        group = ResourcePattern(
            ResourceType.GROUP,
            f"{prefix}{group_prefix}{service}",
            ACLResourcePatternType.PREFIXED,
        )
        acls.append(allow(service, ACLOperation.READ, group))
        # The relay and the dead-letter producer are idempotent (no duplicates from their own
        # retries); InitProducerId needs this. It grants no right on any topic.
        cluster = ResourcePattern(ResourceType.CLUSTER, "kafka-cluster")
        acls.append(allow(service, ACLOperation.IDEMPOTENT_WRITE, cluster))
    return acls


def grant_service_acls(
    bootstrap_servers: str,
    client_options: dict[str, Any],
    prefix: str = "",
    group_prefix: str = "iopcare-",
    timeout: float = 30,
) -> None:
    """Creates `service_acls` on the cluster (as its super user); existing ones are kept."""
    acls = service_acls(prefix, group_prefix)
    try:
        admin = _open_admin(
            bootstrap_servers, timeout, "iopcare-acls", client_options=client_options
        )
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap_servers}: {exc!r}") from exc
    try:
        result = admin.create_acls(acls)
        if result["failed"]:
            raise BrokerError(f"creating ACLs failed: {result['failed']!r}")
        # ACLs reach the authorizer through the metadata log, a moment after the answer: wait
        # until they are all visible, so a service started next is not refused on its first try.
        every = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                ResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
        wanted = {_acl_key(acl) for acl in acls}
        deadline = time.monotonic() + timeout
        while True:
            found, _error = admin.describe_acls(every)
            if wanted <= {_acl_key(acl) for acl in found}:
                break
            if time.monotonic() > deadline:
                raise BrokerError(f"ACLs not visible within {timeout:g}s")
            time.sleep(_POLL_INTERVAL)
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"creating ACLs failed: {exc!r}") from exc
    finally:
        admin.close()


def _acl_key(acl: ACL) -> tuple[str, int, str, int, int]:
    pattern = acl.resource_pattern
    return (
        acl.principal,
        int(acl.operation),
        pattern.resource_name,
        int(pattern.resource_type),
        int(pattern.pattern_type),
    )


def dev_sasl_users(folder: Path) -> dict[str, str]:
    """The development broker's users (the super user and one per service) with passwords
    generated once and kept in `folder` (0600), so a restarted `make run` finds them again."""
    import secrets

    from iopcare.kit import topics

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    users = {}
    for user in (SUPER_USER, *topics.PRODUCES):
        path = folder / f"{user}.password"
        if not path.is_file():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        users[user] = path.read_text().strip()
    return users


def main(argv: Sequence[str] | None = None) -> int:
    """Run a development broker in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m iopcare.devtools.kafka_broker",
        description="Run a single-node Kafka (KRaft) broker for local development.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    parser.add_argument("--port", type=int, default=9092, help="client port (0 = any free)")
    parser.add_argument(
        "--controller-port", type=int, default=0, help="KRaft controller port (0 = any free)"
    )
    parser.add_argument("--topics", default="", help="comma-separated topics to create")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--sasl-credentials",
        type=Path,
        default=None,
        help="folder of SASL passwords (created if missing): SCRAM users admin and one per "
        "service, ACLs as `make run` sets them; without it the broker is open (PLAINTEXT)",
    )
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--timeout", type=float, default=90, help="start-up timeout, seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # kafka-python narrates every connection at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)

    stop_requested = threading.Event()
    starting = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()
        # During start-up the main thread is busy in start(); interrupt it so that the finally
        # below stops the JVM instead of leaving it orphaned in its own session.
        if starting:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    broker = KafkaBroker(
        data_dir=args.data_dir,
        broker_port=args.port,
        controller_port=args.controller_port,
        heap=args.heap,
        sasl_users=dev_sasl_users(args.sasl_credentials) if args.sasl_credentials else None,
    )
    try:
        broker.start(timeout=args.timeout)
        topics = [name for name in args.topics.split(",") if name.strip()]
        create_topics(
            broker.bootstrap_servers,
            topics,
            partitions=args.partitions,
            client_options=broker.client_options(),
        )
        if broker.sasl_users:
            grant_service_acls(broker.bootstrap_servers, broker.client_options())
        starting = False
        print(broker.bootstrap_servers, flush=True)
        print(f"Kafka log: {broker.log_file}", file=sys.stderr, flush=True)
        while not stop_requested.wait(0.5):
            if broker.pid is None:
                print(f"Kafka broker exited unexpectedly; see {broker.log_file}", file=sys.stderr)
                return 1
        return 0
    except KeyboardInterrupt:
        return 130
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        starting = False
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
