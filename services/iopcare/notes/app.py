"""Composition root of the notes service."""

from __future__ import annotations

from pathlib import Path

from iopcare.careplan import codes as careplan_codes
from iopcare.kit import topics
from iopcare.kit.auth import TokenVerifier
from iopcare.kit.consumer import EventConsumer
from iopcare.kit.relay import OutboxRelay, make_producer
from iopcare.kit.rpc import TlsFiles, create_server
from iopcare.kit.runtime import ServiceRuntime, open_database
from iopcare.kit.settings import ServiceSettings, Settings
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
    service = service or ServiceSettings.for_service(NAME, settings)
    db = open_database(service.database_url, MIGRATIONS)
    relay = OutboxRelay(
        db,
        store.outbox,
        lambda: make_producer(settings.kafka_bootstrap_servers, f"iopcare-{NAME}-relay"),
        batch_size=settings.relay_batch_size,
        idle_seconds=settings.relay_idle_seconds,
        lock_name=NAME,
    )
    notes = Notes(db, notify_outbox=relay.notify)
    consumer = EventConsumer(
        db,
        store.inbox,
        name=NAME,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=service.consumer_group,
        topics_=[topics.CAREPLAN, topics.SCHEDULING],
        handlers={
            careplan_codes.EVENT_CREATED: notes.on_care_plan_created,
            careplan_codes.EVENT_TEAM_CREATED: notes.on_care_team_changed,
            careplan_codes.EVENT_TEAM_UPDATED: notes.on_care_team_changed,
            scheduling_codes.EVENT_APPOINTMENTS_PROPOSED: notes.on_appointments_proposed,
        },
        max_attempts=settings.consumer_max_attempts,
        on_applied=lambda _event: relay.notify(),
    )
    server, port, health = create_server(
        [(pb_grpc.add_NotesServiceServicer_to_server, NotesServicer(notes), SERVICE_NAME)],
        f"{service.host}:{service.port}",
        TokenVerifier(settings),
        max_workers=service.grpc_workers,
        max_message_bytes=settings.max_resource_bytes + 64 * 1024,
        tls=TlsFiles.from_settings(settings),
    )
    return ServiceRuntime(NAME, db, server, port, health, relay=relay, consumers=[consumer])
