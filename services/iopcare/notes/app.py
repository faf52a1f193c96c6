"""Composition root of the notes service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from iopcare.careplan import codes as careplan_codes
from iopcare.kit import topics
from iopcare.kit.runtime import Assembly, PeriodicTask, ServiceRuntime
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.kit.teams import projection_handler
from iopcare.notes import store
from iopcare.notes.api import SERVICE_NAME, NotesServicer
from iopcare.notes.service import Notes
from iopcare.notes.v1 import notes_service_pb2_grpc as pb_grpc
from iopcare.scheduling import codes as scheduling_codes

NAME = "notes"
MIGRATIONS = Path(__file__).parent / "migrations"


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
    notes = Notes(parts.db, notify_outbox=parts.relay.notify)
    on_team = projection_handler(store.care_team_member, store.care_team_seen)
    consumer = parts.consumer(
        store.inbox,
        [topics.CAREPLAN, topics.SCHEDULING],
        {
            careplan_codes.EVENT_CREATED: notes.on_care_plan_created,
            careplan_codes.EVENT_CRISIS: notes.on_crisis,
            careplan_codes.EVENT_REVIEW_DUE_NOW: notes.on_review_due,
            careplan_codes.EVENT_TEAM_CREATED: on_team,
            careplan_codes.EVENT_TEAM_UPDATED: on_team,
            scheduling_codes.EVENT_APPOINTMENTS_PROPOSED: notes.on_appointments_proposed,
        },
    )
    escalation = timedelta(minutes=settings.crisis_escalation_minutes)
    escalate = PeriodicTask(
        "crisis-escalation",
        settings.crisis_check_seconds,
        lambda: notes.escalate_overdue(datetime.now(UTC), escalation),
    )
    return parts.runtime(
        [(pb_grpc.add_NotesServiceServicer_to_server, NotesServicer(notes), SERVICE_NAME)],
        [consumer],
        [escalate],
    )
