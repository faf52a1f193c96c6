"""The events scheduling consumes: careplan's CarePlan events start, follow and end a plan's
series (the team events feed the care team projection, wired in `app`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from iopcare.kit import fhir
from iopcare.kit.db import UnitOfWork
from iopcare.kit.events import ReceivedEvent
from iopcare.scheduling import store
from iopcare.scheduling.series import Series


def _version(resource: fhir.Resource) -> int:
    meta = getattr(resource, "meta", None)
    return int(meta.versionId) if meta is not None and meta.versionId else 1


class PlanEvents:
    def __init__(self, series: Series, horizon: timedelta) -> None:
        self.series = series
        self.horizon = horizon

    def on_care_plan_created(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """Starts the plan's series: the sessions of every timed activity up to the horizon.

        The window starts at the event's time, not the wall clock, so replaying the event
        proposes exactly the same occurrences (and the occurrence key refuses them anyway).
        """
        plan = received.resource
        patient_id = fhir.reference_id(plan.subject.reference, "Patient")
        if not plan.id or not patient_id:
            return
        start = received.event.time
        existing = store.load_series(uow.conn, plan.id)
        series = store.StoredSeries(
            plan.id,
            patient_id,
            _version(plan),
            fhir.to_json(plan),
            start + self.horizon,
            plan.status in {"active", "draft"},
            existing.started_at if existing and existing.started_at else start,
        )
        if existing is not None and existing.version >= series.version:
            return  # a replay, or a late copy of a version already followed
        store.save_series(uow.conn, series)
        if series.active:
            planned = self.series.planned(
                uow, plan, start, series.horizon_end, anchor=series.started_at or start
            )
            self.series.fill(uow, plan, patient_id, planned, received.event.traceparent)

    def on_care_plan_changed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """An edited, activated or resumed plan: future sessions follow its activities now.

        Occurrences the plan no longer has are cancelled (reason "care plan changed"), new ones
        are proposed; a moved activity is both. Sessions that have started stay as they were.
        """
        plan = received.resource
        patient_id = fhir.reference_id(plan.subject.reference, "Patient")
        if not plan.id or not patient_id:
            return
        existing = store.load_series(uow.conn, plan.id)
        version = _version(plan)
        if existing is not None and existing.version >= version:
            return
        # The change takes effect from when it was made, but never reaches back past the present:
        # delivered late (a broker outage), it must not cancel or add sessions that have taken
        # place meanwhile ("past ones stay").
        now = max(received.event.time, datetime.now(UTC))
        horizon_end = max(existing.horizon_end if existing else now, now + self.horizon)
        active = plan.status in {"active", "draft"}
        started_at = existing.started_at if existing and existing.started_at else now
        store.save_series(
            uow.conn,
            store.StoredSeries(
                plan.id, patient_id, version, fhir.to_json(plan), horizon_end, active, started_at
            ),
        )
        if not active:
            self.series.withdraw(uow, plan.id, set(), now, f"care plan {plan.status}", received)
            return
        planned = self.series.planned(uow, plan, now, horizon_end, anchor=started_at)
        # Withdraw first, then fill: a moved activity's old session must give up the patient's
        # time before the new one is booked, or the old seat would block the new one.
        wanted = {key for _, _, key in planned}
        self.series.withdraw(uow, plan.id, wanted, now, "care plan changed", received)
        self.series.fill(uow, plan, patient_id, planned, received.event.traceparent)

    def on_care_plan_closed(self, uow: UnitOfWork, received: ReceivedEvent) -> None:
        """When a plan completes, is revoked or suspended, its future sessions are cancelled;
        past ones stay as they were (issue 3: "future appointments follow, past ones stay")."""
        plan = received.resource
        existing = store.load_series(uow.conn, plan.id)
        if existing is not None and existing.version > _version(plan):
            # A late copy of an older version (test-matrix A15): the series has since followed a
            # newer one (a resumed plan), whose sessions must not be withdrawn.
            return
        if existing is not None and existing.version < _version(plan):
            store.save_series(uow.conn, replace(existing, version=_version(plan), active=False))
        now = datetime.now(UTC)
        self.series.withdraw(uow, plan.id, set(), now, f"care plan {plan.status}", received)
