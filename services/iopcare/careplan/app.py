"""Composition root of the care plan service: wires settings, database, servicer and relay."""

from __future__ import annotations

from pathlib import Path

from iopcare.careplan import store
from iopcare.careplan.api import SERVICE_NAME, CarePlanServicer
from iopcare.careplan.service import CarePlans, CareTeams
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.auth import TokenVerifier
from iopcare.kit.relay import OutboxRelay, make_producer
from iopcare.kit.rpc import TlsFiles, create_server
from iopcare.kit.runtime import ServiceRuntime, open_database
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.kit.teams import TeamAccess

NAME = "careplan"
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
    access = TeamAccess(store.care_team_member)
    plans = CarePlans(
        db,
        max_resource_bytes=settings.max_resource_bytes,
        notify_outbox=relay.notify,
        access=access,
    )
    teams = CareTeams(
        db,
        max_resource_bytes=settings.max_resource_bytes,
        notify_outbox=relay.notify,
        access=access,
    )
    server, port, health = create_server(
        [
            (
                pb_grpc.add_CarePlanServiceServicer_to_server,
                CarePlanServicer(plans, teams),
                SERVICE_NAME,
            )
        ],
        f"{service.host}:{service.port}",
        TokenVerifier(settings),
        max_workers=service.grpc_workers,
        max_message_bytes=settings.max_resource_bytes + 64 * 1024,
        tls=TlsFiles.from_settings(settings),
    )
    return ServiceRuntime(NAME, db, server, port, health, relay=relay)
