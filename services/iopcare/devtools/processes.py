"""Starting services and the gateway as real processes, for `iopcare up`, the end-to-end tests
and benchmarks.

Each process runs `python -m iopcare.cli serve NAME` in its own session (so a test can kill,
pause or resume exactly that process and nothing else) with its output in a log file. It ends
with the process that started it (`lifetime.die_with_parent`): a launcher killed with SIGKILL
leaves no service behind holding its port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from iopcare.devtools.lifetime import die_with_parent, log_tail
from iopcare.kit import files
from iopcare.kit.rpc import wait_serving


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on the port now.

    The probe binds with SO_REUSEADDR, as the servers themselves do (gRPC, uvicorn, Kafka): the
    connections of a system that just stopped linger in TIME_WAIT for a minute and do not stop a
    new listener, so they must not make the port look taken. A socket still listening does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class ServiceProcess:
    """One service running as a child process."""

    name: str
    port: int
    env: dict[str, str]
    log_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, wait: bool = True, timeout: float = 60.0) -> None:
        # A leftover process on the port would answer the health check in our new process's
        # place, and the new one would die unnoticed; refuse to start instead.
        if not port_is_free(self.port):
            raise RuntimeError(
                f"port {self.port} is already in use; is an earlier {self.name} still running?"
            )
        env = {**os.environ, **self.env, f"IOPCARE_{self.name.upper()}_PORT": str(self.port)}
        # Logs name patients' ids and callers: owner-only, like the databases.
        files.private_file(self.log_file)
        log = self.log_file.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "iopcare.cli", "serve", self.name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # SIGTERM (a graceful stop) when the launcher dies, whatever kills it.
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        finally:
            log.close()
        if wait:
            try:
                self.wait_ready(timeout)
            except TimeoutError:
                self.kill()
                raise TimeoutError(f"{self.name} did not start; log:\n{self.tail()}") from None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise TimeoutError(f"{self.name} exited with {self.process.returncode}")
            if self._answers(deadline):
                return
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s")

    def _answers(self, deadline: float) -> bool:
        """Whether the process answers its health check (waiting at most until `deadline`)."""
        try:
            wait_serving(self.address, timeout=min(2.0, deadline - time.monotonic()))
        except TimeoutError:
            return False
        return True

    def tail(self, lines: int = 40) -> str:
        return log_tail(self.log_file, lines)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL if it takes too long."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def terminate(self) -> None:
        """Sends SIGTERM without waiting (`stop_all` stops several at once)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash, for fault tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


def stop_all(processes: list[ServiceProcess], timeout: float = 8.0) -> None:
    """Stops the processes together: SIGTERM to all at once, then SIGKILL to any still running
    after `timeout` seconds, so the whole system is down within a few seconds, not one
    graceful period after another."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        if process.process is None:
            continue
        try:
            process.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


# The gateway speaks HTTP rather than gRPC health: ready when `GET /metadata` answers.
@dataclass
class GatewayProcess(ServiceProcess):
    base_path: str = "/fhir"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def _answers(self, deadline: float) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/metadata", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
        return False
