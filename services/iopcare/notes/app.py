"""Composition root of the notes service."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import iopcare.careplan.contract as careplan_contract
from iopcare.kit import topics
from iopcare.kit.composition import configured, team_projection_handlers
from iopcare.kit.rpc import rules_for
from iopcare.kit.runtime import Assembly, PeriodicTask, ServiceRuntime
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.notes import store
from iopcare.notes.api import SERVICE_NAME, NotesServicer, UseCases
from iopcare.notes.clinical import ClinicalNotes
from iopcare.notes.consents import Consents
from iopcare.notes.crisis import Crisis
from iopcare.notes.disclosure import Disclosure
from iopcare.notes.drafts import Drafts
from iopcare.notes.handlers import HANDLERS
from iopcare.notes.note_search import NoteSearch
from iopcare.notes.safety_plans import SafetyPlans, with_plan_labels
from iopcare.notes.scope_rules import SCOPE_RULES
from iopcare.notes.thread import Thread
from iopcare.notes.v1 import notes_service_pb2_grpc as pb_grpc
from iopcare.notes.watch import ThreadWatch

NAME = "notes"
MIGRATIONS = Path(__file__).parent / "migrations"


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
    settings, service = configured(NAME, settings, service)
    parts = Assembly(NAME, settings, service, MIGRATIONS, store.outbox)
    thread = Thread(
        parts.db,
        notify_outbox=parts.relay.notify,
        watch_poll_seconds=settings.notes_watch_poll_seconds,
        # Half the server's threads at most wait in WatchThread streams; the rest serve calls.
        max_watchers=max(1, parts.service.grpc_workers // 2),
        max_watchers_per_client=settings.notes_watch_max_per_client,
        retry_after_seconds=settings.rpc_retry_after_seconds,
    )
    crisis = Crisis(parts.db, notify_outbox=parts.relay.notify)
    cases = UseCases(
        thread=thread,
        drafts=Drafts(parts.db, thread),
        crisis=crisis,
        clinical=ClinicalNotes(parts.db, notify_outbox=parts.relay.notify),
        search=NoteSearch(parts.db),
        consents=Consents(parts.db),
        disclosure=Disclosure(parts.db),
        safety_plans=SafetyPlans(parts.db, notify_outbox=parts.relay.notify),
    )
    handlers = {
        # careplan's plan events also tell the safety plans their Part 2 labels.
        **with_plan_labels(HANDLERS),
        **team_projection_handlers(
            store.care_team_member, store.care_team_seen, careplan_contract.TEAM_EVENTS
        ),
    }
    consumer = parts.consumer(store.inbox, [topics.CAREPLAN, topics.SCHEDULING], handlers)
    escalation = timedelta(minutes=settings.crisis_escalation_minutes)
    escalate = PeriodicTask(
        "crisis-escalation",
        settings.crisis_check_seconds,
        lambda: crisis.escalate_overdue(datetime.now(UTC), escalation),
    )
    runtime = parts.runtime(
        [(pb_grpc.add_NotesServiceServicer_to_server, NotesServicer(cases), SERVICE_NAME)],
        [consumer],
        [escalate],
        rules=rules_for(SERVICE_NAME, SCOPE_RULES),
    )
    # The kit builds a plain ServiceRuntime; carry its parts over into ours.
    values = {f.name: getattr(runtime, f.name) for f in fields(runtime) if f.init}
    return NotesRuntime(**values, watchers=thread.watchers)
