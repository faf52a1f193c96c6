"""Composition root of the care plan service."""

from __future__ import annotations

from pathlib import Path

from iopcare.careplan import store
from iopcare.careplan.api import SERVICE_NAME, CarePlanServicer
from iopcare.careplan.care_teams import CareTeams
from iopcare.careplan.episodes import Episodes
from iopcare.careplan.measures import Measures
from iopcare.careplan.service import CarePlans
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit.runtime import Assembly, ServiceRuntime
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.kit.teams import TeamAccess

NAME = "careplan"
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
    access = TeamAccess(store.care_team_member)
    limit, notify = settings.max_resource_bytes, parts.relay.notify
    plans = CarePlans(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    teams = CareTeams(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    measures = Measures(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    episodes = Episodes(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    return parts.runtime(
        [
            (
                pb_grpc.add_CarePlanServiceServicer_to_server,
                CarePlanServicer(plans, teams, measures, episodes),
                SERVICE_NAME,
            )
        ]
    )
