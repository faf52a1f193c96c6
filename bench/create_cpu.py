"""The CPU of one CarePlan create in-process, with fhir.resources' serialiser and with
kit.fhir_json (ADR 0025), in one run: the ratio is what to read, the machine being shared.

`CarePlans.create` on a throwaway SQLite database (validation, access check, the plan, its history,
outbox, request-log and audit rows in one transaction), the anchor's 4 KB plan body
(bench/anchor/data/careplan.json), rounds alternating the two serialisers; the process CPU time
(other processes on the machine count less than in wall time) and the time the write lock is held.

    .venv/bin/python -m bench.create_cpu [--creates 300] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import machine
from iopcare.careplan import app
from iopcare.careplan.care_teams import CareTeams
from iopcare.careplan.service import CarePlans
from iopcare.kit import fhir
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, migrate

SYSTEM = Principal(subject="service:bench", role="service")
DATA = Path(__file__).parent / "anchor" / "data"


def _reference_with_identity(resource: Any, rid: str, version: int, updated: datetime) -> str:
    """kit.fhir.with_identity as it was: a model copy, serialised by fhir.resources."""
    meta_cls = fhir.get_fhir_model_class("Meta")
    meta = (resource.meta or meta_cls()).model_copy(
        update={"versionId": str(version), "lastUpdated": updated}
    )
    copy = resource.model_copy(update={"id": rid, "meta": meta})
    return str(copy.model_dump_json(exclude_none=True, by_alias=True))


@contextmanager
def _serialiser(kind: str) -> Iterator[None]:
    if kind == "fhir_json":
        yield
        return
    saved = fhir.to_json, fhir.canonical, fhir.stamp
    # As before ADR 0025: the model kept whole until the transaction, serialised inside it.
    fhir.to_json = lambda r: str(r.model_dump_json(exclude_none=True, by_alias=True))
    fhir.canonical = lambda r: r  # type: ignore[assignment,return-value]
    fhir.stamp = _reference_with_identity  # type: ignore[assignment]
    try:
        yield
    finally:
        fhir.to_json, fhir.canonical, fhir.stamp = saved


class _LockTimer:
    """Time the write lock is held (SQLite's one writer per process)."""

    def __init__(self, db: Database) -> None:
        self.held = 0.0
        inner: Callable[[], Any] = db.write_lock
        timer = self

        @contextmanager
        def timed() -> Iterator[None]:
            with inner():
                started = time.perf_counter()
                try:
                    yield
                finally:
                    timer.held += time.perf_counter() - started

        db.write_lock = timed  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("IOPCARE_DEV_MODE", "true")
        db = Database(f"sqlite:///{folder}/careplan.db")
        migrate(db, app.MIGRATIONS)
        lock = _LockTimer(db)
        patient = f"p-{uuid.uuid4().hex[:8]}"
        team = CareTeams(db).create(
            SYSTEM,
            str(uuid.uuid4()),
            (DATA / "careteam.json").read_text().replace("PATIENT_ID", patient),
        )
        body = (
            (DATA / "careplan.json")
            .read_text()
            .replace("PATIENT_ID", patient)
            .replace("TEAM_ID", team.id)
        )
        plans = CarePlans(db)
        for _ in range(30):  # warm-up: imports, caches, the first pages of the tables
            plans.create(SYSTEM, str(uuid.uuid4()), body)
        cpu: dict[str, list[float]] = {"fhir.resources": [], "fhir_json": []}
        held: dict[str, list[float]] = {"fhir.resources": [], "fhir_json": []}
        load = os.getloadavg()
        for _ in range(args.rounds):
            for kind in cpu:
                with _serialiser(kind):
                    lock.held = 0.0
                    started = time.process_time()
                    for _ in range(args.creates):
                        plans.create(SYSTEM, str(uuid.uuid4()), body)
                    cpu[kind].append((time.process_time() - started) / args.creates * 1000)
                    held[kind].append(lock.held / args.creates * 1000)
        db.dispose()
    print(machine())
    print(
        f"load average at start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f}; "
        f"threads {threading.active_count()}"
    )
    for kind in cpu:
        print(
            f"{kind:>15}: CPU per create median {statistics.median(cpu[kind]):.2f} ms "
            f"(rounds {', '.join(f'{v:.2f}' for v in cpu[kind])}); write lock held "
            f"{statistics.median(held[kind]):.2f} ms"
        )
    before = statistics.median(cpu["fhir.resources"])
    after = statistics.median(cpu["fhir_json"])
    print(
        f"ratio after/before: CPU {after / before:.2f}, lock held "
        f"{statistics.median(held['fhir_json']) / statistics.median(held['fhir.resources']):.2f}"
    )


if __name__ == "__main__":
    main()
