"""Failpoints: named places in the code where a test can inject a crash, an error or a delay.

The fault tests in docs/test-matrix.md need to stop a process at exact moments (after the database
commit but before the publish, after the publish but before marking sent, ...). Production code
calls `failpoint("name")` at those moments; it costs one dict lookup when nothing is armed.

Arming:
- in-process: `arm("after_publish_before_mark_sent", "raise")` / `disarm(...)`;
- in a child process: the environment variable
  `IOPCARE_FAILPOINTS="after_db_commit_before_publish=exit;after_poll_before_effect=sleep(200)"`.

Actions: `exit` (the process dies at once with status 137, like SIGKILL: no cleanup, no flush),
`raise` (raises FailpointTriggered), `sleep(MS)`, `off`. A `N*` prefix (`1*exit`) triggers only
the first N times the point is reached.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass

KNOWN = frozenset(
    {
        "after_db_commit_before_publish",
        "after_publish_before_mark_sent",
        "after_effect_before_offset_commit",
        "after_poll_before_effect",
        # The gateway, once a request is admitted and before it is handled (fairness tests).
        "gateway_request",
    }
)

_ACTION = re.compile(r"^(?:(\d+)\*)?(exit|raise|off|sleep\((\d+)\))$")


class FailpointTriggered(RuntimeError):
    """Raised by a failpoint armed with `raise`: simulates a crash the process survives."""


@dataclass
class _Armed:
    action: str
    remaining: int | None
    sleep_ms: int = 0


_lock = threading.Lock()
_armed: dict[str, _Armed] = {}


def _parse(name: str, spec: str) -> _Armed:
    match = _ACTION.match(spec.strip())
    if match is None:
        raise ValueError(f"failpoint {name}: cannot parse action {spec!r}")
    count, action, sleep_ms = match.groups()
    if action.startswith("sleep"):
        action = "sleep"
    return _Armed(action, int(count) if count else None, int(sleep_ms or 0))


def arm(name: str, spec: str) -> None:
    """Arms a failpoint in this process."""
    with _lock:
        _armed[name] = _parse(name, spec)


def disarm(name: str | None = None) -> None:
    """Disarms one failpoint, or all of them."""
    with _lock:
        if name is None:
            _armed.clear()
        else:
            _armed.pop(name, None)


def load_from_env(value: str | None = None) -> None:
    """Arms the failpoints listed in IOPCARE_FAILPOINTS (called once when a service starts)."""
    value = os.environ.get("IOPCARE_FAILPOINTS", "") if value is None else value
    for item in filter(None, (part.strip() for part in value.split(";"))):
        name, _, spec = item.partition("=")
        arm(name.strip(), spec)


def failpoint(name: str) -> None:
    """Triggers the named failpoint if it is armed; otherwise does nothing."""
    if not _armed:
        return
    with _lock:
        armed = _armed.get(name)
        if armed is None or armed.action == "off":
            return
        if armed.remaining is not None:
            armed.remaining -= 1
            if armed.remaining <= 0:
                del _armed[name]
    if armed.action == "exit":
        # os._exit skips atexit handlers, buffered writes and `finally` blocks, as a kill would.
        os._exit(137)
    if armed.action == "raise":
        raise FailpointTriggered(name)
    if armed.action == "sleep":
        time.sleep(armed.sleep_ms / 1000)
