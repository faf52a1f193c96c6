"""Child processes that end with their launcher.

`iopcare up`, the tests and the benchmarks start the broker and the services in sessions of
their own (so a test can signal exactly one of them, and a Ctrl-C reaches only the launcher, which
stops them in order). A session of its own also means nothing ends them when the launcher is
killed (SIGKILL, an OOM kill, a closed terminal): they used to keep ports 9092 and 50051 and the
next `make run` failed. Two guards:

- `die_with_parent` (a `preexec_fn`): on Linux the child asks the kernel for a parent-death
  signal (`prctl(PR_SET_PDEATHSIG)`), so it gets SIGTERM the moment the launcher dies, however it
  dies. The signal follows the *thread* that started the child: start children from a thread that
  outlives them (the main thread, as the launcher and the tests do).
- pid files (`PidFiles`): the launcher records each child's pid; the next start ends any recorded
  process that is still alive and still ours (its command line names iopcare or Kafka), for the
  cases the signal cannot cover (another OS, a launcher stopped while its children were stuck).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

_PR_SET_PDEATHSIG = 1

# Resolved before any fork: the child between fork and exec must not load libraries.
_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` that makes the child receive `sig` when the process
    calling this dies; None where the platform has no parent-death signal (the pid files then
    are the only guard)."""
    if _prctl is None:
        return None
    prctl = _prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        # The launcher may have died between fork and prctl: then nobody will send the signal.
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return not stat[stat.rindex(")") + 2 :].startswith(("Z", "X"))


#: What a recorded process's command line must contain to be ended: a pid may have been reused by
#: an unrelated process since the launcher died.
OURS = ("iopcare.cli", "kafka.Kafka", "iopcare.devtools", "bin/iopcare")
#: The pid file of the launcher itself.
LAUNCHER = "launcher"


class AlreadyRunning(RuntimeError):
    """The launcher that recorded the children is still running: they are its, not leftovers."""


class PidFiles:
    """One file per child (`<folder>/<name>.pid`) holding its pid."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def record(self, name: str, pid: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.folder / f"{name}.pid").write_text(f"{pid}\n")

    def forget(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"{name}.pid").unlink()

    @staticmethod
    def _pid(path: Path) -> int:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return 0

    @staticmethod
    def _ours(pid: int) -> bool:
        line = _command_line(pid)
        return any(marker in line for marker in OURS)

    def end_leftovers(self, grace: float = 5.0) -> list[str]:
        """Ends every recorded process still alive and ours (SIGTERM, SIGKILL after `grace`);
        removes the pid files. Returns the names of the processes it had to end. Raises
        `AlreadyRunning` instead while the launcher that recorded them is itself alive."""
        if not self.folder.is_dir():
            return []
        launcher = self._pid(self.folder / f"{LAUNCHER}.pid")
        if launcher and launcher != os.getpid() and _alive(launcher) and self._ours(launcher):
            raise AlreadyRunning(
                f"another launcher (pid {launcher}) is running this system; stop it first"
            )
        ended: dict[str, int] = {}
        for path in sorted(self.folder.glob("*.pid")):
            if path.stem == LAUNCHER:
                path.unlink(missing_ok=True)
                continue
            pid = self._pid(path)
            if pid > 1 and pid != os.getpid() and _alive(pid) and self._ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                ended[path.stem] = pid
            path.unlink(missing_ok=True)
        deadline = time.monotonic() + grace
        while any(_alive(p) for p in ended.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in ended.values():
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return sorted(ended)


class StartStop:
    """A child process (or a set of them) as a context manager: `with it:` starts it and stops it
    when the block ends, however it ends."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a child's log file ("" when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
