"""The gateway's readiness answer (gateway/readiness.py): ready only when every service is
SERVING, cached for its TTL, one check for concurrent probes, never a crash."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from iopcare.gateway.readiness import Readiness

ALL_UP = {"careplan": "SERVING", "scheduling": "SERVING", "notes": "SERVING"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ready_only_when_every_service_serves() -> None:
    assert Readiness(lambda: ALL_UP).answer().ready
    for name, status in (("notes", "NOT_SERVING"), ("careplan", "UNREACHABLE")):
        statuses = {**ALL_UP, name: status}
        answer = Readiness(statuses.copy).answer()
        assert not answer.ready
        assert answer.body() == {"status": "not ready", "services": {**ALL_UP, name: status}}
    assert not Readiness(dict).answer().ready  # no service answered: not ready


def test_the_answer_is_cached_for_its_ttl() -> None:
    clock = Clock()
    statuses: list[Mapping[str, str]] = [ALL_UP, {**ALL_UP, "notes": "UNREACHABLE"}]
    calls: list[int] = []

    def check() -> Mapping[str, str]:
        calls.append(1)
        return statuses[min(len(calls), 2) - 1]

    readiness = Readiness(check, ttl=1.0, clock=clock)
    assert readiness.answer().ready
    clock.now += 0.9
    assert readiness.answer().ready  # cached: notes' outage not seen yet
    assert len(calls) == 1
    clock.now += 0.2
    assert not readiness.answer().ready
    assert len(calls) == 2


def test_concurrent_probes_share_one_check() -> None:
    calls: list[int] = []

    def slow_check() -> Mapping[str, str]:
        calls.append(1)
        time.sleep(0.2)
        return ALL_UP

    readiness = Readiness(slow_check, ttl=5.0)
    answers: list[bool] = []
    threads = [
        threading.Thread(target=lambda: answers.append(readiness.answer().ready)) for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [True] * 20
    assert len(calls) == 1


def test_a_failing_check_is_not_ready_not_a_crash() -> None:
    def broken() -> Mapping[str, str]:
        raise RuntimeError("boom")

    answer = Readiness(broken).answer()
    assert not answer.ready
    assert answer.body() == {"status": "not ready", "services": {}}
