"""The gateway's own probes (issue 17): `/healthz` (liveness) and `/readyz` (readiness).

Liveness says only that the process serves HTTP: it makes no gRPC call, so an outage of a service
never restarts gateway pods. Readiness asks the standard gRPC health service of careplan,
scheduling and notes (the overall status, name `""`, which each service sets NOT_SERVING while its
database or brokers are away, `kit.health`) and is ready only while all three answer SERVING.

Both live outside the FHIR base (they are not FHIR interactions, not in the CapabilityStatement),
need no token, carry no patient data and are not audited (a probe every few seconds is not a
disclosure). A readiness answer is cached for `TTL_SECONDS`, and concurrent probes share one
check, so probes cannot turn into load on the services.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: How long one readiness answer is reused.
TTL_SECONDS = 1.0
#: How long each service's health check may take (they run at once).
CHECK_TIMEOUT_SECONDS = 1.0

SERVING = "SERVING"
UNREACHABLE = "UNREACHABLE"

#: Asks every service's health once: service name -> status name (SERVING, NOT_SERVING, ...,
#: UNREACHABLE when the call itself failed).
HealthCheck = Callable[[], Mapping[str, str]]


@dataclass(frozen=True)
class ReadinessAnswer:
    services: Mapping[str, str]

    @property
    def ready(self) -> bool:
        return bool(self.services) and all(s == SERVING for s in self.services.values())

    def body(self) -> dict[str, object]:
        """What a probe gets: ready or not, and each service's status name (no address, no
        patient data)."""
        return {
            "status": "ready" if self.ready else "not ready",
            "services": dict(sorted(self.services.items())),
        }


class Readiness:
    """The cached readiness of the services behind the gateway."""

    def __init__(
        self,
        check: HealthCheck,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._answer: ReadinessAnswer | None = None
        self._at = 0.0

    def _fresh(self) -> ReadinessAnswer | None:
        if self._answer is not None and self._clock() - self._at < self._ttl:
            return self._answer
        return None

    def answer(self) -> ReadinessAnswer:
        cached = self._fresh()
        if cached is not None:
            return cached
        with self._lock:
            # A probe that waited for another's check uses its answer.
            cached = self._fresh()
            if cached is not None:
                return cached
            try:
                statuses = dict(self._check())
            except Exception:  # never a crash of the probe: not ready, and say so
                statuses = {}
            self._answer = ReadinessAnswer(statuses)
            self._at = self._clock()
            return self._answer
