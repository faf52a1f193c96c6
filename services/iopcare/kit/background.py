"""The parts of a service process that run in a daemon thread of their own until told to stop:
the outbox relay, the event consumers, the periodic tasks and the readiness probe.

`kit.runtime` starts them after the gRPC server and stops them in two steps within its deadline:
`request_stop` to all at once (each checks its stop flag often), then `stop` on each with what is
left of the deadline.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(eq=False)
class Background:
    """Runs `run` in a daemon thread until `_stop` is set."""

    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def thread_name(self) -> str:
        raise NotImplementedError

    def run(self) -> None:
        """The thread's work; returns soon after `_stop` is set."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Tells the thread to stop (see `stop`), without waiting."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Tells the thread to stop and waits for it up to `timeout` seconds; returns whether it
        has ended (or never started)."""
        self.request_stop()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
