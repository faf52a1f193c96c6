"""Composition root of the notes service."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import iopcare.careplan.contract as careplan_contract
import iopcare.scheduling.contract as scheduling_contract
from iopcare.kit import topics
from iopcare.kit.rpc import rules_for
from iopcare.kit.runtime import Assembly, PeriodicTask, ServiceRuntime
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.kit.teams import projection_handler
from iopcare.notes import store
from iopcare.notes.api import SERVICE_NAME, NotesServicer
from iopcare.notes.clinical import ClinicalNotes
from iopcare.notes.scope_rules import SCOPE_RULES
from iopcare.notes.service import Notes
from iopcare.notes.v1 import notes_service_pb2_grpc as pb_grpc
from iopcare.notes.watch import ThreadWatch

NAME = "notes"
MIGRATIONS = Path(__file__).parent / "migrations"
#: scheduling's attendance alerts notes posts to the team thread.
ATTENDANCE_ALERTS = (
    scheduling_contract.EVENT_INTENSITY_BELOW_MINIMUM,
    scheduling_contract.EVENT_DROPOUT_RISK,
)


@dataclass
class NotesRuntime(ServiceRuntime):
    """The service runtime that also ends WatchThread streams when it stops: a stream blocks a
    server thread, and the server's grace period would otherwise wait for each one to time out."""

    watchers: ThreadWatch | None = None

    def stop(self, grace: float = 5.0) -> None:
        if self.watchers is not None:
            self.watchers.close()
        super().stop(grace)


def build(
    settings: Settings | None = None, service: ServiceSettings | None = None
) -> ServiceRuntime:
    settings = settings or Settings()
    parts = Assembly(
        NAME,
        settings,
        service or ServiceSettings.for_service(NAME, settings),
        MIGRATIONS,
        store.outbox,
    )
    notes = Notes(
        parts.db,
        notify_outbox=parts.relay.notify,
        watch_poll_seconds=settings.notes_watch_poll_seconds,
        # Half the server's threads at most wait in WatchThread streams; the rest serve calls.
        max_watchers=max(1, parts.service.grpc_workers // 2),
        max_watchers_per_client=settings.notes_watch_max_per_client,
        retry_after_seconds=settings.rpc_retry_after_seconds,
    )
    clinical = ClinicalNotes(parts.db, notify_outbox=parts.relay.notify)
    on_team = projection_handler(store.care_team_member, store.care_team_seen)
    handlers = {
        careplan_contract.EVENT_CREATED: notes.on_care_plan_created,
        careplan_contract.EVENT_CRISIS: notes.on_careplan_alert,
        careplan_contract.EVENT_REVIEW_DUE_NOW: notes.on_review_due,
        careplan_contract.EVENT_TEAM_CREATED: on_team,
        careplan_contract.EVENT_TEAM_UPDATED: on_team,
        scheduling_contract.EVENT_APPOINTMENTS_PROPOSED: notes.on_appointments_proposed,
        scheduling_contract.EVENT_APPOINTMENT_UPDATED: notes.on_appointment_updated,
        **{event: notes.on_plan_changed for event in careplan_contract.EVENT_FOR_CHANGE.values()},
        **{event: notes.on_attendance_alert for event in ATTENDANCE_ALERTS},
    }
    consumer = parts.consumer(store.inbox, [topics.CAREPLAN, topics.SCHEDULING], handlers)
    escalation = timedelta(minutes=settings.crisis_escalation_minutes)
    escalate = PeriodicTask(
        "crisis-escalation",
        settings.crisis_check_seconds,
        lambda: notes.escalate_overdue(datetime.now(UTC), escalation),
    )
    runtime = parts.runtime(
        [
            (
                pb_grpc.add_NotesServiceServicer_to_server,
                NotesServicer(notes, clinical),
                SERVICE_NAME,
            )
        ],
        [consumer],
        [escalate],
        rules=rules_for(SERVICE_NAME, SCOPE_RULES),
    )
    # The kit builds a plain ServiceRuntime; carry its parts over into ours.
    values = {f.name: getattr(runtime, f.name) for f in fields(runtime) if f.init}
    return NotesRuntime(**values, watchers=notes.watchers)
