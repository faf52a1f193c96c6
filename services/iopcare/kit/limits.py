"""Per-client limits: one client cannot take the capacity every client shares (issue 10).

Why: a server has a fixed number of worker threads (gRPC) or places (the gateway). Without a
per-client bound one caller (a looping EHR, a clinician's app opening stream after stream, an
attacker with one valid token) holds all of them and every other caller waits: 45 concurrent
batches once made the gateway's `/metadata` wait 18 s, and one clinician could take every
WatchThread place of notes. A client is the authenticated subject (the token's `sub`), or the
peer's address when the request carries no valid token.

- `ClientLimiter` (threads; the gRPC interceptor `LimitInterceptor` and notes' WatchThread): at
  most `limit` calls of one client in flight; one more is refused at once with `Throttled`
  (RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo`). Refusing instead of waiting is deliberate:
  a call that waits for its client's share would hold a worker thread while it waits, the very
  capacity the limit protects.
- `FairQueue` (asyncio; the gateway): at most `capacity` requests run at once; each client may
  run `per_client` of them and queue `queued_per_client` more, beyond which it is refused
  (HTTP 429 with Retry-After). A free place goes to the waiting clients in turn (round robin), so
  a client with many queued requests cannot starve one with a single request. Waiting is cheap
  there: a queued request is a suspended coroutine, not a thread.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager

from iopcare.kit.errors import ResourceExhausted

#: ErrorInfo reason of a call refused because its client exceeds its share.
TOO_MANY_CALLS = "TOO_MANY_CALLS_FOR_CLIENT"


class Throttled(ResourceExhausted):
    """The client exceeds its share; it may retry after `retry_after_seconds`."""

    reason = TOO_MANY_CALLS

    def __init__(
        self, message: str, retry_after_seconds: float, *, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_seconds = retry_after_seconds

    @property
    def retry_after_header(self) -> str:
        """Retry-After (RFC 9110) is whole seconds; never 0, which invites an instant retry."""
        return str(max(1, math.ceil(self.retry_after_seconds)))


def peer_client(address: str) -> str:
    """A client key from a peer address without its port (`ipv4:10.0.0.7:53211` ->
    `peer:ipv4:10.0.0.7`): each new connection has a new port, the client is the host."""
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit():
        address = host
    return f"peer:{address}"


class ClientLimiter:
    """Counts each client's calls in flight and refuses one beyond `limit` (thread-safe).

    `limit` <= 0 means no limit."""

    def __init__(
        self,
        limit: int,
        retry_after_seconds: float,
        *,
        what: str = "calls",
        reason: str = TOO_MANY_CALLS,
    ) -> None:
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self.what = what
        self.reason = reason
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}

    def acquire(self, client: str) -> None:
        """Takes one of the client's places, or raises Throttled."""
        if self.limit <= 0:
            return
        with self._lock:
            held = self._in_flight.get(client, 0)
            if held >= self.limit:
                raise Throttled(
                    f"this client already has {held} {self.what} in progress, its limit; "
                    "retry after one ends",
                    self.retry_after_seconds,
                    reason=self.reason,
                )
            self._in_flight[client] = held + 1

    def release(self, client: str) -> None:
        if self.limit <= 0:
            return
        with self._lock:
            held = self._in_flight.get(client, 0) - 1
            if held > 0:
                self._in_flight[client] = held
            else:
                # No entry for an idle client: the table stays as small as the active clients.
                self._in_flight.pop(client, None)

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        self.acquire(client)
        try:
            yield
        finally:
            self.release(client)

    def in_flight(self, client: str) -> int:
        with self._lock:
            return self._in_flight.get(client, 0)


class FairQueue:
    """Admission to `capacity` shared places, fair between clients (one asyncio event loop).

    Not thread-safe on purpose: every call comes from the event loop's thread."""

    def __init__(
        self,
        capacity: int,
        per_client: int,
        queued_per_client: int,
        retry_after_seconds: float,
    ) -> None:
        self.capacity = max(1, capacity)
        self.per_client = max(1, per_client)
        self.queued_per_client = max(0, queued_per_client)
        self.retry_after_seconds = retry_after_seconds
        self._active: dict[str, int] = {}
        self._total = 0
        # Clients with waiting requests, in the order they get the next free place.
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def active(self) -> int:
        return self._total

    def queued(self, client: str) -> int:
        return len(self._waiting.get(client, ()))

    async def acquire(self, client: str) -> None:
        """Returns once the request may run; raises Throttled when the client's share of running
        and queued requests is full."""
        if (
            self._total < self.capacity
            and self._active.get(client, 0) < self.per_client
            and client not in self._waiting
        ):
            self._grant(client)
            return
        if self.queued(client) >= self.queued_per_client:
            raise Throttled(
                f"this client has {self._active.get(client, 0)} requests in progress and "
                f"{self.queued(client)} waiting, its share; retry later",
                self.retry_after_seconds,
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            # The client went away while waiting. If the place was granted in the same instant,
            # give it back; otherwise leave the queue.
            if future.done() and not future.cancelled():
                self.release(client)
            else:
                queue = self._waiting.get(client)
                if queue is not None and future in queue:
                    queue.remove(future)
                    if not queue:
                        del self._waiting[client]
            raise

    def release(self, client: str) -> None:
        held = self._active.get(client, 0) - 1
        if held > 0:
            self._active[client] = held
        else:
            self._active.pop(client, None)
        self._total -= 1
        self._dispatch()

    def _grant(self, client: str) -> None:
        self._active[client] = self._active.get(client, 0) + 1
        self._total += 1

    def _dispatch(self) -> None:
        while self._total < self.capacity:
            chosen = next(
                (c for c in self._waiting if self._active.get(c, 0) < self.per_client), None
            )
            if chosen is None:
                return
            queue = self._waiting.pop(chosen)
            future = queue.popleft()
            if queue:
                # Round robin: the client's next request waits behind the other clients'.
                self._waiting[chosen] = queue
            if future.cancelled():
                continue
            self._grant(chosen)
            future.set_result(None)
