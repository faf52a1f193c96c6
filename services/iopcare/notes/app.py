"""Composition root of the notes service."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import iopcare.careplan.contract as careplan_contract
from iopcare.kit import topics
from iopcare.kit.composition import configured, team_projection_handlers
from iopcare.kit.rpc import rules_for
from iopcare.kit.runtime import Assembly, PeriodicTask, ServiceRuntime
from iopcare.kit.settings import ConfigurationError, ServiceSettings, Settings
from iopcare.notes import store
from iopcare.notes.api import SERVICE_NAME, NotesServicer, UseCases
from iopcare.notes.clinical import ClinicalNotes
from iopcare.notes.consents import Consents
from iopcare.notes.crisis import Crisis
from iopcare.notes.disclosure import Disclosure
from iopcare.notes.domain.oncall import MISSED_CHECKIN_RULES, parse_program_hours
from iopcare.notes.drafts import Drafts
from iopcare.notes.handlers import HANDLERS, coverage_handlers
from iopcare.notes.inbox import Inbox
from iopcare.notes.note_search import NoteSearch
from iopcare.notes.oncall import Coverage, OnCall
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
    #: The after-hours coverage the crisis path routes with (its `clock` is the tests' lever).
    coverage: Coverage | None = None

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
    coverage = coverage_of(settings)
    thread.coverage = coverage
    crisis = Crisis(parts.db, notify_outbox=parts.relay.notify)
    oncall = OnCall(parts.db, coverage, notify_outbox=parts.relay.notify)
    cases = UseCases(
        thread=thread,
        drafts=Drafts(parts.db, thread),
        crisis=crisis,
        clinical=ClinicalNotes(parts.db, notify_outbox=parts.relay.notify),
        search=NoteSearch(parts.db),
        consents=Consents(parts.db),
        disclosure=Disclosure(parts.db),
        oncall=oncall,
        inbox=Inbox(thread),
        safety_plans=SafetyPlans(parts.db, notify_outbox=parts.relay.notify),
    )
    handlers = {
        # careplan's plan events also tell the safety plans their Part 2 labels.
        **with_plan_labels(HANDLERS),
        **coverage_handlers(coverage),
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
    escalate_on_call = PeriodicTask(
        "oncall-escalation", settings.oncall_check_seconds, lambda: oncall.escalate_due()
    )
    runtime = parts.runtime(
        [(pb_grpc.add_NotesServiceServicer_to_server, NotesServicer(cases), SERVICE_NAME)],
        [consumer],
        [escalate, escalate_on_call],
        rules=rules_for(SERVICE_NAME, SCOPE_RULES),
    )
    # The kit builds a plain ServiceRuntime; carry its parts over into ours.
    values = {f.name: getattr(runtime, f.name) for f in fields(runtime) if f.init}
    return NotesRuntime(**values, watchers=thread.watchers, coverage=coverage)


def coverage_of(settings: Settings) -> Coverage:
    """The program's after-hours coverage from its settings (a bad value stops the start)."""
    if settings.oncall_missed_checkin not in MISSED_CHECKIN_RULES:
        raise ConfigurationError(
            f"IOPCARE_ONCALL_MISSED_CHECKIN is one of {', '.join(MISSED_CHECKIN_RULES)}"
        )
    try:
        hours = parse_program_hours(
            settings.oncall_program_hours,
            ZoneInfo(settings.program_timezone),
            settings.scheduling_program_holidays,
        )
    except ValueError as exc:
        raise ConfigurationError(f"IOPCARE_ONCALL_PROGRAM_HOURS: {exc}") from None
    return Coverage(
        hours,
        escalation_minutes=settings.oncall_escalation_minutes,
        missed_checkin_rule=settings.oncall_missed_checkin,
    )
