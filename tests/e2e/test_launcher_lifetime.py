"""Issue 17, item 6: the processes of `iopcare up` end with their launcher, and the launcher's
port check is not fooled by connections in TIME_WAIT.

A launcher killed with SIGKILL used to leave the broker and the services running in their own
sessions, holding 9092 and 50051, and the next `make run` failed; and for a minute after a system
that served traffic stopped, `make run` refused with "port 8080 is already in use" though nothing
ran.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iopcare.devtools.lifetime import AlreadyRunning, PidFiles
from iopcare.devtools.processes import port_is_free
from tests.support.launcher import start_up


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat[stat.rindex(")") + 2 :].startswith(("Z", "X"))


def _time_wait_ports() -> set[int]:
    """Local ports of IPv4 TCP sockets in TIME_WAIT (state 06 in /proc/net/tcp)."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "06":
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def test_a_port_in_time_wait_is_free_and_a_listening_port_is_not() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert not port_is_free(port), "a listening port must be reported busy"
    # A server that served a request and closed the connection first: its side of the
    # connection (bound to the server's port) lingers in TIME_WAIT after the server has gone.
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    served.close()
    client.recv(100)
    listener.close()
    client.close()
    assert port in _time_wait_ports(), "the test needs a connection in TIME_WAIT on the port"
    # What the old check did (a bind without SO_REUSEADDR) fails here: the defect reproduced.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert port_is_free(port)
    # And a real server can indeed listen there now (which is what "free" promises).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not port_is_free(port)


def test_the_next_start_ends_recorded_leftovers_but_no_stranger(tmp_path: Path) -> None:
    # A process of ours (its command line names iopcare.cli) and an unrelated one whose pid a
    # stale file might name after pid reuse.
    ours = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "iopcare.cli", "serve"],
        start_new_session=True,
    )
    stranger = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        pids = PidFiles(tmp_path / "run")
        pids.record("careplan", ours.pid)
        pids.record("kafka", stranger.pid)
        assert pids.end_leftovers(grace=5) == ["careplan"]
        assert ours.wait(5) == -signal.SIGTERM
        assert stranger.poll() is None
        assert list((tmp_path / "run").glob("*.pid")) == []
        # While the launcher that recorded a child still runs, the child is not a leftover: a
        # second `make run` refuses instead of ending the first one's system.
        launcher = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)", "iopcare.cli", "up"],
            start_new_session=True,
        )
        try:
            pids.record("launcher", launcher.pid)
            pids.record("careplan", stranger.pid)
            with pytest.raises(AlreadyRunning):
                pids.end_leftovers(grace=5)
            assert stranger.poll() is None and launcher.poll() is None
        finally:
            launcher.kill()
            launcher.wait()
        assert pids.end_leftovers(grace=5) == []  # the launcher is dead; the stranger not ours
        assert stranger.poll() is None
    finally:
        for process in (ours, stranger):
            process.kill()
            process.wait()


def test_sigkill_of_iopcare_up_leaves_no_process_and_no_port_behind(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    launcher, output, ports = up.process, up.output, up.ports
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 180
        while b"all services up" not in output.read_bytes():
            assert launcher.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        run = tmp_path / "var" / "run"
        pids = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
        assert set(pids) == {"launcher", "kafka", "careplan", "scheduling", "notes", "gateway"}
        assert pids.pop("launcher") == launcher.pid
        assert all(_alive(pid) for pid in pids.values())
        assert not any(port_is_free(ports[n]) for n in ("kafka", "careplan", "gateway"))

        killed_at = time.monotonic()
        launcher.kill()
        launcher.wait()
        while time.monotonic() - killed_at < 15:
            if not any(_alive(pid) for pid in pids.values()) and all(
                port_is_free(port) for port in ports.values()
            ):
                break
            time.sleep(0.1)
        took = time.monotonic() - killed_at
        left = {name: pid for name, pid in pids.items() if _alive(pid)}
        busy = {name: port for name, port in ports.items() if not port_is_free(port)}
        assert not left and not busy, f"after {took:.1f}s still running {left}, busy {busy}"
        # "A few seconds": the services stop gracefully on their SIGTERM, the broker too.
        assert took < 10, f"children took {took:.1f}s to end"
        print(f"children and ports gone {took:.2f}s after the launcher's SIGKILL")
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
