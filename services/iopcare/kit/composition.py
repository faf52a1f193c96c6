"""What every service's composition root (`app.build`) does alike besides kit.runtime.Assembly:
resolve its settings (the process's, or a test's), and keep the care-team projection (scheduling,
notes)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Table

from iopcare.kit.consumer import Handler
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.kit.teams import projection_handler


def configured(
    name: str, settings: Settings | None, service: ServiceSettings | None
) -> tuple[Settings, ServiceSettings]:
    """The settings of service `name` that a composition root's caller did not give: the
    process's own, from the environment (tests give theirs)."""
    settings = settings or Settings()
    return settings, service or ServiceSettings.for_service(name, settings)


def team_projection_handlers(
    members: Table, seen: Table, event_types: Iterable[str]
) -> dict[str, Handler]:
    """The handlers with which a service keeps its copy of the care-team memberships, by the
    careplan event types that carry a CareTeam."""
    on_team = projection_handler(members, seen)
    return dict.fromkeys(event_types, on_team)
