"""Composition root of the scheduling service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import iopcare.careplan.contract as careplan_contract
from iopcare.kit import topics
from iopcare.kit.composition import configured, team_projection_handlers
from iopcare.kit.rpc import rules_for
from iopcare.kit.runtime import Assembly, PeriodicTask, ServiceRuntime
from iopcare.kit.settings import ServiceSettings, Settings
from iopcare.scheduling import family, store
from iopcare.scheduling.api import SERVICE_NAME, SchedulingServicer
from iopcare.scheduling.domain.family import SchoolHours
from iopcare.scheduling.domain.intensity import Rule
from iopcare.scheduling.scope_rules import SCOPE_RULES
from iopcare.scheduling.service import Scheduling
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as pb_grpc

NAME = "scheduling"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(
    settings: Settings | None = None, service: ServiceSettings | None = None
) -> ServiceRuntime:
    settings, service = configured(NAME, settings, service)
    parts = Assembly(NAME, settings, service, MIGRATIONS, store.outbox)
    scheduling = Scheduling(
        parts.db,
        zone=ZoneInfo(settings.program_timezone),
        horizon=timedelta(days=settings.scheduling_horizon_days),
        notify_outbox=parts.relay.notify,
        # [minimum] or [minimum, maximum]; a maximum of 0 means none.
        rules={
            program: Rule(hours[0], (hours[1] if len(hours) > 1 else 0) or None)
            for program, hours in settings.scheduling_intensity_rules.items()
            if hours
        },
        default_program=settings.scheduling_default_program,
        holidays=frozenset(settings.scheduling_program_holidays),
        checkin_cutoff=settings.scheduling_checkin_cutoff,
        school=SchoolHours(settings.scheduling_school_day_end),
    )
    consumer = parts.consumer(
        store.inbox,
        [topics.CAREPLAN],
        {
            careplan_contract.EVENT_CREATED: scheduling.handlers.on_care_plan_created,
            **{
                careplan_contract.EVENT_FOR_CHANGE[change]: scheduling.handlers.on_care_plan_changed
                for change in ("update", "activate", "resume")
            },
            **{
                careplan_contract.EVENT_FOR_CHANGE[change]: scheduling.handlers.on_care_plan_closed
                for change in ("complete", "revoke", "suspend", "enter-in-error")
            },
            careplan_contract.EVENT_PATIENT_CREATED: family.on_patient,
            careplan_contract.EVENT_PATIENT_UPDATED: family.on_patient,
            careplan_contract.EVENT_RELATED_PERSON_CREATED: family.on_related_person,
            **team_projection_handlers(
                store.care_team_member, store.care_team_seen, careplan_contract.TEAM_EVENTS
            ),
        },
    )
    servicer = SchedulingServicer(scheduling)
    return parts.runtime(
        [(pb_grpc.add_SchedulingServiceServicer_to_server, servicer, SERVICE_NAME)],
        [consumer],
        [
            PeriodicTask(
                "scheduling-intensity",
                settings.scheduling_intensity_check_seconds,
                scheduling.check_intensity,
            ),
            PeriodicTask(
                "scheduling-check-ins",
                settings.scheduling_checkin_check_seconds,
                scheduling.check_missed_check_ins,
            ),
            PeriodicTask(
                "scheduling-horizon",
                settings.scheduling_horizon_check_seconds,
                scheduling.extend_horizons,
            ),
        ],
        rules=rules_for(SERVICE_NAME, SCOPE_RULES),
    )
