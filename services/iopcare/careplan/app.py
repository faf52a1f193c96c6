"""Composition root of the care plan service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from iopcare.careplan import store
from iopcare.careplan.api import SERVICE_NAME, CarePlanServicer
from iopcare.careplan.care_teams import CareTeams
from iopcare.careplan.domain.monitoring import Thresholds
from iopcare.careplan.episodes import Episodes
from iopcare.careplan.handlers import handlers
from iopcare.careplan.listing import Listings
from iopcare.careplan.measures import Measures
from iopcare.careplan.medications import Medications
from iopcare.careplan.nutrition import NutritionPlans
from iopcare.careplan.patient_view import PatientView
from iopcare.careplan.registry import Registry
from iopcare.careplan.scope_rules import SCOPE_RULES
from iopcare.careplan.service import CarePlans
from iopcare.careplan.template_files import load_templates
from iopcare.careplan.utilization import Utilization
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from iopcare.kit import topics
from iopcare.kit.composition import configured
from iopcare.kit.rpc import rules_for
from iopcare.kit.runtime import Assembly, PeriodicTask, ServiceRuntime
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.kit.teams import TeamAccess

NAME = "careplan"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(
    settings: Settings | None = None, service: ServiceSettings | None = None
) -> ServiceRuntime:
    settings, service = configured(NAME, settings, service)
    parts = Assembly(NAME, settings, service, MIGRATIONS, store.outbox)
    access = TeamAccess(store.care_team_member)
    limit, notify = settings.max_resource_bytes, parts.relay.notify
    plans = CarePlans(
        parts.db,
        max_resource_bytes=limit,
        notify_outbox=notify,
        access=access,
        review_interval_days=settings.review_interval_days,
    )
    teams = CareTeams(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    measures = Measures(
        parts.db,
        max_resource_bytes=limit,
        notify_outbox=notify,
        access=access,
        thresholds=Thresholds().with_overrides(settings.monitoring_thresholds),
    )
    episodes = Episodes(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    view = PatientView(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    registry = Registry(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    listings = Listings(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access)
    medications = Medications(
        parts.db,
        max_resource_bytes=limit,
        notify_outbox=notify,
        access=access,
        deadline=timedelta(hours=settings.medication_reconciliation_hours),
    )
    utilization = Utilization(
        parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access
    )
    utilization.zone = ZoneInfo(settings.program_timezone)
    consumer = parts.consumer(
        store.inbox, [topics.SCHEDULING, topics.NOTES], handlers(measures, utilization)
    )
    servicer = CarePlanServicer(
        plans,
        teams,
        measures,
        episodes,
        view,
        registry,
        listings,
        load_templates(settings.plan_templates_dir),
        NutritionPlans(parts.db, max_resource_bytes=limit, notify_outbox=notify, access=access),
        medications,
    )
    review_due = PeriodicTask(
        "review-due",
        settings.review_check_seconds,
        lambda: plans.announce_due_reviews(datetime.now(UTC).date()),
    )
    # Inbound medications unreconciled past the deadline raise a team task, on the review clock.
    reconciliation_due = PeriodicTask(
        "medication-reconciliation-due",
        settings.review_check_seconds,
        medications.raise_overdue_tasks,
    )
    servicer.utilization = utilization  # the servicer's RPCs share the alerts' clock and zone
    authorization_alerts = PeriodicTask(
        "authorization-alerts", settings.review_check_seconds, utilization.announce_alerts
    )
    return parts.runtime(
        [(pb_grpc.add_CarePlanServiceServicer_to_server, servicer, SERVICE_NAME)],
        [consumer],
        [review_due, reconciliation_due, authorization_alerts],
        rules=rules_for(SERVICE_NAME, SCOPE_RULES),
    )
